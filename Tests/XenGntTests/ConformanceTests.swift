import Synchronization
import Testing
import XenGnt
import XenGntBackend
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// The lab's cast on the simulator: a PV Dom0, a PV DomU (1), a PVH DomU (2) and the fault
/// cases' PV victim (3), each running the lab's kernel; the channel between them is an
/// in-memory key-value store.
final class SimulatedWorld: ConformanceWorld {
    let xen: XenSimulation
    private let ids: [LabRole: DomainID] = [.dom0: 0, .pv: 1, .pvh: 2, .victim: 3]
    private let store = Locked<[String: String]>([:])
    /// Holder processes' owners, kept until the holder is killed or the world goes.
    private let holders = Locked<[SimulatedHolder]>([])
    /// What the cases noted (the lab prints these as INFO lines).
    let notes = Locked<[String]>([])

    init() throws {
        xen = XenSimulation()
        for role in LabRole.allCases {
            try xen.addDomain(ids[role]!, type: role.guestType, kernel: .lab)  // xen_gntalloc.limit=8192
        }
        // The lab's xenstored: -E 16384, and Dom0's init opens /xengnt to every domain.
        xen.xenstoreQuotas.nodes = 16384
        xen.xenstoreWrite("/xengnt", "", permissions: [XenStorePermission(.dom0, .readWrite)])
    }

    func system(for role: LabRole) -> XenSystem { xen.system(of: ids[role]!) }
    func domainID(of role: LabRole) -> DomainID { ids[role]! }
    func write(_ key: String, _ value: String, as role: LabRole) async throws {
        // xenstored accepts only these characters in a path, and 4 KiB per value; its default
        // quota limits a DomU's node to 2048 bytes (lab `fault-sigkill` met it: ENOSPC).
        let limit = role == .dom0 ? 4096 : 2048
        guard key.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "/_@-".contains($0)) }), value.utf8.count <= limit
        else {
            throw ConformanceFailure("xenstore would refuse \(key) (\(value.utf8.count) bytes from \(role))")
        }
        store.withLock { $0[key] = value }
    }

    func keep(_ holder: SimulatedHolder) { holders.withLock { $0.append(holder) } }
    func read(_ key: String, as role: LabRole) async throws -> String? { store.withLock { $0[key] } }

    func bindUnboundPort(as role: LabRole, remote: DomainID) async throws -> UInt32 {
        try xen.existingDomain(ids[role]!)!.bindUnboundPort(remote: remote)
    }

    func bindInterdomain(as role: LabRole, remote: DomainID, remotePort: UInt32) async throws -> UInt32 {
        try xen.existingDomain(ids[role]!)!.bindInterdomain(remote: remote, remotePort: remotePort)
    }

    func waitForEvent(as role: LabRole, port: UInt32, timeout: Duration) async throws -> Bool {
        let domain = xen.existingDomain(ids[role]!)!
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while domain.receivedEvents(port: port) == 0 {
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(1))
        }
        return true
    }

    func hasStopped(_ role: LabRole) async throws -> String? { store.withLock { $0["stopped/\(role)"] } }

    let hasReferenceLibrary = false
    let rendezvousTimeout: Duration = .seconds(20)
    let pollInterval: Duration = .milliseconds(1)
}

extension String {
    init(contentsOfLink fd: Int32) throws {
        var buffer = [CChar](repeating: 0, count: 256)
        let n = readlink("/proc/self/fd/\(fd)", &buffer, 255)
        self = n > 0 ? String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
    }
}

extension Simulated {
    /// Every conformance case the simulator can run (all but the libxengnttab interop, which
    /// needs the real devices), with each domain's part running concurrently, as in the lab.
    @Suite struct Conformance {
        @Test(arguments: ConformanceSuite.cases.filter { !$0.needsReferenceLibrary })
        func caseAgreesWithTheKernel(_ conformanceCase: ConformanceCase) async throws {
            try await Task.sleep(for: .milliseconds(1))  // the runtime's timerfd, made on first use
            let before = openDescriptors()
            do {
                let world = try SimulatedWorld()
                let results = await withTaskGroup(of: ConformanceResult.self) { group in
                    for role in conformanceCase.roles {
                        group.addTask {
                            let result = await conformanceCase.run(as: role, in: world)
                            // As a lab runner writes its done key once its cases are over.
                            try? await world.write("stopped/\(role)", "finished", as: role)
                            return result
                        }
                    }
                    return await group.reduce(into: []) { $0.append($1) }
                }
                #expect(results.count == conformanceCase.roles.count)
                for result in results {
                    #expect(result.outcome == .pass, "\(result)")
                }
                let census = world.xen.census()
                #expect(census.isClean, "\(census)")
            }
            let leaked = openDescriptors().subtracting(before)
            #expect(
                leaked.isEmpty,
                "the case leaked descriptors: \(leaked.map { fd in (fd, (try? String(contentsOfLink: fd)) ?? "?") })"
            )
        }

        @Test func theInteropCaseIsSkippedWithoutTheRealDevices() async throws {
            let interop = try #require(ConformanceSuite.named("interop-libxengnttab"))
            let result = await interop.run(as: .dom0, in: try SimulatedWorld())
            #expect(result.outcome == .skip("needs libxengnttab on a real Xen"))
            #expect(result.description.hasPrefix("SKIP interop-libxengnttab dom0"))
            let probe = try #require(ConformanceSuite.named("probe"))
            #expect(await probe.run(as: .pv, in: try SimulatedWorld()).description == "PASS probe pv")
        }

        @Test func aFailingPartStopsItsPeersAtOnce() async throws {
            let world = try SimulatedWorld()
            let broken = ConformanceCase(
                "broken",
                "a part that fails",
                parts: [
                    .dom0: { _ in throw ConformanceFailure("dom0 broke") },
                    .pvh: { peer in _ = try await peer.value(of: "never", from: .dom0) },
                ]
            )
            let started = ContinuousClock.now
            async let dom0 = broken.run(as: .dom0, in: world)
            async let pvh = broken.run(as: .pvh, in: world)
            let results = await [dom0, pvh]
            #expect(results[0].outcome == .fail("dom0 broke"))
            #expect(results[1].outcome == .fail("dom0 failed: dom0 broke"))
            #expect(ContinuousClock.now - started < .seconds(10))
        }

        @Test func aPeerThatStoppedIsNotWaitedFor() async throws {
            let world = try SimulatedWorld()
            try await world.write("stopped/pv", "crashed", as: .dom0)
            let lonely = ConformanceCase(
                "lonely",
                "a peer that is gone",
                parts: [
                    .dom0: { peer in _ = try await peer.value(of: "refs", from: .pv) },
                    .pv: { _ in },
                ]
            )
            let started = ContinuousClock.now
            let result = await lonely.run(as: .dom0, in: world)
            #expect(result.outcome == .fail("pv stopped (crashed) without publishing refs"))
            #expect(ContinuousClock.now - started < .seconds(10))
        }
    }
}
