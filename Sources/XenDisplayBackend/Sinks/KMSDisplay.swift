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
                throw XenGntError(
                    .noDisplay,
                    .setMode,
                    path: device.path,
                    detail: "--crtc \(index): \(device.path) has \(resources.crtcs.count) CRTC(s)"
                )
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
                    (try? device.resources().firstConnectedDisplay) != nil
                else { continue }
                return device
            }
            return nil
        }
    }

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

    /// Shows `framebuffer` (a frontend's exported pages, which the caller keeps until they are
    /// off screen) on CRTC `crtc` at `width`×`height`, and waits for it to be on screen. On
    /// failure — ``XenGnt/XenGntError/Code/displayCannotReadBuffer`` where the display
    /// composes with the CPU (vkms), found at the real commit — the CRTC is blanked.
    public func present(framebuffer: FramebufferInfo, crtc: Int, width: Int, height: Int) throws(XenGntError) {
        guard let output = outputs[crtc] else {
            throw XenGntError(.noDisplay, .pageFlip, path: device.path, detail: "CRTC \(crtc) is not assigned")
        }
        output.acquire()
        defer { output.release() }
        do {
            try output.present(framebuffer: framebuffer, width: width, height: height, on: device, timeout: flipTimeout)
        } catch {
            output.turnOff()
            throw error
        }
    }

    /// Whether CRTC `crtc` shows framebuffer `id`.
    public func isShowing(_ id: UInt32, crtc: Int) -> Bool {
        guard let output = outputs[crtc] else { return false }
        output.acquire()
        defer { output.release() }
        return output.shownID == id
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
    /// Frames presented meanwhile wait for the capture, which blocks its thread (about two
    /// frames on vkms, whose capture moves the CRTC to the writeback connector and back).
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
        // Blocking, with nothing awaited while the CRTC is held: a frontend's present, which
        // waits for the CRTC on its own thread, cannot starve the capture of the thread it would
        // resume on (a one-CPU Dom0 has one).
        guard var scanout = output.scanout.take() else {
            throw XenGntError(.noDisplay, .capture, path: device.path, detail: "CRTC \(crtc) is off")
        }
        let result: Result<Screenshot, XenGntError>
        do { result = .success(try scanout.captureScreenBlocking(timeout: flipTimeout)) } catch { result = .failure(error) }
        output.scanout = consume scanout
        return try result.get()
    }
}
