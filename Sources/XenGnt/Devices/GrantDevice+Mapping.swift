internal import CXenGnt
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension GrantDevice {
    /// Maps pages that `domain` granted to this domain, and maps them into this process.
    ///
    /// The kernel accepts the request without asking Xen; Xen checks the grants when the pages
    /// are mapped into memory, so a bad reference surfaces as an `mmap` failure
    /// (``XenGntError/Operation/mapMemory``, ``XenGntError/Cause/badGrants``), after which the
    /// grant request is withdrawn again.
    ///
    /// - Parameters:
    ///   - refs: the grant references, one per page, in the order they should appear in memory.
    ///   - domain: the granting domain.
    ///   - access: ``Access/readWrite`` needs writable grants.
    /// - Returns: the mapping; its bytes alias the granting domain's pages (no copy).
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_MAP_GRANT_REF`, followed by `mmap`.
    @inlinable
    public func map(
        _ refs: some Collection<GrantRef>,
        from domain: DomainID,
        access: Access = .readWrite
    ) throws(XenGntError) -> GrantMapping {
        try domain.validate(for: .mapGrants)
        let id = UInt32(domain.rawValue)
        return try mapGrants(count: refs.count, access: access) { pairs throws(XenGntError) in
            var i = 0
            for ref in refs where i < pairs.count {
                pairs[i] = id
                pairs[i + 1] = ref.rawValue
                i += 2
            }
        }
    }

    /// Maps pages granted by one or several domains, in the order given, and maps them into this
    /// process as one contiguous region.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_MAP_GRANT_REF`, followed by `mmap`.
    @inlinable
    public func map(
        _ grants: some Collection<ForeignGrant>,
        access: Access = .readWrite
    ) throws(XenGntError) -> GrantMapping {
        try mapGrants(count: grants.count, access: access) { pairs throws(XenGntError) in
            var i = 0
            for grant in grants where i < pairs.count {
                try grant.domain.validate(for: .mapGrants)
                pairs[i] = UInt32(grant.domain.rawValue)
                pairs[i + 1] = grant.ref.rawValue
                i += 2
            }
        }
    }

    /// Issues `IOCTL_GNTDEV_MAP_GRANT_REF` for `count` (domid, ref) pairs that `fill` writes
    /// (two `UInt32` per page, straight into the ioctl argument), then `mmap`s the result.
    @usableFromInline
    func mapGrants(
        count: Int,
        access: Access,
        fill: (UnsafeMutableBufferPointer<UInt32>) throws(XenGntError) -> Void
    ) throws(XenGntError) -> GrantMapping {
        try validate(count: count, for: .mapGrants)
        let size = cxg_map_grant_ref_size(UInt32(count))
        let index: UInt64 = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self)
            argument.pointee.count = UInt32(count)
            let refs = UnsafeMutableRawPointer(cxg_map_grant_ref_refs(argument)!)
            try fill(UnsafeMutableBufferPointer(start: refs.assumingMemoryBound(to: UInt32.self), count: 2 * count))
            do throws(Errno) {
                _ = try handle.ioctl(Request.mapGrantRef, raw)
            } catch {
                throw XenGntError(.mapGrants, errno: error, cause: error == .noMemory ? .outOfMemory : .kernel)
            }
            return argument.pointee.index
        }
        let length = count * xenPageSize
        let protection = access == .readWrite ? PROT_READ | PROT_WRITE : PROT_READ
        let address: UnsafeMutableRawPointer
        do {
            address = try retryingOnInterrupt { () throws(Errno) in
                try handle.calls.mmap(length: length, protection: protection, flags: MAP_SHARED, fd: handle.fd, offset: Int64(index))
            }
        } catch {
            // Withdraw the grant request so nothing is left behind.
            var unmap = ioctl_gntdev_unmap_grant_ref(index: index, count: UInt32(count), pad: 0)
            _ = try? handle.ioctl(Request.unmapGrantRef, &unmap)
            let cause: XenGntError.Cause = switch error {
            case .invalidArgument: .badGrants
            case .noMemory: .outOfMemory
            default: .kernel
            }
            throw XenGntError(.mapMemory, errno: error, cause: cause)
        }
        return GrantMapping(handle: handle, index: index, pageCount: count, address: address, access: access)
    }
}
