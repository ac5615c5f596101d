internal import CXenGnt
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension DmaBuf {
    /// Allocates a dma-buf backed by ordinary memory through udmabuf: a sealed memfd of `pages`
    /// pages turned into a dma-buf (`/dev/udmabuf`, `CONFIG_UDMABUF`). CPU-mappable, so a
    /// backend can fill it and share it with ``GrantDevice/importDmaBuf(_:to:pageCount:)``.
    ///
    /// In an x86 PV domain, sharing such a buffer needs `iommu=soft` on the kernel command line
    /// (xen-swiotlb), or the grants point at the wrong frames.
    ///
    /// The corresponding ioctl is `UDMABUF_CREATE`.
    public static func udmabuf(pages: Int, on system: XenSystem = .kernel) throws(XenGntError) -> DmaBuf {
        guard pages > 0 else { throw XenGntError(.createDmaBuf, cause: .emptyRequest) }
        let calls = system.calls
        let bytes = Int64(pages) * Int64(xenPageSize)
        let memfd: Int32
        do throws(Errno) {
            memfd = try calls.memfdCreate("xengnt-udmabuf", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
        } catch {
            throw XenGntError(.createDmaBuf, errno: error, cause: error == .noMemory ? .outOfMemory : .kernel)
        }
        defer { try? calls.close(memfd) }
        do throws(Errno) {
            try calls.ftruncate(memfd, length: bytes)
            _ = try calls.fcntl(memfd, command: Int32(CXG_F_ADD_SEALS), argument: Int32(CXG_F_SEAL_SHRINK))
        } catch {
            throw XenGntError(.createDmaBuf, errno: error, cause: error == .noMemory || error == .noSpace ? .outOfMemory : .kernel)
        }
        let device: Int32
        do throws(Errno) {
            device = try retryingOnInterrupt { () throws(Errno) in try calls.open(Paths.udmabuf, flags: O_RDWR | O_CLOEXEC, mode: 0) }
        } catch {
            throw XenGntError(.openDevice, errno: error, cause: DeviceHandle.openCause(error, path: Paths.udmabuf))
        }
        defer { try? calls.close(device) }
        var argument = udmabuf_create(memfd: UInt32(bitPattern: memfd), flags: UInt32(UDMABUF_FLAGS_CLOEXEC), offset: 0, size: UInt64(bytes))
        do throws(Errno) {
            let fd = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(device, Request.udmabufCreate, &argument) }
            return DmaBuf(fd: fd, calls: calls)
        } catch {
            throw XenGntError(.createDmaBuf, errno: error, cause: error == .noMemory ? .outOfMemory : .kernel)
        }
    }

    /// Allocates a dma-buf of `pages` pages from a DMA heap (`/dev/dma_heap/<heap>`,
    /// `CONFIG_DMABUF_HEAPS`; the `system` heap gives ordinary, non-contiguous pages).
    ///
    /// The corresponding ioctl is `DMA_HEAP_IOCTL_ALLOC`.
    public static func allocate(fromHeap heap: String = "system", pages: Int, on system: XenSystem = .kernel) throws(XenGntError) -> DmaBuf {
        guard pages > 0 else { throw XenGntError(.createDmaBuf, cause: .emptyRequest) }
        guard !heap.isEmpty, !heap.contains("/") else {
            throw XenGntError(.createDmaBuf, cause: .invalidArgument("a heap is named by its file in /dev/dma_heap (such as \"system\"), not \"\(heap)\"."))
        }
        let calls = system.calls
        let path = Paths.dmaHeaps + heap
        let device: Int32
        do throws(Errno) {
            device = try retryingOnInterrupt { () throws(Errno) in try calls.open(path, flags: O_RDONLY | O_CLOEXEC, mode: 0) }
        } catch {
            throw XenGntError(.openDevice, errno: error, cause: DeviceHandle.openCause(error, path: path))
        }
        defer { try? calls.close(device) }
        var argument = dma_heap_allocation_data(
            len: UInt64(pages) * UInt64(xenPageSize), fd: 0,
            fd_flags: UInt32(O_RDWR | O_CLOEXEC), heap_flags: 0)
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(device, Request.dmaHeapAlloc, &argument) }
        } catch {
            throw XenGntError(.createDmaBuf, errno: error, cause: error == .noMemory ? .outOfMemory : .kernel)
        }
        return DmaBuf(fd: Int32(bitPattern: argument.fd), calls: calls)
    }
}
