public import SystemPackage

/// The one error XenGnt throws: which operation failed, the kernel's `Errno` (if the kernel was
/// asked at all), and the cause the library could infer, with a sentence a user can act on.
///
/// ```swift
/// do {
///     let buffer = try gntdev.exportDmaBuf(refs: refs, from: frontend)
/// } catch {
///     // "exportDmaBuf (IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS) failed with EINVAL: the kernel
///     //  refuses dma-buf export in an x86 PV domain ..."
///     log.error("\(error)")
///     if error.cause == .exportRefusedInPV { /* fall back to import */ }
/// }
/// ```
///
/// Many kernel failures are a bare `EINVAL`. XenGnt validates what it can before the call (an
/// empty list, a count over the per-call limit, a reserved domain id, conflicting or unknown
/// flags, an import whose page count does not match the buffer) and uses what it knows of the
/// domain (guest type, limits) to explain the rest.
public struct XenGntError: Error, Sendable, Hashable, CustomStringConvertible {
    /// What was being done.
    public let operation: Operation
    /// The kernel's answer, or `nil` when XenGnt refused the request before calling the kernel.
    public let errno: Errno?
    /// What XenGnt infers went wrong.
    public let cause: Cause

    /// An error of `operation`, with the kernel's `errno` if the kernel was asked.
    public init(_ operation: Operation, errno: Errno? = nil, cause: Cause) {
        self.operation = operation
        self.errno = errno
        self.cause = cause
    }

    /// One line: the operation, its ioctl, the errno and what to do about it.
    public var description: String {
        var text = operation.rawValue
        if let request = operation.request { text += " (\(request))" }
        if let errno {
            text += " failed with \(Self.name(of: errno)): "
        } else {
            text += " refused before calling the kernel: "
        }
        return text + cause.advice
    }

    /// The symbolic name of an errno (`EINVAL`), or its number.
    static func name(of errno: Errno) -> String {
        switch errno {
        case .invalidArgument: "EINVAL"
        case .noSuchFileOrDirectory: "ENOENT"
        case .badFileDescriptor: "EBADF"
        case .timedOut: "ETIMEDOUT"
        case .noSpace: "ENOSPC"
        case .noMemory: "ENOMEM"
        case .permissionDenied: "EACCES"
        case .notPermitted: "EPERM"
        case .inappropriateIOCTLForDevice: "ENOTTY"
        case .interrupted: "EINTR"
        case .badAddress: "EFAULT"
        case .operationNotSupportedByDevice: "ENODEV"
        case .noSuchAddressOrDevice: "ENXIO"
        case .tooManyOpenFiles: "EMFILE"
        case .tooManyOpenFilesInSystem: "ENFILE"
        case .resourceBusy: "EBUSY"
        case .resourceTemporarilyUnavailable: "EAGAIN"
        case .canceled: "ECANCELED"
        case .notSupported: "EOPNOTSUPP"
        default: "errno \(errno.rawValue)"
        }
    }
}

extension XenGntError {
    /// The operations XenGnt performs, named as in its API.
    public enum Operation: String, Sendable, Hashable, CaseIterable {
        /// Opening a device node.
        case openDevice
        /// Requesting a grant map (`IOCTL_GNTDEV_MAP_GRANT_REF`).
        case mapGrants
        /// Mapping into this process (`mmap`), where Xen checks mapped grants.
        case mapMemory
        /// Unmapping from this process (`munmap`).
        case unmapMemory
        /// Releasing a grant map (`IOCTL_GNTDEV_UNMAP_GRANT_REF`).
        case unmapGrants
        /// Finding the map behind an address (`IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR`).
        case offsetForAddress
        /// Setting an unmap notification.
        case setUnmapNotification
        /// A grant copy (`IOCTL_GNTDEV_GRANT_COPY`).
        case grantCopy
        /// Setting gntdev's grant limit (`IOCTL_GNTDEV_SET_MAX_GRANTS`).
        case setMaxGrants
        /// Exporting grants as a dma-buf (`IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS`).
        case exportDmaBuf
        /// Releasing an exported dma-buf and waiting for its users.
        case waitReleased
        /// Importing a dma-buf to grants (`IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`).
        case importDmaBuf
        /// Ending an import (`IOCTL_GNTDEV_DMABUF_IMP_RELEASE`).
        case releaseImport
        /// Sharing local pages (`IOCTL_GNTALLOC_ALLOC_GREF`).
        case shareGrants
        /// Withdrawing shared pages (`IOCTL_GNTALLOC_DEALLOC_GREF`).
        case unshareGrants
        /// Reading a dma-buf's size.
        case dmaBufSize
        /// Bracketing CPU access to a dma-buf (`DMA_BUF_IOCTL_SYNC`).
        case dmaBufSync
        /// Naming a dma-buf (`DMA_BUF_SET_NAME`).
        case dmaBufSetName
        /// Allocating a dma-buf (udmabuf, DMA heap).
        case createDmaBuf
        /// Duplicating a descriptor.
        case duplicate
        /// Closing a descriptor.
        case closeDescriptor
        /// Probing capabilities, or setting up a simulation.
        case probe

        /// The ioctl behind the operation, where there is one.
        public var request: String? {
            switch self {
            case .mapGrants: "IOCTL_GNTDEV_MAP_GRANT_REF"
            case .unmapGrants: "IOCTL_GNTDEV_UNMAP_GRANT_REF"
            case .offsetForAddress: "IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR"
            case .setUnmapNotification: "IOCTL_GNTDEV_SET_UNMAP_NOTIFY / IOCTL_GNTALLOC_SET_UNMAP_NOTIFY"
            case .grantCopy: "IOCTL_GNTDEV_GRANT_COPY"
            case .setMaxGrants: "IOCTL_GNTDEV_SET_MAX_GRANTS"
            case .exportDmaBuf: "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS"
            case .waitReleased: "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED"
            case .importDmaBuf: "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS"
            case .releaseImport: "IOCTL_GNTDEV_DMABUF_IMP_RELEASE"
            case .shareGrants: "IOCTL_GNTALLOC_ALLOC_GREF"
            case .unshareGrants: "IOCTL_GNTALLOC_DEALLOC_GREF"
            case .dmaBufSync: "DMA_BUF_IOCTL_SYNC"
            case .dmaBufSetName: "DMA_BUF_SET_NAME"
            case .mapMemory: "mmap"
            case .unmapMemory: "munmap"
            case .dmaBufSize: "lseek"
            case .duplicate: "dup"
            case .closeDescriptor: "close"
            case .openDevice: "open"
            case .createDmaBuf, .probe: nil
            }
        }
    }

    /// What went wrong, as far as XenGnt can tell.
    public enum Cause: Sendable, Hashable {
        /// The request names no pages.
        case emptyRequest
        /// More pages than gntdev accepts in one call (its `limit` module parameter).
        case tooManyPages(count: Int, limit: Int)
        /// A domain id Xen reserves (0x7FF0 and up).
        case reservedDomain(UInt16)
        /// Flag bits the kernel does not define (PVH kernels ignore them silently).
        case unknownAllocationFlags(UInt32)
        /// `GNTDEV_DMA_FLAG_WC` and `GNTDEV_DMA_FLAG_COHERENT` together.
        case conflictingAllocationFlags(UInt32)
        /// An import whose page count does not match the dma-buf's size.
        case pageCountMismatch(pages: Int, bufferBytes: Int)
        /// A device node that does not exist.
        case deviceMissing(path: String)
        /// A device node this process may not open.
        case permissionDenied(path: String)
        /// The kernel was built without `CONFIG_XEN_GNTDEV_DMABUF` (the dma-buf ioctls answer
        /// `ENOTTY`).
        case dmaBufUnsupported
        /// dma-buf export from an x86 PV domain, which the kernel always refuses.
        case exportRefusedInPV
        /// An export the kernel rejected in an auto-translated domain: a bad reference, or (x86
        /// PVH/HVM) a kernel that maps exports with `GNTMAP_device_map`.
        case exportRejected(guest: GuestType?)
        /// Xen refused to map the grants (bad, foreign or read-only reference, unknown domain).
        case badGrants
        /// gntalloc's global page limit would be exceeded.
        case gntallocLimit(limit: Int?)
        /// The domain's grant table has no free entries.
        case grantTableFull
        /// The descriptor is not a dma-buf.
        case notADmaBuf
        /// The descriptor is not open.
        case badFileDescriptor
        /// Still in use when the timeout expired.
        case timedOut
        /// The task was cancelled while waiting.
        case cancelled
        /// The kernel has no such object (already released, or never created here).
        case notFound
        /// A clear-byte notification on a read-only mapping.
        case readOnlyMapping
        /// An event channel port this process has not bound (through /dev/xen/evtchn).
        case eventChannelNotBound(port: UInt32)
        /// An offset or range outside the object.
        case outOfRange(offset: Int, length: Int)
        /// A CPU mapping the exporter does not provide (gntdev-exported dma-bufs have no mmap).
        case notMappable
        /// The kernel ran out of memory (for contiguous allocations: CMA too small).
        case outOfMemory
        /// The ioctl is not implemented by this kernel (`ENOTTY`).
        case notImplemented
        /// Bad input XenGnt caught itself; the text says which.
        case invalidArgument(String)
        /// An answer XenGnt has no better explanation for.
        case kernel

        /// A sentence saying what happened and what to do.
        public var advice: String {
            switch self {
            case .emptyRequest:
                "the request names no pages; pass at least one grant reference or page."
            case .tooManyPages(let count, let limit):
                "\(count) pages is over gntdev's per-call limit of \(limit) (module parameter xen_gntdev.limit); split the request or raise the limit."
            case .reservedDomain(let id):
                "domain id 0x\(String(id, radix: 16, uppercase: true)) is reserved by Xen (ids from 0x7FF0 up are not guests); pass the peer's real domid."
            case .unknownAllocationFlags(let flags):
                "flags 0x\(String(flags, radix: 16)) have bits the kernel does not define (a PVH kernel would silently ignore them); use DmaBufAllocation."
            case .conflictingAllocationFlags(let flags):
                "flags 0x\(String(flags, radix: 16)) ask for both GNTDEV_DMA_FLAG_WC and GNTDEV_DMA_FLAG_COHERENT, which exclude each other; choose one."
            case .pageCountMismatch(let pages, let bytes):
                "the dma-buf is \(bytes) bytes but \(pages) pages (\(pages * xenPageSize) bytes) were asked for; the count must match the buffer exactly, in 4096-byte pages."
            case .deviceMissing(let path):
                "\(path) does not exist: this is not a Xen domain, or the kernel lacks the driver (CONFIG_XEN_GNTDEV for gntdev, CONFIG_XEN_GRANT_DEV_ALLOC for gntalloc, or its module is not loaded)."
            case .permissionDenied(let path):
                "this process may not open \(path); run as root or grant access to the device node (a udev rule)."
            case .dmaBufUnsupported:
                "this kernel was built without CONFIG_XEN_GNTDEV_DMABUF, so the dma-buf ioctls do not exist; use a kernel with it, or map the grants and copy."
            case .exportRefusedInPV:
                "the kernel refuses dma-buf export in an x86 PV domain (it is not auto-translated). Import instead: allocate the buffer locally (udmabuf, a DRM dumb buffer) and give its refs to the frontend, or run the backend in a PVH domain."
            case .exportRejected(let guest):
                if guest == .pvh || guest == .hvm {
                    "the kernel rejected the export: a ref is invalid, unused, not granted to this domain, or its domain is unknown; or this x86 kernel maps exports with GNTMAP_device_map, which Xen refuses for PVH/HVM guests (the lab's kernel patch fixes that; see Documentation/Lab.md)."
                } else {
                    "the kernel rejected the export: a ref is invalid, unused, not granted to this domain, or its domain is unknown."
                }
            case .badGrants:
                "Xen refused to map the grants: a ref is invalid, unused, not granted to this domain, read-only but mapped writable, or its domain does not exist."
            case .gntallocLimit(let limit):
                "gntalloc's global page limit\(limit.map { " (\($0) pages)" } ?? "") would be exceeded (one 1080p XRGB8888 buffer needs 2025 pages); raise it in /sys/module/xen_gntalloc/parameters/limit or boot with xen_gntalloc.limit=N, or release shared pages."
            case .grantTableFull:
                "the domain's grant table has no free entries; release imports or shares, or raise Xen's gnttab_max_frames."
            case .notADmaBuf:
                "the descriptor is not a dma-buf; pass a dma-buf fd (from udmabuf, a DMA heap, DRM PRIME export)."
            case .badFileDescriptor:
                "the descriptor is not open."
            case .timedOut:
                "the buffer is still in use: some process, importer (DRM, V4L2) or GEM handle still holds it; release those, then wait again."
            case .cancelled:
                "the task was cancelled while waiting; the buffer may still be in use."
            case .notFound:
                "the kernel has no such object on this device (already released, or created on another device file)."
            case .readOnlyMapping:
                "a clear-byte notification writes into the page, so it needs a writable mapping."
            case .eventChannelNotBound(let port):
                "event channel port \(port) is not bound in this process; bind it through /dev/xen/evtchn first."
            case .outOfRange(let offset, let length):
                "offset \(offset) is outside the \(length) bytes of the object."
            case .notMappable:
                "this dma-buf cannot be mapped by the CPU (a gntdev-exported buffer has no mmap); import it into the device that uses it instead."
            case .outOfMemory:
                "the kernel ran out of memory; for contiguous (CMA) allocations, check that the CMA area (cma=) is large enough."
            case .notImplemented:
                "this kernel does not implement the ioctl."
            case .invalidArgument(let detail):
                detail
            case .kernel:
                "the kernel gave no further explanation."
            }
        }
    }
}
