extension XenGntError {
    /// What went wrong, as far as XenGnt can tell. The values it concerns (a path, a limit, a
    /// count) are properties of the error.
    ///
    /// Codes are values, so new ones can be added without breaking a `switch` over them: match
    /// with `==`, or in a `switch` that has a `default`.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Storage: String, Hashable, Sendable {
            case emptyRequest, tooManyPages, countMismatch, reservedDomain, ownGrants
            case unknownAllocationFlags, conflictingAllocationFlags, pageCountMismatch
            case deviceMissing, permissionDenied, dmaBufUnsupported
            case exportRefusedInPV, exportRejected, badGrants
            case gntallocLimit, udmabufLimit, grantTableFull
            case notADmaBuf, badFileDescriptor, timedOut, cancelled, notFound
            case readOnlyMapping, notifyNeedsWritableMapping, eventChannelNotBound
            case outOfRange, notMappable, outOfMemory, invalidArgument, kernel
        }

        let storage: Storage

        init(_ storage: Storage) { self.storage = storage }

        /// The code's name (`exportRefusedInPV`).
        public var description: String { storage.rawValue }

        /// The request names no pages.
        public static var emptyRequest: Code { Code(.emptyRequest) }
        /// More pages than gntdev accepts in one call (its `limit` module parameter, read when
        /// the kernel refused): ``XenGntError/count``, ``XenGntError/limit``.
        public static var tooManyPages: Code { Code(.tooManyPages) }
        /// A collection yielded a different number of elements than its `count` claimed:
        /// ``XenGntError/count`` (claimed), ``XenGntError/actualCount`` (yielded).
        public static var countMismatch: Code { Code(.countMismatch) }
        /// A domain id Xen reserves (0x7FF0 and up): ``XenGntError/domain``.
        public static var reservedDomain: Code { Code(.reservedDomain) }
        /// Mapping or exporting grants this domain issued itself, which corrupts an x86 PVH/HVM
        /// domain: ``XenGntError/domain``, ``XenGntError/guestType``.
        public static var ownGrants: Code { Code(.ownGrants) }
        /// Allocation flag bits the kernel does not define: ``XenGntError/flags``.
        public static var unknownAllocationFlags: Code { Code(.unknownAllocationFlags) }
        /// `GNTDEV_DMA_FLAG_WC` and `GNTDEV_DMA_FLAG_COHERENT` together: ``XenGntError/flags``.
        public static var conflictingAllocationFlags: Code { Code(.conflictingAllocationFlags) }
        /// An import whose page count does not match the dma-buf's size:
        /// ``XenGntError/count`` (pages), ``XenGntError/length`` (the buffer's bytes).
        public static var pageCountMismatch: Code { Code(.pageCountMismatch) }
        /// A device node that does not exist: ``XenGntError/path``.
        public static var deviceMissing: Code { Code(.deviceMissing) }
        /// A device node this process may not open: ``XenGntError/path``.
        public static var permissionDenied: Code { Code(.permissionDenied) }
        /// The kernel was built without `CONFIG_XEN_GNTDEV_DMABUF` (the dma-buf ioctls answer
        /// `ENOTTY`).
        public static var dmaBufUnsupported: Code { Code(.dmaBufUnsupported) }
        /// dma-buf export in an x86 PV domain, which the kernel always refuses.
        public static var exportRefusedInPV: Code { Code(.exportRefusedInPV) }
        /// An export the kernel rejected in an auto-translated domain: a bad reference, or (x86
        /// PVH/HVM) a kernel that maps exports with `GNTMAP_device_map`: ``XenGntError/guestType``.
        public static var exportRejected: Code { Code(.exportRejected) }
        /// Xen refused to map the grants (bad, foreign or read-only reference, unknown domain).
        public static var badGrants: Code { Code(.badGrants) }
        /// gntalloc's global page limit would be exceeded: ``XenGntError/count``,
        /// ``XenGntError/limit`` (read when the kernel refused; `nil` if unreadable).
        public static var gntallocLimit: Code { Code(.gntallocLimit) }
        /// A udmabuf over udmabuf's `size_limit_mb`: ``XenGntError/length``,
        /// ``XenGntError/limit`` (MiB).
        public static var udmabufLimit: Code { Code(.udmabufLimit) }
        /// The domain's grant table has no free entries.
        public static var grantTableFull: Code { Code(.grantTableFull) }
        /// The descriptor is not a dma-buf.
        public static var notADmaBuf: Code { Code(.notADmaBuf) }
        /// The descriptor is not open.
        public static var badFileDescriptor: Code { Code(.badFileDescriptor) }
        /// Still in use when the timeout expired.
        public static var timedOut: Code { Code(.timedOut) }
        /// The task was cancelled while waiting (``XenGntError/errno`` is `nil`: the kernel did
        /// not fail).
        public static var cancelled: Code { Code(.cancelled) }
        /// The kernel has no such object (already released, or created on another device file).
        public static var notFound: Code { Code(.notFound) }
        /// A write through a read-only mapping.
        public static var readOnlyMapping: Code { Code(.readOnlyMapping) }
        /// A clear-byte unmap notification on a read-only mapping.
        public static var notifyNeedsWritableMapping: Code { Code(.notifyNeedsWritableMapping) }
        /// An event channel port this process has not bound: ``XenGntError/port``.
        public static var eventChannelNotBound: Code { Code(.eventChannelNotBound) }
        /// An offset or range outside the object: ``XenGntError/offset``, ``XenGntError/length``.
        public static var outOfRange: Code { Code(.outOfRange) }
        /// A CPU mapping the exporter does not provide (gntdev-exported dma-bufs have no mmap).
        public static var notMappable: Code { Code(.notMappable) }
        /// The kernel ran out of memory (``XenGntError/allocation`` says whether contiguous DMA
        /// memory was asked for).
        public static var outOfMemory: Code { Code(.outOfMemory) }
        /// Bad input XenGnt caught itself; ``XenGntError/detail`` says which.
        public static var invalidArgument: Code { Code(.invalidArgument) }
        /// An answer XenGnt has no better explanation for.
        public static var kernel: Code { Code(.kernel) }
    }

    /// A sentence saying what happened and what to do.
    public var advice: String {
        switch code.storage {
        case .emptyRequest:
            return "the request names no pages; pass at least one grant reference or page."
        case .tooManyPages:
            return "\(count.map(String.init) ?? "the") pages is over gntdev's per-call limit\(limit.map { " of \($0)" } ?? "") (module parameter xen_gntdev.limit, /sys/module/xen_gntdev/parameters/limit); split the request or raise the limit."
        case .countMismatch:
            return "the collection's count is \(count ?? 0) but it yielded \(actualCount ?? 0) elements; pass a collection whose count is what it yields (nothing was sent to the kernel)."
        case .reservedDomain:
            return "domain id 0x\(String(domain?.rawValue ?? 0, radix: 16, uppercase: true)) is reserved by Xen (ids from 0x7FF0 up are not guests); pass the peer's real domid."
        case .ownGrants:
            return "\(domain.map { "\($0)" } ?? "this domain") is the domain this runs in: mapping its own grants in an x86 \(guestType?.rawValue ?? "PVH/HVM") domain shows the wrong page and later crashes the kernel (gntalloc mmap oops); share within a domain without grants, or map from another domain."
        case .unknownAllocationFlags:
            return "flags 0x\(String(flags ?? 0, radix: 16)) have bits the kernel does not define (a PVH kernel would silently ignore them); use DmaBufAllocation."
        case .conflictingAllocationFlags:
            return "flags 0x\(String(flags ?? 0, radix: 16)) ask for both GNTDEV_DMA_FLAG_WC and GNTDEV_DMA_FLAG_COHERENT, which exclude each other; choose one."
        case .pageCountMismatch:
            let pages = count ?? 0
            return "the dma-buf is \(length ?? 0) bytes but \(pages) pages (\(pages.multipliedReportingOverflow(by: xenPageSize).partialValue) bytes) were asked for; the count must match the buffer exactly, in 4096-byte pages."
        case .deviceMissing:
            return Self.missingDeviceAdvice(path ?? "the device")
        case .permissionDenied:
            return "this process may not open \(path ?? "the device"); run as root or grant access to the device node (a udev rule)."
        case .dmaBufUnsupported:
            return "this kernel was built without CONFIG_XEN_GNTDEV_DMABUF, so the dma-buf ioctls do not exist; use a kernel with it, or map the grants and copy."
        case .exportRefusedInPV:
            return "the kernel refuses dma-buf export in an x86 PV domain (it is not auto-translated). Import instead: allocate the buffer locally (udmabuf, a DRM dumb buffer) and give its refs to the frontend, or run the backend in a PVH domain."
        case .exportRejected:
            let reason = "the kernel rejected the export: a ref is invalid, unused, not granted to this domain, or its domain is unknown"
            if guestType == .pvh || guestType == .hvm {
                return reason + "; or this x86 kernel maps exports with GNTMAP_device_map, which Xen refuses for PVH/HVM guests (see Documentation/KernelFacts.md for the one-line kernel fix)."
            }
            return reason + "."
        case .badGrants:
            return "Xen refused to map the grants: a ref is invalid, unused, not granted to this domain, read-only but mapped writable, or its domain does not exist (or was destroyed)."
        case .gntallocLimit:
            return "gntalloc's global page limit\(limit.map { " (\($0) pages)" } ?? "") would be exceeded\(count.map { " by \($0) more pages" } ?? "") (one 1080p XRGB8888 buffer needs 2025 pages); raise it in /sys/module/xen_gntalloc/parameters/limit or boot with xen_gntalloc.limit=N, or release shared pages."
        case .udmabufLimit:
            return "a udmabuf of \(length ?? 0) bytes is over udmabuf's size limit\(limit.map { " of \($0) MiB" } ?? "") (module parameter udmabuf.size_limit_mb, /sys/module/udmabuf/parameters/size_limit_mb); raise it or use a DMA heap."
        case .grantTableFull:
            return "the domain's grant table has no free entries; release imports or shares, or raise Xen's gnttab_max_frames."
        case .notADmaBuf:
            return "the descriptor is not a dma-buf; pass a dma-buf fd (from udmabuf, a DMA heap, DRM PRIME export)."
        case .badFileDescriptor:
            return "the descriptor is not open."
        case .timedOut:
            return "the buffer is still in use: some process, importer (DRM, V4L2) or GEM handle still holds it; release those, then wait again."
        case .cancelled:
            return "the task was cancelled while waiting; the object may still be in use."
        case .notFound:
            return "the kernel has no such object on this device (already released, or created on another device file)."
        case .readOnlyMapping:
            return "the memory is mapped read-only; map it with access: .readWrite (the grants must be writable) to write."
        case .notifyNeedsWritableMapping:
            return "a clear-byte unmap notification writes into the page, so it needs a writable mapping; use only the event-channel notification on a read-only one."
        case .eventChannelNotBound:
            return "event channel port \(port.map(String.init) ?? "") is not bound in this process; bind it through /dev/xen/evtchn first."
        case .outOfRange:
            return "offset \(offset ?? 0) is outside the \(length ?? 0) bytes of the object."
        case .notMappable:
            return "this dma-buf cannot be mapped by the CPU (a gntdev-exported buffer has no mmap); import it into the device that uses it instead."
        case .outOfMemory:
            if allocation == .contiguousWriteCombined || allocation == .contiguousCoherent {
                return "the kernel could not allocate contiguous DMA memory; check that the CMA area (cma= on the kernel command line) is large enough, or export with allocation: .balloon."
            }
            return "the kernel ran out of memory; release buffers or give the domain more memory."
        case .invalidArgument:
            return detail ?? "an argument is not valid."
        case .kernel:
            return "the kernel gave no further explanation."
        }
    }

    static func missingDeviceAdvice(_ path: String) -> String {
        let option: String
        switch path {
        case Paths.gntdev:
            option = "this is not a Xen domain, or the kernel lacks CONFIG_XEN_GNTDEV (or module xen_gntdev is not loaded)"
        case Paths.gntalloc:
            option = "this is not a Xen domain, or the kernel lacks CONFIG_XEN_GRANT_DEV_ALLOC (or module xen_gntalloc is not loaded)"
        case Paths.udmabuf:
            option = "the kernel lacks CONFIG_UDMABUF (or module udmabuf is not loaded); a DMA heap is the other source of CPU-mappable dma-bufs"
        case Paths.dmaHeaps + "system":
            option = "the kernel lacks CONFIG_DMABUF_HEAPS with CONFIG_DMABUF_HEAPS_SYSTEM"
        case _ where path.hasPrefix(Paths.dmaHeaps):
            option = "there is no DMA heap of that name (list /dev/dma_heap; a CMA heap needs CONFIG_DMABUF_HEAPS_CMA)"
        default:
            option = "the kernel lacks its driver"
        }
        return "\(path) does not exist: \(option)."
    }
}
