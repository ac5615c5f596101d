import Synchronization
import XenGnt
import XenGntDRM

#if canImport(Glibc)
import Glibc
#endif

/// One frame of a CRTC: a dumb buffer of the mode's size with its CPU mapping and framebuffer
/// (the copy path), or a framebuffer someone else owns (a frontend's exported pages, which the
/// ``KMSSink`` keeps and removes only once they are off screen).
struct KMSFrame: ~Copyable, ScanoutFrame {
    var target: Framebuffer?
    var mapping: DumbBufferMapping?
    var buffer: DumbBuffer?
    let info: FramebufferInfo
    /// The mapped pixels (valid while `mapping` is; empty for a borrowed frame).
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

    /// A framebuffer this frame does not own.
    init(borrowing info: FramebufferInfo) {
        self.info = info
        pixels = UnsafeMutableRawBufferPointer(start: nil, count: 0)
        pitch = 0
    }

    var framebuffer: FramebufferInfo { info }
    var isOwned: Bool { pixels.baseAddress != nil }

    /// Copies `frame` in (XRGB8888; rows and columns past the frame stay as they were).
    func fill(from frame: FrameView) {
        guard isOwned else { return }
        let width = min(frame.width, info.width)
        let height = min(frame.height, info.height)
        let target = pixels
        if frame.format == .xrgb8888 || frame.format == .argb8888 {
            for y in 0..<height {
                let source = UnsafeRawBufferPointer(
                    rebasing: frame.bytes[(frame.offset + y * frame.pitch)..<(frame.offset + y * frame.pitch + width * 4)]
                )
                UnsafeMutableRawBufferPointer(rebasing: target[(y * pitch)..<(y * pitch + width * 4)]).copyMemory(from: source)
            }
            return
        }
        for y in 0..<height {
            for x in 0..<width {
                let (r, g, b) = frame.rgb(x: x, y: y)
                target.storeBytes(
                    of: UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b),
                    toByteOffset: y * pitch + x * 4,
                    as: UInt32.self
                )
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

/// A CRTC's state: its scanout and a dumb-buffer frame not on screen. Used by one thread at a
/// time (``acquire()``): the one frontend connector assigned to it, a capture, or shutdown.
final class KMSOutput: @unchecked Sendable {
    let index: Int
    var scanout: Scanout<KMSFrame>?
    var spare: KMSFrame?
    private let busy = Mutex(false)

    init(index: Int) { self.index = index }

    func tryAcquire() -> Bool {
        busy.withLock { taken in
            if taken { return false }
            taken = true
            return true
        }
    }
    func acquire() { while !tryAcquire() { usleep(500) } }
    func release() { busy.withLock { $0 = false } }

    /// The id of the framebuffer on screen.
    private(set) var shownID: UInt32?

    /// Copies `frame` into a dumb buffer of the mode and shows it.
    func present(_ frame: FrameView, width: Int, height: Int, on device: DRMDevice, timeout: Duration) throws(XenGntError) {
        let mode = try self.mode(width: width, height: height, on: device)
        let next: KMSFrame
        if let spare = spare.take() { next = spare } else { next = try KMSFrame(device: device, mode: mode.mode) }
        next.fill(from: frame)
        try show(next, mode, on: device, timeout: timeout)
    }

    /// Shows a framebuffer the caller owns and keeps until it is off screen.
    func present(
        framebuffer info: FramebufferInfo,
        width: Int,
        height: Int,
        on device: DRMDevice,
        timeout: Duration
    ) throws(XenGntError) {
        let mode = try self.mode(width: width, height: height, on: device)
        try show(KMSFrame(borrowing: info), mode, on: device, timeout: timeout)
    }

    /// A mode set the first time, a flip after; returns once `frame` is on screen. The frame
    /// that went off screen becomes the spare if it is a dumb buffer.
    private func show(
        _ frame: consuming KMSFrame,
        _ mode: (mode: DisplayMode, connector: Connector),
        on device: DRMDevice,
        timeout: Duration
    ) throws(XenGntError) {
        let id = frame.info.id
        guard var current = scanout.take() else {
            scanout = try Scanout(on: device, showing: frame, connector: mode.connector, mode: mode.mode)
            shownID = id
            return
        }
        let old: KMSFrame
        do {
            try current.flip(to: frame)
            old = try current.waitForFlipBlocking(timeout: timeout)
        } catch {
            scanout = consume current
            throw error
        }
        scanout = consume current
        shownID = id
        if old.isOwned, spare == nil { spare = consume old } else { old.release() }
    }

    /// The mode for `width`×`height` and the connector: the current ones, or (the first time,
    /// or after a change of size, which turns the CRTC off first) a connected connector this
    /// CRTC can drive and its mode of that size (else a generated one: vkms takes any).
    private func mode(
        width: Int,
        height: Int,
        on device: DRMDevice
    ) throws(XenGntError) -> (mode: DisplayMode, connector: Connector) {
        if let mode = scanout?.mode, let connector = scanout?.connector {
            if mode.width == width && mode.height == height { return (mode, connector) }
            turnOff()
        }
        let resources = try device.resources()
        let crtc = resources.crtcs[index]
        guard
            let connector = resources.connectors.first(where: {
                !$0.isWriteback && $0.status == .connected && resources.crtcs(for: $0).contains(crtc)
            })
        else {
            throw XenGntError(.noDisplay, .setMode, path: device.path, detail: "no connected connector for CRTC \(index)")
        }
        return (
            connector.modes.first { $0.width == width && $0.height == height } ?? DisplayMode(width: width, height: height),
            connector
        )
    }

    /// Off screen, then the framebuffers and buffers released.
    func turnOff() {
        shownID = nil
        if let scanout = scanout.take() {
            let shown = try? scanout.turnOff()
            shown?.release()
        }
        if let spare = spare.take() { spare.release() }
    }
}
