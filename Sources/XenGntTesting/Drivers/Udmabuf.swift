internal import CXenGnt
import SystemPackage
import XenGnt

/// `/dev/udmabuf` (Linux 6.1 `drivers/dma-buf/udmabuf.c`): a dma-buf over the pages of sealed
/// memfds. Its module parameters `size_limit_mb` (64) and `list_limit` (1024) are the kernel's,
/// readable in sysfs.
struct UdmabufDevice: KernelDriver {
    static let sizeLimitPath = "/sys/module/udmabuf/parameters/size_limit_mb"
    static let listLimitPath = "/sys/module/udmabuf/parameters/list_limit"

    var device: SimulatedKernel.Device? { .udmabuf }
    var nodes: [DeviceNode] { [DeviceNode(path: Paths.udmabuf, major: 10, minor: 125)] }

    func attributes(of kernel: DomainKernel) -> [String: String] {
        [
            Self.sizeLimitPath: "\(kernel.configuration.udmabufSizeLimitMB)\n",
            Self.listLimitPath: "\(kernel.configuration.udmabufListLimit)\n",
        ]
    }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        UdmabufFile(kernel: context.kernel, node: node)
    }
}

/// An open `/dev/udmabuf`.
final class UdmabufFile: DeviceFile {
    /// `UDMABUF_CREATE_LIST`: `_IOW('u', 0x43, struct udmabuf_create_list)` (an 8-byte header).
    static let createList: UInt = 0x4008_7543
    /// `EBADFD`: what udmabuf answers for a descriptor that is not a memfd.
    private static let notAMemfd = Errno(rawValue: 77)
    private static let sealFutureWrite: Int32 = 0x0010

    override func decode(_ request: UInt) -> SimulatedIoctl? {
        switch request {
        case Request.udmabufCreate: .udmabufCreate
        case Self.createList: .udmabufCreateList
        default: nil
        }
    }

    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        switch request {
        case Request.udmabufCreate:
            let op = try UserMemory.load(udmabuf_create.self, from: argument)
            return .done(try create([udmabuf_create_item(memfd: op.memfd, __pad: 0, offset: op.offset, size: op.size)], context))
        case Self.createList:
            let head = try UserMemory.load(udmabuf_create_list.self, from: argument)
            // `head.count > list_limit`, compared unsigned as the kernel does.
            if UInt64(head.count) > UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: context.configuration.udmabufListLimit))) {
                throw .invalidArgument
            }
            let items = try UserMemory.array(
                of: udmabuf_create_item.self,
                at: argument!,
                offset: MemoryLayout<udmabuf_create_list>.size,
                count: Int(head.count)
            )
            return .done(try create(items.map { $0 }, context))
        default:
            throw .inappropriateIOCTLForDevice
        }
    }

    /// udmabuf_create: every item page-aligned, the total within `size_limit_mb` and not empty
    /// (EINVAL); each memfd a memfd of this process (EBADFD), sealed against shrinking and not
    /// against writing (EINVAL; lab `dmabuf-sync-name` shows an unsealed one refused,
    /// `import-udmabuf` uses XenGnt's), and long enough (EINVAL). The flags are not checked.
    private func create(_ items: [udmabuf_create_item], _ context: Context) throws(Errno) -> Int32 {
        let limitMB = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: context.configuration.udmabufSizeLimitMB)))
        let pageLimit = (limitMB &* 1024 &* 1024) >> 12
        var pageCount: UInt64 = 0
        for item in items {
            if item.offset & UInt64(xenPageSize - 1) != 0 || item.size & UInt64(xenPageSize - 1) != 0 { throw .invalidArgument }
            pageCount &+= item.size >> 12
            if pageCount > pageLimit { throw .invalidArgument }
        }
        if pageCount == 0 { throw .invalidArgument }
        // kmalloc_array and the shmem pages: more than the domain has is ENOMEM.
        if pageCount > UInt64(XenDomain.ramBytes / xenPageSize) { throw .noMemory }
        var pages: [Page] = []
        pages.reserveCapacity(Int(pageCount))
        for item in items where item.size > 0 {
            let memfd = Int32(bitPattern: item.memfd)
            switch context.lookup(memfd) {
            case .file(let file as HostFile) where file.kind == .memfd: break
            case .host: break
            default: throw Self.notAMemfd
            }
            guard let seals = try? HostCalls.fcntl(memfd, command: Int32(CXG_F_GET_SEALS), argument: 0) else {
                throw Self.notAMemfd
            }
            if seals & Int32(CXG_F_SEAL_SHRINK) == 0 || seals & (Int32(CXG_F_SEAL_WRITE) | Self.sealFutureWrite) != 0 {
                throw .invalidArgument
            }
            // shmem_read_mapping_page past the end of the file: EINVAL.
            let filePages = UInt64(max(try HostCalls.fstat(memfd).st_size, 0)) >> 12
            let first = item.offset >> 12
            let count = item.size >> 12
            guard first <= filePages, count <= filePages - first else { throw .invalidArgument }
            // A new open file description of the same memfd: the dma-buf's pages alias the
            // caller's memfd, in and out of the seam, after the caller closes it.
            let memory = MemoryObject(fd: try HostCalls.reopen(memfd))
            pages += (0..<Int(count)).map { Page(memory: memory, index: Int(first) + $0) }
        }
        let buffer = DmaBufFile(kernel: kernel, pages: pages, exporter: .udmabuf)
        let fd = try context.machine.newDescriptor(size: buffer.size)
        context.install(fd, buffer)
        return fd
    }
}
