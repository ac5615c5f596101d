import Glibc
import Logging
import Testing
import XenDisplayBackend
import XenGnt
import XenGntTesting

/// The display backend on the simulated Xen, serialized with the other simulator suites (it
/// creates domains, whose memory is host descriptors the descriptor-leak checks count).
extension Simulated {
    /// The backend's session and its grant-device resources in a PV Dom0 of the simulated Xen,
    /// serving the scripted frontend in a PVH DomU end to end: page directories, both be-alloc
    /// modes, data_ofs, modeset, flips with numbered events, GET_EDID, PNG frames, and a census
    /// with nothing left after teardown.
    @Suite struct EndToEndTests {
        /// The backend half, and the transport that hands it the frontend's slots directly.
        final class Backend {
            var session: DisplaySession
            var resources: GrantDisplayResources<HeadlessSink>
            weak var frontend: SimulatedDisplayFrontend?
            var lastRefusal: DisplayRefusal?

            init(
                _ xen: XenSimulation,
                backend: SimulatedDomain,
                frontend domain: SimulatedDomain,
                config: FrontendConfiguration,
                directory: String,
                counters: DisplayCounters
            ) throws {
                session = DisplaySession(configuration: config)
                resources = GrantDisplayResources(
                    gntdev: try GrantDevice(on: backend.system),
                    frontend: domain.id,
                    key: FrontendKey(domain: domain.id.rawValue, device: 0),
                    counters: counters,
                    sink: try HeadlessSink(directory: directory),
                    system: backend.system,
                    logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                )
            }

            func deliver(_ slot: [UInt8], _ connector: Int) -> [UInt8] {
                let request = DisplayRequest(decoding: slot)
                do {
                    let (response, outcome) = try session.check(request, connector: connector, resources: &resources)
                    if case .flipEvent(let c, let event) = outcome { frontend?.receiveEvent(event.encoded, connector: c) }
                    return response.encoded
                } catch {
                    lastRefusal = error
                    return DisplayResponse(answering: request, error.status).encoded
                }
            }
        }

        struct World {
            let xen = XenSimulation()
            let dom0: SimulatedDomain
            let domU: SimulatedDomain
            let directory: String
            let counters = DisplayCounters()

            init() throws {
                dom0 = try xen.addDomain(0, type: .pv)
                domU = try xen.addDomain(5, type: .pvh)
                var template = Array("/tmp/xengnt-display-e2e-XXXXXX".utf8CString)
                directory = String(cString: mkdtemp(&template)!)
            }

            func connect(backendAllocates: Bool, width: Int = 64, height: Int = 48) throws -> (Backend, SimulatedDisplayFrontend)
            {
                let config = FrontendConfiguration(
                    backendAllocates: backendAllocates,
                    connectors: [.init(index: 0, width: width, height: height, uniqueID: "id0")]
                )
                let backend = try Backend(
                    xen,
                    backend: dom0,
                    frontend: domU,
                    config: config,
                    directory: directory,
                    counters: counters
                )
                let frontend = SimulatedDisplayFrontend(domain: domU, backend: dom0.id, backendAllocates: backendAllocates)
                frontend.transport = { slot, connector in backend.deliver(slot, connector) }
                backend.frontend = frontend
                return (backend, frontend)
            }
        }

        /// Whether the domains hold no mapping, export, import, grant or memory mapping: only the
        /// grant devices, which stay open while the backend and the frontend run.
        static func holdsNothing(_ world: World, only domain: DomainID? = nil) -> Bool {
            world.xen.census().domains.filter { domain == nil || $0.id == domain }.allSatisfy {
                $0.grantMaps == 0 && $0.exports == 0 && $0.imports == 0 && $0.grants == 0 && $0.memoryMappings == 0
                    && $0.foreignMappings == 0 && $0.oops == nil
            }
        }

        /// The two frames modetest alternates between: SMPTE-like bars, and a plain fill.
        static func bars(_ x: Int, _ y: Int) -> UInt32 { TestPattern.smpte.pixel(x: x, y: y, width: 64, height: 48) }
        static func fill(_ x: Int, _ y: Int) -> UInt32 { TestPattern.plain.pixel(x: x, y: y, width: 64, height: 48) }

        @Test(arguments: [false, true])
        func modesetFlipsAndTeardown(backendAllocates: Bool) async throws {
            let world = try World()
            let (backend, frontend) = try world.connect(backendAllocates: backendAllocates)
            let offset = backendAllocates ? 0 : 256
            for cookie: UInt64 in [1, 2] {
                #expect(try await frontend.createBuffer(cookie, width: 64, height: 48, dataOffset: offset).status == 0)
                #expect(try await frontend.attachFramebuffer(cookie + 10, to: cookie, width: 64, height: 48).status == 0)
            }
            try frontend.draw(1, Self.bars)
            try frontend.draw(2, Self.fill)
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
            for n in 0..<6 { #expect(try await frontend.pageFlip(connector: 0, framebuffer: n % 2 == 0 ? 11 : 12).status == 0) }
            #expect(frontend.flipsCompleted[0] == [11, 12, 11, 12, 11, 12])
            #expect(frontend.eventsDropped == 0)

            let counters = world.counters.total()
            #expect(counters.framesShown == 6)
            #expect(counters.path == (backendAllocates ? .backendAllocated : .copied))
            #expect(counters.bytesCopied == (backendAllocates ? 0 : 6 * 64 * 48 * 4))
            // The headless sink wrote the two distinct frames (whenChanged: every flip changes).
            let first = try #require(fopen(world.directory + "/dom5-vdispl0-conn0-000000.png", "rb"))
            fclose(first)

            for cookie: UInt64 in [11, 12] { #expect(try await frontend.detachFramebuffer(cookie).status == 0) }
            for cookie: UInt64 in [1, 2] { #expect(try await frontend.destroyBuffer(cookie).status == 0) }
            #expect(backend.session.liveBuffers.isEmpty)
            frontend.close()
            backend.session.tearDown(resources: &backend.resources)
            #expect(Self.holdsNothing(world), "\(world.xen.census())")
        }

        @Test func getEdidAnswersWithTheConnectorsMode() async throws {
            let world = try World()
            let (_, frontend) = try world.connect(backendAllocates: false, width: 640, height: 480)
            let (response, bytes) = try await frontend.getEdid()
            #expect(response.status == 0 && response.edidSize == 128)
            #expect(EDID.preferredMode(bytes)?.width == 640 && EDID.preferredMode(bytes)?.height == 480)
            #expect(try await frontend.getEdid(size: 4096).0.status == -22)
            frontend.close()
            #expect(Self.holdsNothing(world), "\(world.xen.census())")
        }

        @Test func aFrontendThatVanishesLeavesNothing() async throws {
            let world = try World()
            let (backend, frontend) = try world.connect(backendAllocates: true)
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == 0)
            #expect(try await frontend.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
            #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0)
            // The domain goes while it still maps the backend's buffer: the import release succeeds.
            world.xen.destroyDomain(world.domU.id)
            backend.session.tearDown(resources: &backend.resources)
            #expect(world.counters.total().buffersLive == 0)
            #expect(Self.holdsNothing(world, only: world.dom0.id), "\(world.xen.census())")
        }
    }
}
