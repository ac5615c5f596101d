import Synchronization
import XenGnt
import XenGntBackend

#if canImport(Glibc)
import Glibc
#endif

extension ConformanceSuite {
    static let ringCases: [ConformanceCase] = [
        ConformanceCase(
            "ring-10000",
            "a Swift frontend in each DomU and a Swift backend in Dom0 pass 10 000 requests each, in order, over a vxengnt ring with a batching producer: well under one notification per request",
            parts: [
                .dom0: { peer in
                    let counters = try await runVxengntBackend(peer, type: "vxengnt", frontends: [.pv, .pvh])
                    let requests = counters["requests"]
                    try check(requests == 20_000, "the backend answered \(requests) requests")
                    report(
                        peer,
                        "backend: \(requests) requests, \(counters["events"]) events taken, \(counters["notifications"]) notifications sent (\(ratio(counters["notifications"], requests)) per request)"
                    )
                    try check(Double(counters["notifications"]) < 0.5 * Double(requests), "the backend notified too often")
                },
                .pv: vxengntFrontend(type: "vxengnt", count: 10_000, window: 32, maximumRatio: 0.5),
                .pvh: vxengntFrontend(type: "vxengnt", count: 10_000, window: 32, maximumRatio: 0.5),
            ]
        ),

        ConformanceCase(
            "ring-ping-pong",
            "one request, one response, 400 times per DomU: every exchange sleeps on RING_FINAL_CHECK_FOR_* on both sides, and a lost wakeup would stall it",
            parts: [
                .dom0: { peer in
                    let counters = try await runVxengntBackend(peer, type: "vxengnt-pingpong", frontends: [.pv, .pvh])
                    try check(counters["requests"] == 800, "the backend answered \(counters["requests"]) requests")
                    report(peer, "backend: \(counters["requests"]) requests, \(counters["notifications"]) notifications sent")
                },
                .pv: vxengntFrontend(type: "vxengnt-pingpong", count: 400, window: 1, maximumRatio: 1.01),
                .pvh: vxengntFrontend(type: "vxengnt-pingpong", count: 400, window: 1, maximumRatio: 1.01),
            ]
        ),
    ]

    /// Dom0's part of a vxengnt case: makes device 0 of `type` for each frontend (as libxl
    /// would; the lab's Dom0 made `vxengnt` already), runs a backend until every frontend is
    /// done, then removes the devices.
    static func runVxengntBackend(
        _ peer: Peer,
        type: String,
        frontends: [LabRole],
        hold: (@Sendable (Vxengnt.Request) async throws -> Void)? = nil,
        observe: @escaping @Sendable (BackendEvent) -> Void = { _ in },
        whileRunning: @escaping @Sendable (XenStore) async throws -> Void = { _ in }
    ) async throws -> Vxengnt.Counters {
        try await withXenStore(peer) { store in
            let devices = frontends.map { XenDevice(type: type, frontend: peer.id(of: $0), backend: peer.id, id: 0) }
            for device in devices {
                if try await !store.exists("\(device.backendPath)/frontend") { try await device.create(in: store) }
                // What libxl sets, whoever wrote them (the lab's Dom0 wrote vxengnt's with xenstore-chmod).
                try check(
                    try await store.permissions(of: device.frontendPath) == [
                        XenStorePermission(device.frontend, .none), XenStorePermission(device.backend, .read),
                    ],
                    "permissions of \(device.frontendPath)"
                )
                try check(
                    try await store.permissions(of: device.backendPath) == [
                        XenStorePermission(device.backend, .none), XenStorePermission(device.frontend, .read),
                    ],
                    "permissions of \(device.backendPath)"
                )
            }
            let counters = Vxengnt.Counters()
            let system = peer.system
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await Backend(type: type, store: store).run(observe: observe) { device in
                        try await Vxengnt.serve(device, on: system, counters: counters, hold: hold)
                    }
                }
                try await peer.publish("devices")
                try await whileRunning(store)
                for frontend in frontends { try await peer.wait(for: "done", from: frontend) }
                group.cancelAll()
                try await group.waitForAll()
            }
            for device in devices { try await device.remove(in: store) }
            return counters
        }
    }

    /// A DomU's part of a vxengnt case: connects device 0 of `type`, exchanges `count` requests
    /// with at most `window` unanswered, closes, and reports its notifications per request.
    static func vxengntFrontend(type: String, count: Int, window: Int, maximumRatio: Double) -> ConformanceCase.Part {
        { peer in
            try await peer.wait(for: "devices", from: .dom0)
            let progress = Progress()
            let started = ContinuousClock.now
            let (sent, received) = try await withStallDeadline(.seconds(120), progress: progress, of: count) {
                try await withXenStore(peer) { store in
                    var frontend = try await VxengntFrontend.connect(type: type, id: 0, store: store, system: peer.system)
                    try await frontend.exchange(count, window: window, progress: progress)
                    try await frontend.device.close(timeout: .seconds(30))
                    return (frontend.notificationsSent, frontend.eventsReceived)
                }
            }
            let elapsed = ContinuousClock.now - started
            report(
                peer,
                "\(count) requests in \(elapsed), window \(window): \(sent) notifications sent (\(ratio(sent, count)) per request), \(received) events received (\(ratio(received, count)) per request)"
            )
            try check(Double(sent) <= maximumRatio * Double(count), "\(sent) notifications for \(count) requests")
            try check(Double(received) <= maximumRatio * Double(count), "\(received) events for \(count) requests")
            try await peer.publish("done")
        }
    }

    /// Runs `body`, failing with how far it got if it has not finished after `limit`: a ring
    /// whose wakeup was lost stalls instead of failing.
    static func withStallDeadline<T: Sendable>(
        _ limit: Duration,
        progress: Progress,
        of total: Int,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: limit)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                throw ConformanceFailure("stalled: \(progress.value) of \(total) responses after \(limit)")
            }
            return value
        }
    }

    static func ratio(_ part: Int, _ whole: Int) -> String {
        guard whole > 0 else { return "-" }
        let value = Double(part) / Double(whole)
        return String(Int((value * 1000).rounded())) == "0" ? "0" : "\(Double(Int((value * 1000).rounded())) / 1000)"
    }

    /// An `INFO` line in the runner's output (the lab keeps it in the serial log).
    static func report(_ peer: Peer, _ line: String) {
        print("INFO \(peer.caseName) \(peer.role) \(line)")
        fflush(nil)
    }
}

/// How far a long exchange got, for the message of a stall.
final class Progress: Sendable {
    private let count = Atomic<Int>(0)
    var value: Int { count.load(ordering: .relaxed) }
    func set(_ value: Int) { count.store(value, ordering: .relaxed) }
}
