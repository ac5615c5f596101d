import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension ConformanceSuite {
    static let exportCases: [ConformanceCase] = [
        exportCase("export-balloon", .balloon),
        exportCase("export-wc", .contiguousWriteCombined),
        exportCase("export-coherent", .contiguousCoherent),

        ConformanceCase(
            "export-1080p",
            "the PVH DomU exports a 1080p frame (2025 pages) in one call and releases it",
            parts: [
                .dom0: sharePagesUntilDone(count: 2025, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let exported = try GrantDevice(on: peer.system).exportDmaBuf(refs: refs, from: peer.id(of: .dom0))
                    try check(exported.byteCount == 2025 * 4096, "size")
                    try exported.releaseAndWait(timeout: .seconds(10))
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "export-refused-pv",
            "export from a PV domain is refused (EINVAL) and the error says why, with every flag",
            each: [.dom0, .pv]
        ) { peer in
            // Self-grants work in PV domains, so the refs are good ones.
            let shared = try GrantAllocator(on: peer.system).share(pages: 1, with: peer.id)
            let gntdev = try GrantDevice(on: peer.system)
            for allocation in DmaBufAllocation.allCases {
                try checkFails(code: .exportRefusedInPV, errno: .invalidArgument, operation: .exportDmaBuf) {
                    _ = try gntdev.exportDmaBuf(refs: shared.refs, from: peer.id, allocation: allocation)
                }
            }
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            for flags: UInt32 in [0, 1, 2, 3, 4] {
                try check(
                    raw.export(fd, domid: UInt32(peer.id.rawValue), refs: shared.refs.map(\.rawValue), flags: flags),
                    fails: .invalidArgument,
                    "flags \(flags)"
                )
            }
            try check(raw.export(fd, domid: 0, refs: [], count: 0), fails: .invalidArgument, "count 0")
            try shared.unshare()
        },

        ConformanceCase(
            "export-bad-input",
            "bad export arguments are EINVAL, all or nothing; WC|COHERENT is refused; an undefined flag bit is ignored",
            parts: [
                .dom0: sharePagesUntilDone(count: 2, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0).map(\.rawValue)
                    let dom0 = UInt32(peer.id(of: .dom0).rawValue)
                    let raw = Raw(peer.system)
                    let fd = try raw.open("/dev/xen/gntdev")
                    defer { raw.close(fd) }
                    try check(raw.export(fd, domid: dom0, refs: [], count: 0), fails: .invalidArgument, "count 0")
                    try check(
                        raw.export(fd, domid: dom0, refs: Array(repeating: refs[0], count: 65537)),
                        fails: .invalidArgument,
                        "count over the limit"
                    )
                    try check(raw.export(fd, domid: dom0, refs: [0xFFFFF]), fails: .invalidArgument, "invalid ref")
                    try check(raw.export(fd, domid: dom0, refs: [5]), fails: .invalidArgument, "unused ref")
                    try check(
                        raw.export(fd, domid: UInt32(peer.id(of: .pv).rawValue), refs: refs),
                        fails: .invalidArgument,
                        "wrong domid"
                    )
                    try check(raw.export(fd, domid: 30000, refs: refs), fails: .invalidArgument, "unknown domid")
                    try check(
                        raw.export(fd, domid: dom0, refs: [refs[0], 0xFFFFF]),
                        fails: .invalidArgument,
                        "one good and one bad ref"
                    )
                    try check(raw.export(fd, domid: dom0, refs: refs, flags: 3), fails: .invalidArgument, "WC|COHERENT")
                    let ignored = try succeeds(raw.export(fd, domid: dom0, refs: refs, flags: 4), "undefined flag 0x4")
                    raw.close(ignored)
                    let gntdev = try GrantDevice(on: peer.system)
                    try checkFails(code: .exportRejected, errno: .invalidArgument) {
                        _ = try gntdev.exportDmaBuf(refs: [GrantRef(0xFFFFF)], from: peer.id(of: .dom0))
                    }
                    try checkFails(code: .conflictingAllocationFlags, errno: .some(nil)) { _ = try DmaBufAllocation(flags: 3) }
                    try checkFails(code: .unknownAllocationFlags, errno: .some(nil)) { _ = try DmaBufAllocation(flags: 4) }
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "export-read-only-grant",
            "export maps writable, so a read-only grant cannot be exported (EINVAL)",
            parts: [
                .dom0: sharePagesUntilDone(count: 1, with: .pvh, access: .readOnly),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    try checkFails(code: .exportRejected, errno: .invalidArgument) {
                        _ = try GrantDevice(on: peer.system).exportDmaBuf(refs: refs, from: peer.id(of: .dom0))
                    }
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "export-twice",
            "the same refs can be exported twice at once",
            parts: [
                .dom0: sharePagesUntilDone(count: 2, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let gntdev = try GrantDevice(on: peer.system)
                    let first = try gntdev.exportDmaBuf(refs: refs, from: peer.id(of: .dom0))
                    let second = try gntdev.exportDmaBuf(refs: refs, from: peer.id(of: .dom0))
                    try check(first.fileDescriptor != second.fileDescriptor, "two descriptors")
                    try first.releaseAndWait(timeout: .seconds(5))
                    try second.releaseAndWait(timeout: .seconds(5))
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "wait-released-enoent",
            "wait-released on an unknown number, on another gntdev file, or after release is ENOENT",
            parts: [
                .dom0: { peer in
                    let raw = Raw(peer.system)
                    let fd = try raw.open("/dev/xen/gntdev")
                    defer { raw.close(fd) }
                    try check(raw.waitReleased(fd, exported: 777, milliseconds: 0) == .noSuchFileOrDirectory, "unknown number")
                    try await sharePagesUntilDone(count: 1, with: .pvh)(peer)
                },
                .pv: { peer in
                    let raw = Raw(peer.system)
                    let fd = try raw.open("/dev/xen/gntdev")
                    defer { raw.close(fd) }
                    try check(raw.waitReleased(fd, exported: 777, milliseconds: 0) == .noSuchFileOrDirectory, "unknown number")
                },
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0).map(\.rawValue)
                    let raw = Raw(peer.system)
                    let fd = try raw.open("/dev/xen/gntdev")
                    let other = try raw.open("/dev/xen/gntdev")
                    defer {
                        raw.close(fd)
                        raw.close(other)
                    }
                    try check(raw.waitReleased(fd, exported: 777, milliseconds: 0) == .noSuchFileOrDirectory, "unknown number")
                    let exported = try succeeds(raw.export(fd, domid: UInt32(peer.id(of: .dom0).rawValue), refs: refs), "export")
                    try check(
                        raw.waitReleased(other, exported: exported, milliseconds: 0) == .noSuchFileOrDirectory,
                        "another gntdev file"
                    )
                    try check(raw.waitReleased(fd, exported: exported, milliseconds: 0) == .timedOut, "still open: ETIMEDOUT")
                    raw.close(exported)
                    try check(
                        raw.waitReleased(fd, exported: exported, milliseconds: 0) == .noSuchFileOrDirectory,
                        "after release"
                    )
                    try await peer.publish("done")
                },
            ]
        ),
    ]

    /// Dom0 shares pages; the PVH DomU exports them with `allocation`, checks the size, that the
    /// CPU cannot map it, and that wait-released times out while a holder remains and succeeds
    /// once the last one goes.
    static func exportCase(_ name: String, _ allocation: DmaBufAllocation) -> ConformanceCase {
        ConformanceCase(
            name,
            "PVH DomU exports Dom0's grants (\(allocation)): size, no mmap, wait-released ETIMEDOUT while held, success after",
            parts: [
                .dom0: sharePagesUntilDone(count: 4, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let exported = try GrantDevice(on: peer.system).exportDmaBuf(
                        refs: refs,
                        from: peer.id(of: .dom0),
                        allocation: allocation
                    )
                    try check(lseek(exported.fileDescriptor.rawValue, 0, SEEK_END) == 4 * 4096, "lseek size")
                    let holder = try exported.duplicate()
                    try check(try holder.size() == 4 * 4096, "size")
                    try checkFails(code: .notMappable, errno: .invalidArgument) { _ = try holder.map() }
                    let pending = try exported.release()
                    let started = ContinuousClock.now
                    try check(try pending.wait(timeout: .milliseconds(100)) == false, "released while a holder remains")
                    let waited = ContinuousClock.now - started
                    try check(waited >= .milliseconds(90), "ETIMEDOUT came after \(waited), not ~100 ms")
                    try holder.close()
                    try check(try pending.wait(timeout: .seconds(5)), "not released after the last holder closed")
                    try check(try pending.wait(timeout: .zero), "released stays released")
                    try await peer.publish("done")
                },
            ]
        )
    }
}
