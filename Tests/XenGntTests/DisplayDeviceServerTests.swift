import Logging
import Testing
import XenDisplayBackend
import XenGnt
import XenGntTesting

/// The display backend on the simulated Xen, serialized with the other simulator suites (it
/// creates domains, whose memory is host descriptors the descriptor-leak checks count).
extension Simulated {
    /// The device server over in-memory rings, serving the scripted frontend on the simulated Xen:
    /// responses through the ring, events through the event pages, the counters and a broken ring.
    @Suite struct DeviceServerTests {
        struct MemoryRing: DisplayRequestRing {
            var requests: [[UInt8]] = []
            var responses: [[UInt8]] = []
            var published: [[UInt8]] = []
            var brokenAfter: Int?
            mutating func nextRequest() throws(DisplayRefusal) -> DisplayRequest? {
                if let limit = brokenAfter, published.count + responses.count >= limit {
                    throw DisplayRefusal(.io, "req_prod 4000 ahead of req_cons 3 on a 63-slot ring")
                }
                return requests.isEmpty ? nil : DisplayRequest(decoding: requests.removeFirst())
            }
            mutating func respond(_ response: DisplayResponse) throws(DisplayRefusal) { responses.append(response.encoded) }
            mutating func publishResponses() -> Bool {
                published += responses
                defer { responses = [] }
                return !responses.isEmpty
            }
        }
        struct MemoryEvents: DisplayEventPages {
            var posted: [Int: [[UInt8]]] = [:]
            mutating func post(_ event: DisplayEvent, connector: Int) throws(DisplayRefusal) -> Bool {
                posted[connector, default: []].append(event.encoded)
                return true
            }
        }

        final class Harness {
            var server: DisplayDeviceServer<GrantDisplayResources<HeadlessSink>>
            var ring = MemoryRing()
            var events = MemoryEvents()
            weak var frontend: SimulatedDisplayFrontend?

            init(_ backend: EndToEndTests.Backend, counters: DisplayCounters) {
                server = DisplayDeviceServer(
                    session: backend.session,
                    resources: backend.resources,
                    key: FrontendKey(domain: 5, device: 0),
                    counters: counters,
                    logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
                )
            }

            /// One request through the ring, as a notification would bring it.
            func deliver(_ slot: [UInt8], _ connector: Int) throws -> [UInt8] {
                ring.requests.append(slot)
                let pass = try server.serve(connector: connector, ring: &ring, events: &events)
                #expect(pass.requests == 1 && pass.notifyRequests)
                for (c, slots) in events.posted { for slot in slots { frontend?.receiveEvent(slot, connector: c) } }
                events.posted = [:]
                return ring.published.removeLast()
            }
        }

        @Test func servesTheFrontendThroughItsRings() async throws {
            let world = try EndToEndTests.World()
            let (backend, frontend) = try world.connect(backendAllocates: false)
            let harness = Harness(backend, counters: world.counters)
            harness.frontend = frontend
            frontend.transport = { slot, connector in try harness.deliver(slot, connector) }
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == 0)
            #expect(try await frontend.attachFramebuffer(11, to: 1, width: 64, height: 48).status == 0)
            #expect(try await frontend.setConfiguration(connector: 0, framebuffer: 11, width: 64, height: 48).status == 0)
            for _ in 0..<5 { #expect(try await frontend.pageFlip(connector: 0, framebuffer: 11).status == 0) }
            #expect(try await frontend.pageFlip(connector: 0, framebuffer: 77).status == -2)
            #expect(frontend.flipsCompleted[0]?.count == 5)
            let c = world.counters.total()
            #expect(
                c.pageFlips == 5 && c.flipEvents == 5 && c.framesShown == 5 && c.requests == 9 && c.errors == 1 && c.connects == 1
            )
            harness.server.disconnect(reason: "test")
            frontend.close()
            #expect(EndToEndTests.holdsNothing(world), "\(world.xen.census())")
        }

        @Test func aBrokenRingEndsTheConnectionCleanly() async throws {
            let world = try EndToEndTests.World()
            let (backend, frontend) = try world.connect(backendAllocates: true)
            let harness = Harness(backend, counters: world.counters)
            frontend.transport = { slot, connector in try harness.deliver(slot, connector) }
            #expect(try await frontend.createBuffer(1, width: 64, height: 48).status == 0)
            harness.ring.brokenAfter = 1
            harness.ring.requests.append(DisplayRequest(id: 1, .bufferDestroy(bufferCookie: 1)).encoded)
            #expect(throws: DisplayRefusal.self) {
                try harness.server.serve(connector: 0, ring: &harness.ring, events: &harness.events)
            }
            harness.server.disconnect(reason: "ring broken")
            #expect(world.counters.total().buffersLive == 0)
            frontend.close()
            #expect(EndToEndTests.holdsNothing(world), "\(world.xen.census())")
        }
    }
}
