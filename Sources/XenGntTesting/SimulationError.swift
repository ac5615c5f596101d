public import SystemPackage
public import XenGnt

/// Why setting up a simulation failed: adding a domain, granting pages as its kernel, reading
/// or writing them, binding event channels, spawning a process. (What goes through the seam
/// fails as the kernel would, with an `Errno` that XenGnt turns into its own error.)
public struct SimulationError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What went wrong.
    public enum Reason: Sendable, Hashable {
        /// Xen reserves the id (`DOMID_FIRST_RESERVED` and up).
        case reservedDomain(DomainID)
        /// The simulation already has a domain with this id (running, or dying).
        case domainExists(DomainID)
        /// The simulation has no domain with this id.
        case noSuchDomain(DomainID)
        /// The domain was destroyed, or its kernel oopsed.
        case domainNotRunning(DomainID, XenSimulation.DomainState)
        /// A page count that is negative.
        case invalidCount(Int)
        /// A byte range that does not lie within one page.
        case outOfRange(offset: Int, count: Int)
        /// The domain's grant table cannot hold that many more grants.
        case grantTableFull(DomainID, available: Int)
        /// The domain has no such grant.
        case noSuchGrant(DomainID, GrantRef)
        /// The port is not an unbound port of `remote` open to the domain.
        case noUnboundPort(remote: DomainID, port: UInt32)
        /// The host refused what the simulator asked of it (a memfd, most likely).
        case host(Errno)
    }

    /// What went wrong.
    public let reason: Reason

    /// An error for `reason`.
    public init(_ reason: Reason) { self.reason = reason }

    /// A sentence saying what went wrong.
    public var description: String {
        switch reason {
        case .reservedDomain(let id):
            "\(id) is reserved by Xen (ids from 0x7FF0 up), so no domain can have it."
        case .domainExists(let id):
            "the simulation already has \(id)."
        case .noSuchDomain(let id):
            "the simulation has no \(id)."
        case .domainNotRunning(let id, let state):
            "\(id) is \(state): it can no longer do that."
        case .invalidCount(let count):
            "\(count) is not a page count."
        case .outOfRange(let offset, let count):
            "\(count) bytes at offset \(offset) do not lie within one \(xenPageSize)-byte page."
        case .grantTableFull(let id, let available):
            "\(id)'s grant table has room for \(available) more grants (its max_grant_frames is reached)."
        case .noSuchGrant(let id, let ref):
            "\(id) has no grant \(ref.rawValue)."
        case .noUnboundPort(let remote, let port):
            "\(remote) has no unbound port \(port) open to this domain."
        case .host(let errno):
            "the host refused the simulator's own call (errno \(errno.rawValue))."
        }
    }
}
