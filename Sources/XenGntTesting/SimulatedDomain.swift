public import XenGnt
import SystemPackage

/// A domain of a ``XenSimulation``: open devices as it with ``system``, and act as its kernel
/// from a test — grant pages the way a frontend driver does, read and write them, bind event
/// channels.
public struct SimulatedDomain: Sendable {
    let simulation: XenSimulation
    /// The domain id.
    public let id: DomainID
    /// The guest type its kernel reports.
    public let type: GuestType

    /// Pass to `GrantDevice(on:)`, `GrantAllocator(on:)`, `DmaBuf.udmabuf(pages:on:)`.
    public var system: XenSystem { simulation.domain(id) }

    /// Grants `domain` access to `count` fresh zeroed pages of this domain, as a frontend
    /// driver does with `gnttab_grant_foreign_access` (no gntalloc involved).
    ///
    /// - Returns: the grant references, one per page.
    public func grantPages(_ count: Int, to domain: DomainID, access: Access = .readWrite) throws(XenGntError) -> [GrantRef] {
        try simulation.kernel.withLock { (kernel) throws(XenGntError) -> [GrantRef] in
            let me = try kernel.domain(id)
            var refs: [GrantRef] = []
            for _ in 0..<count {
                do throws(Errno) {
                    let page = try me.allocatePage()
                    let ref = try me.grant(page, to: domain.rawValue, readOnly: access == .readOnly, ownsPage: true, tableSize: kernel.configuration.grantTableSize)
                    refs.append(GrantRef(ref))
                } catch {
                    for ref in refs { me.endAccess(ref.rawValue) }
                    throw XenGntError(error == .noSpace ? .grantTableFull : .kernel, .share, errno: error)
                }
            }
            return refs
        }
    }

    /// Ends the access granted by `refs`, as a frontend does when it frees a buffer. Deferred
    /// while another domain maps a page (Linux's deferred end of access).
    public func endAccess(_ refs: [GrantRef]) {
        simulation.kernel.withLock { kernel in
            guard let me = kernel.domains[id.rawValue] else { return }
            for ref in refs { me.endAccess(ref.rawValue) }
        }
    }

    /// Whether `ref` is still an entry of this domain's grant table (access not yet ended, or
    /// ended but deferred because it is still mapped).
    public func isGranted(_ ref: GrantRef) -> Bool {
        simulation.kernel.withLock { kernel in kernel.domains[id.rawValue]?.grants[ref.rawValue] != nil }
    }

    /// How many foreign mappings (gntdev maps, exports) hold the page of `ref`.
    public func mapCount(of ref: GrantRef) -> Int {
        simulation.kernel.withLock { kernel in kernel.domains[id.rawValue]?.grants[ref.rawValue]?.mapCount ?? 0 }
    }

    /// The domain a grant of this domain was given to.
    public func grantee(of ref: GrantRef) -> DomainID? {
        simulation.kernel.withLock { kernel in kernel.domains[id.rawValue]?.grants[ref.rawValue].map { DomainID($0.grantee) } }
    }

    /// Writes `bytes` into the page of `ref` at `offset`, as the granting domain.
    public func write(_ bytes: [UInt8], toGrant ref: GrantRef, at offset: Int = 0) throws(XenGntError) {
        let page = try page(of: ref)
        guard offset >= 0, offset + bytes.count <= xenPageSize else {
            throw XenGntError(.outOfRange, .writeMapping, offset: offset, length: xenPageSize)
        }
        page.write(bytes, at: offset)
    }

    /// Reads `count` bytes of the page of `ref` at `offset`, as the granting domain.
    public func read(grant ref: GrantRef, at offset: Int = 0, count: Int = xenPageSize) throws(XenGntError) -> [UInt8] {
        let page = try page(of: ref)
        guard offset >= 0, count >= 0, offset + count <= xenPageSize else {
            throw XenGntError(.outOfRange, .writeMapping, offset: offset, length: xenPageSize)
        }
        return page.read(at: offset, count: count)
    }

    private func page(of ref: GrantRef) throws(XenGntError) -> Page {
        try simulation.kernel.withLock { (kernel) throws(XenGntError) -> UncheckedBox<Page> in
            guard let entry = try kernel.domain(id).grants[ref.rawValue] else {
                throw XenGntError(.invalidArgument, .writeMapping, detail: "\(id) has no grant \(ref.rawValue).")
            }
            return UncheckedBox(entry.page)
        }.value
    }

    /// Binds a new event channel port in this domain (what `/dev/xen/evtchn` does), so an unmap
    /// notification can signal it. ``notificationCount(port:)`` counts what is sent through it.
    public func bindEventChannel() -> UInt32 {
        simulation.kernel.withLock { kernel in
            guard let me = kernel.domains[id.rawValue] else { return 0 }
            return me.bindPort(EventPort())
        }
    }

    /// Allocates a port that `remote` may connect to (`IOCTL_EVTCHN_BIND_UNBOUND_PORT`).
    public func bindUnboundPort(remote: DomainID) throws(XenGntError) -> UInt32 {
        try simulation.kernel.withLock { (kernel) throws(XenGntError) in
            try kernel.domain(id).bindPort(EventPort(remoteDomain: remote.rawValue))
        }
    }

    /// Connects a new local port to `remotePort` of `remote`, which must be an unbound port
    /// that allows this domain (`IOCTL_EVTCHN_BIND_INTERDOMAIN`).
    public func bindInterdomain(remote: DomainID, remotePort: UInt32) throws(XenGntError) -> UInt32 {
        try simulation.kernel.withLock { (kernel) throws(XenGntError) in
            let me = try kernel.domain(id)
            let peer = try kernel.domain(remote)
            guard var far = peer.ports[remotePort], far.remoteDomain == id.rawValue, far.remotePort == nil else {
                throw XenGntError(.invalidArgument, .probe, detail: "\(remote) has no unbound port \(remotePort) for \(id).")
            }
            let port = me.bindPort(EventPort(remoteDomain: remote.rawValue, remotePort: remotePort))
            far.remotePort = port
            peer.ports[remotePort] = far
            return port
        }
    }

    /// How many notifications were sent through `port` (bound with ``bindEventChannel()``).
    public func notificationCount(port: UInt32) -> Int {
        simulation.kernel.withLock { kernel in kernel.domains[id.rawValue]?.ports[port]?.sent ?? 0 }
    }

    /// How many events the peer of `port` has sent to it.
    public func receivedEvents(port: UInt32) -> Int {
        simulation.kernel.withLock { kernel in kernel.domains[id.rawValue]?.ports[port]?.received ?? 0 }
    }
}

extension SimDomain {
    func bindPort(_ port: EventPort) -> UInt32 {
        let number = nextPort
        nextPort += 1
        ports[number] = port
        return number
    }
}

extension SimKernel {
    func domain(_ id: DomainID) throws(XenGntError) -> SimDomain {
        guard let domain = domains[id.rawValue] else {
            throw XenGntError(.invalidArgument, .probe, detail: "the simulation has no \(id).")
        }
        return domain
    }
}
