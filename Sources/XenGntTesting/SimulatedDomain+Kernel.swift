import SystemPackage
public import XenGnt

/// Acting as the domain's kernel from a test: what its frontend drivers and `/dev/xen/evtchn`
/// would do.
extension SimulatedDomain {
    /// Grants `domain` access to `count` fresh zeroed pages of this domain, as a frontend
    /// driver does with `gnttab_grant_foreign_access` (no gntalloc involved).
    ///
    /// - Returns: the grant references, one per page.
    /// - Throws: ``SimulationError`` for a negative count, more grants than the grant table
    ///   can hold, or a domain that is not running.
    public func grantPages(_ count: Int, to domain: DomainID, access: Access = .readWrite) throws(SimulationError) -> [GrantRef] {
        guard count >= 0 else { throw SimulationError(.invalidCount(count)) }
        return try withRunningKernel { (machine, kernel) throws(SimulationError) -> [GrantRef] in
            let me = kernel.domain
            let available = me.grantTable.available
            guard count <= available else { throw SimulationError(.grantTableFull(id, available: available)) }
            var refs: [GrantRef] = []
            refs.reserveCapacity(count)
            for _ in 0..<count {
                do throws(Errno) {
                    let page = try me.memory.allocatePage()
                    let entry = try me.grantTable.grant(page, to: domain.rawValue, readOnly: access == .readOnly, ownsPage: true)
                    refs.append(GrantRef(entry.ref))
                } catch {
                    for ref in refs { machine.hypervisor.endAccess(ref.rawValue, of: me) }
                    throw SimulationError(error == .noSpace ? .grantTableFull(id, available: available) : .host(error))
                }
            }
            return refs
        }
    }

    /// Ends the access granted by `refs`, as a frontend does when it frees a buffer. Deferred
    /// while another domain maps a page (Linux's deferred end of access).
    public func endAccess(_ refs: [GrantRef]) {
        inspect(()) { machine, domain in
            for ref in refs { machine.hypervisor.endAccess(ref.rawValue, of: domain) }
        }
    }

    /// Whether `ref` is still an entry of this domain's grant table (access not yet ended, or
    /// ended but deferred because it is still mapped).
    public func isGranted(_ ref: GrantRef) -> Bool {
        inspect(false) { _, domain in domain.grantTable[ref.rawValue] != nil }
    }

    /// How many mappings (gntdev maps, exports, of any domain) hold the page of `ref`.
    public func mapCount(of ref: GrantRef) -> Int {
        inspect(0) { _, domain in domain.grantTable[ref.rawValue]?.mapCount ?? 0 }
    }

    /// The domain a grant of this domain was given to.
    public func grantee(of ref: GrantRef) -> DomainID? {
        inspect(nil) { _, domain in domain.grantTable[ref.rawValue].map { DomainID($0.grantee) } }
    }

    /// Writes `bytes` into the page of `ref` at `offset`, as the granting domain.
    public func write(_ bytes: [UInt8], toGrant ref: GrantRef, at offset: Int = 0) throws(SimulationError) {
        guard offset >= 0, offset <= xenPageSize, bytes.count <= xenPageSize - offset else {
            throw SimulationError(.outOfRange(offset: offset, count: bytes.count))
        }
        try page(of: ref).write(bytes, at: offset)
    }

    /// Reads `count` bytes of the page of `ref` at `offset`, as the granting domain.
    public func read(grant ref: GrantRef, at offset: Int = 0, count: Int = xenPageSize) throws(SimulationError) -> [UInt8] {
        guard offset >= 0, count >= 0, offset <= xenPageSize, count <= xenPageSize - offset else {
            throw SimulationError(.outOfRange(offset: offset, count: count))
        }
        return try page(of: ref).read(at: offset, count: count)
    }

    private func page(of ref: GrantRef) throws(SimulationError) -> Page {
        try withRunningKernel { (_, kernel) throws(SimulationError) -> Page in
            guard let entry = kernel.domain.grantTable[ref.rawValue] else { throw SimulationError(.noSuchGrant(id, ref)) }
            return entry.page
        }
    }

    // MARK: Event channels

    /// Binds a new event channel port in this domain (what `/dev/xen/evtchn` does), so an unmap
    /// notification can signal it. ``notificationCount(port:)`` counts what is sent through it.
    /// Returns 0 (no port) once the domain is destroyed.
    public func bindEventChannel() -> UInt32 {
        (try? withRunningKernel { (_, kernel) throws(SimulationError) in kernel.domain.ports.bind(EventPort()) }) ?? 0
    }

    /// Allocates a port that `remote` may connect to (`IOCTL_EVTCHN_BIND_UNBOUND_PORT`).
    public func bindUnboundPort(remote: DomainID) throws(SimulationError) -> UInt32 {
        try withRunningKernel { (_, kernel) throws(SimulationError) in
            kernel.domain.ports.bind(EventPort(remoteDomain: remote.rawValue))
        }
    }

    /// Connects a new local port to `remotePort` of `remote`, which must be an unbound port
    /// that allows this domain (`IOCTL_EVTCHN_BIND_INTERDOMAIN`).
    public func bindInterdomain(remote: DomainID, remotePort: UInt32) throws(SimulationError) -> UInt32 {
        try withRunningKernel { (machine, kernel) throws(SimulationError) in
            guard let peer = machine.hypervisor.domains[remote.rawValue] else { throw SimulationError(.noSuchDomain(remote)) }
            guard peer.isAlive else { throw SimulationError(.domainNotRunning(remote, peer.state)) }
            guard let port = machine.hypervisor.bindInterdomain(kernel.domain, remote: peer, remotePort: remotePort) else {
                throw SimulationError(.noUnboundPort(remote: remote, port: remotePort))
            }
            return port
        }
    }

    /// How many notifications were sent through `port` (bound with ``bindEventChannel()``).
    public func notificationCount(port: UInt32) -> Int {
        inspect(0) { _, domain in domain.ports[port]?.sent ?? 0 }
    }

    /// How many events the peer of `port` has sent to it.
    public func receivedEvents(port: UInt32) -> Int {
        inspect(0) { _, domain in domain.ports[port]?.received ?? 0 }
    }
}
