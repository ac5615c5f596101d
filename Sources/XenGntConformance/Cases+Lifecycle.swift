import Synchronization
import XenGnt
import XenGntBackend

extension ConformanceSuite {
    static var lifecycleCases: [ConformanceCase] { [backendLifecycle, ringHostile] }

    static let ringHostile =
        ConformanceCase(
            "ring-hostile",
            "a hostile frontend (PVH) cannot crash or hang the Dom0 backend: a producer ahead by more than the ring, a producer moving backwards, a garbage rsp_event, a request rewritten after the backend copied it; each broken connection closes and a reconnection is served, while the PV DomU's connection to the same backend is undisturbed",
            parts: [
                .dom0: { peer in
                    let failures = Locked<[XenGntError.Code]>([])
                    let counters = try await runVxengntBackend(
                        peer,
                        type: "vxengnt-hostile",
                        frontends: [.pv, .pvh],
                        hold: { request in
                            try await peer.publish("copied-\(request.sequence)")
                            try await peer.wait(for: "rewritten-\(request.sequence)", from: .pvh)
                        },
                        observe: { event in
                            if case .served(_, let error?) = event { failures.withLock { $0.append(error.code) } }
                        }
                    )
                    let seen = failures.withLock { $0 }
                    report(
                        peer,
                        "backend: \(counters["connections"]) connections, \(counters["requests"]) requests; refused: \(seen.map(\.name).joined(separator: ", "))"
                    )
                    try check(seen == [.ringOverflow, .ringIndexBackwards], "the backend refused \(seen)")
                    try check(counters["connections"] == 5, "\(counters["connections"]) connections")
                },
                .pv: { peer in
                    try await peer.wait(for: "devices", from: .dom0)
                    try await withXenStore(peer) { store in
                        var frontend = try await VxengntFrontend.connect(
                            type: "vxengnt-hostile",
                            id: 0,
                            store: store,
                            system: peer.system
                        )
                        try await frontend.exchange(100, window: 32)
                        try await peer.publish("connected")
                        try await peer.wait(for: "hostile-done", from: .pvh)
                        try await frontend.exchange(100, window: 32)
                        try check(try await frontend.device.backendState() == .connected, "the PV DomU's connection survived")
                        try await frontend.device.close(timeout: .seconds(30))
                    }
                    try await peer.publish("done")
                },
                .pvh: { peer in
                    try await peer.wait(for: "devices", from: .dom0)
                    try await peer.wait(for: "connected", from: .pv)
                    try await withXenStore(peer) { store in
                        let connect = { () async throws -> VxengntFrontend in
                            try await VxengntFrontend.connect(type: "vxengnt-hostile", id: 0, store: store, system: peer.system)
                        }
                        // 1. req_prod more than a ring ahead of the responses.
                        do {
                            var frontend = try await connect()
                            try await frontend.exchange(2, window: 1)
                            frontend.sharedPage.storeBytes(of: UInt32(frontend.nextSequence + 40), as: UInt32.self)
                            try frontend.channel.notify()
                            try await expectBackendClosing(frontend.device)
                            try await frontend.device.close(timeout: .seconds(30))
                        }
                        // 2. req_prod moved backwards.
                        do {
                            var frontend = try await connect()
                            try await frontend.exchange(3, window: 1)
                            frontend.sharedPage.storeBytes(of: UInt32(1), as: UInt32.self)
                            try frontend.channel.notify()
                            try await expectBackendClosing(frontend.device)
                            try await frontend.device.close(timeout: .seconds(30))
                        }
                        // 3. A garbage rsp_event, then 4. a request rewritten after the backend
                        // copied it: the backend answers the copy, and stays connected.
                        do {
                            var frontend = try await connect()
                            for sequence in 0..<5 { try frontend.ring.enqueue(Vxengnt.request(UInt64(sequence))) }
                            frontend.nextSequence = 5
                            _ = frontend.ring.publishRequests()
                            frontend.sharedPage.storeBytes(of: UInt32(0xDEAD_BEEF), toByteOffset: 12, as: UInt32.self)
                            try frontend.channel.notify()
                            for sequence in 0..<5 {
                                let response = try await frontend.response()
                                try check(
                                    response.sequence == UInt64(sequence)
                                        && response.checksum == Vxengnt.checksum(Vxengnt.request(UInt64(sequence))),
                                    "response \(sequence) after a garbage rsp_event"
                                )
                            }
                            let original = Vxengnt.request(5, operation: Vxengnt.hold)
                            try frontend.send(original)
                            try await peer.wait(for: "copied-5", from: .dom0)
                            var forged = original
                            forged.length = 0xFFFF_FFFF
                            withUnsafeMutableBytes(of: &forged.payload) {
                                _ = $0.initializeMemory(as: UInt8.self, repeating: 0xEE)
                            }
                            withUnsafeBytes(of: forged) {
                                frontend.slot(5).copyMemory(from: $0.baseAddress!, byteCount: $0.count)
                            }
                            try await peer.publish("rewritten-5")
                            let answer = try await frontend.response()
                            try check(
                                answer.sequence == 5 && answer.checksum == Vxengnt.checksum(original),
                                "the backend answered the rewritten request (checksum \(answer.checksum), original \(Vxengnt.checksum(original)))"
                            )
                            try await frontend.exchange(10, window: 32)
                            try check(try await frontend.device.backendState() == .connected, "the backend stayed connected")
                            try await frontend.device.close(timeout: .seconds(30))
                        }
                        // A last, well-behaved connection is served.
                        var frontend = try await connect()
                        try await frontend.exchange(20, window: 32)
                        try await frontend.device.close(timeout: .seconds(30))
                    }
                    try await peer.publish("hostile-done")
                    try await peer.publish("done")
                },
            ]
        )

    /// backend-lifecycle: one backend, two frontends, each connecting, closing, reconnecting or
    /// being unplugged on its own.
    static let backendLifecycle = ConformanceCase(
        "backend-lifecycle",
        "one Dom0 backend serves both DomUs independently: one closes and reconnects while the other keeps exchanging; the toolstack unplugs and replugs a device (its connection is torn down, the new one served); shutting the backend down leaves the other device Closed",
        parts: [
            .dom0: { peer in
                try await withXenStore(peer) { store in
                    let type = "vxengnt-life"
                    let devices = [LabRole.pv, .pvh].map {
                        XenDevice(type: type, frontend: peer.id(of: $0), backend: peer.id, id: 0)
                    }
                    for device in devices { try await device.create(in: store) }
                    let log = EventLog()
                    let counters = Vxengnt.Counters()
                    let system = peer.system
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            try await Backend(type: type, store: store).run(observe: { log.append("\($0)") }) { device in
                                try await Vxengnt.serve(device, on: system, counters: counters)
                            }
                        }
                        try await peer.publish("devices")
                        try await peer.wait(for: "remove-me", from: .pvh)
                        try await devices[1].remove(in: store)
                        try await peer.publish("removed")
                        try await peer.wait(for: "recreate-me", from: .pvh)
                        try await devices[1].create(in: store)
                        try await peer.publish("recreated")
                        try await peer.wait(for: "done", from: .pvh)
                        try await peer.wait(for: "shutdown-me", from: .pv)
                        group.cancelAll()
                        try await group.waitForAll()
                    }
                    try await peer.publish("shut-down")
                    try await peer.wait(for: "done", from: .pv)
                    let events = log.entries
                    report(
                        peer,
                        "backend: \(counters["connections"]) connections, \(counters["requests"]) requests; torn down: \(events.filter { $0.contains("torn down") }.joined(separator: "; "))"
                    )
                    let pv = "\(type)/\(peer.id(of: .pv).rawValue)/0"
                    let pvh = "\(type)/\(peer.id(of: .pvh).rawValue)/0"
                    try check(events.contains("\(pv): torn down (frontend Closing)"), "the PV DomU's close")
                    try check(
                        events.contains("\(pvh): torn down (backend directory removed)")
                            || events.contains("\(pvh): torn down (device re-created)"),
                        "the unplug"
                    )
                    try check(events.contains("\(pv): torn down (backend shutting down)"), "the shutdown")
                    try check(
                        counters["connections"] == 4 && counters["requests"] == 290,
                        "\(counters["connections"]) connections, \(counters["requests"]) requests"
                    )
                    for device in devices { try await device.remove(in: store) }
                }
            },
            .pv: { peer in
                try await peer.wait(for: "devices", from: .dom0)
                try await withXenStore(peer) { store in
                    let connect = { () async throws -> VxengntFrontend in
                        try await VxengntFrontend.connect(type: "vxengnt-life", id: 0, store: store, system: peer.system)
                    }
                    do {
                        var first = try await connect()
                        try await first.exchange(50, window: 32)
                        try await peer.publish("connected")
                        try await peer.wait(for: "connected", from: .pvh)
                        try await first.device.close(timeout: .seconds(30))
                    }
                    try await peer.publish("closed")
                    try await peer.wait(for: "served-alone", from: .pvh)
                    var second = try await connect()
                    try await second.exchange(50, window: 32)
                    try await peer.publish("reconnected")
                    try await peer.wait(for: "done", from: .pvh)
                    try await second.exchange(50, window: 32)
                    try await peer.publish("shutdown-me")
                    let state = try await second.device.waitForBackend(timeout: .seconds(60)) { $0 == .closed }
                    try check(state == .closed, "the backend is \(state) after shutting down")
                }
                try await peer.publish("done")
            },
            .pvh: { peer in
                try await peer.wait(for: "devices", from: .dom0)
                try await withXenStore(peer) { store in
                    let connect = { () async throws -> VxengntFrontend in
                        try await VxengntFrontend.connect(type: "vxengnt-life", id: 0, store: store, system: peer.system)
                    }
                    try await peer.wait(for: "connected", from: .pv)
                    do {
                        var frontend = try await connect()
                        try await frontend.exchange(50, window: 32)
                        try await peer.publish("connected")
                        try await peer.wait(for: "closed", from: .pv)
                        try await frontend.exchange(50, window: 32)
                        try await peer.publish("served-alone")
                        try await peer.wait(for: "reconnected", from: .pv)
                        try await peer.publish("remove-me")
                        try await peer.wait(for: "removed", from: .dom0)
                        _ = try await frontend.device.waitForBackend(timeout: .seconds(30)) { $0 == .unknown }
                    }
                    try await peer.publish("recreate-me")
                    try await peer.wait(for: "recreated", from: .dom0)
                    var again = try await connect()
                    try await again.exchange(40, window: 32)
                    try await again.device.close(timeout: .seconds(30))
                }
                try await peer.publish("done")
            },
        ]
    )

    /// Waits for the backend to close the device (it refused what the frontend did).
    static func expectBackendClosing(_ device: FrontendDevice) async throws {
        let state = try await device.waitForBackend(timeout: .seconds(30)) { $0 == .closing || $0 == .closed }
        try check(state == .closing || state == .closed, "the backend is \(state)")
    }
}

/// What a backend observed, for the checks after it stopped.
final class EventLog: Sendable {
    private let lines = Locked<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var entries: [String] { lines.withLock { $0 } }
}
