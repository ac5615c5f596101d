import CXenGnt
package import SystemPackage
package import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// Raw ioctls through XenGnt's seam: request numbers and C structs straight to the kernel (or
/// the simulator), so XenGnt's own validation cannot hide what the kernel answers.
package struct Raw {
    package let calls: any SystemCalls

    package init(_ system: XenSystem) { calls = system.calls }

    package func open(_ path: String) throws(Errno) -> Int32 {
        try calls.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0)
    }

    package func close(_ fd: Int32) { try? calls.close(fd) }

    /// Allocates a zeroed argument of `size` bytes, lets `fill` write it, issues the ioctl, and
    /// lets `read` look at the result.
    @discardableResult
    package func ioctl<T>(
        _ fd: Int32,
        _ request: UInt,
        size: Int,
        fill: (UnsafeMutableRawPointer) -> Void = { _ in },
        read: (UnsafeMutableRawPointer) -> T
    ) -> Result<T, Errno> {
        let argument = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { argument.deallocate() }
        argument.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        fill(argument)
        do {
            _ = try calls.ioctl(fd, request, argument)
            return .success(read(argument))
        } catch {
            return .failure(error)
        }
    }

    package func errno<T>(_ result: Result<T, Errno>) -> Errno? {
        if case .failure(let error) = result { return error }
        return nil
    }

    // MARK: gntdev

    package func mapGrantRef(_ fd: Int32, _ grants: [(domid: UInt32, ref: UInt32)], count: UInt32? = nil) -> Result<UInt64, Errno>
    {
        ioctl(fd, cxg_request_gntdev_map_grant_ref(), size: cxg_map_grant_ref_size(UInt32(max(grants.count, 1)))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self)
            op.pointee.count = count ?? UInt32(grants.count)
            let refs = cxg_map_grant_ref_refs(op)!
            for (i, grant) in grants.enumerated() { refs[i] = ioctl_gntdev_grant_ref(domid: grant.domid, ref: grant.ref) }
        } read: {
            $0.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self).pointee.index
        }
    }

    package func unmapGrantRef(_ fd: Int32, index: UInt64, count: UInt32) -> Errno? {
        errno(
            ioctl(fd, cxg_request_gntdev_unmap_grant_ref(), size: MemoryLayout<ioctl_gntdev_unmap_grant_ref>.size) { raw in
                raw.storeBytes(
                    of: ioctl_gntdev_unmap_grant_ref(index: index, count: count, pad: 0),
                    as: ioctl_gntdev_unmap_grant_ref.self
                )
            } read: { _ in
                ()
            }
        )
    }

    package func mmap(
        _ fd: Int32,
        pages: Int,
        offset: UInt64,
        writable: Bool = true,
        shared: Bool = true
    ) -> Result<UnsafeMutableRawPointer, Errno> {
        do {
            return .success(
                try calls.mmap(
                    length: pages * xenPageSize,
                    protection: writable ? PROT_READ | PROT_WRITE : PROT_READ,
                    flags: shared ? MAP_SHARED : MAP_PRIVATE,
                    fd: fd,
                    offset: Int64(offset)
                )
            )
        } catch {
            return .failure(error)
        }
    }

    package func munmap(_ address: UnsafeMutableRawPointer, pages: Int) {
        try? calls.munmap(address, length: pages * xenPageSize)
    }

    package func notify(_ fd: Int32, request: UInt, index: UInt64, action: UInt32, port: UInt32 = 0) -> Errno? {
        errno(
            ioctl(fd, request, size: MemoryLayout<ioctl_gntdev_unmap_notify>.size) { raw in
                raw.storeBytes(
                    of: ioctl_gntdev_unmap_notify(index: index, action: action, event_channel_port: port),
                    as: ioctl_gntdev_unmap_notify.self
                )
            } read: { _ in
                ()
            }
        )
    }

    package func export(
        _ fd: Int32,
        domid: UInt32,
        refs: [UInt32],
        flags: UInt32 = 0,
        count: UInt32? = nil
    ) -> Result<Int32, Errno> {
        ioctl(fd, cxg_request_gntdev_dmabuf_exp_from_refs(), size: cxg_exp_from_refs_size(UInt32(max(refs.count, 1)))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self)
            op.pointee.flags = flags
            op.pointee.count = count ?? UInt32(refs.count)
            op.pointee.domid = domid
            let out = cxg_exp_from_refs_refs(op)!
            for (i, ref) in refs.enumerated() { out[i] = ref }
        } read: {
            Int32(bitPattern: $0.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self).pointee.fd)
        }
    }

    package func waitReleased(_ fd: Int32, exported: Int32, milliseconds: UInt32) -> Errno? {
        errno(
            ioctl(
                fd,
                cxg_request_gntdev_dmabuf_exp_wait_released(),
                size: MemoryLayout<ioctl_gntdev_dmabuf_exp_wait_released>.size
            ) { raw in
                raw.storeBytes(
                    of: ioctl_gntdev_dmabuf_exp_wait_released(fd: UInt32(bitPattern: exported), wait_to_ms: milliseconds),
                    as: ioctl_gntdev_dmabuf_exp_wait_released.self
                )
            } read: { _ in
                ()
            }
        )
    }

    package func importToRefs(_ fd: Int32, buffer: Int32, count: UInt32, domid: UInt32) -> Result<[UInt32], Errno> {
        ioctl(fd, cxg_request_gntdev_dmabuf_imp_to_refs(), size: cxg_imp_to_refs_size(max(count, 1))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
            op.pointee.fd = UInt32(bitPattern: buffer)
            op.pointee.count = count
            op.pointee.domid = domid
        } read: { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
            return Array(UnsafeBufferPointer(start: cxg_imp_to_refs_refs(op)!, count: Int(count)))
        }
    }

    package func importRelease(_ fd: Int32, buffer: Int32) -> Errno? {
        errno(
            ioctl(fd, cxg_request_gntdev_dmabuf_imp_release(), size: MemoryLayout<ioctl_gntdev_dmabuf_imp_release>.size) { raw in
                raw.storeBytes(
                    of: ioctl_gntdev_dmabuf_imp_release(fd: UInt32(bitPattern: buffer), reserved: 0),
                    as: ioctl_gntdev_dmabuf_imp_release.self
                )
            } read: { _ in
                ()
            }
        )
    }

    // MARK: gntalloc

    package func allocGref(
        _ fd: Int32,
        domid: UInt16,
        count: UInt32,
        writable: Bool = true
    ) -> Result<(index: UInt64, refs: [UInt32]), Errno> {
        ioctl(fd, cxg_request_gntalloc_alloc_gref(), size: cxg_alloc_gref_size(max(count, 1))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            op.pointee.domid = domid
            op.pointee.flags = writable ? UInt16(GNTALLOC_FLAG_WRITABLE) : 0
            op.pointee.count = count
        } read: { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            return (op.pointee.index, Array(UnsafeBufferPointer(start: cxg_alloc_gref_ids(op)!, count: Int(count))))
        }
    }

    package func deallocGref(_ fd: Int32, index: UInt64, count: UInt32) -> Errno? {
        errno(
            ioctl(fd, cxg_request_gntalloc_dealloc_gref(), size: MemoryLayout<ioctl_gntalloc_dealloc_gref>.size) { raw in
                raw.storeBytes(of: ioctl_gntalloc_dealloc_gref(index: index, count: count), as: ioctl_gntalloc_dealloc_gref.self)
            } read: { _ in
                ()
            }
        )
    }

    /// A udmabuf of `pages` pages, as a raw descriptor.
    package func udmabuf(pages: Int) throws -> Int32 {
        try DmaBuf.udmabuf(pages: pages, on: XenSystem(calls)).take().rawValue
    }
}
