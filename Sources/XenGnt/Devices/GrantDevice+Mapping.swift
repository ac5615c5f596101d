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
    /// (``XenGntError/Code/badGrants`` with ``XenGntError/call`` `mmap`), after which the grant
    /// request is withdrawn again.
    ///
    /// In an x86 PVH/HVM domain whose id XenGnt knows (``XenSystem/domainID``), mapping the
    /// domain's own grants is refused (``XenGntError/Code/ownGrants``): the kernel would show
    /// the wrong page and crash later.
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
        try refuseOwnGrants(domain, for: .mapGrants)
        let id = UInt32(domain.rawValue)
        let count = refs.count
        return try mapGrants(count: count, access: access) { pairs throws(XenGntError) in
            var i = 0
            var iterator = refs.makeIterator()
            while i < pairs.count, let ref = iterator.next() {
                pairs[i] = id
                pairs[i + 1] = ref.rawValue
                i += 2
            }
            try checkYield(claimed: count, filled: i / 2, rest: &iterator, for: .mapGrants)
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
        let count = grants.count
        return try mapGrants(count: count, access: access) { pairs throws(XenGntError) in
            var i = 0
            var iterator = grants.makeIterator()
            while i < pairs.count, let grant = iterator.next() {
                try grant.domain.validate(for: .mapGrants)
                try refuseOwnGrants(grant.domain, for: .mapGrants)
                pairs[i] = UInt32(grant.domain.rawValue)
                pairs[i + 1] = grant.ref.rawValue
                i += 2
            }
            try checkYield(claimed: count, filled: i / 2, rest: &iterator, for: .mapGrants)
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
        handle.retryParked()
        let size = cxg_map_grant_ref_size(UInt32(count))
        let index: UInt64 = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self)
            argument.pointee.count = UInt32(count)
            let refs = UnsafeMutableRawPointer(cxg_map_grant_ref_refs(argument)!)
            try fill(UnsafeMutableBufferPointer(start: refs.assumingMemoryBound(to: UInt32.self), count: 2 * count))
            do throws(Errno) {
                _ = try handle.ioctl(Request.mapGrantRef, raw)
            } catch {
                let (code, limit): (XenGntError.Code, Int?) =
                    switch error {
                    case .invalidArgument: limitOr(.kernel, count: count)
                    case .noMemory: (.outOfMemory, nil)
                    default: (.kernel, nil)
                    }
                throw XenGntError(code, .mapGrants, call: Call.mapGrantRef, errno: error, count: count, limit: limit)
            }
            return argument.pointee.index
        }
        let length = count * xenPageSize
        let protection = access == .readWrite ? PROT_READ | PROT_WRITE : PROT_READ
        let address: UnsafeMutableRawPointer
        do throws(Errno) {
            address = try retryingOnInterrupt { () throws(Errno) in
                try handle.calls.mmap(
                    length: length,
                    protection: protection,
                    flags: MAP_SHARED,
                    fd: handle.fd,
                    offset: Int64(index)
                )
            }
        } catch {
            // Withdraw the grant request so nothing is left behind (parked if refused).
            _ = handle.attempt(.release(request: Request.unmapGrantRef, index: index, count: UInt32(count)))
            let code: XenGntError.Code =
                switch error {
                case .invalidArgument: .badGrants
                case .noMemory: .outOfMemory
                default: .kernel
                }
            throw XenGntError(code, .mapGrants, call: Call.mmap, errno: error, count: count)
        }
        return GrantMapping(handle: handle, index: index, pageCount: count, address: address, access: access)
    }
}

/// Fails when a collection yielded fewer elements than its `count` claimed (`filled`), or has
/// more left in `rest`: the argument would otherwise carry zeroed slots, or be cut short.
@usableFromInline
func checkYield<Iterator: IteratorProtocol>(
    claimed: Int,
    filled: Int,
    rest: inout Iterator,
    for operation: XenGntError.Operation
) throws(XenGntError) {
    var actual = filled
    if filled == claimed {
        guard rest.next() != nil else { return }
        actual += 1
        while rest.next() != nil { actual += 1 }
    }
    throw XenGntError(.countMismatch, operation, count: claimed, actualCount: actual)
}
