extension XenGntError {
    /// What went wrong, as far as XenGnt can tell. The values it concerns (a path, a limit, a
    /// count) are properties of the error.
    ///
    /// Codes are values, so new ones can be added without breaking a `switch` over them: match
    /// with `==`, or in a `switch` that has a `default`. Each product of the package declares its
    /// own codes (the DRM bridge, XenStore, event channels and rings add theirs) with the
    /// sentence that explains them; two codes are equal when their names are.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        /// The code's name (`exportRefusedInPV`), unique in the package.
        public let name: String
        /// The sentence for an error with this code, from the error's values.
        let explain: @Sendable (XenGntError) -> String

        /// A code called `name`, explained by `explain`.
        package init(_ name: String, explain: @escaping @Sendable (XenGntError) -> String) {
            self.name = name
            self.explain = explain
        }

        public var description: String { name }

        public static func == (a: Code, b: Code) -> Bool { a.name == b.name }

        public func hash(into hasher: inout Hasher) { hasher.combine(name) }

        /// The request names no pages.
        public static var emptyRequest: Code {
            Code("emptyRequest") { e in
                "the request names no pages; pass at least one grant reference or page."
            }
        }
        /// More pages than gntdev accepts in one call (its `limit` module parameter, read when
        /// the kernel refused): ``XenGntError/count``, ``XenGntError/limit``.
        public static var tooManyPages: Code {
            Code("tooManyPages") { e in
                "\(e.count.map(String.init) ?? "the") pages is over gntdev's per-call limit\(e.limit.map { " of \($0)" } ?? "") (module parameter xen_gntdev.limit, /sys/module/xen_gntdev/parameters/limit); split the request or raise the limit."
            }
        }
        /// A collection yielded a different number of elements than its `count` claimed:
        /// ``XenGntError/count`` (claimed), ``XenGntError/actualCount`` (yielded).
        public static var countMismatch: Code {
            Code("countMismatch") { e in
                "the collection's count is \(e.count ?? 0) but it yielded \(e.actualCount ?? 0) elements; pass a collection whose count is what it yields (nothing was sent to the kernel)."
            }
        }
        /// A domain id Xen reserves (0x7FF0 and up): ``XenGntError/domain``.
        public static var reservedDomain: Code {
            Code("reservedDomain") { e in
                "domain id 0x\(String(e.domain?.rawValue ?? 0, radix: 16, uppercase: true)) is reserved by Xen (ids from 0x7FF0 up are not guests); pass the peer's real domid."
            }
        }
        /// Mapping or exporting grants this domain issued itself, which corrupts an x86 PVH/HVM
        /// domain: ``XenGntError/domain``, ``XenGntError/guestType``.
        public static var ownGrants: Code {
            Code("ownGrants") { e in
                "\(e.domain.map { "\($0)" } ?? "this domain") is the domain this runs in: mapping its own grants in an x86 \(e.guestType?.rawValue ?? "PVH/HVM") domain shows the wrong page and later crashes the kernel (gntalloc mmap oops); share within a domain without grants, or map from another domain."
            }
        }
        /// Allocation flag bits the kernel does not define: ``XenGntError/flags``.
        public static var unknownAllocationFlags: Code {
            Code("unknownAllocationFlags") { e in
                "flags 0x\(String(e.flags ?? 0, radix: 16)) have bits the kernel does not define (a PVH kernel would silently ignore them); use DmaBufAllocation."
            }
        }
        /// `GNTDEV_DMA_FLAG_WC` and `GNTDEV_DMA_FLAG_COHERENT` together: ``XenGntError/flags``.
        public static var conflictingAllocationFlags: Code {
            Code("conflictingAllocationFlags") { e in
                "flags 0x\(String(e.flags ?? 0, radix: 16)) ask for both GNTDEV_DMA_FLAG_WC and GNTDEV_DMA_FLAG_COHERENT, which exclude each other; choose one."
            }
        }
        /// An import whose page count does not match the dma-buf's size:
        /// ``XenGntError/count`` (pages), ``XenGntError/length`` (the buffer's bytes).
        public static var pageCountMismatch: Code {
            Code("pageCountMismatch") { e in
                let pages = e.count ?? 0
                return
                    "the dma-buf is \(e.length ?? 0) bytes but \(pages) pages (\(pages.multipliedReportingOverflow(by: xenPageSize).partialValue) bytes) were asked for; the count must match the buffer exactly, in 4096-byte pages."
            }
        }
        /// A device node that does not exist: ``XenGntError/path``.
        public static var deviceMissing: Code {
            Code("deviceMissing") { e in
                XenGntError.missingDeviceAdvice(e.path ?? "the device")
            }
        }
        /// A device node this process may not open: ``XenGntError/path``.
        public static var permissionDenied: Code {
            Code("permissionDenied") { e in
                "this process may not open \(e.path ?? "the device"); run as root or grant access to the device node (a udev rule)."
            }
        }
        /// The kernel was built without `CONFIG_XEN_GNTDEV_DMABUF` (the dma-buf ioctls answer
        /// `ENOTTY`).
        public static var dmaBufUnsupported: Code {
            Code("dmaBufUnsupported") { e in
                "this kernel was built without CONFIG_XEN_GNTDEV_DMABUF, so the dma-buf ioctls do not exist; use a kernel with it, or map the grants and copy."
            }
        }
        /// dma-buf export in an x86 PV domain, which the kernel always refuses.
        public static var exportRefusedInPV: Code {
            Code("exportRefusedInPV") { e in
                "the kernel refuses dma-buf export in an x86 PV domain (it is not auto-translated). Import instead: allocate the buffer locally (udmabuf, a DRM dumb buffer) and give its refs to the frontend, or run the backend in a PVH domain."
            }
        }
        /// An export the kernel rejected in an auto-translated domain: a bad reference, or (x86
        /// PVH/HVM) a kernel that maps exports with `GNTMAP_device_map`: ``XenGntError/guestType``.
        public static var exportRejected: Code {
            Code("exportRejected") { e in
                let reason =
                    "the kernel rejected the export: a ref is invalid, unused, not granted to this domain, or its domain is unknown"
                if e.guestType == .pvh || e.guestType == .hvm {
                    return reason
                        + "; or this x86 kernel maps exports with GNTMAP_device_map, which Xen refuses for PVH/HVM guests (see Documentation/KernelFacts.md for the one-line kernel fix)."
                }
                return reason + "."
            }
        }
        /// Xen refused to map the grants (bad, foreign or read-only reference, unknown domain).
        public static var badGrants: Code {
            Code("badGrants") { e in
                "Xen refused to map the grants: a ref is invalid, unused, not granted to this domain, read-only but mapped writable, or its domain does not exist (or was destroyed)."
            }
        }
        /// gntalloc's global page limit would be exceeded: ``XenGntError/count``,
        /// ``XenGntError/limit`` (read when the kernel refused; `nil` if unreadable).
        public static var gntallocLimit: Code {
            Code("gntallocLimit") { e in
                "gntalloc's global page limit\(e.limit.map { " (\($0) pages)" } ?? "") would be exceeded\(e.count.map { " by \($0) more pages" } ?? "") (one 1080p XRGB8888 buffer needs 2025 pages); raise it in /sys/module/xen_gntalloc/parameters/limit or boot with xen_gntalloc.limit=N, or release shared pages."
            }
        }
        /// A udmabuf over udmabuf's `size_limit_mb`: ``XenGntError/length``,
        /// ``XenGntError/limit`` (MiB).
        public static var udmabufLimit: Code {
            Code("udmabufLimit") { e in
                "a udmabuf of \(e.length ?? 0) bytes is over udmabuf's size limit\(e.limit.map { " of \($0) MiB" } ?? "") (module parameter udmabuf.size_limit_mb, /sys/module/udmabuf/parameters/size_limit_mb); raise it or use a DMA heap."
            }
        }
        /// The domain's grant table has no free entries.
        public static var grantTableFull: Code {
            Code("grantTableFull") { e in
                "the domain's grant table has no free entries; release imports or shares, or raise Xen's gnttab_max_frames."
            }
        }
        /// The descriptor is not a dma-buf.
        public static var notADmaBuf: Code {
            Code("notADmaBuf") { e in
                "the descriptor is not a dma-buf; pass a dma-buf fd (from udmabuf, a DMA heap, DRM PRIME export)."
            }
        }
        /// The descriptor is not open.
        public static var badFileDescriptor: Code {
            Code("badFileDescriptor") { e in
                "the descriptor is not open."
            }
        }
        /// Still in use when the timeout expired.
        public static var timedOut: Code {
            Code("timedOut") { e in
                "the buffer is still in use: some process, importer (DRM, V4L2) or GEM handle still holds it; release those, then wait again."
            }
        }
        /// The task was cancelled while waiting (``XenGntError/errno`` is `nil`: the kernel did
        /// not fail).
        public static var cancelled: Code {
            Code("cancelled") { e in
                "the task was cancelled while waiting; the object may still be in use."
            }
        }
        /// The kernel has no such object (already released, or created on another device file).
        public static var notFound: Code {
            Code("notFound") { e in
                "the kernel has no such object on this device (already released, or created on another device file)."
            }
        }
        /// A write through a read-only mapping.
        public static var readOnlyMapping: Code {
            Code("readOnlyMapping") { e in
                "the memory is mapped read-only; map it with access: .readWrite (the grants must be writable) to write."
            }
        }
        /// A clear-byte unmap notification on a read-only mapping.
        public static var notifyNeedsWritableMapping: Code {
            Code("notifyNeedsWritableMapping") { e in
                "a clear-byte unmap notification writes into the page, so it needs a writable mapping; use only the event-channel notification on a read-only one."
            }
        }
        /// An event channel port this process has not bound: ``XenGntError/port``.
        public static var eventChannelNotBound: Code {
            Code("eventChannelNotBound") { e in
                "event channel port \(e.port.map(String.init) ?? "") is not bound in this process; bind it through /dev/xen/evtchn first."
            }
        }
        /// An offset or range outside the object: ``XenGntError/offset``, ``XenGntError/length``.
        public static var outOfRange: Code {
            Code("outOfRange") { e in
                "offset \(e.offset ?? 0) is outside the \(e.length ?? 0) bytes of the object."
            }
        }
        /// A CPU mapping the exporter does not provide (gntdev-exported dma-bufs have no mmap).
        public static var notMappable: Code {
            Code("notMappable") { e in
                "this dma-buf cannot be mapped by the CPU (a gntdev-exported buffer has no mmap); import it into the device that uses it instead."
            }
        }
        /// The kernel ran out of memory (``XenGntError/allocation`` says whether contiguous DMA
        /// memory was asked for).
        public static var outOfMemory: Code {
            Code("outOfMemory") { e in
                if e.allocation == .contiguousWriteCombined || e.allocation == .contiguousCoherent {
                    return
                        "the kernel could not allocate contiguous DMA memory; check that the CMA area (cma= on the kernel command line) is large enough, or export with allocation: .balloon."
                }
                return "the kernel ran out of memory; release buffers or give the domain more memory."
            }
        }
        /// Bad input XenGnt caught itself; ``XenGntError/detail`` says which.
        public static var invalidArgument: Code {
            Code("invalidArgument") { e in
                e.detail ?? "an argument is not valid."
            }
        }
        /// An answer XenGnt has no better explanation for.
        public static var kernel: Code {
            Code("kernel") { e in
                "the kernel gave no further explanation."
            }
        }
    }

    /// A sentence saying what happened and what to do.
    public var advice: String { code.explain(self) }

    static func missingDeviceAdvice(_ path: String) -> String {
        let option: String
        switch path {
        case Paths.gntdev:
            option = "this is not a Xen domain, or the kernel lacks CONFIG_XEN_GNTDEV (or module xen_gntdev is not loaded)"
        case Paths.gntalloc:
            option =
                "this is not a Xen domain, or the kernel lacks CONFIG_XEN_GRANT_DEV_ALLOC (or module xen_gntalloc is not loaded)"
        case Paths.udmabuf:
            option =
                "the kernel lacks CONFIG_UDMABUF (or module udmabuf is not loaded); a DMA heap is the other source of CPU-mappable dma-bufs"
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
