import CXenGnt
import CXenTools
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension ConformanceSuite {
    static let importCases: [ConformanceCase] = [
        importCase("import-udmabuf", from: .dom0, to: .pvh, source: .udmabuf),
        importCase("import-heap", from: .dom0, to: .pvh, source: .heap),
        importCase("import-from-pvh", from: .pvh, to: .dom0, source: .udmabuf),
        importCase("import-from-pv", from: .pv, to: .dom0, source: .udmabuf),

        ConformanceCase(
            "import-bad-input",
            "IMP_TO_REFS: count ≠ pages, count 0 or a non-dma-buf is EINVAL, a closed fd EBADF; an unknown domid succeeds",
            each: [.dom0]
        ) { peer in
            let raw = Raw(peer.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            let buffer = try DmaBuf.udmabuf(pages: 2, on: peer.system)
            let number = buffer.fileDescriptor.rawValue
            let domid = UInt32(peer.id(of: .pvh).rawValue)
            try check(raw.importToRefs(fd, buffer: number, count: 3, domid: domid), fails: .invalidArgument, "count ≠ pages")
            try check(raw.importToRefs(fd, buffer: number, count: 0, domid: domid), fails: .invalidArgument, "count 0")
            let memfd = try raw.calls.memfdCreate("xengnt-not-a-dmabuf", flags: UInt32(CXG_MFD_CLOEXEC))
            try raw.calls.ftruncate(memfd, length: 8192)
            try check(raw.importToRefs(fd, buffer: memfd, count: 2, domid: domid), fails: .invalidArgument, "a memfd")
            raw.close(memfd)
            try check(raw.importToRefs(fd, buffer: 999, count: 2, domid: domid), fails: .badFileDescriptor, "a closed fd")
            _ = try succeeds(raw.importToRefs(fd, buffer: number, count: 2, domid: 31000), "an unknown domid")
            try check(raw.importRelease(fd, buffer: number) == nil, "IMP_RELEASE")
            try check(raw.importRelease(fd, buffer: number) == .noSuchFileOrDirectory, "IMP_RELEASE twice")
            try check(raw.importRelease(fd, buffer: 4321) == .noSuchFileOrDirectory, "IMP_RELEASE of an unknown fd")
            let gntdev = try GrantDevice(on: peer.system)
            try checkFails(code: .pageCountMismatch, errno: .invalidArgument, call: "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS") {
                _ = try gntdev.importDmaBuf(buffer.duplicate(), to: peer.id(of: .pvh), pageCount: 3)
            }
            try checkFails(code: .notADmaBuf, errno: .invalidArgument) {
                let memfd = try raw.calls.memfdCreate("xengnt-not-a-dmabuf", flags: UInt32(CXG_MFD_CLOEXEC))
                defer { raw.close(memfd) }
                try raw.calls.ftruncate(memfd, length: 4096)
                _ = try gntdev.importDmaBuf(fileDescriptor: FileDescriptor(rawValue: memfd), to: peer.id(of: .pvh))
            }
        },

        ConformanceCase(
            "dmabuf-sync-name",
            "DMA_BUF_IOCTL_SYNC and DMA_BUF_SET_NAME on udmabuf and heap buffers; udmabuf and heap argument checks",
            each: LabRole.permanent
        ) { peer in
            let raw = Raw(peer.system)
            for source in [Source.udmabuf, .heap] {
                let buffer =
                    source == .udmabuf
                    ? try DmaBuf.udmabuf(pages: 2, on: peer.system)
                    : try DmaBuf.allocate(fromHeap: "system", pages: 2, on: peer.system)
                try check(try buffer.size() == 8192, "size")
                let cpu = try buffer.map()
                try buffer.withCPUAccess(.readWrite) { () throws(XenGntError) in try cpu.withUnsafeMutableBytes { $0[4096] = 1 } }
                try buffer.sync(.start, .readOnly)
                try buffer.sync(.end, .readOnly)
                try buffer.setName("xengnt-\(peer.role)")
                let fd = buffer.fileDescriptor.rawValue
                for flags: UInt64 in [0, 8, 0x10 | 1] {  // no direction; an undefined bit
                    let result = raw.ioctl(
                        fd,
                        cxg_request_dma_buf_sync(),
                        size: 8,
                        fill: { $0.storeBytes(of: flags, as: UInt64.self) },
                        read: { _ in () }
                    )
                    try check(result, fails: .invalidArgument, "SYNC flags \(flags)")
                }
                let unterminated = raw.ioctl(
                    fd,
                    cxg_request_dma_buf_set_name(),
                    size: 40,
                    fill: { $0.initializeMemory(as: UInt8.self, repeating: 0x61, count: 40) },
                    read: { _ in () }
                )
                try check(unterminated, fails: .invalidArgument, "a 40-byte name")
                try checkFails(operation: .dmaBufSetName) { try buffer.setName(String(repeating: "n", count: 32)) }
            }
            // udmabuf wants a memfd sealed against shrinking; a heap takes no heap flags.
            let memfd = try raw.calls.memfdCreate("xengnt-unsealed", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
            defer { raw.close(memfd) }
            try raw.calls.ftruncate(memfd, length: 4096)
            let device = try raw.open("/dev/udmabuf")
            defer { raw.close(device) }
            let unsealed = raw.ioctl(
                device,
                cxg_request_udmabuf_create(),
                size: MemoryLayout<udmabuf_create>.size,
                fill: {
                    $0.storeBytes(
                        of: udmabuf_create(memfd: UInt32(memfd), flags: 0, offset: 0, size: 4096),
                        as: udmabuf_create.self
                    )
                },
                read: { _ in () }
            )
            try check(unsealed, fails: .invalidArgument, "UDMABUF_CREATE of an unsealed memfd")
            let heap = try raw.calls.open("/dev/dma_heap/system", flags: O_RDONLY | O_CLOEXEC, mode: 0)
            defer { raw.close(heap) }
            let flagged = raw.ioctl(
                heap,
                cxg_request_dma_heap_alloc(),
                size: MemoryLayout<dma_heap_allocation_data>.size,
                fill: {
                    $0.storeBytes(
                        of: dma_heap_allocation_data(len: 4096, fd: 0, fd_flags: UInt32(O_RDWR | O_CLOEXEC), heap_flags: 1),
                        as: dma_heap_allocation_data.self
                    )
                },
                read: { _ in () }
            )
            try check(flagged, fails: .invalidArgument, "DMA_HEAP_IOCTL_ALLOC with heap flags")
        },

        ConformanceCase(
            "import-release-while-mapped",
            "releasing an import the peer still maps succeeds; the pages stay readable until the peer unmaps",
            parts: [
                .dom0: { peer in
                    let buffer = try DmaBuf.udmabuf(pages: 1, on: peer.system)
                    let cpu = try buffer.map()
                    try cpu.withUnsafeMutableBytes { $0[10] = 0x99 }
                    let imported = try GrantDevice(on: peer.system).importDmaBuf(buffer, to: peer.id(of: .pvh))
                    try await peer.publish(refs: imported.refs, as: "refs")
                    try await peer.wait(for: "mapped", from: .pvh)
                    try imported.release()
                    try await peer.publish("released")
                    try await peer.wait(for: "done", from: .pvh)
                },
                .pvh: { peer in
                    let mapping = try GrantDevice(on: peer.system).map(
                        try await peer.refs("refs", from: .dom0),
                        from: peer.id(of: .dom0)
                    )
                    try await peer.publish("mapped")
                    try await peer.wait(for: "released", from: .dom0)
                    try check(mapping.withUnsafeBytes { $0[10] } == 0x99, "the page after release")
                    try mapping.unmap()
                    try await peer.publish("done")
                },
            ]
        ),

        ConformanceCase(
            "interop-libxengnttab",
            "pages XenGnt shares are mapped by libxengnttab, and pages libxengntshr shares are mapped by XenGnt",
            needsReferenceLibrary: true,
            parts: [
                .dom0: { peer in
                    let shared = try GrantAllocator(on: peer.system).share(pages: 2, with: peer.id(of: .pvh))
                    shared.withUnsafeMutableBytes { $0[4097] = 0x21 }
                    try await peer.publish(refs: shared.refs, as: "xengnt-refs")

                    guard let gntshr = xengntshr_open(nil, 0) else { throw ConformanceFailure("xengntshr_open: errno \(errno)") }
                    defer { xengntshr_close(gntshr) }
                    var refs = [UInt32](repeating: 0, count: 2)
                    guard let pages = xengntshr_share_pages(gntshr, UInt32(peer.id(of: .pvh).rawValue), 2, &refs, 1) else {
                        throw ConformanceFailure("xengntshr_share_pages: errno \(errno)")
                    }
                    pages.storeBytes(of: 0x42, toByteOffset: 4096 + 3, as: UInt8.self)
                    try await peer.publish(refs: refs.map { GrantRef($0) }, as: "c-refs")
                    try await peer.wait(for: "done", from: .pvh)
                    try check(shared.withUnsafeBytes { $0[5] } == 0x12, "libxengnttab's write")
                    try check(pages.load(fromByteOffset: 6, as: UInt8.self) == 0x24, "XenGnt's write into libxengntshr's pages")
                    xengntshr_unshare(gntshr, pages, 2)
                    try shared.unshare()
                },
                .pvh: { peer in
                    let dom0 = peer.id(of: .dom0)
                    let xengntRefs = try await peer.refs("xengnt-refs", from: .dom0)
                    guard let gnttab = xengnttab_open(nil, 0) else { throw ConformanceFailure("xengnttab_open: errno \(errno)") }
                    defer { xengnttab_close(gnttab) }
                    var refs = xengntRefs.map(\.rawValue)
                    guard
                        let pages = xengnttab_map_domain_grant_refs(
                            gnttab,
                            2,
                            UInt32(dom0.rawValue),
                            &refs,
                            PROT_READ | PROT_WRITE
                        )
                    else {
                        throw ConformanceFailure("xengnttab_map_domain_grant_refs: errno \(errno)")
                    }
                    try check(pages.load(fromByteOffset: 4097, as: UInt8.self) == 0x21, "XenGnt's share seen by libxengnttab")
                    pages.storeBytes(of: 0x12, toByteOffset: 5, as: UInt8.self)
                    xengnttab_unmap(gnttab, pages, 2)

                    let mapping = try GrantDevice(on: peer.system).map(try await peer.refs("c-refs", from: .dom0), from: dom0)
                    try check(mapping.withUnsafeBytes { $0[4096 + 3] } == 0x42, "libxengntshr's share seen by XenGnt")
                    try mapping.withUnsafeMutableBytes { $0[6] = 0x24 }
                    try mapping.unmap()
                    try await peer.publish("done")
                },
            ]
        ),
    ]

    enum Source: CustomStringConvertible {
        case udmabuf, heap
        var description: String { self == .udmabuf ? "udmabuf" : "dma-heap system" }
    }

    /// `importer` allocates a dma-buf and imports it to refs for `mapper`, which maps them;
    /// bytes are seen both ways; the import is released after the mapper unmaps.
    static func importCase(_ name: String, from importer: LabRole, to mapper: LabRole, source: Source) -> ConformanceCase {
        ConformanceCase(
            name,
            "\(importer) shares a \(source) buffer with IMP_TO_REFS, \(mapper) maps the refs; bytes both ways; release",
            parts: [
                importer: { peer in
                    let buffer =
                        source == .udmabuf
                        ? try DmaBuf.udmabuf(pages: 3, on: peer.system)
                        : try DmaBuf.allocate(fromHeap: "system", pages: 3, on: peer.system)
                    let cpu = try buffer.map()
                    try buffer.withCPUAccess(.readWrite) { () throws(XenGntError) in
                        try cpu.withUnsafeMutableBytes { $0.copyBytes(from: pattern(7, count: 3 * 4096)) }
                    }
                    let gntdev = try GrantDevice(on: peer.system)
                    let imported = try gntdev.importDmaBuf(buffer, to: peer.id(of: mapper), pageCount: 3)
                    try await peer.publish(refs: imported.refs, as: "refs")
                    try await peer.wait(for: "written", from: mapper)
                    let seen = try imported.withBuffer { (buffer) throws(XenGntError) in
                        try buffer.withCPUAccess(.readOnly) { cpu.withUnsafeBytes { $0[2 * 4096 + 1] } }
                    }
                    try check(seen == 0x77, "the peer's write is not in the buffer")
                    try await peer.wait(for: "unmapped", from: mapper)
                    try imported.release()
                },
                mapper: { peer in
                    let mapping = try GrantDevice(on: peer.system).map(
                        try await peer.refs("refs", from: importer),
                        from: peer.id(of: importer)
                    )
                    try check(mapping.withUnsafeBytes { Array($0) } == pattern(7, count: 3 * 4096), "the importer's bytes")
                    try mapping.withUnsafeMutableBytes { $0[2 * 4096 + 1] = 0x77 }
                    try await peer.publish("written")
                    try mapping.unmap()
                    try await peer.publish("unmapped")
                },
            ]
        )
    }
}
