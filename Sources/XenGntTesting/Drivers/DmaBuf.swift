internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A dma-buf (`struct dma_buf`, Linux 6.1 `drivers/dma-buf/dma-buf.c`) and its exporter: gntdev
/// (foreign pages, no mmap), udmabuf (a memfd's pages) or the system DMA heap. Its descriptor is
/// a host memfd of its size, so `lseek` and `fstat` work even outside the seam.
final class DmaBufFile: OpenFile {
    enum Exporter {
        /// Exported by gntdev from grants: the pages are foreign, mapped by Xen.
        case gntdev(GntdevFile, maps: [MaptrackEntry])
        case udmabuf
        case heap
        /// A GEM object exported by PRIME (`drm_gem_prime_export`): the dma-buf holds it.
        case gem(GEMObject)
    }

    /// `_IOW('b', 1, u32)`: the other `DMA_BUF_SET_NAME` 6.1 accepts (`DMA_BUF_SET_NAME_A`).
    static let setNameA: UInt = 0x4004_6201

    let pages: [Page]
    private(set) var exporter: Exporter
    private(set) var name: String?
    private let inode: UInt

    init(kernel: DomainKernel, pages: [Page], exporter: Exporter) {
        self.pages = pages
        self.exporter = exporter
        kernel.dmaBufInodes += 1
        self.inode = kernel.dmaBufInodes
        super.init(kernel: kernel)
    }

    var size: Int { pages.count * xenPageSize }

    /// Unmaps a gntdev export's foreign pages: at release, or when Xen tears down a dying
    /// domain's mappings first.
    func dropForeignMaps(_ hypervisor: Hypervisor) {
        guard case .gntdev(let file, let maps) = exporter else { return }
        hypervisor.unmap(maps)
        exporter = .gntdev(file, maps: [])
    }

    override func decode(_ request: UInt) -> SimulatedIoctl? {
        switch request {
        case Request.dmaBufSync: .dmaBufSync
        case Request.dmaBufSetName, Self.setNameA: .dmaBufSetName
        default: nil
        }
    }

    /// `DMA_BUF_IOCTL_SYNC` (a direction is required, undefined bits are EINVAL) and
    /// `DMA_BUF_SET_NAME` (EINVAL without a NUL in 32 bytes): lab `dmabuf-sync-name`.
    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        switch request {
        case Request.dmaBufSync:
            let flags = try UserMemory.load(UInt64.self, from: argument)
            let valid = UInt64(DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END)
            if flags & ~valid != 0 || flags & UInt64(DMA_BUF_SYNC_RW) == 0 { throw .invalidArgument }
            return .done(0)
        case Request.dmaBufSetName, Self.setNameA:
            // strndup_user(buf, DMA_BUF_NAME_LEN): EINVAL when no NUL within the limit.
            guard let name = try UserMemory.string(at: argument, limit: Int(DMA_BUF_NAME_LEN)) else { throw .invalidArgument }
            self.name = name
            return .done(0)
        default:
            throw .inappropriateIOCTLForDevice
        }
    }

    /// dma_buf_mmap_internal: the range must lie in the buffer; the gntdev exporter has no
    /// mmap (lab `export-balloon`); udmabuf wants a shared mapping.
    override func mmap(_ request: MmapRequest, _ context: Context) throws(Errno) -> MappedArea {
        if case .gntdev = exporter { throw .invalidArgument }
        let (end, overflow) = request.pageOffset.addingReportingOverflow(UInt64(request.pages))
        guard !overflow, end <= UInt64(pages.count) else { throw .invalidArgument }
        if !request.shared { throw .invalidArgument }
        let first = Int(request.pageOffset)
        let address = try mapPages(Array(pages[first..<(first + request.pages)]), protection: request.protection)
        return MappedArea(address: address, length: request.length)
    }

    /// dma_buf_llseek: only SEEK_END or SEEK_SET, offset 0.
    override func llseek(offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        guard offset == 0 else { throw .invalidArgument }
        switch whence {
        case SEEK_END: return Int64(size)
        case SEEK_SET: return 0
        default: throw .invalidArgument
        }
    }

    /// dma_buf_poll with no fences: ready both ways; the memfd behind it says so.
    override var poll: PollAnswer { .host(events: -1) }

    /// A dma-buf's anonymous inode: mode 0600 with no file type, its size, its own inode number.
    override func status() -> stat {
        var info = stat()
        info.st_mode = 0o600
        info.st_size = size
        info.st_blocks = size / 512
        info.st_blksize = 4096
        info.st_nlink = 1
        info.st_ino = inode
        info.st_dev = 12  // the dmabuf pseudo filesystem
        return info
    }

    override func release(_ machine: Machine) {
        if case .gem(let object) = exporter {
            if object.exported === self { object.exported = nil }
            object.put(machine)
        }
        dropForeignMaps(machine.hypervisor)
        if case .gntdev(let exporter, _) = exporter { exporter.exportReleased(self, machine) }
    }
}
