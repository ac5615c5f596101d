import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

/// Many tasks on shared devices. CI runs this suite under ThreadSanitizer too
/// (`swift test --sanitize=thread --filter ManyTasks`).
extension Simulated {
    @Suite
    struct ManyTasks {
        static let tasks = 64
        static let operationsPerTask = 1_000

        /// What one task does, chosen by a small deterministic generator so runs repeat.
        enum Move: CaseIterable { case map, exportAndWait, heldExportAndWait, importBuffer, share, copy }

        @Test func sixtyFourTasksShareDevicesAndNoWaitEverWatchesAnotherBuffer() async throws {
            let before = openDescriptors()
            let counts = Tally()
            let started = ContinuousClock.now
            do {
                let xen = XenSimulation()
                var kernel = SimulatedKernel()
                kernel.gntallocLimit = 4 * Self.tasks
                let dom0 = try xen.addDomain(0, type: .pv, kernel: kernel)
                let frontend = try xen.addDomain(1, type: .pvh, kernel: kernel)
                let backend = try xen.addDomain(2, type: .pvh, kernel: kernel)
                try await Self.run(xen: xen, dom0: dom0, frontend: frontend, backend: backend, counts: counts)
                let census = xen.census()
                #expect(census.isClean, "\(census)")
            }
            let total = counts.total
            print("ManyTasks: \(total) operations by \(Self.tasks) tasks in \(ContinuousClock.now - started): \(counts.snapshot)")
            #expect(total == Self.tasks * Self.operationsPerTask)
            #expect(openDescriptors() == before)
        }

        static func run(
            xen: XenSimulation,
            dom0: SimulatedDomain,
            frontend: SimulatedDomain,
            backend: SimulatedDomain,
            counts: Tally
        ) async throws {
            let gntdev = try GrantDevice(on: backend.system)
            let dom0Device = try GrantDevice(on: dom0.system)
            let allocator = try GrantAllocator(on: dom0.system)
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<Self.tasks {
                    let refs = try frontend.grantPages(4, to: backend.id)
                    try frontend.write([UInt8(task)], toGrant: refs[0])
                    group.addTask {
                        var seed = UInt64(task) &* 0x9E37_79B9_7F4A_7C15 | 1
                        for _ in 0..<Self.operationsPerTask {
                            seed ^= seed << 13
                            seed ^= seed >> 7
                            seed ^= seed << 17
                            let move = Move.allCases[Int(seed % UInt64(Move.allCases.count))]
                            try Self.perform(
                                move,
                                task: task,
                                refs: refs,
                                gntdev: gntdev,
                                dom0Device: dom0Device,
                                allocator: allocator,
                                frontend: frontend
                            )
                            counts.note(move, "done")
                            if seed % 8 == 0 { await Task.yield() }
                        }
                        frontend.endAccess(refs)
                    }
                }
                try await group.waitForAll()
            }
        }

        static func perform(
            _ move: Move,
            task: Int,
            refs: [GrantRef],
            gntdev: GrantDevice,
            dom0Device: GrantDevice,
            allocator: GrantAllocator,
            frontend: SimulatedDomain
        ) throws {
            switch move {
            case .map:
                let mapping = try gntdev.map(refs, from: frontend.id)
                try #require(mapping.withUnsafeBytes { $0[0] } == UInt8(task), "task \(task) sees another task's page")
                try mapping.unmap()
            case .exportAndWait:
                let exported = try gntdev.exportDmaBuf(refs: refs[1...], from: frontend.id)
                try #require(try exported.release().wait(timeout: .zero), "an unheld export is released at once")
            case .heldExportAndWait:
                // The holder keeps the buffer alive while other tasks export, close and reuse
                // descriptor numbers: the wait must keep watching this buffer.
                let exported = try gntdev.exportDmaBuf(refs: refs[..<2], from: frontend.id)
                let holder = try exported.duplicate()
                let pending = try exported.release()
                for _ in 0..<3 {
                    try #require(try pending.wait(timeout: .zero) == false, "task \(task): the wait watched another buffer")
                }
                try holder.close()
                try #require(try pending.wait(timeout: .zero), "task \(task): released once the holder closed")
            case .importBuffer:
                let imported = try dom0Device.importDmaBuf(DmaBuf.udmabuf(pages: 1, on: dom0Device.system), to: frontend.id)
                _ = try imported.release()
            case .share:
                let shared = try allocator.share(pages: 1 + task % 4, with: frontend.id)
                shared.withUnsafeMutableBytes { $0[0] = UInt8(task) }
                try shared.unshare()
            case .copy:
                var byte: UInt8 = 0xFF
                try withUnsafeMutableBytes(of: &byte) { local in
                    var segments = [
                        GrantCopySegment(
                            from: .grant(ForeignGrant(domain: frontend.id, ref: refs[0]), offset: 0),
                            to: .local(local.baseAddress!),
                            length: 1
                        )
                    ]
                    try gntdev.copy(&segments)
                    try #require(segments[0].status == .okay)
                }
                try #require(byte == UInt8(task))
            }
        }
    }
}
