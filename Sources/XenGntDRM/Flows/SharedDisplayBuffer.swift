import SystemPackage
public import XenGnt

/// The *display buffer → frontend* flow: a dumb buffer of the display, made a framebuffer,
/// PRIME-exported and imported by gntdev into grant references for the frontend — zero copy,
/// and it works on every display (vkms composes from its own buffers) and in every guest type,
/// a PV Dom0 included.
///
/// It takes the dumb buffer and hands it back from ``remove()`` once the framebuffer is gone
/// and the frontend's access has ended, so the order of teardown — off screen (the scanout
/// hands the frame back), `RMFB`, `IMP_RELEASE` and the dma-buf descriptor, then the dumb
/// buffer — is the only one the types allow. Letting it go does the same.
///
/// ```swift
/// let buffer = try display.createDumbBuffer(width: 640, height: 480)
/// let shared = try SharedDisplayBuffer(buffer, sharingWith: frontend, through: gntdev)
/// send(shared.refs)                                          // the frontend maps and draws
/// var scanout = try Scanout(on: display, showing: shared)
/// ...
/// try scanout.turnOff().remove().destroy()
/// ```
public struct SharedDisplayBuffer: ~Copyable, ScanoutFrame, Sendable {
    // Declared in teardown order: stored properties are released in this order.
    private var added: Framebuffer?
    private var share: DmaBufImport?
    private var buffer: DumbBuffer?
    /// The framebuffer's id, size and format.
    public let framebuffer: FramebufferInfo
    /// The grant references to send the frontend, one per page of the buffer.
    public let refs: [GrantRef]
    /// The frontend domain granted access.
    public let domain: DomainID
    /// Bytes per row of the buffer (the frontend's stride).
    public let pitch: Int

    /// Makes `buffer` a framebuffer in `format`, exports it and grants `domain` access to its
    /// pages through `gntdev`.
    ///
    /// If a step fails, what was made is released and the buffer destroyed.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_ADDFB2`, `DRM_IOCTL_PRIME_HANDLE_TO_FD` and
    /// `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`.
    public init(
        _ buffer: consuming DumbBuffer,
        format: PixelFormat = .xrgb8888,
        sharingWith domain: DomainID,
        through gntdev: GrantDevice
    ) throws(XenGntError) {
        let device = buffer.device
        let pages = buffer.byteCount / xenPageSize
        var added: Framebuffer?
        var share: DmaBufImport?
        var failure: XenGntError?
        var info: FramebufferInfo?
        var refs: [GrantRef] = []
        do throws(XenGntError) {
            let made = try device.addFramebuffer(buffer, format: format)
            info = made.info
            added = consume made
            let imported = try gntdev.importDmaBuf(device.exportPrime(buffer), to: domain, pageCount: pages)
            refs = imported.refs
            share = consume imported
        } catch {
            failure = error
        }
        if let failure {
            _ = added.take()  // RMFB before the buffer goes
            _ = consume buffer
            throw failure
        }
        framebuffer = info!
        self.refs = refs
        self.domain = domain
        pitch = buffer.pitch
        self.added = added.take()
        self.share = share.take()
        self.buffer = consume buffer
    }

    /// Maps the buffer for the backend's own drawing.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_MAP_DUMB`, followed by `mmap`.
    public func map() throws(XenGntError) -> DumbBufferMapping {
        switch buffer {
        case .some(let buffer): return try buffer.map()
        case .none: fatalError("unreachable: a SharedDisplayBuffer always has its buffer")
        }
    }

    /// Removes the framebuffer (`RMFB`), ends the frontend's access (`IMP_RELEASE`, and the
    /// dma-buf descriptor is closed) and hands the dumb buffer back. If the frontend still maps
    /// the pages, Xen defers the end of its access until it unmaps them. Every step is
    /// attempted; the first error is thrown, and the buffer is then destroyed.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_RMFB` and `IOCTL_GNTDEV_DMABUF_IMP_RELEASE`.
    public consuming func remove() throws(XenGntError) -> DumbBuffer {
        var failure: XenGntError?
        if let framebuffer = added.take() {
            do throws(XenGntError) { try framebuffer.remove() } catch { failure = error }
        }
        if let share = share.take() {
            do throws(XenGntError) { try share.release().close() } catch { failure = failure ?? error }
        }
        let buffer = self.buffer.take()!
        if let failure {
            _ = consume buffer
            throw failure
        }
        return buffer
    }
}
