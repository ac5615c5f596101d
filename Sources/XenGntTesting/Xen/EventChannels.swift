/// Where the kernel of a port's domain takes its events (a `/dev/xen/evtchn` file that bound
/// it): told when the port becomes pending; it clears `pending` when it takes the event (a port
/// masked meanwhile keeps it, to be raised again when unmasked).
protocol EventSink: AnyObject {
    func raise(_ port: UInt32, of domain: XenDomain)
}

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
    /// Xen's pending bit: an event arrived that the domain has not taken.
    var pending = false
    /// The kernel's handler of the port, if a `/dev/xen/evtchn` file bound it.
    weak var sink: (any EventSink)?
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

    var numbers: [UInt32] { Array(ports.keys) }

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
            let peer = domains[remoteDomain], peer.isAlive
        {
            peer.ports[remotePort]?.received += 1
            raise(remotePort, of: peer)
        }
    }

    /// Sets `port` of `domain` pending and tells its handler, if it has one.
    func raise(_ port: UInt32, of domain: XenDomain) {
        guard domain.ports[port] != nil else { return }
        domain.ports[port]?.pending = true
        domain.ports[port]?.sink?.raise(port, of: domain)
    }

    /// `EVTCHNOP_close`: the port goes; a connected peer's end becomes unbound again (for this
    /// domain), so what it sends from then on is dropped.
    func close(port: UInt32, of domain: XenDomain) {
        guard let local = domain.ports[port] else { return }
        domain.ports[port] = nil
        if let remoteDomain = local.remoteDomain, let remotePort = local.remotePort,
            let peer = domains[remoteDomain], peer.ports[remotePort]?.remotePort == port
        {
            peer.ports[remotePort]?.remotePort = nil
        }
    }

    /// Connects a new port of `domain` to the unbound port `remotePort` of `remote`, which
    /// must allow `domain` (`EVTCHNOP_bind_interdomain`); `nil` when it does not.
    func bindInterdomain(_ domain: XenDomain, remote: XenDomain, remotePort: UInt32) -> UInt32? {
        guard var far = remote.ports[remotePort], far.remoteDomain == domain.id, far.remotePort == nil else { return nil }
        let port = domain.ports.bind(EventPort(remoteDomain: remote.id, remotePort: remotePort))
        far.remotePort = port
        remote.ports[remotePort] = far
        // Xen raises the new local port at once: it dropped whatever was sent to the unbound
        // port and cannot know whether something was (lab `evtchn-both-ways`).
        domain.ports[port]?.pending = true
        return port
    }
}
