import Logging
import Synchronization
import XenDisplayBackend
import XenGnt
import XenGntTesting

/// `--demo`: the backend serving a scripted frontend on the simulated Xen, in this process —
/// Dom0 (PV) serving a PVH DomU that draws modetest's two frames and flips between them at
/// 60 Hz — through the same session, resources, headless sink, counters, logging and
/// shutdown as a real frontend. For trying the daemon (signals, counters, PNG files) without Xen.
final class DemoEngine: DisplayBackendEngine {
    let counters = DisplayCounters()
    let options: DisplayBackendOptions
    let backendAllocates: Bool
    let kms = KMSRouting()
    /// What `serve` leaves for `shutdown`, in order.
    private let state = Mutex<Teardown?>(nil)

    struct Teardown: @unchecked Sendable {
        let session: () -> Void
    }

    init(options: DisplayBackendOptions, backendAllocates: Bool) {
        self.options = options
        self.backendAllocates = backendAllocates
    }

    func serve(logger: Logger) async throws {
        let xen = XenSimulation()
        let dom0 = try xen.addDomain(0, type: .pv)
        let domU = try xen.addDomain(1, type: .pvh)
        let (width, height) = (640, 480)
        let config = FrontendConfiguration(
            backendAllocates: backendAllocates,
            connectors: [.init(index: 0, width: width, height: height, uniqueID: "demo")]
        )
        let key = FrontendKey(domain: 1, device: 0)
        let headless = try HeadlessSink(directory: options.pngDirectory ?? "/tmp", policy: options.pngPolicy)
        // The simulated Dom0 has a vkms (unless --no-kms): the demo's connector is its CRTC 0,
        // read back through writeback like the lab's display.
        kms.open(options: options, system: dom0.system, logger: logger)
        defer { kms.close() }
        if let display = kms.display {
            let routes = kms.claim(key: key, name: "demo", configuration: config)
            try await run(
                KMSSink(
                    display: display,
                    routes: routes,
                    headless: headless,
                    counters: counters,
                    logger: logger,
                    connectorCount: config.connectors.count
                ),
                config: config,
                key: key,
                dom0: dom0,
                domU: domU,
                width: width,
                height: height,
                logger: logger
            )
        } else {
            try await run(
                headless,
                config: config,
                key: key,
                dom0: dom0,
                domU: domU,
                width: width,
                height: height,
                logger: logger
            )
        }
    }

    func run<Sink: DisplaySink>(
        _ sink: Sink,
        config: FrontendConfiguration,
        key: FrontendKey,
        dom0: SimulatedDomain,
        domU: SimulatedDomain,
        width: Int,
        height: Int,
        logger: Logger
    ) async throws {
        let resources = GrantDisplayResources(
            gntdev: try GrantDevice(on: dom0.system),
            frontend: domU.id,
            key: key,
            counters: counters,
            sink: sink,
            system: dom0.system,
            pathChoice: options.bufferPath,
            logger: logger
        )
        let box = ServerBox(
            DisplayDeviceServer(
                session: DisplaySession(configuration: config, limits: options.bufferLimits),
                resources: resources,
                key: key,
                counters: counters,
                logger: logger
            )
        )
        let frontend = SimulatedDisplayFrontend(domain: domU, backend: dom0.id, backendAllocates: backendAllocates)
        frontend.transport = { [box, weak frontend] slot, connector in
            box.ring.requests.append(slot)
            _ = try box.server.serve(connector: connector, ring: &box.ring, events: &box.events)
            for (c, event) in box.events.posted { frontend?.receiveEvent(event, connector: c) }
            box.events.posted = []
            return box.ring.responses.removeFirst()
        }
        state.withLock {
            $0 = Teardown(session: {
                box.server.disconnect(reason: "shutdown")
                frontend.close()
            })
        }
        for (cookie, pattern) in [(UInt64(1), TestPattern.smpte), (2, .plain)] {
            try await frontend.createBuffer(cookie, width: width, height: height)
            try frontend.draw(cookie) { pattern.pixel(x: $0, y: $1, width: width, height: height) }
            try await frontend.attachFramebuffer(cookie + 10, to: cookie, width: width, height: height)
        }
        try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: width, height: height)
        if let ready = options.readyFile { try TextFile.write("demo\n", to: ready) }
        var next: UInt64 = 11
        while !Task.isCancelled {
            try await frontend.pageFlip(connector: 0, framebuffer: next)
            next = next == 11 ? 12 : 11
            try await Task.sleep(for: .milliseconds(16))
        }
    }

    func shutdown(logger: Logger) async {
        let teardown = state.withLock { $0.take() }
        teardown?.session()
    }

    /// The server and its in-process channels, reached from the frontend's transport (one task:
    /// no concurrent use).
    final class ServerBox<Sink: DisplaySink>: @unchecked Sendable {
        var server: DisplayDeviceServer<GrantDisplayResources<Sink>>
        var ring = InProcessRing()
        var events = InProcessEventPages()
        init(_ server: DisplayDeviceServer<GrantDisplayResources<Sink>>) { self.server = server }
    }
}
