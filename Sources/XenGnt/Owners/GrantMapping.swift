internal import CXenGnt
import SystemPackage

/// Foreign pages mapped into this process through gntdev. Owns the mapping: when it goes away
/// (or ``unmap()`` is called) the memory is unmapped and the grants are released.
///
/// The bytes alias the granting domain's pages: a write here is seen there, with no copy.
/// Pointers obtained from the mapping are valid only while it lives.
public struct GrantMapping: ~Copyable, @unchecked Sendable {
    let handle: DeviceHandle
    /// The mapping's offset in the gntdev file (`index` of the ioctls).
    public let offset: UInt64
    /// Pages mapped.
    public let pageCount: Int
    /// Start of the mapped memory.
    public let baseAddress: UnsafeMutableRawPointer
    /// Whether the memory is writable.
    public let access: Access
    private var isReleased = false

    init(handle: DeviceHandle, index: UInt64, pageCount: Int, address: UnsafeMutableRawPointer, access: Access) {
        self.handle = handle
        self.offset = index
        self.pageCount = pageCount
        self.baseAddress = address
        self.access = access
    }

    /// Bytes mapped (`pageCount × 4096`).
    public var byteCount: Int { pageCount * xenPageSize }

    /// Calls `body` with the mapped bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Calls `body` with the mapped bytes, writable.
    ///
    /// - Throws: ``XenGntError/Code/readOnlyMapping`` for a read-only mapping (writing to it
    ///   would fault), or what `body` throws.
    public func withUnsafeMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws(XenGntError) -> R
    ) throws(XenGntError) -> R {
        guard access == .readWrite else { throw XenGntError(.readOnlyMapping, .writeMapping) }
        return try body(UnsafeMutableRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Asks the kernel to clear a byte of the granting domain's page and/or signal an event
    /// channel when this mapping goes away (also if the process dies).
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_SET_UNMAP_NOTIFY`.
    public func setUnmapNotification(_ notification: UnmapNotification) throws(XenGntError) {
        try notification.apply(
            request: Request.gntdevSetUnmapNotify,
            call: Call.gntdevSetUnmapNotify,
            handle: handle,
            index: offset,
            length: byteCount,
            writable: access == .readWrite
        )
    }

    /// Unmaps the memory and releases the grants, reporting errors.
    ///
    /// Both steps are attempted even if the first fails; the first error is thrown. A step the
    /// kernel refused is kept by the device and retried at its next call and when it closes, so
    /// the mapping is released all the same.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_UNMAP_GRANT_REF`, after `munmap`.
    public consuming func unmap() throws(XenGntError) {
        isReleased = true
        if let error = Self.release(handle: handle, index: offset, pageCount: pageCount, address: baseAddress) {
            throw error
        }
    }

    private static func release(
        handle: DeviceHandle,
        index: UInt64,
        pageCount: Int,
        address: UnsafeMutableRawPointer
    ) -> XenGntError? {
        handle.unmap(
            address,
            pageCount: pageCount,
            thenRelease: Request.unmapGrantRef,
            index: index,
            as: .unmapGrants,
            call: Call.unmapGrantRef
        )
    }

    deinit {
        if !isReleased {
            _ = Self.release(handle: handle, index: offset, pageCount: pageCount, address: baseAddress)
        }
    }
}
