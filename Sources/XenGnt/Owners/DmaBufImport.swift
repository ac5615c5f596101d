internal import CXenGnt
import SystemPackage

/// A local dma-buf shared with another domain: the grant references to send it. Owns the
/// import: when it goes away (or ``release()`` is called) the domain's access ends.
///
/// If the peer still maps the pages when the import is released, Xen defers the end of access
/// until it unmaps them; the release itself succeeds.
public struct DmaBufImport: ~Copyable, Sendable {
    let handle: DeviceHandle
    /// XenGnt's duplicate of the dma-buf descriptor; the kernel names the import by its number.
    let fd: Int32
    /// The grant references, one per page, in buffer order.
    public let refs: [GrantRef]
    /// The domain granted access.
    public let domain: DomainID
    private var isImported = true

    init(handle: DeviceHandle, fd: Int32, refs: [GrantRef], domain: DomainID) {
        self.handle = handle
        self.fd = fd
        self.refs = refs
        self.domain = domain
    }

    /// Pages shared.
    public var pageCount: Int { refs.count }

    /// Ends the domain's access, reporting errors. The descriptor XenGnt kept is closed after
    /// the kernel has let go of the import, whatever the outcome.
    ///
    /// - Throws: ``XenGntError/Cause/notFound`` if the kernel no longer knows the import.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_RELEASE`.
    public consuming func release() throws(XenGntError) {
        isImported = false
        if let error = Self.release(handle: handle, fd: fd) { throw error }
    }

    private static func release(handle: DeviceHandle, fd: Int32) -> XenGntError? {
        var argument = ioctl_gntdev_dmabuf_imp_release(fd: UInt32(bitPattern: fd), reserved: 0)
        var failure: XenGntError?
        do throws(Errno) {
            _ = try handle.ioctl(Request.impRelease, &argument)
        } catch {
            failure = XenGntError(.releaseImport, errno: error, cause: error == .noSuchFileOrDirectory ? .notFound : .kernel)
        }
        try? handle.calls.close(fd)
        return failure
    }

    deinit {
        if isImported { _ = Self.release(handle: handle, fd: fd) }
    }
}
