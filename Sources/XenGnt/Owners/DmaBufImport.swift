internal import CXenGnt
public import SystemPackage

/// A local dma-buf shared with another domain: the grant references to send it. Owns the
/// import and the buffer: ``release()`` ends the domain's access and hands the buffer back;
/// letting the import go ends the access and closes the buffer.
///
/// If the peer still maps the pages when the import is released, Xen defers the end of access
/// until it unmaps them; the release itself succeeds.
public struct DmaBufImport: ~Copyable, Sendable {
    let handle: DeviceHandle
    /// The imported buffer's descriptor; the kernel names the import by its number, so it stays
    /// open here until the kernel has let go of the import.
    private let fd: Int32
    /// The buffer's size, for the ``DmaBuf`` handed back.
    private let byteCount: Int
    /// The grant references, one per page, in buffer order.
    public let refs: [GrantRef]
    /// The domain granted access.
    public let domain: DomainID
    private var isImported = true

    init(handle: DeviceHandle, buffer: consuming DmaBuf, refs: [GrantRef], domain: DomainID) {
        self.handle = handle
        self.byteCount = refs.count * xenPageSize
        self.fd = buffer.take().rawValue
        self.refs = refs
        self.domain = domain
    }

    /// Pages shared.
    public var pageCount: Int { refs.count }

    /// The imported buffer's descriptor (lend it; do not close it).
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: fd) }

    /// Lends the imported buffer to `body`, for CPU access while it is shared
    /// (``DmaBuf/withCPUAccess(_:_:)``, ``DmaBuf/map(_:)``).
    public func withBuffer<R, E: Error>(_ body: (borrowing DmaBuf) throws(E) -> R) throws(E) -> R {
        let view = DmaBuf(viewing: fd, calls: handle.calls, size: byteCount)
        return try body(view)
    }

    /// Ends the domain's access and hands the buffer back, reporting errors.
    ///
    /// - Returns: the buffer, now shared with nobody (discard it to close it).
    /// - Throws: ``XenGntError/Code/notFound`` if the kernel no longer knows the import (the
    ///   buffer is closed then). If the kernel refuses the release otherwise, the device keeps
    ///   the buffer and retries the release at its next call and when it closes.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_RELEASE`.
    @discardableResult
    public consuming func release() throws(XenGntError) -> DmaBuf {
        isImported = false
        handle.retryParked()
        var argument = ioctl_gntdev_dmabuf_imp_release(fd: UInt32(bitPattern: fd), reserved: 0)
        do throws(Errno) {
            _ = try handle.ioctl(Request.impRelease, &argument)
            return DmaBuf(fd: fd, calls: handle.calls, size: byteCount)
        } catch .noSuchFileOrDirectory {
            try? handle.calls.close(fd)
            throw XenGntError(.notFound, .releaseImport, call: Call.impRelease, errno: .noSuchFileOrDirectory)
        } catch {
            // The number must stay the buffer's until the kernel lets go: the device keeps it.
            handle.park(.importRelease(number: fd))
            throw XenGntError(error == .noMemory ? .outOfMemory : .kernel, .releaseImport, call: Call.impRelease, errno: error)
        }
    }

    deinit {
        // Release, then close (or leave both to the device if the kernel refuses).
        if isImported { _ = handle.attempt(.importRelease(number: fd)) }
    }
}
