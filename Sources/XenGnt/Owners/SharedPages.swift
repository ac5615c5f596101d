internal import CXenGnt
import SystemPackage

/// Local pages granted to another domain through gntalloc, mapped here. Owns the share: when it
/// goes away (or ``unshare()`` is called) the pages are unmapped and the grants withdrawn.
///
/// If the peer still maps the pages then, Xen defers the end of access until it unmaps them.
public struct SharedPages: ~Copyable, @unchecked Sendable {
    let handle: DeviceHandle
    /// The share's offset in the gntalloc file (`index` of the ioctls).
    public let offset: UInt64
    /// The grant references to send the peer, one per page.
    public let refs: [GrantRef]
    /// The domain granted access.
    public let domain: DomainID
    /// What the peer may do.
    public let access: Access
    /// Start of the local mapping (always writable here).
    public let baseAddress: UnsafeMutableRawPointer
    private var isShared = true

    init(
        handle: DeviceHandle,
        index: UInt64,
        refs: [GrantRef],
        domain: DomainID,
        access: Access,
        address: UnsafeMutableRawPointer
    ) {
        self.handle = handle
        self.offset = index
        self.refs = refs
        self.domain = domain
        self.access = access
        self.baseAddress = address
    }

    /// Pages shared.
    public var pageCount: Int { refs.count }

    /// Bytes shared (`pageCount × 4096`).
    public var byteCount: Int { refs.count * xenPageSize }

    /// Calls `body` with the shared bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Calls `body` with the shared bytes, writable.
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Asks the kernel to clear a byte of the shared pages and/or signal an event channel when
    /// the share goes away (also if the process dies), so a peer that still maps them learns it.
    ///
    /// The corresponding ioctl is `IOCTL_GNTALLOC_SET_UNMAP_NOTIFY`.
    public func setUnmapNotification(_ notification: UnmapNotification) throws(XenGntError) {
        try notification.apply(
            request: Request.gntallocSetUnmapNotify,
            call: Call.gntallocSetUnmapNotify,
            handle: handle,
            index: offset,
            length: byteCount,
            writable: true
        )
    }

    /// Unmaps the pages and withdraws the grants, reporting errors. Both steps are attempted;
    /// the first error is thrown. A step the kernel refused is kept by the device and retried at
    /// its next call and when it closes.
    ///
    /// The corresponding ioctl is `IOCTL_GNTALLOC_DEALLOC_GREF`, after `munmap`.
    public consuming func unshare() throws(XenGntError) {
        isShared = false
        if let error = Self.release(handle: handle, index: offset, pageCount: refs.count, address: baseAddress) {
            throw error
        }
    }

    private static func release(
        handle: DeviceHandle,
        index: UInt64,
        pageCount: Int,
        address: UnsafeMutableRawPointer
    ) -> XenGntError? {
        // IOCTL_GNTALLOC_DEALLOC_GREF's argument has the layout of gntdev's unmap (index, count).
        handle.unmap(
            address,
            pageCount: pageCount,
            thenRelease: Request.deallocGref,
            index: index,
            as: .unshare,
            call: Call.deallocGref
        )
    }

    deinit {
        if isShared {
            _ = Self.release(handle: handle, index: offset, pageCount: refs.count, address: baseAddress)
        }
    }
}
