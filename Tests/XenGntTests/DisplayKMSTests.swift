import Glibc
import Logging
import Testing
import XenDisplayBackend
import XenGnt
import XenGntBackend
import XenGntDRM
import XenGntTesting

/// The display backend's KMS sink on the simulated Xen: the engine in a PV Dom0 with the
/// simulated vkms, serving the scripted frontend, its frames read back from the screen through
/// vkms's writeback connector.
extension Simulated {
    @Suite struct KMSSinkTests {
        static let quiet = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })

        struct World {
            let xen = XenSimulation()
            let dom0: SimulatedDomain
            let domU: SimulatedDomain
            let other: SimulatedDomain
            let directory: String

            init(backend: GuestType = .pv) throws {
                var kernel = SimulatedKernel()
                kernel.devices.insert(.dmaScanout)
                dom0 = try xen.addDomain(0, type: backend, kernel: kernel)
                domU = try xen.addDomain(3, type: .pvh)
                other = try xen.addDomain(4, type: .pvh)
                var template = Array("/tmp/xengnt-display-kms-XXXXXX".utf8CString)
                directory = String(cString: mkdtemp(&template)!)
            }

            func addDisplay(_ domain: SimulatedDomain, backendAllocates: Bool = false) async throws {
                try await xen.addDevice(
                    XenDevice(type: "vdispl", frontend: domain.id, backend: dom0.id, id: 0),
                    frontendEntries: ["be-alloc": backendAllocates ? "1" : "0", "0/resolution": "64x48", "0/unique-id": "id0"]
                )
            }

            func exists(_ name: String) -> Bool { access(directory + "/" + name, F_OK) == 0 }
        }

        /// Runs the engine in Dom0 with `arguments` while `body` runs, then stops it as graceful
        /// shutdown does.
        func withEngine(_ world: World, _ arguments: [String], _ body: (XenDisplayEngine) async throws -> Void) async throws {
            let engine = XenDisplayEngine(
                options: try DisplayBackendOptions.parse(arguments + ["--png-dir", world.directory]),
                system: world.dom0.system
            )
            let task = Task { try await engine.serve(logger: Self.quiet) }
            // The engine opens its display when it starts serving.
            let deadline = ContinuousClock.now.advanced(by: .seconds(5))
            while engine.kms.display == nil, !arguments.contains("--no-kms"), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(2))
            }
            do { try await body(engine) } catch {
                task.cancel()
                _ = await task.result
                throw error
            }
            task.cancel()
            _ = await task.result
            await engine.shutdown(logger: Self.quiet)
        }

        /// A 64×48 frame of `pattern`, as RGB (what a writeback capture reads).
        static func screen(_ pattern: (Int, Int) -> UInt32) -> [UInt32] {
            (0..<48).flatMap { y in (0..<64).map { x in pattern(x, y) & 0x00FF_FFFF } }
        }
        static func bars(_ x: Int, _ y: Int) -> UInt32 { TestPattern.smpte.pixel(x: x, y: y, width: 64, height: 48) }
        static func fill(_ x: Int, _ y: Int) -> UInt32 { TestPattern.plain.pixel(x: x, y: y, width: 64, height: 48) }
        static func red(_ x: Int, _ y: Int) -> UInt32 { 0x00C0_1020 ^ UInt32(x & 0xF) }

        /// modetest's loop on a frontend: two buffers (bars, fill), framebuffers 11 and 12, the
        /// mode set on 11.
        static func prepare(_ frontend: SimulatedDisplayFrontend, second: @escaping (Int, Int) -> UInt32 = fill) async throws {
            for (cookie, pattern) in [(UInt64(1), bars), (2, second)] {
                #expect(try await frontend.createBuffer(cookie, width: 64, height: 48).status == 0)
                try frontend.draw(cookie, pattern)
                #expect(try await frontend.attachFramebuffer(cookie + 10, to: cookie, width: 64, height: 48).status == 0)
            }
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
        }

        static func finish(_ frontend: SimulatedDisplayFrontend, _ connection: SimulatedDisplayFrontend.Connection) async throws {
            for cookie: UInt64 in [11, 12] { #expect(try await frontend.detachFramebuffer(cookie).status == 0) }
            for cookie: UInt64 in [1, 2] { #expect(try await frontend.destroyBuffer(cookie).status == 0) }
            frontend.close()
            try await connection.close()
        }

        /// Waits until the backend released `key`'s buffers (its teardown runs on its own task).
        static func waitForTeardown(_ engine: XenDisplayEngine, _ key: FrontendKey) async throws {
            let deadline = ContinuousClock.now.advanced(by: .seconds(10))
            while engine.counters.snapshot()[key]?.buffersLive != 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
        }

        @Test(arguments: [false, true])
        func framesReachTheScreenAndChangeOnlyAtAFlip(backendAllocates: Bool) async throws {
            let world = try World()
            try await world.addDisplay(world.domU, backendAllocates: backendAllocates)
            try await withEngine(world, ["--drm-device", "vkms", "--crtc", "0=3:0:0"]) { engine in
                let display = try #require(engine.kms.display)
                #expect(display.device.driver.name == "vkms")
                let (frontend, connection) = try await SimulatedDisplayFrontend.connect(
                    domain: world.domU,
                    backendAllocates: backendAllocates
                )
                try await Self.prepare(frontend)
                #expect(display.mode(crtc: 0) == nil, "SET_CONFIG alone shows nothing yet")

                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
                #expect(frontend.flipsCompleted[0] == [11])
                #expect(display.mode(crtc: 0)?.width == 64 && display.mode(crtc: 0)?.height == 48)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.bars))

                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.fill))

                // The frontend draws into the buffer on screen. Copied, the screen keeps the
                // frame it was flipped to until the next flip; with be-alloc=1 the buffer is a
                // dumb buffer of vkms that the CRTC scans out, so the drawing is on screen at once.
                try frontend.draw(2, Self.red)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(backendAllocates ? Self.red : Self.fill))
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.red))
                #expect(frontend.flipsCompleted[0] == [11, 12, 12])
                #expect(frontend.eventsDropped == 0)

                let key = FrontendKey(domain: 3, device: 0)
                let c = try #require(engine.counters.snapshot()[key])
                #expect(c.pageFlips == 3 && c.flipEvents == 3 && c.framesShown == 3 && c.framesScannedOut == 3)
                #expect(c.kmsFallbacks == 0 && c.errors == 0)
                #expect(c.path == (backendAllocates ? .backendAllocated : .copied))
                #expect(c.bytesCopied == (backendAllocates ? 0 : 3 * 64 * 48 * 4))
                if backendAllocates {
                    // Two dumb buffers of vkms shared with the frontend, nothing else.
                    let dom0 = try #require(world.xen.census()[world.dom0.id])
                    #expect(dom0.gemObjects == 2 && dom0.framebuffers == 2, "\(dom0)")
                }
                #expect(!world.exists("dom3-vdispl0-conn0-000000.png"), "a connector on a CRTC writes no PNG files")

                // FB_DETACH of the framebuffer on screen blanks the connector: off screen, RMFB, GEM close.
                try await Self.finish(frontend, connection)
                #expect(display.mode(crtc: 0) == nil, "detaching the framebuffer on screen took the CRTC off screen")
                let dom0 = try #require(world.xen.census()[world.dom0.id])
                #expect(dom0.gemObjects == 0 && dom0.framebuffers == 0, "\(dom0)")
            }
            let census = world.xen.census()
            #expect(
                census.gemObjects == 0 && census.framebuffers == 0 && census.grantMaps == 0 && census.memoryMappings == 0,
                "\(census)"
            )
        }

        @Test func oneFrontendOnTheCRTCAndAnotherHeadlessAtOnce() async throws {
            let world = try World()
            try await world.addDisplay(world.domU)
            try await world.addDisplay(world.other, backendAllocates: true)
            try await withEngine(world, ["--drm-device", "vkms", "--crtc", "0=3:0:0"]) { engine in
                let display = try #require(engine.kms.display)
                let (onScreen, first) = try await SimulatedDisplayFrontend.connect(domain: world.domU, backendAllocates: false)
                let (headless, second) = try await SimulatedDisplayFrontend.connect(domain: world.other, backendAllocates: true)
                try await Self.prepare(onScreen)
                try await Self.prepare(headless, second: Self.red)
                for n in 0..<4 {
                    #expect(try await onScreen.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 11 : 12).status == 0)
                    #expect(try await headless.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 12 : 11).status == 0)
                }
                #expect(onScreen.flipsCompleted[0]?.count == 4 && headless.flipsCompleted[0]?.count == 4)
                // The screen shows dom3's last frame (fill), never dom4's (bars last).
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.fill))

                let counters = engine.counters.snapshot()
                let kms = try #require(counters[FrontendKey(domain: 3, device: 0)])
                let png = try #require(counters[FrontendKey(domain: 4, device: 0)])
                #expect(kms.framesShown == 4 && kms.framesScannedOut == 4)
                #expect(png.framesShown == 4 && png.framesScannedOut == 0 && png.path == .backendAllocated)
                #expect(world.exists("dom4-vdispl0-conn0-000000.png") && world.exists("dom4-vdispl0-conn0-000001.png"))
                #expect(!world.exists("dom3-vdispl0-conn0-000000.png"))

                try await Self.finish(onScreen, first)
                try await Self.finish(headless, second)
                try await Self.waitForTeardown(engine, FrontendKey(domain: 3, device: 0))
                try await Self.waitForTeardown(engine, FrontendKey(domain: 4, device: 0))
            }
            let census = world.xen.census()
            #expect(census.gemObjects == 0 && census.framebuffers == 0 && census.grantMaps == 0, "\(census)")
        }

        @Test func withoutCrtcTheFirstFrontendTakesCRTC0() async throws {
            let world = try World()
            try await world.addDisplay(world.domU)
            try await world.addDisplay(world.other)
            try await withEngine(world, []) { engine in
                let display = try #require(engine.kms.display, "auto finds the simulated vkms, the one display with a connector")
                #expect(display.device.driver.name == "vkms")
                let (a, first) = try await SimulatedDisplayFrontend.connect(domain: world.domU, backendAllocates: false)
                try await Self.prepare(a)
                let (b, second) = try await SimulatedDisplayFrontend.connect(domain: world.other, backendAllocates: false)
                try await Self.prepare(b, second: Self.red)
                #expect(try await a.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await b.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.fill))
                let counters = engine.counters.snapshot()
                #expect(counters[FrontendKey(domain: 3, device: 0)]?.framesScannedOut == 1)
                #expect(counters[FrontendKey(domain: 4, device: 0)]?.framesScannedOut == 0)
                try await Self.finish(a, first)
                try await Self.finish(b, second)
                try await Self.waitForTeardown(engine, FrontendKey(domain: 3, device: 0))
                try await Self.waitForTeardown(engine, FrontendKey(domain: 4, device: 0))
            }
        }

        @Test func theWritebackCheckSeesWhatIsOnScreen() async throws {
            let world = try World()
            try await world.addDisplay(world.domU)
            try await withEngine(world, ["--drm-device", "vkms", "--crtc", "0=3:0:0", "--writeback-check", "0.01"]) { engine in
                let (frontend, connection) = try await SimulatedDisplayFrontend.connect(
                    domain: world.domU,
                    backendAllocates: false
                )
                try await Self.prepare(frontend)
                func waitUntilSeen(_ entry: String) async throws {
                    let deadline = ContinuousClock.now.advanced(by: .seconds(10))
                    while !engine.kms.writebackSeen.contains(entry), ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(5))
                    }
                }
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
                try await waitUntilSeen("0 smpte")
                #expect(engine.kms.writebackSeen == ["0 smpte"], "only the bars were ever on screen")
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 12).status == 0)
                try await waitUntilSeen("0 plain")
                #expect(engine.kms.writebackSeen == ["0 smpte", "0 plain"])
                // Both seen: no more captures.
                let captures = engine.kms.writebackCaptures
                try await Task.sleep(for: .milliseconds(100))
                #expect(engine.kms.writebackCaptures == captures)
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
                #expect(frontend.flipsCompleted[0] == [11, 12, 11] && frontend.eventsDropped == 0)
                try await Self.finish(frontend, connection)
            }
            let census = world.xen.census()
            #expect(census.gemObjects == 0 && census.framebuffers == 0, "\(census)")
        }

        /// A PVH backend domain can export the frontend's pages: the DMA-scanout display scans
        /// them out (zero copy), vkms refuses them at the first real commit and the device is
        /// copied from then on, on the same CRTC.
        @Test(arguments: ["xengnt-dma-scanout", "vkms"])
        func anExportIsScannedOutOrRefusedAndCopied(driver: String) async throws {
            let world = try World(backend: .pvh)
            try await world.addDisplay(world.domU)
            let zeroCopy = driver != "vkms"
            try await withEngine(world, ["--drm-device", driver, "--crtc", "0=3:0:0"]) { engine in
                let display = try #require(engine.kms.display)
                let (frontend, connection) = try await SimulatedDisplayFrontend.connect(
                    domain: world.domU,
                    backendAllocates: false
                )
                try await Self.prepare(frontend)
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.bars))
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.fill))
                // Drawing into the buffer on screen: scanned out, the screen shows it at once;
                // copied, only at the next flip.
                try frontend.draw(2, Self.red)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(zeroCopy ? Self.red : Self.fill))
                #expect(try await frontend.pageFlip(connector: 0, framebuffer: 12).status == 0)
                #expect(try await display.captureScreen(crtc: 0).rgb == Self.screen(Self.red))
                #expect(frontend.flipsCompleted[0] == [11, 12, 12] && frontend.eventsDropped == 0)

                let c = try #require(engine.counters.snapshot()[FrontendKey(domain: 3, device: 0)])
                #expect(c.framesShown == 3 && c.framesScannedOut == 3 && c.kmsFallbacks == 0 && c.errors == 0)
                #expect(c.path == (zeroCopy ? .exported : .copied))
                #expect(c.bytesCopied == (zeroCopy ? 0 : 3 * 64 * 48 * 4))
                if zeroCopy {
                    let dom0 = try #require(world.xen.census()[world.dom0.id])
                    #expect(dom0.exports == 2, "both buffers exported: \(dom0)")
                }
                try await Self.finish(frontend, connection)
                #expect(display.mode(crtc: 0) == nil)
            }
            let census = world.xen.census()
            #expect(
                census.gemObjects == 0 && census.framebuffers == 0 && census.exports == 0 && census.grantMaps == 0,
                "\(census)"
            )
        }

        @Test func noKMSMeansHeadless() async throws {
            let world = try World()
            try await withEngine(world, ["--no-kms"]) { engine in
                #expect(engine.kms.display == nil)
            }
        }

        @Test(arguments: [false, true])
        func aDisplayFailureSendsOnlyThatConnectorToTheHeadlessSink(backendAllocates: Bool) async throws {
            let world = try World()
            try await world.addDisplay(world.domU, backendAllocates: backendAllocates)
            try await world.addDisplay(world.other)
            try await withEngine(world, ["--drm-device", "vkms", "--crtc", "0=3:0:0"]) { engine in
                let display = try #require(engine.kms.display)
                let (victim, first) = try await SimulatedDisplayFrontend.connect(
                    domain: world.domU,
                    backendAllocates: backendAllocates
                )
                let (bystander, second) = try await SimulatedDisplayFrontend.connect(domain: world.other, backendAllocates: false)
                try await Self.prepare(victim)
                try await Self.prepare(bystander)
                #expect(try await victim.pageFlip(connector: 0, framebuffer: 11).status == 0)
                #expect(try await bystander.pageFlip(connector: 0, framebuffer: 11).status == 0)
                // Another process takes the display: the backend's flips are refused from now on.
                try display.device.dropMaster()
                for n in 0..<3 {
                    #expect(try await victim.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 12 : 11).status == 0)
                    #expect(try await bystander.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 12 : 11).status == 0)
                }
                #expect(victim.flipsCompleted[0]?.count == 4, "the frames still complete, on the headless sink")
                #expect(victim.eventsDropped == 0)
                let counters = engine.counters.snapshot()
                let v = try #require(counters[FrontendKey(domain: 3, device: 0)])
                let b = try #require(counters[FrontendKey(domain: 4, device: 0)])
                #expect(v.framesShown == 4 && v.framesScannedOut == 1 && v.kmsFallbacks == 1 && v.errors == 1)
                #expect(b.framesShown == 4 && b.errors == 0 && b.kmsFallbacks == 0)
                #expect(world.exists("dom3-vdispl0-conn0-000000.png"), "after the fallback dom3's frames are PNG files")
                try display.device.becomeMaster()
                try await Self.finish(victim, first)
                try await Self.finish(bystander, second)
                try await Self.waitForTeardown(engine, FrontendKey(domain: 3, device: 0))
                try await Self.waitForTeardown(engine, FrontendKey(domain: 4, device: 0))
            }
            let census = world.xen.census()
            #expect(census.gemObjects == 0 && census.framebuffers == 0, "\(census)")
        }
    }
}
