// The display backend's per-frame cost: one PG_FLIP served (decode, the session's checks, the
// frame to the sink, the response and the EVT_PG_FLIP), measured on the backend side only.
//
// The frontend is XenGntTesting's scripted vdispl frontend on the simulated Xen (a PV Dom0
// serving a PVH DomU, 640×480 XRGB8888 as in the lab); it creates its buffers, attaches the
// framebuffers and sets the mode once, and its two PG_FLIP slots are recorded. Each iteration
// then hands one decoded request to the server through a ring that keeps the last response and
// event in place (as the shared ring's adapter writes them into the C structs), so what is
// measured is the backend: with frontend buffers (be-alloc=0, Dom0 is PV) one 1.2 MB copy per
// flip into the display buffer; with backend buffers (be-alloc=1) none.
import Benchmark
import Logging
import XenDisplayBackend
import XenGnt
import XenGntTesting

/// A ring holding one request and the last response, allocating nothing.
struct ReplayRing: DisplayRequestRing {
    var next: DisplayRequest?
    var last: DisplayResponse?
    mutating func nextRequest() throws(DisplayRefusal) -> DisplayRequest? { next.take() }
    mutating func respond(_ response: DisplayResponse) throws(DisplayRefusal) { last = response }
    mutating func publishResponses() -> Bool { last != nil }
}

/// Event pages keeping the last event, allocating nothing.
struct ReplayEvents: DisplayEventPages {
    var last: DisplayEvent?
    mutating func post(_ event: DisplayEvent, connector: Int) throws(DisplayRefusal) -> Bool {
        last = event
        return true
    }
}

/// One device's server and the flips to replay.
final class FlipBench: @unchecked Sendable {
    var server: DisplayDeviceServer<GrantDisplayResources<HeadlessSink>>
    var ring = InProcessRing()
    var events = InProcessEventPages()
    var flips: [[UInt8]] = []
    var decoded: [DisplayRequest] = []
    var replay = ReplayRing()
    var replayEvents = ReplayEvents()
    let xen: XenSimulation

    init(backendAllocates: Bool) async throws {
        xen = XenSimulation()
        let dom0 = try xen.addDomain(0, type: .pv)
        let domU = try xen.addDomain(1, type: .pvh)
        let (width, height) = (640, 480)
        let config = FrontendConfiguration(
            backendAllocates: backendAllocates,
            connectors: [.init(index: 0, width: width, height: height)]
        )
        let key = FrontendKey(domain: 1, device: 0)
        let logger = Logger(label: "bench") { _ in SwiftLogNoOpLogHandler() }
        let counters = DisplayCounters()
        let resources = GrantDisplayResources(
            gntdev: try GrantDevice(on: dom0.system),
            frontend: domU.id,
            key: key,
            counters: counters,
            sink: try HeadlessSink(directory: "/tmp", policy: .never),
            system: dom0.system,
            logger: logger
        )
        server = DisplayDeviceServer(
            session: DisplaySession(configuration: config),
            resources: resources,
            key: key,
            counters: counters,
            logger: logger
        )
        let frontend = SimulatedDisplayFrontend(domain: domU, backend: dom0.id, backendAllocates: backendAllocates)
        var recording = false
        frontend.transport = { [unowned self] slot, connector in
            if recording { self.flips.append(slot) }
            self.ring.requests.append(slot)
            _ = try self.server.serve(connector: connector, ring: &self.ring, events: &self.events)
            self.events.posted.removeAll()
            return self.ring.responses.removeFirst()
        }
        for cookie: UInt64 in [1, 2] {
            try await frontend.createBuffer(cookie, width: width, height: height)
            try frontend.draw(cookie) { x, y in UInt32(truncatingIfNeeded: x &* 31 &+ y &* 17 &+ Int(cookie)) }
            try await frontend.attachFramebuffer(cookie + 10, to: cookie, width: width, height: height)
        }
        try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: width, height: height)
        recording = true
        try await frontend.pageFlip(connector: 0, framebuffer: 12)
        try await frontend.pageFlip(connector: 0, framebuffer: 11)
        recording = false
        decoded = flips.map { DisplayRequest(decoding: $0) }
    }

    /// Serves one recorded flip; returns the number of requests served (1).
    func flip(_ index: Int) throws -> Int {
        replay.next = decoded[index & 1]
        let pass = try server.serve(connector: 0, ring: &replay, events: &replayEvents)
        return pass.requests
    }

    func finish() {
        server.disconnect(reason: "benchmark done")
    }
}

func displayBenchmarks() {
    for (name, backendAllocates) in [
        ("frontend buffers, copied (be-alloc=0)", false), ("backend buffers, zero copy (be-alloc=1)", true),
    ] {
        Benchmark("display: PG_FLIP served, 640x480, \(name), simulated Xen") { benchmark in
            let bench = try await FlipBench(backendAllocates: backendAllocates)
            benchmark.startMeasurement()
            for i in benchmark.scaledIterations {
                blackHole(try bench.flip(i))
            }
            benchmark.stopMeasurement()
            bench.finish()
        }
    }

    Benchmark("display: decode a PG_FLIP slot") { benchmark in
        let bench = try await FlipBench(backendAllocates: false)
        let slot = bench.flips[0]
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(DisplayRequest(decoding: slot))
        }
        benchmark.stopMeasurement()
        bench.finish()
    }
}
