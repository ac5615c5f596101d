import CXenBackend
import Synchronization
import Testing
import XenGnt
import XenGntBackend
import XenGntTesting

typealias TestFrontend = SimulatedFrontend<cxb_vxengnt_request, cxb_vxengnt_response>

/// An echo backend for the test device type: maps the ring, binds the port, serves until
/// cancelled, answering each request with its sequence number.
@Sendable func echo(_ device: BackendDevice, on system: XenSystem) async throws {
    let gntdev = try GrantDevice(on: system)
    var ring = try BackRing<cxb_vxengnt_request, cxb_vxengnt_response>(
        mapping: try gntdev.map([try await device.grantRef("ring-ref")], from: device.frontendID)
    )
    let channel = try EventChannel.bindInterdomain(
        remote: device.frontendID,
        port: try await device.port("event-channel"),
        on: system
    )
    try await device.setConnected()
    for try await _ in channel.notifications {
        let (_, notify) = try ring.serve { request in
            var response = cxb_vxengnt_response()
            response.sequence = request.sequence
            return response
        }
        if notify { try channel.notify() }
    }
}

/// What a backend observed.
final class Observed: Sendable {
    private let lines = Locked<[String]>([])
    func append(_ event: BackendEvent) { lines.withLock { $0.append("\(event)") } }
    var all: [String] { lines.withLock { $0 } }
    func contains(_ text: String) -> Bool { all.contains { $0.contains(text) } }

    /// Waits (5 s at most) until an event containing `text` was observed.
    func wait(for text: String) async throws {
        let deadline = ContinuousClock.now.advanced(by: .seconds(5))
        while !contains(text) {
            guard ContinuousClock.now < deadline else { throw BackendTestFailure("no '\(text)' in \(all)") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

struct BackendTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Simulated {
    /// The device lifecycle on the simulator, with SimulatedFrontend as the frontends.
    @Suite(.noDescriptorLeaks) struct BackendLifecycle {
        /// Runs an echo backend for `vxengnt` in Dom0 while `body` runs, then shuts it down.
        func withBackend(
            _ host: Host,
            observed: Observed,
            prepare: @escaping Backend.Serve = { _ in },
            serve: Backend.Serve? = nil,
            _ body: () async throws -> Void
        ) async throws {
            let store = try XenStore(on: host.dom0.system)
            let system = host.dom0.system
            let backend = Task {
                try await Backend(type: "vxengnt", store: store).run(
                    observe: observed.append,
                    prepare: prepare,
                    serve: serve ?? { try await echo($0, on: system) }
                )
            }
            do {
                try await body()
            } catch {
                backend.cancel()
                _ = await backend.result
                await store.close()
                throw error
            }
            backend.cancel()
            try await backend.value
            await store.close()
        }

        func exchange(_ frontend: inout TestFrontend, _ count: Int) async throws {
            for sequence in 0..<UInt64(count) {
                var request = cxb_vxengnt_request()
                request.sequence = sequence
                try frontend.send([request])
                #expect(try await frontend.response().sequence == sequence)
            }
        }

        @Test func oneBackendServesManyFrontendsEachOnItsOwn() async throws {
            let host = try Host()
            for id: DomainID in [3, 4] { try host.xen.addDomain(id, type: .pv) }
            let frontends: [DomainID] = [1, 3, 4]
            for id in frontends { try await host.xen.addDevice(XenDevice(type: "vxengnt", frontend: id, backend: .dom0, id: 0)) }
            let observed = Observed()
            try await withBackend(host, observed: observed) {
                var one = try await TestFrontend.connect(type: "vxengnt", on: host.xen.system(of: 1))
                var three = try await TestFrontend.connect(type: "vxengnt", on: host.xen.system(of: 3))
                try await exchange(&one, 10)
                try await three.close()  // one closes...
                try await exchange(&one, 10)  // ...the others go on
                var four = try await TestFrontend.connect(type: "vxengnt", on: host.xen.system(of: 4))
                try await exchange(&four, 5)
                three = try await TestFrontend.connect(type: "vxengnt", on: host.xen.system(of: 3))  // and it reconnects
                try await exchange(&three, 5)
                #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/3/0/state") == "4")
                try await one.close()
                try await three.close()
                try await four.close()
            }
            #expect(observed.contains("vxengnt/3/0: torn down (frontend Closing)"))
            #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/1/0/state") == "6")
        }

        @Test func aFrontendWhoseDomainDiesIsTornDown() async throws {
            let host = try Host()
            try await host.xen.addDevice(XenDevice(type: "vxengnt", frontend: 1, backend: .dom0, id: 0))
            let observed = Observed()
            try await withBackend(host, observed: observed) {
                var frontend = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system)
                try await exchange(&frontend, 3)
                host.xen.destroyDomain(host.frontend.id)
                try await observed.wait(for: "torn down (frontend domain gone)")
                try await observed.wait(for: "backend state Closed")
                #expect(host.xen.mappings(by: .dom0, of: host.frontend.id) == 0, "the backend unmapped the ring")
                #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/1/0/state") == "6")
                await frontend.device.store.close()
                _ = consume frontend
            }
        }

        @Test func aFailingConnectionClosesAndAReconnectionIsServed() async throws {
            let host = try Host()
            try await host.xen.addDevice(XenDevice(type: "vxengnt", frontend: 1, backend: .dom0, id: 0))
            let observed = Observed()
            let attempts = Locked(0)
            let system = host.dom0.system
            try await withBackend(
                host,
                observed: observed,
                serve: { device in
                    if attempts.withLock({
                        $0 += 1
                        return $0
                    }) == 1 {
                        throw XenGntError(.invalidDevice, .deviceLifecycle, detail: "the first connection fails")
                    }
                    try await echo(device, on: system)
                }
            ) {
                let refused = await failure {
                    _ = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system, timeout: .seconds(5))
                }
                #expect(refused?.code == .peerClosed)
                try await observed.wait(for: "serving failed")
                var frontend = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system)
                try await exchange(&frontend, 3)
                try await frontend.close()
            }
        }

        @Test func prepareRunsBeforeInitWaitAndShutdownClosesEveryDevice() async throws {
            let host = try Host()
            try await host.xen.addDevice(XenDevice(type: "vxengnt", frontend: 1, backend: .dom0, id: 0))
            let observed = Observed()
            var frontend: TestFrontend?
            try await withBackend(
                host,
                observed: observed,
                prepare: { device in
                    try await device.writeBackend("feature-echo", "1")
                }
            ) {
                frontend = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system)
                #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/1/0/feature-echo") == "1")
            }
            #expect(observed.contains("torn down (backend shutting down)"))
            #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/1/0/state") == "6")
            #expect(
                observed.all.filter { $0.contains("backend state") }.suffix(2) == [
                    "vxengnt/1/0: backend state Closing", "vxengnt/1/0: backend state Closed",
                ]
            )
            try await frontend.take()?.close()
        }

        @Test func aDeviceWhoseDirectoriesDisagreeIsRejected() async throws {
            let host = try Host()
            try await host.xen.addDevice(
                XenDevice(type: "vxengnt", frontend: 1, backend: .dom0, id: 0),
                backendEntries: ["frontend": "/local/domain/2/device/vxengnt/0"]
            )
            let observed = Observed()
            try await withBackend(host, observed: observed) {
                try await observed.wait(for: "rejected")
            }
            #expect(host.xen.xenstoreValue("/local/domain/0/backend/vxengnt/1/0/state") == "1")
        }

        @Test func aFrontendThatRestartsWithoutClosingGetsInitWaitAgain() async throws {
            let host = try Host()
            try await host.xen.addDevice(XenDevice(type: "vxengnt", frontend: 1, backend: .dom0, id: 0))
            let observed = Observed()
            try await withBackend(host, observed: observed) {
                var first = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system)
                try await exchange(&first, 2)
                // A new instance (a reloaded driver) starts over while the backend is connected.
                var second = try await TestFrontend.connect(type: "vxengnt", on: host.frontend.system)
                try await exchange(&second, 2)
                #expect(observed.contains("torn down (frontend restarted)"))
                _ = consume first
                try await second.close()
            }
        }
    }
}
