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

    /// gntalloc's global page limit (all processes together), when readable.
    public var globalLimit: Int? { handle.readInteger(Paths.gntallocLimit) }

    /// Allocates `pages` zeroed pages, grants `domain` access to them, and maps them here.
    ///
    /// - Parameters:
    ///   - pages: how many pages.
    ///   - domain: the domain to grant access to (the kernel does not check it exists).
    ///   - access: what `domain` may do; this process can always write.
    /// - Throws: ``XenGntError/Cause/gntallocLimit(limit:)`` when gntalloc's global limit would
    ///   be exceeded.
    ///
    /// The corresponding ioctl is `IOCTL_GNTALLOC_ALLOC_GREF`, followed by `mmap`.
    public func share(pages: Int, with domain: DomainID, access: Access = .readWrite) throws(XenGntError) -> SharedPages {
        try domain.validate(for: .shareGrants)
        guard pages > 0 else { throw XenGntError(.shareGrants, cause: .emptyRequest) }
        let limit = globalLimit
        if let limit, pages > limit {
            throw XenGntError(.shareGrants, cause: .gntallocLimit(limit: limit))
        }
        guard pages <= Int(UInt32.max) / xenPageSize else {
            throw XenGntError(.shareGrants, cause: .invalidArgument("\(pages) pages cannot be addressed in one share."))
        }
        let size = cxg_alloc_gref_size(UInt32(pages))
        let (index, refs): (UInt64, [GrantRef]) = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            argument.pointee.domid = domain.rawValue
            argument.pointee.flags = access == .readWrite ? UInt16(GNTALLOC_FLAG_WRITABLE) : 0
            argument.pointee.count = UInt32(pages)
            do throws(Errno) {
                _ = try handle.ioctl(Request.allocGref, raw)
            } catch {
                let cause: XenGntError.Cause = switch error {
                case .noSpace: .gntallocLimit(limit: limit)
                case .noMemory: .outOfMemory
                default: .kernel
                }
                throw XenGntError(.shareGrants, errno: error, cause: cause)
            }
            let ids = UnsafeRawPointer(cxg_alloc_gref_ids(argument)!).assumingMemoryBound(to: GrantRef.self)
            return (argument.pointee.index, Array(UnsafeBufferPointer(start: ids, count: pages)))
        }
        let address: UnsafeMutableRawPointer
        do throws(Errno) {
            address = try retryingOnInterrupt { () throws(Errno) in
                try handle.calls.mmap(length: pages * xenPageSize, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: handle.fd, offset: Int64(index))
            }
        } catch {
            var dealloc = ioctl_gntalloc_dealloc_gref(index: index, count: UInt32(pages))
            _ = try? handle.ioctl(Request.deallocGref, &dealloc)
            throw XenGntError(.mapMemory, errno: error, cause: error == .noMemory ? .outOfMemory : .kernel)
        }
        return SharedPages(handle: handle, index: index, refs: refs, domain: domain, access: access, address: address)
    }
}
