import Logging
import Testing
import XenDisplayBackend
import XenGnt
import XenGntBackend
import XenGntTesting

/// The display backend on the simulated Xen, serialized with the other simulator suites (it
/// creates domains, whose memory is host descriptors the descriptor-leak checks count).
extension Simulated {
    /// The engine the daemon runs, on the simulated Xen: XenStore discovery and handshake, rings and
    /// event pages, event channels, the scripted frontend as `xen-drm-front` — end to end.
    @Suite struct EngineTests {
        static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

        struct World {
            let xen = XenSimulation()
            let dom0: SimulatedDomain
            let domU: SimulatedDomain
            init() throws {
                dom0 = try xen.addDomain(0, type: .pv)
                domU = try xen.addDomain(3, type: .pvh)
            }
            func addDisplay(backendAllocates: Bool, resolution: String = "64x48") async throws {
                try await xen.addDevice(
                    XenDevice(type: "vdispl", frontend: domU.id, backend: dom0.id, id: 0),
                    frontendEntries: ["be-alloc": backendAllocates ? "1" : "0", "0/resolution": resolution, "0/unique-id": "id0"]
                )
            }
        }

        /// Runs the engine in Dom0 while `body` runs, then cancels it (as graceful shutdown does).
        func withEngine(_ world: World, _ body: (XenDisplayEngine) async throws -> Void) async throws {
            let engine = XenDisplayEngine(options: try DisplayBackendOptions.parse(["--headless"]), system: world.dom0.system)
            let task = Task { try await engine.serve(logger: Self.quiet) }
            do { try await body(engine) } catch {
                task.cancel()
                _ = await task.result
                throw error
            }
            task.cancel()
            _ = await task.result
            await engine.shutdown(logger: Self.quiet)
        }

        @Test(arguments: [false, true])
        func servesModetestsLoopThroughXenStoreAndRings(backendAllocates: Bool) async throws {
            let world = try World()
            try await world.addDisplay(backendAllocates: backendAllocates)
            try await withEngine(world) { engine in
                let (frontend, connection) = try await SimulatedDisplayFrontend.connect(
                    domain: world.domU,
                    backendAllocates: backendAllocates
                )
                #expect(world.xen.xenstoreValue("/local/domain/0/backend/vdispl/3/0/versions") == "1,2")
                for (cookie, pattern) in [(UInt64(1), TestPattern.smpte), (2, .plain)] {
                    #expect(try await frontend.createBuffer(cookie, width: 64, height: 48).status == 0)
                    try frontend.draw(cookie) { pattern.pixel(x: $0, y: $1, width: 64, height: 48) }
                    #expect(try await frontend.attachFramebuffer(cookie + 10, to: cookie, width: 64, height: 48).status == 0)
                }
                #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
                for n in 0..<20 {
                    #expect(try await frontend.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 12 : 11).status == 0)
                }
                #expect(frontend.flipsCompleted[0]?.count == 20)
                #expect(frontend.eventsDropped == 0)
                let (response, edid) = try await frontend.getEdid()
                #expect(response.status == 0 && EDID.preferredMode(edid)?.width == 64)
                for cookie: UInt64 in [11, 12] { #expect(try await frontend.detachFramebuffer(cookie).status == 0) }
                for cookie: UInt64 in [1, 2] { #expect(try await frontend.destroyBuffer(cookie).status == 0) }
                frontend.close()
                try await connection.close()
                let c = engine.counters.total()
                #expect(c.pageFlips == 20 && c.flipEvents == 20 && c.framesShown == 20 && c.connects == 1 && c.errors == 0)
                #expect(c.bytesCopied == (backendAllocates ? 0 : 20 * 64 * 48 * 4))
                #expect(c.buffersLive == 0)
            }
            #expect(world.xen.mappings(by: world.dom0.id, of: world.domU.id) == 0)
            #expect(world.xen.xenstoreValue("/local/domain/0/backend/vdispl/3/0/state") == "6")
        }

        @Test func aFrontendThatVanishesMidFlipIsTornDownAndTheOthersServed() async throws {
            let world = try World()
            let other = try world.xen.addDomain(4, type: .pvh)
            try await world.addDisplay(backendAllocates: true)
            try await world.xen.addDevice(
                XenDevice(type: "vdispl", frontend: other.id, backend: world.dom0.id, id: 0),
                frontendEntries: ["be-alloc": "0", "0/resolution": "64x48"]
            )
            try await withEngine(world) { engine in
                let (doomed, _) = try await SimulatedDisplayFrontend.connect(domain: world.domU, backendAllocates: true)
                #expect(try await doomed.createBuffer(1, width: 64, height: 48).status == 0)
                #expect(try await doomed.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
                #expect(try await doomed.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
                #expect(try await doomed.pageFlip(connector: 0, framebuffer: 11).status == 0)
                world.xen.destroyDomain(world.domU.id)  // it still maps the backend's buffer
                let (survivor, connection) = try await SimulatedDisplayFrontend.connect(domain: other, backendAllocates: false)
                #expect(try await survivor.createBuffer(1, width: 64, height: 48).status == 0)
                #expect(try await survivor.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
                #expect(try await survivor.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
                #expect(try await survivor.pageFlip(connector: 0, framebuffer: 11).status == 0)
                let deadline = ContinuousClock.now.advanced(by: .seconds(10))
                while engine.counters.snapshot()[FrontendKey(domain: 3, device: 0)]?.buffersLive != 0,
                    ContinuousClock.now < deadline
                {
                    try await Task.sleep(for: .milliseconds(5))
                }
                #expect(engine.counters.snapshot()[FrontendKey(domain: 3, device: 0)]?.buffersLive == 0)
                survivor.close()
                try await connection.close()
            }
            #expect(world.xen.mappings(by: world.dom0.id, of: world.domU.id) == 0)
        }
    }
}
