public import XenGnt
import XenGntDRM

/// `be-alloc=1` on a KMS sink: the frontend's buffers are dumb buffers of the KMS device,
/// PRIME-exported and imported to refs (XenGntDRM's `SharedDisplayBuffer`), so the frontend
/// draws into what the CRTC scans out and a flip copies nothing — in a PV Dom0 too (vkms
/// composes from its own buffers).
extension KMSSink {
    final class Shared: @unchecked Sendable {
        var buffer: SharedDisplayBuffer?
        var mapping: DumbBufferMapping?
        let info: FramebufferInfo
        init(_ buffer: consuming SharedDisplayBuffer, mapping: consuming DumbBufferMapping) {
            info = buffer.framebuffer
            self.buffer = consume buffer
            self.mapping = consume mapping
        }
    }

    /// A dumb buffer `width` pixels wide (XR24) whose rows are `pitch` bytes apart and whose
    /// pages are exactly `pageCount`: `nil` when the driver's layout differs (the caller then
    /// allocates a buffer of its own), or while a connector has fallen back.
    public mutating func allocateShared(
        _ cookie: UInt64,
        pageCount: Int,
        width: Int,
        pitch: Int,
        for domain: DomainID,
        through gntdev: GrantDevice
    ) throws(XenGntError) -> (refs: [UInt32], bytes: UnsafeRawBufferPointer)? {
        guard !routes.isEmpty, fallenBack.isEmpty, pitch == width * 4 else { return nil }
        let rows = pageCount * xenPageSize / pitch
        let dumb = try display.device.createDumbBuffer(width: width, height: rows, bitsPerPixel: 32)
        guard dumb.pitch == pitch, (dumb.byteCount + xenPageSize - 1) / xenPageSize == pageCount else {
            try? dumb.destroy()
            return nil
        }
        let shared = try SharedDisplayBuffer(dumb, format: .xrgb8888, sharingWith: domain, through: gntdev)
        guard shared.refs.count == pageCount else { return nil }
        let mapping = try shared.map()
        let bytes = UnsafeRawBufferPointer(start: mapping.baseAddress, count: mapping.byteCount)
        let refs = shared.refs.map(\.rawValue)
        sharedBuffers[cookie] = Shared(shared, mapping: mapping)
        return (refs, bytes)
    }

    public mutating func presentShared(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError) {
        guard let route = routes[connector], !fallenBack.contains(connector), let shared = sharedBuffers[cookie] else {
            throw XenGntError(
                .displayCannotReadBuffer,
                .pageFlip,
                path: display.device.path,
                detail: "buffer \(cookie) is not the display's"
            )
        }
        try display.present(framebuffer: shared.info, crtc: route.crtc, width: route.width, height: route.height)
        counters.update(key) { $0.framesScannedOut += 1 }
        logOnScreen(key, connector: connector, route, how: "scanning out the buffer the frontend draws into")
    }

    public mutating func releaseShared(_ cookie: UInt64, for key: FrontendKey) {
        guard let shared = sharedBuffers.removeValue(forKey: cookie) else { return }
        blankWhereShown(shared.info.id)
        if let mapping = shared.mapping.take() { try? mapping.unmap() }
        // RMFB, the frontend's access ended (deferred by Xen while it still maps the pages),
        // then the dumb buffer (GEM close).
        if let buffer = shared.buffer.take(), let dumb = try? buffer.remove() { try? dumb.destroy() }
    }
}
