public import XenGnt

extension XenGntError.Code {
    // MARK: Event channels

    /// Xen refused to bind the port: `XenGntError/domain`, `XenGntError/port` (the remote
    /// port, for an interdomain bind).
    public static var eventChannelRefused: Self {
        Self("eventChannelRefused") { e in
            let target =
                e.port.map { "port \($0) of \(e.domain.map { "\($0)" } ?? "the remote domain")" }
                ?? "a port for \(e.domain.map { "\($0)" } ?? "the remote domain")"
            return
                "Xen refused to bind \(target) (\(e.errno?.symbolicName ?? "error")): an interdomain bind needs a port the remote domain allocated for this domain (unbound, not yet connected); ESRCH means the domain does not exist; the domain may also be out of ports."
        }
    }
    /// The per-file queue of `/dev/xen/evtchn` overflowed (`EFBIG`); it was reset and its
    /// ports unmasked, and notifications may have been merged.
    public static var eventQueueOverflow: Self {
        Self("eventQueueOverflow") { e in
            "the event queue of /dev/xen/evtchn overflowed (EFBIG) on port \(e.port.map(String.init) ?? "?"): it was reset (IOCTL_EVTCHN_RESET) and the port unmasked; check the shared ring for work, since notifications may have been merged."
        }
    }
    /// The port was unbound while a task waited on it.
    public static var eventChannelClosed: Self {
        Self("eventChannelClosed") { e in
            "event channel port \(e.port.map(String.init) ?? "") was unbound."
        }
    }

    // MARK: Shared rings

    /// The peer moved a producer index more than the ring holds ahead of what was consumed:
    /// `XenGntError/detail` names the indices.
    public static var ringOverflow: Self {
        Self("ringOverflow") { e in
            "the peer's producer index is ahead of this side's consumer by more than the ring's \(e.limit.map(String.init) ?? "") slots (\(e.detail ?? "")); the ring is corrupt or the peer hostile: disconnect it. Nothing was read out of bounds."
        }
    }
    /// The peer moved an index backwards: `XenGntError/detail` names the indices.
    public static var ringIndexBackwards: Self {
        Self("ringIndexBackwards") { e in
            "the peer moved an index backwards (\(e.detail ?? "")); the ring is corrupt or the peer hostile: disconnect it. Nothing was read out of bounds."
        }
    }
    /// More responses than requests outstanding, or more than the peer could have produced.
    public static var ringProtocolViolation: Self {
        Self("ringProtocolViolation") { e in
            "the ring's protocol was broken: \(e.detail ?? "an index the peer set is impossible"); disconnect the peer."
        }
    }
    /// No free slot: `XenGntError/limit` slots are all in use.
    public static var ringFull: Self {
        Self("ringFull") { e in
            "every one of the ring's \(e.limit.map(String.init) ?? "") slots is in use; wait for the peer to consume (take responses, then retry)."
        }
    }
    /// The memory cannot hold a ring of these entries: `XenGntError/length` bytes.
    public static var ringTooSmall: Self {
        Self("ringTooSmall") { e in
            "\(e.length.map { "\($0) bytes" } ?? "the memory") cannot hold a ring of these entries (\(e.detail ?? "")); map the number of pages the protocol's ring-page-order says."
        }
    }

    // MARK: Devices (XenbusState)

    /// The toolstack's description of a device is unusable: `XenGntError/path`,
    /// `XenGntError/detail`.
    public static var invalidDevice: Self {
        Self("invalidDevice") { e in
            "the device at \(e.path ?? "?") is unusable: \(e.detail ?? "its XenStore entries are missing or wrong")."
        }
    }
    /// The peer did not reach the expected state in time: `XenGntError/path`,
    /// `XenGntError/detail`.
    public static var peerNotReady: Self {
        Self("peerNotReady") { e in
            "the peer at \(e.path ?? "?") did not become \(e.detail ?? "ready") in time."
        }
    }
    /// The peer closed the device, or its domain went away.
    public static var peerClosed: Self {
        Self("peerClosed") { e in
            "the peer at \(e.path ?? "?") closed the device or went away (\(e.detail ?? "Closing"))."
        }
    }
}

extension XenGntError.Operation {
    /// Binding an event channel port (``EventChannel/bindUnbound(remote:on:)``,
    /// ``EventChannel/bindInterdomain(remote:port:on:)``).
    public static let bindEventChannel = Self("bindEventChannel")
    /// ``EventChannel/notify()``.
    public static let notifyEventChannel = Self("notifyEventChannel")
    /// ``EventChannel/unbind()``.
    public static let unbindEventChannel = Self("unbindEventChannel")
    /// Waiting for, taking and unmasking an event (``EventChannel/notifications``).
    public static let receiveEvent = Self("receiveEvent")
    /// Attaching a ring to memory.
    public static let attachRing = Self("attachRing")
    /// Taking requests (back end) or responses (front end) off a ring.
    public static let consumeRing = Self("consumeRing")
    /// Putting requests (front end) or responses (back end) on a ring.
    public static let produceRing = Self("produceRing")
    /// Following a device's XenbusState (``Backend/run(observe:prepare:serve:)``, ``FrontendDevice``).
    public static let deviceLifecycle = Self("deviceLifecycle")
}
