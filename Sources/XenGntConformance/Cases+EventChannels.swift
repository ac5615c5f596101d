import SystemPackage
import XenGnt
import XenGntBackend

extension ConformanceSuite {
    static let eventChannelCases: [ConformanceCase] = [
        ConformanceCase(
            "evtchn-both-ways",
            "Swift event channels between Dom0 and each DomU: unbound port, interdomain bind (which raises an event on the new port), 50 notifications each way; refused binds (bad port, missing domain, a port taken); unbinding ends a waiting iteration",
            parts: [
                .dom0: { peer in
                    for domU in [LabRole.pv, .pvh] {
                        let port = UInt32(try await peer.value(of: "port", from: domU))!
                        let channel = try EventChannel.bindInterdomain(remote: peer.id(of: domU), port: port, on: peer.system)
                        try check(channel.remotePort == port && channel.remoteDomain == peer.id(of: domU), "the channel's ends")
                        try await checkFailsAsync(code: .eventChannelRefused, errno: .invalidArgument) {
                            _ = try EventChannel.bindInterdomain(remote: peer.id(of: domU), port: port, on: peer.system)
                        }
                        // Xen raises an event on a port it has just connected (it dropped what was
                        // sent to the unbound port, so it cannot know whether one was lost).
                        var events = channel.notifications.makeAsyncIterator()
                        guard let first = try await events.next() else { throw ConformanceFailure("the port went away") }
                        try check(first.port == channel.port, "the bind-time event")
                        try await peer.publish("bound-\(domU)")
                        for round in 0..<50 {
                            try channel.notify()
                            guard let event = try await events.next() else { throw ConformanceFailure("the port went away") }
                            try check(event.port == channel.port && !event.followsOverflow, "round \(round): \(event)")
                        }
                        try await peer.wait(for: "done", from: domU)
                        try channel.notify()  // the DomU unbound its end: Xen drops this
                        try channel.unbind()
                    }
                    try await checkFailsAsync(code: .eventChannelRefused, errno: .invalidArgument) {
                        _ = try EventChannel.bindInterdomain(remote: peer.id(of: .pv), port: 0xFFFF, on: peer.system)
                    }
                    try await checkFailsAsync(code: .eventChannelRefused, errno: .noSuchProcess) {
                        _ = try EventChannel.bindInterdomain(remote: DomainID(0x7FEE), port: 1, on: peer.system)
                    }
                },
                .pv: eventChannelPeer,
                .pvh: eventChannelPeer,
            ]
        ),

        ConformanceCase(
            "domid-own-grants",
            "XenGnt learns its domain id from XenStore's domid key, and then refuses to map this domain's own grants in a PVH domain (where it would corrupt the mapping and oops the kernel) before asking the kernel; a PV domain maps them",
            each: LabRole.permanent
        ) { peer in
            let system = try await peer.system.identified()
            try check(
                system.domainID == peer.id,
                "identified as \(system.domainID.map { "\($0)" } ?? "nothing"), expected \(peer.id)"
            )
            let shared = try GrantAllocator(on: system).share(pages: 1, with: peer.id)
            let gntdev = try GrantDevice(on: system)
            if peer.role.guestType == .pvh {
                try checkFails(code: .ownGrants, errno: .some(nil), operation: .mapGrants) {
                    _ = try gntdev.map(shared.refs, from: peer.id)
                }
            } else {
                let mapping = try gntdev.map(shared.refs, from: peer.id)
                shared.withUnsafeMutableBytes { $0[5] = 0x5A }
                try check(mapping.withUnsafeBytes { $0[5] } == 0x5A, "a PV domain sees its own page")
                try mapping.unmap()
            }
            try shared.unshare()
        },
    ]

    /// A DomU's part of evtchn-both-ways: allocates a port for Dom0, answers each of its 50
    /// notifications, then shows that unbinding ends an iteration waiting on the port.
    static let eventChannelPeer: ConformanceCase.Part = { peer in
        let dom0 = peer.id(of: .dom0)
        let channel = try EventChannel.bindUnbound(remote: dom0, on: peer.system)
        try check(channel.remotePort == nil && channel.remoteDomain == dom0, "an unbound port's ends")
        try channel.notify()  // not connected yet: Xen drops it
        try await peer.publish("port", "\(channel.port)")
        try await peer.wait(for: "bound-\(peer.role)", from: .dom0)
        var events = channel.notifications.makeAsyncIterator()
        for round in 0..<50 {
            guard try await events.next() != nil else { throw ConformanceFailure("the port went away") }
            try channel.notify()
        }
        let notifications = channel.notifications
        let waiting = Task {
            var iterator = notifications.makeAsyncIterator()
            return try await iterator.next()
        }
        try await Task.sleep(for: .milliseconds(100))
        try channel.unbind()
        let ended = try await waiting.value
        try check(ended == nil, "an iteration waiting on an unbound port ended with \(String(describing: ended))")
        try await peer.publish("done")
    }
}
