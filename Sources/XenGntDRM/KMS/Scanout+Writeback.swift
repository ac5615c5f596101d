internal import CDRM
import SystemPackage
public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A writeback connector of a scanout's CRTC and the property ids a capture sets.
struct WritebackConnector: Sendable {
    let id: UInt32
    let crtcProperty: UInt32
    let framebufferProperty: UInt32
    let fenceProperty: UInt32
    let formats: [PixelFormat]
    /// Whether a capture has attached it to the CRTC beside the display's connector (it stays
    /// attached until turn-off, so later captures need no mode set).
    var attached = false
    /// Whether its encoder cannot clone the display's (vkms in Linux 6.1: each encoder's
    /// `possible_clones` is only itself, so the atomic check refuses both on one CRTC with
    /// `EINVAL`): then a capture moves the CRTC to it for one commit, and back. `nil` until the
    /// first capture has tried.
    var exclusive: Bool?

    /// What turn-off must detach.
    var attachment: (connector: UInt32, crtcProperty: UInt32)? { attached ? (id, crtcProperty) : nil }
}

/// A picture read back from a display through writeback: XRGB8888 pixels, row by row.
public struct Screenshot: Sendable, Hashable {
    public let width: Int
    public let height: Int
    /// `width × height` pixels, as the writeback connector wrote them (vkms writes X as 0xff).
    public let pixels: [UInt32]

    public init(width: Int, height: Int, pixels: [UInt32]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// The pixel at (`x`, `y`).
    public func pixel(x: Int, y: Int) -> UInt32 { pixels[y * width + x] }

    /// The 24 RGB bits of every pixel (the X byte differs between what was drawn and what a
    /// writeback connector writes).
    public var rgb: [UInt32] { pixels.map { $0 & 0x00FF_FFFF } }
}

extension Scanout where Frame: ~Copyable {
    /// Whether a capture moves the CRTC from the display's connector to the writeback
    /// connector for its commit (the driver's atomic check refuses both on one CRTC: vkms in
    /// Linux 6.1); `nil` before the first capture.
    public var captureMovesCRTC: Bool? { writeback?.exclusive }

    /// Captures what the CRTC shows into `target`, through the device's writeback connector:
    /// an atomic commit setting the connector's `CRTC_ID` (the first time), `WRITEBACK_FB_ID`
    /// (one capture per commit) and `WRITEBACK_OUT_FENCE_PTR`, then a wait on that fence.
    /// Read the result through the target's buffer (a ``DumbBuffer/map()``).
    ///
    /// Legacy `SETCRTC` and `PAGE_FLIP` cannot capture; only the DRM master commits, so the
    /// owner of the display captures. Where the writeback encoder cannot clone the display's
    /// (vkms in Linux 6.1), the capture commit moves the CRTC from the display's connector to
    /// the writeback connector, and a second commit moves it back.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/atomicRequired`` on a legacy scanout,
    ///   ``XenGnt/XenGntError/Code/noWriteback`` without a writeback connector,
    ///   ``XenGnt/XenGntError/Code/writebackTarget`` for a target that is not exactly the
    ///   mode's size in a format the connector writes (XR24 on vkms),
    ///   ``XenGnt/XenGntError/Code/displayTimedOut`` when the fence does not signal in time.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_SET_CLIENT_CAP` (`ATOMIC`, then
    /// `WRITEBACK_CONNECTORS`) and `DRM_IOCTL_MODE_ATOMIC`, then `poll` of the fence.
    public mutating func capture(into target: borrowing Framebuffer, timeout: Duration = .seconds(10)) async throws(XenGntError) {
        let (fd, exclusive) = try startCapture(into: target)
        if fd >= 0 {
            defer { try? path.device.file.calls.close(fd) }
            let waiter = try ReadinessWaiter(calls: path.device.file.calls)
            if try await waiter.waitUntilReadable(fd, timeout: timeout) == .timedOut {
                throw XenGntError(
                    .displayTimedOut,
                    .capture,
                    path: path.device.path,
                    detail: "the writeback fence did not signal within \(timeout)"
                )
            }
        }
        if exclusive { try endCapture() }
    }

    /// Like ``capture(into:timeout:)``, but blocking the calling thread in `poll` on the fence:
    /// for a caller that holds the display while it captures (a display sink between flips).
    public mutating func captureBlocking(into target: borrowing Framebuffer, timeout: Duration = .seconds(10)) throws(XenGntError)
    {
        let (fd, exclusive) = try startCapture(into: target)
        if fd >= 0 {
            defer { try? path.device.file.calls.close(fd) }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let (seconds, attoseconds) = timeout.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000)
            let ready: Int
            do throws(Errno) {
                ready = try withUnsafeMutablePointer(to: &entry) { (pointer) throws(Errno) -> Int in
                    try retryingOnInterrupt { () throws(Errno) in
                        try path.device.file.calls.poll(
                            UnsafeMutableBufferPointer(start: pointer, count: 1),
                            timeout: milliseconds
                        )
                    }
                }
            } catch {
                throw XenGntError(.kernel, .capture, call: "poll", errno: error, path: path.device.path)
            }
            if ready == 0 {
                throw XenGntError(
                    .displayTimedOut,
                    .capture,
                    path: path.device.path,
                    detail: "the writeback fence did not signal within \(timeout)"
                )
            }
        }
        if exclusive { try endCapture() }
    }

    /// The capture's commit: returns the fence's descriptor (-1: none) and whether the CRTC was
    /// moved to the writeback connector (``endCapture()`` gives it back).
    private mutating func startCapture(into target: borrowing Framebuffer) throws(XenGntError) -> (fence: Int32, exclusive: Bool)
    {
        let connector = try writebackConnector()
        let info = target.info
        guard info.device == ObjectIdentifier(path.device.file) else {
            throw XenGntError(
                .writebackTarget,
                .capture,
                path: path.device.path,
                detail: "the capture framebuffer belongs to another descriptor"
            )
        }
        guard info.width == mode.width, info.height == mode.height else {
            throw XenGntError(
                .writebackTarget,
                .capture,
                path: path.device.path,
                detail: "the capture framebuffer is \(info.width)×\(info.height) but the mode is \(mode.width)×\(mode.height)"
            )
        }
        guard connector.formats.isEmpty || connector.formats.contains(info.format) else {
            throw XenGntError(
                .writebackTarget,
                .capture,
                path: path.device.path,
                detail:
                    "the writeback connector writes \(connector.formats.map(\.name).joined(separator: ", ")), not \(info.format)"
            )
        }
        guard let properties = path.properties else {
            throw XenGntError(.atomicRequired, .capture, path: path.device.path, detail: "writeback capture")
        }
        if !connector.attached && connector.exclusive == nil {
            // Can the writeback connector join the display's on the CRTC? Ask the atomic check.
            var probe = AtomicRequest()
            probe.set(connector.id, connector.crtcProperty, UInt64(crtc.id))
            probe.set(connector.id, connector.framebufferProperty, UInt64(info.id))
            let flags = UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET | CDRM_MODE_ATOMIC_TEST_ONLY)
            writeback?.exclusive = (try? probe.commit(on: path.device.file, flags: flags)) == nil
        }
        let exclusive = writeback?.exclusive == true
        let fence = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
        defer { fence.deallocate() }
        fence.pointee = -1
        var request = AtomicRequest()
        if exclusive { request.set(path.connector.id, properties.connectorCRTC, 0) }
        if !connector.attached { request.set(connector.id, connector.crtcProperty, UInt64(crtc.id)) }
        request.set(connector.id, connector.framebufferProperty, UInt64(info.id))
        request.set(connector.id, connector.fenceProperty, UInt64(UInt(bitPattern: fence)))
        try path.commit(request, flags: connector.attached ? 0 : UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET), .capture)
        if !exclusive { writeback?.attached = true }
        return (fence.pointee, exclusive)
    }

    /// Gives the CRTC back to the display's connector after an exclusive capture.
    private func endCapture() throws(XenGntError) {
        guard let connector = writeback, let properties = path.properties else { return }
        var restore = AtomicRequest()
        restore.set(connector.id, connector.crtcProperty, 0)
        restore.set(path.connector.id, properties.connectorCRTC, UInt64(crtc.id))
        try path.commit(restore, flags: UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET), .capture)
    }

    /// Captures what the CRTC shows into a dumb buffer of the mode's size (XR24), and returns
    /// its pixels. Everything it allocates is released before it returns.
    ///
    /// The corresponding ioctls are those of ``capture(into:timeout:)``, with
    /// `DRM_IOCTL_MODE_CREATE_DUMB`, `ADDFB2`, `MAP_DUMB` and their releases.
    public mutating func captureScreen(timeout: Duration = .seconds(10)) async throws(XenGntError) -> Screenshot {
        let device = path.device
        let buffer = try device.createDumbBuffer(width: mode.width, height: mode.height, bitsPerPixel: 32)
        let target = try device.addFramebuffer(buffer, format: .xrgb8888)
        try await capture(into: target, timeout: timeout)
        return try Self.screenshot(buffer, target, mode: mode)
    }

    /// Like ``captureScreen(timeout:)``, but blocking the calling thread on the fence
    /// (``captureBlocking(into:timeout:)``).
    public mutating func captureScreenBlocking(timeout: Duration = .seconds(10)) throws(XenGntError) -> Screenshot {
        let device = path.device
        let buffer = try device.createDumbBuffer(width: mode.width, height: mode.height, bitsPerPixel: 32)
        let target = try device.addFramebuffer(buffer, format: .xrgb8888)
        try captureBlocking(into: target, timeout: timeout)
        return try Self.screenshot(buffer, target, mode: mode)
    }

    /// The pixels of a capture's buffer; the framebuffer and the buffer are released.
    private static func screenshot(
        _ buffer: consuming DumbBuffer,
        _ target: consuming Framebuffer,
        mode: DisplayMode
    ) throws(XenGntError) -> Screenshot {
        let mapping = try buffer.map()
        let width = mode.width
        let height = mode.height
        let pitch = buffer.pitch
        let pixels = mapping.withUnsafeBytes { raw -> [UInt32] in
            var pixels = [UInt32](repeating: 0, count: width * height)
            for y in 0..<height {
                for x in 0..<width {
                    pixels[y * width + x] = raw.loadUnaligned(fromByteOffset: y * pitch + x * 4, as: UInt32.self)
                }
            }
            return pixels
        }
        try mapping.unmap()
        try target.remove()
        try buffer.destroy()
        return Screenshot(width: width, height: height, pixels: pixels)
    }

    /// The CRTC's writeback connector, found (and the client capabilities set) on first use.
    private mutating func writebackConnector() throws(XenGntError) -> WritebackConnector {
        if let writeback { return writeback }
        guard usesAtomic else {
            throw XenGntError(.atomicRequired, .capture, path: path.device.path, detail: "writeback capture")
        }
        let device = path.device
        try device.enableWritebackConnectors()
        let resources = try device.resources()
        guard let current = resources.crtcs.first(where: { $0.id == crtc.id }),
            let connector = resources.writebackConnectors(for: current).first
        else {
            throw XenGntError(.noWriteback, .capture, path: device.path)
        }
        let properties = try device.properties(of: connector.id, type: .connector)
        guard let crtcID = properties["CRTC_ID"], let fb = properties["WRITEBACK_FB_ID"],
            let fence = properties["WRITEBACK_OUT_FENCE_PTR"]
        else {
            throw XenGntError(.noWriteback, .capture, path: device.path)
        }
        let found = WritebackConnector(
            id: connector.id,
            crtcProperty: crtcID.id,
            framebufferProperty: fb.id,
            fenceProperty: fence.id,
            formats: try device.writebackFormats(of: connector)
        )
        writeback = found
        return found
    }
}
