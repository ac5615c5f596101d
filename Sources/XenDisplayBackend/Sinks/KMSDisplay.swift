import Synchronization
public import XenGnt
public import XenGntDRM

#if canImport(Glibc)
import Glibc
#endif

/// A KMS device whose CRTCs show frontends' connectors, shared by every frontend the backend
/// serves (one descriptor, the DRM master; each CRTC assigned to one connector by `--crtc`).
///
/// Each assigned CRTC is a ``KMSOutput``: at a connector's first frame it sets the mode at the
/// connector's resolution with two dumb buffers of that size (XR24, framebuffers made once by
/// `ADDFB2`); each frame is copied into the buffer not on screen, page-flipped to, and the
/// flip's event awaited before ``present(_:crtc:)`` returns, so the caller's `EVT_PG_FLIP`
/// follows the screen. ``blank(crtc:)`` takes the CRTC off screen, then removes the
/// framebuffers (`RMFB`), then the buffers (GEM close).
///
/// The wait blocks the calling thread for about a frame (the frontend's task, which has
/// nothing else to do until the flip is on screen).
public final class KMSDisplay: Sendable {
    /// The device (its primary node; this descriptor is the DRM master).
    public let device: DRMDevice
    let outputs: [Int: KMSOutput]
    /// How long a flip may take before it counts as a display failure.
    let flipTimeout: Duration

    /// Takes `device` for the CRTCs `crtcs` (indices in the device's CRTC list): becomes DRM
    /// master (the first descriptor of a primary node already is).
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/noDisplay`` for a CRTC index the device does not
    ///   have, ``XenGnt/XenGntError/Code/masterHeld`` when another process is master.
    public init(device: DRMDevice, crtcs: [Int], flipTimeout: Duration = .seconds(2)) throws(XenGntError) {
        self.device = device
        self.flipTimeout = flipTimeout
        try device.becomeMaster()
        let resources = try device.resources()
        var outputs: [Int: KMSOutput] = [:]
        for index in crtcs {
            guard resources.crtcs.indices.contains(index) else {
                throw XenGntError(.noDisplay, .setMode, path: device.path,
                                  detail: "--crtc \(index): \(device.path) has \(resources.crtcs.count) CRTC(s)")
            }
            outputs[index] = KMSOutput(index: index)
        }
        self.outputs = outputs
    }

    /// Opens the KMS device `spec` names: a path (`/dev/dri/card1`), a driver name (`vkms`),
    /// or `auto` (nil): the first primary node (in name order) of a driver that sets modes and
    /// has a connected display. `nil` when `auto` finds none.
    public static func open(_ spec: String?, on system: XenSystem = .kernel) throws(XenGntError) -> DRMDevice? {
        switch spec {
        case let path? where path.hasPrefix("/"): return try DRMDevice(path: path, on: system)
        case let name? where name != "auto": return try DRMDevice(driver: name, on: system)
        default:
            for node in try DRMDevice.list(on: system) where node.node == .primary {
                guard let device = try? DRMDevice(path: node.path, on: system),
                      (try? device.capabilities().modesetting) == true,
                      (try? device.resources().firstConnectedDisplay) != nil else { continue }
                return device
            }
            return nil
        }
    }

    /// Whether this display scans out a buffer exported from a frontend's grants: not a display
    /// that composes with the CPU (vkms vmaps each framebuffer at the real commit and refuses an
    /// export there, although `TEST_ONLY` passes it).
    public var scansOutExports: Bool { device.driver.name != "vkms" }

    /// Shows `frame` on CRTC `crtc` at `width`×`height` (the connector's resolution): a mode
    /// set the first time, a page flip after, and waits for the frame to be on screen.
    /// On failure the CRTC is blanked (a later frame starts again with a mode set).
    public func present(_ frame: FrameView, crtc: Int, width: Int, height: Int) throws(XenGntError) {
        guard let output = outputs[crtc] else {
            throw XenGntError(.noDisplay, .pageFlip, path: device.path, detail: "CRTC \(crtc) is not assigned")
        }
        output.acquire()
        defer { output.release() }
        do {
            try output.present(frame, width: width, height: height, on: device, timeout: flipTimeout)
        } catch {
            output.turnOff()
            throw error
        }
    }

    /// Takes CRTC `crtc` off screen and releases its buffers (framebuffers, then buffers).
    public func blank(crtc: Int) {
        guard let output = outputs[crtc] else { return }
        output.acquire()
        defer { output.release() }
        output.turnOff()
    }

    /// Blanks every CRTC (at shutdown; each frontend's teardown blanks its own first).
    public func blankAll() {
        for index in outputs.keys.sorted() { blank(crtc: index) }
    }

    /// The mode CRTC `crtc` shows, or `nil` while it is off.
    public func mode(crtc: Int) -> DisplayMode? {
        guard let output = outputs[crtc] else { return nil }
        output.acquire()
        defer { output.release() }
        return output.scanout?.mode
    }

    /// Reads what CRTC `crtc` shows through the device's writeback connector (vkms has one).
    /// Frames presented meanwhile wait for the capture.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/noDisplay`` while the CRTC is off; the errors of
    ///   XenGntDRM's `Scanout.captureScreen`.
    public func captureScreen(crtc: Int) async throws(XenGntError) -> Screenshot {
        guard let output = outputs[crtc] else {
            throw XenGntError(.noDisplay, .capture, path: device.path, detail: "CRTC \(crtc) is not assigned")
        }
        while !output.tryAcquire() {
            do { try await Task.sleep(for: .milliseconds(1)) } catch { throw XenGntError(.cancelled, .capture) }
        }
        defer { output.release() }
        guard var scanout = output.scanout.take() else {
            throw XenGntError(.noDisplay, .capture, path: device.path, detail: "CRTC \(crtc) is off")
        }
        let result: Result<Screenshot, XenGntError>
        do { result = .success(try await scanout.captureScreen()) } catch { result = .failure(error) }
        output.scanout = consume scanout
        return try result.get()
    }
}

/// One frame of a CRTC: a dumb buffer of the mode's size, its CPU mapping and its framebuffer.
struct KMSFrame: ~Copyable, ScanoutFrame {
    var target: Framebuffer?
    var mapping: DumbBufferMapping?
    var buffer: DumbBuffer?
    let info: FramebufferInfo
    /// The mapped pixels (valid while `mapping` is).
    let pixels: UnsafeMutableRawBufferPointer
    let pitch: Int

    init(device: DRMDevice, mode: DisplayMode) throws(XenGntError) {
        let buffer = try device.createDumbBuffer(width: mode.width, height: mode.height, bitsPerPixel: 32)
        let target = try device.addFramebuffer(buffer, format: .xrgb8888)
        let mapping = try buffer.map()
        pixels = UnsafeMutableRawBufferPointer(start: mapping.baseAddress, count: mapping.byteCount)
        pixels.initializeMemory(as: UInt8.self, repeating: 0)
        pitch = mapping.pitch
        info = target.info
        self.target = consume target
        self.mapping = consume mapping
        self.buffer = consume buffer
    }

    var framebuffer: FramebufferInfo { info }

    /// Copies `frame` in (XRGB8888; rows and columns past the frame stay as they were).
    func fill(from frame: FrameView) {
        let width = min(frame.width, info.width), height = min(frame.height, info.height)
        let target = pixels
        do {
            if frame.format == .xrgb8888 || frame.format == .argb8888 {
                for y in 0..<height {
                    let source = UnsafeRawBufferPointer(rebasing: frame.bytes[(frame.offset + y * frame.pitch)..<(frame.offset + y * frame.pitch + width * 4)])
                    UnsafeMutableRawBufferPointer(rebasing: target[(y * pitch)..<(y * pitch + width * 4)]).copyMemory(from: source)
                }
                return
            }
            for y in 0..<height {
                for x in 0..<width {
                    let (r, g, b) = frame.rgb(x: x, y: y)
                    target.storeBytes(of: UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b), toByteOffset: y * pitch + x * 4, as: UInt32.self)
                }
            }
        }
    }

    /// Off screen already: the framebuffer (`RMFB`), the mapping, then the buffer (GEM close).
    consuming func release() {
        if let target = target.take() { try? target.remove() }
        if let mapping = mapping.take() { try? mapping.unmap() }
        if let buffer = buffer.take() { try? buffer.destroy() }
    }
}

/// A CRTC's state: its scanout and the frame not on screen. Used by one thread at a time
/// (``acquire()``): the one frontend connector assigned to it, a capture, or shutdown.
final class KMSOutput: @unchecked Sendable {
    let index: Int
    var scanout: Scanout<KMSFrame>?
    var spare: KMSFrame?
    private let busy = Mutex(false)

    init(index: Int) { self.index = index }

    func tryAcquire() -> Bool { busy.withLock { taken in if taken { return false }; taken = true; return true } }
    func acquire() { while !tryAcquire() { usleep(500) } }
    func release() { busy.withLock { $0 = false } }

    func present(_ frame: FrameView, width: Int, height: Int, on device: DRMDevice, timeout: Duration) throws(XenGntError) {
        if let mode = scanout?.mode, mode.width != width || mode.height != height { turnOff() }
        guard var current = scanout.take() else {
            try modeset(frame, width: width, height: height, on: device)
            return
        }
        guard let next = spare.take() else {
            scanout = consume current
            throw XenGntError(.flipPending, .pageFlip, path: device.path)
        }
        next.fill(from: frame)
        do {
            try current.flip(to: next)
            spare = try current.waitForFlipBlocking(timeout: timeout)
        } catch {
            scanout = consume current
            throw error
        }
        scanout = consume current
    }

    /// The first frame: two buffers of the mode's size, the first shown by a mode set of a
    /// connected connector this CRTC can drive.
    private func modeset(_ frame: FrameView, width: Int, height: Int, on device: DRMDevice) throws(XenGntError) {
        let resources = try device.resources()
        let crtc = resources.crtcs[index]
        guard let connector = resources.connectors.first(where: {
            !$0.isWriteback && $0.status == .connected && resources.crtcs(for: $0).contains(crtc)
        }) else {
            throw XenGntError(.noDisplay, .setMode, path: device.path, detail: "no connected connector for CRTC \(index)")
        }
        let mode = connector.modes.first { $0.width == width && $0.height == height } ?? DisplayMode(width: width, height: height)
        let first = try KMSFrame(device: device, mode: mode)
        let second = try KMSFrame(device: device, mode: mode)
        first.fill(from: frame)
        scanout = try Scanout(on: device, showing: first, connector: connector, mode: mode)
        spare = consume second
    }

    /// Off screen, then the framebuffers and buffers released.
    func turnOff() {
        if let scanout = scanout.take() {
            let shown = try? scanout.turnOff()
            shown?.release()
        }
        if let spare = spare.take() { spare.release() }
    }
}
