import SystemPackage
public import XenGnt

/// The *frontend buffer → display* flow: a frontend's grant references, exported by gntdev as a
/// dma-buf, PRIME-imported into a display device and made a framebuffer that a ``Scanout`` can
/// show — zero copy, for displays that scan out by DMA.
///
/// It takes the export and hands it back from ``remove()`` once the framebuffer and the GEM
/// handle are gone, so the order of teardown — off screen (the scanout hands the frame back),
/// `RMFB`, `GEM_CLOSE`, the dma-buf descriptor, wait-released — is the only one the types
/// allow. Letting it go does the same, without the wait.
///
/// ```swift
/// let frame = try FrontendFramebuffer(refs: refs, from: frontend, through: gntdev, on: display,
///                                     layout: FramebufferLayout(width: 1920, height: 1080, pitch: 7680))
/// var scanout = try Scanout(on: display, showing: frame)
/// ...
/// let pending = try scanout.turnOff().remove().release()   // ExportedDmaBuf → PendingRelease
/// try await pending.waitUntilReleased()                    // now tell the frontend its refs are free
/// ```
///
/// A display that composes with the CPU cannot show it: vkms vmaps the framebuffer's buffer
/// at the real commit, and gntdev's exporter has no vmap (``XenGnt/XenGntError/Code/displayCannotReadBuffer``).
/// On such a display, share a display buffer with the frontend instead (``SharedDisplayBuffer``).
public struct FrontendFramebuffer: ~Copyable, ScanoutFrame, Sendable {
    // Declared in teardown order: stored properties are released in this order.
    private var added: Framebuffer?
    private var handle: GEMHandle?
    private var export: ExportedDmaBuf?
    /// The framebuffer's id, size and format.
    public let framebuffer: FramebufferInfo
    /// The frontend domain whose grants back the buffer.
    public let domain: DomainID

    /// Imports `buffer` into `device` and makes it a framebuffer laid out as `layout`.
    ///
    /// If the import or the framebuffer fails, what was made is released and the export is
    /// closed (unwatched); to keep it, check with the low-level calls first
    /// (``DRMDevice/importPrime(_:)-(ExportedDmaBuf)``, ``DRMDevice/addFramebuffer(_:layout:)``).
    ///
    /// The corresponding ioctls are `DRM_IOCTL_PRIME_FD_TO_HANDLE` and `DRM_IOCTL_MODE_ADDFB2`.
    public init(_ buffer: consuming ExportedDmaBuf, on device: DRMDevice, layout: FramebufferLayout) throws(XenGntError) {
        domain = buffer.domain
        var handle: GEMHandle?
        var added: Framebuffer?
        var failure: XenGntError?
        var info: FramebufferInfo?
        do throws(XenGntError) {
            let imported = try device.importPrime(buffer)
            let made = try device.addFramebuffer(imported, layout: layout)
            info = made.info
            added = consume made
            handle = consume imported
        } catch {
            failure = error
        }
        if let failure {
            _ = consume buffer
            throw failure
        }
        framebuffer = info!
        self.added = added.take()
        self.handle = handle.take()
        export = consume buffer
    }

    /// Exports `refs` of `domain` through `gntdev` and imports the export as above.
    ///
    /// The corresponding ioctls are `IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS`,
    /// `DRM_IOCTL_PRIME_FD_TO_HANDLE` and `DRM_IOCTL_MODE_ADDFB2`.
    public init(
        refs: [GrantRef],
        from domain: DomainID,
        through gntdev: GrantDevice,
        allocation: DmaBufAllocation = .balloon,
        on device: DRMDevice,
        layout: FramebufferLayout
    ) throws(XenGntError) {
        try self.init(gntdev.exportDmaBuf(refs: refs, from: domain, allocation: allocation), on: device, layout: layout)
    }

    /// Removes the framebuffer (`RMFB`), closes the GEM handle, and hands the export back:
    /// release it and wait until every user has let go before telling the frontend its refs are
    /// free. Every step is attempted; the first error is thrown, and the export is then closed
    /// unwatched.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_RMFB` and `DRM_IOCTL_GEM_CLOSE`.
    public consuming func remove() throws(XenGntError) -> ExportedDmaBuf {
        var failure: XenGntError?
        if let framebuffer = added.take() {
            do throws(XenGntError) { try framebuffer.remove() } catch { failure = error }
        }
        if let handle = handle.take() {
            do throws(XenGntError) { try handle.close() } catch { failure = failure ?? error }
        }
        let export = self.export.take()!
        if let failure {
            _ = consume export
            throw failure
        }
        return export
    }

    /// Removes everything as ``remove()`` does and releases the export, returning what to
    /// wait on before the frontend may reuse its refs.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_RMFB`, `DRM_IOCTL_GEM_CLOSE`, then `dup3`
    /// (see `ExportedDmaBuf.release()`).
    public consuming func release() throws(XenGntError) -> PendingRelease {
        try remove().release()
    }
}
