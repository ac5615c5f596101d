internal import CXenGnt
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// The grant-allocation device, `/dev/xen/gntalloc`: allocates local pages and grants another
/// domain access to them.
///
/// gntalloc has a **global** page limit (module parameter `limit`, 1024 pages by default —
/// smaller than one 1080p frame). For large buffers, prefer a local dma-buf shared with
/// ``GrantDevice/importDmaBuf(_:to:pageCount:)``, or raise the limit.
public final class GrantAllocator: Sendable {
    let handle: DeviceHandle

    /// Where this device was opened.
    public let system: XenSystem

    /// Opens `/dev/xen/gntalloc`.
    ///
    /// The corresponding C function is `open`.
    public init(on system: XenSystem = .kernel) throws(XenGntError) {
        self.system = system
        self.handle = try DeviceHandle(path: Paths.gntalloc, calls: system.calls)
    }

    /// gntalloc's global page limit (all processes of this domain together), read now, when
    /// readable. XenGnt reads it only to explain a refused ``share(pages:with:access:)``.
    public var globalLimit: Int? { handle.readInteger(Paths.gntallocLimit) }

    /// Allocates `pages` zeroed pages, grants `domain` access to them, and maps them here.
    ///
    /// - Parameters:
    ///   - pages: how many pages (at most ``GrantDevice/maximumPageCount``).
    ///   - domain: the domain to grant access to (the kernel does not check it exists).
    ///   - access: what `domain` may do; this process can always write.
    /// - Throws: ``XenGntError/Code/gntallocLimit`` when gntalloc's global limit would be
    ///   exceeded (the limit is read then, to name it).
    ///
    /// The corresponding ioctl is `IOCTL_GNTALLOC_ALLOC_GREF`, followed by `mmap`.
    public func share(pages: Int, with domain: DomainID, access: Access = .readWrite) throws(XenGntError) -> SharedPages {
        try domain.validate(for: .share)
        guard pages > 0 else { throw XenGntError(.emptyRequest, .share, count: pages) }
        guard pages <= GrantDevice.maximumPageCount else {
            throw XenGntError(.tooManyPages, .share, count: pages, limit: GrantDevice.maximumPageCount)
        }
        handle.retryParked()
        let size = cxg_alloc_gref_size(UInt32(pages))
        let (index, refs): (UInt64, [GrantRef]) = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            argument.pointee.domid = domain.rawValue
            argument.pointee.flags = access == .readWrite ? UInt16(GNTALLOC_FLAG_WRITABLE) : 0
            argument.pointee.count = UInt32(pages)
            do throws(Errno) {
                _ = try handle.ioctl(Request.allocGref, raw)
            } catch {
                switch error {
                case .noSpace:
                    throw XenGntError(
                        .gntallocLimit,
                        .share,
                        call: Call.allocGref,
                        errno: error,
                        count: pages,
                        limit: globalLimit
                    )
                case .noMemory:
                    throw XenGntError(.outOfMemory, .share, call: Call.allocGref, errno: error, count: pages)
                default:
                    throw XenGntError(.kernel, .share, call: Call.allocGref, errno: error, count: pages)
                }
            }
            let ids = UnsafeRawPointer(cxg_alloc_gref_ids(argument)!).assumingMemoryBound(to: GrantRef.self)
            return (argument.pointee.index, Array(UnsafeBufferPointer(start: ids, count: pages)))
        }
        let address: UnsafeMutableRawPointer
        do throws(Errno) {
            address = try retryingOnInterrupt { () throws(Errno) in
                try handle.calls.mmap(
                    length: pages * xenPageSize,
                    protection: PROT_READ | PROT_WRITE,
                    flags: MAP_SHARED,
                    fd: handle.fd,
                    offset: Int64(index)
                )
            }
        } catch {
            _ = handle.attempt(.release(request: Request.deallocGref, index: index, count: UInt32(pages)))
            throw XenGntError(error == .noMemory ? .outOfMemory : .kernel, .share, call: Call.mmap, errno: error, count: pages)
        }
        return SharedPages(handle: handle, index: index, refs: refs, domain: domain, access: access, address: address)
    }
}
