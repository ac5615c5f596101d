internal import CXenGnt
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension DmaBuf {
    /// The most pages XenGnt asks a dma-buf source for: 2^24 (64 GiB). Larger requests are
    /// refused before any system call.
    public static let maximumPageCount = 1 << 24

    /// Allocates a dma-buf backed by ordinary memory through udmabuf: a sealed memfd of `pages`
    /// pages turned into a dma-buf (`/dev/udmabuf`, `CONFIG_UDMABUF`). CPU-mappable, so a
    /// backend can fill it and share it with ``GrantDevice/importDmaBuf(_:to:pageCount:)``.
    ///
    /// udmabuf refuses buffers over its `size_limit_mb` module parameter (64 MiB by default):
    /// ``XenGntError/Code/udmabufLimit``. In an x86 PV domain, sharing such a buffer needs
    /// `iommu=soft` on the kernel command line (xen-swiotlb), or the grants point at the wrong
    /// frames.
    ///
    /// The corresponding ioctl is `UDMABUF_CREATE`.
    public static func udmabuf(pages: Int, on system: XenSystem = .kernel) throws(XenGntError) -> DmaBuf {
        try validate(pages: pages)
        let calls = system.calls
        let bytes = pages * xenPageSize
        let memfd: Int32
        do throws(Errno) {
            memfd = try calls.memfdCreate("xengnt-udmabuf", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
        } catch {
            throw XenGntError(error == .noMemory ? .outOfMemory : .kernel, .createDmaBuf, call: Call.memfdCreate, errno: error)
        }
        defer { try? calls.close(memfd) }
        do throws(Errno) {
            try retryingOnInterrupt { () throws(Errno) in try calls.ftruncate(memfd, length: Int64(bytes)) }
        } catch {
            throw XenGntError(
                error == .noMemory || error == .noSpace ? .outOfMemory : .kernel,
                .createDmaBuf,
                call: Call.ftruncate,
                errno: error,
                length: bytes
            )
        }
        do throws(Errno) {
            _ = try calls.fcntl(memfd, command: Int32(CXG_F_ADD_SEALS), argument: Int32(CXG_F_SEAL_SHRINK))
        } catch {
            throw XenGntError(.kernel, .createDmaBuf, call: Call.fcntl, errno: error)
        }
        let device = try DeviceHandle.open(Paths.udmabuf, calls: calls, flags: O_RDWR | O_CLOEXEC, operation: .createDmaBuf)
        defer { try? calls.close(device) }
        var argument = udmabuf_create(
            memfd: UInt32(bitPattern: memfd),
            flags: UInt32(UDMABUF_FLAGS_CLOEXEC),
            offset: 0,
            size: UInt64(bytes)
        )
        do throws(Errno) {
            let fd = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(device, Request.udmabufCreate, &argument) }
            return DmaBuf(fd: fd, calls: calls, size: bytes)
        } catch {
            // EINVAL for a size over size_limit_mb (read only now, to tell it from other causes).
            if error == .invalidArgument, let limit = DeviceHandle.readInteger(Paths.udmabufSizeLimit, calls: calls),
                bytes > limit * 1024 * 1024
            {
                throw XenGntError(
                    .udmabufLimit,
                    .createDmaBuf,
                    call: Call.udmabufCreate,
                    errno: error,
                    limit: limit,
                    length: bytes
                )
            }
            throw XenGntError(
                error == .noMemory ? .outOfMemory : .kernel,
                .createDmaBuf,
                call: Call.udmabufCreate,
                errno: error,
                length: bytes
            )
        }
    }

    /// Allocates a dma-buf of `pages` pages from a DMA heap (`/dev/dma_heap/<heap>`,
    /// `CONFIG_DMABUF_HEAPS`; the `system` heap gives ordinary, non-contiguous pages).
    ///
    /// The corresponding ioctl is `DMA_HEAP_IOCTL_ALLOC`.
    public static func allocate(
        fromHeap heap: String = "system",
        pages: Int,
        on system: XenSystem = .kernel
    ) throws(XenGntError) -> DmaBuf {
        try validate(pages: pages)
        guard !heap.isEmpty, !heap.contains("/"), heap != ".", heap != ".." else {
            throw XenGntError.invalid(
                .createDmaBuf,
                "a heap is named by its file in /dev/dma_heap (such as \"system\"), not \"\(heap)\"."
            )
        }
        let calls = system.calls
        let path = Paths.dmaHeaps + heap
        let bytes = pages * xenPageSize
        let device = try DeviceHandle.open(path, calls: calls, flags: O_RDONLY | O_CLOEXEC, operation: .createDmaBuf)
        defer { try? calls.close(device) }
        var argument = dma_heap_allocation_data(
            len: UInt64(bytes),
            fd: 0,
            fd_flags: UInt32(O_RDWR | O_CLOEXEC),
            heap_flags: 0
        )
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(device, Request.dmaHeapAlloc, &argument) }
        } catch {
            throw XenGntError(
                error == .noMemory ? .outOfMemory : .kernel,
                .createDmaBuf,
                call: Call.dmaHeapAlloc,
                errno: error,
                path: path,
                length: bytes
            )
        }
        return DmaBuf(fd: Int32(bitPattern: argument.fd), calls: calls, size: bytes)
    }

    private static func validate(pages: Int) throws(XenGntError) {
        guard pages > 0 else { throw XenGntError(.emptyRequest, .createDmaBuf, count: pages) }
        guard pages <= maximumPageCount else {
            throw XenGntError.invalid(
                .createDmaBuf,
                "\(pages) pages is more than any dma-buf source gives (at most \(maximumPageCount) pages, 64 GiB)."
            )
        }
    }
}
