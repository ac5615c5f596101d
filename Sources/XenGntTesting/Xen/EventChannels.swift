/// An event channel port bound in a domain.
struct EventPort {
    /// Notifications sent through this port.
    var sent = 0
    /// Events delivered to this port by its peer.
    var received = 0
    /// The domain allowed to bind to this port (an unbound port), or the peer's domain.
    var remoteDomain: UInt16?
    /// The peer's port once the channel is connected.
    var remotePort: UInt32?
}

/// A domain's event channel ports (what `/dev/xen/evtchn` binds; the simulator binds them for
/// tests directly).
struct EventChannels {
    private(set) var ports: [UInt32: EventPort] = [:]
    private var nextPort: UInt32 = 1

    var count: Int { ports.count }

    subscript(port: UInt32) -> EventPort? {
        get { ports[port] }
        set { ports[port] = newValue }
    }

    mutating func bind(_ port: EventPort) -> UInt32 {
        let number = nextPort
        nextPort += 1
        ports[number] = port
        return number
    }
}

extension Hypervisor {
    /// Sends an event through `port` of `domain` (`EVTCHNOP_send`): counted there, and
    /// delivered to the peer's port if the channel is connected and the peer still runs.
    func notify(port: UInt32, of domain: XenDomain) {
        guard var local = domain.ports[port] else { return }
        local.sent += 1
        domain.ports[port] = local
        if let remoteDomain = local.remoteDomain, let remotePort = local.remotePort,
           let peer = domains[remoteDomain], peer.isAlive {
            peer.ports[remotePort]?.received += 1
        }
    }

    /// Connects a new port of `domain` to the unbound port `remotePort` of `remote`, which
    /// must allow `domain` (`EVTCHNOP_bind_interdomain`); `nil` when it does not.
    func bindInterdomain(_ domain: XenDomain, remote: XenDomain, remotePort: UInt32) -> UInt32? {
        guard var far = remote.ports[remotePort], far.remoteDomain == domain.id, far.remotePort == nil else { return nil }
        let port = domain.ports.bind(EventPort(remoteDomain: remote.id, remotePort: remotePort))
        far.remotePort = port
        remote.ports[remotePort] = far
        return port
    }
}
