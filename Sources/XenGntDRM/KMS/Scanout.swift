import SystemPackage
public import XenGnt

/// Something a ``Scanout`` can show: a framebuffer, or a backend flow that ends in one.
public protocol ScanoutFrame: ~Copyable {
    /// The framebuffer to show.
    var framebuffer: FramebufferInfo { get }
}

extension Framebuffer: ScanoutFrame {
    public var framebuffer: FramebufferInfo { info }
}

/// A CRTC showing frames on a connector: the owner of what is on screen.
///
/// It takes the frame it shows (and the one a page flip brings) and hands each back only once
/// it is off screen — from ``waitForFlip(timeout:)`` when a flip has replaced it, from
/// ``turnOff()`` at the end — so a frame cannot be removed while the display reads it. Letting
/// a scanout go turns the CRTC off first, then releases its frames in order.
///
/// Mode setting and flips are master-only: the device must be the DRM master.
///
/// ```swift
/// var scanout = try Scanout(on: display, showing: first)      // mode set
/// try scanout.flip(to: second)                                // at the next vblank
/// let offScreen = try await scanout.waitForFlip()             // `first`, now off screen
/// ```
public struct Scanout<Frame: ScanoutFrame & ~Copyable>: ~Copyable {
    let path: ScanoutPath
    private var shown: Frame?
    private var incoming: Frame?
    private var flipToken: UInt64 = 0
    /// The writeback connector of the CRTC, once a capture has looked for it (attached to the
    /// CRTC by the first capture, detached at turn-off).
    var writeback: WritebackConnector?
    private var isOn = true

    /// Puts `frame` on screen: a mode set (an atomic commit where the driver has atomic mode
    /// setting, `SETCRTC` otherwise) of `connector` (default: the first connected one) in
    /// `mode` (default: its preferred mode), through a CRTC that can drive it and its primary
    /// plane.
    ///
    /// If the mode set fails, `frame` is released (in order: framebuffer, handles, buffer). To
    /// learn whether a display can show a buffer without giving it up, use
    /// ``DRMDevice/checkScanout(of:connector:mode:by:)`` first.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/notMaster`` when another descriptor is master;
    ///   ``XenGnt/XenGntError/Code/formatNotSupported`` before the kernel is asked;
    ///   ``XenGnt/XenGntError/Code/displayCannotReadBuffer`` when the display cannot read the
    ///   buffer (vkms and a frontend's gntdev export).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ATOMIC` (or `DRM_IOCTL_MODE_SETCRTC`).
    public init(
        on device: DRMDevice,
        showing frame: consuming Frame,
        connector: Connector? = nil,
        mode: DisplayMode? = nil
    ) throws(XenGntError) {
        let framebuffer = frame.framebuffer
        let chosen = Result { () throws(XenGntError) -> ScanoutPath in
            let path = try ScanoutPath.choose(on: device, connector: connector, mode: mode, .setMode)
            try path.show(framebuffer, .setMode)
            return path
        }
        switch chosen {
        case .success(let path):
            self.path = path
            shown = consume frame
        case .failure(let error):
            _ = consume frame
            throw error
        }
    }

    /// The device.
    public var device: DRMDevice { path.device }
    /// The CRTC scanning out.
    public var crtc: CRTC { path.crtc }
    /// The connector it drives.
    public var connector: Connector { path.connector }
    /// The plane showing the frames (`nil` for a legacy driver that does not list it).
    public var plane: Plane? { path.plane }
    /// The mode.
    public var mode: DisplayMode { path.mode }
    /// Whether it uses atomic commits (else `SETCRTC` and `PAGE_FLIP`).
    public var usesAtomic: Bool { path.properties != nil }
    /// Whether a page flip waits for its vblank.
    public var isFlipPending: Bool { incoming != nil }

    /// Schedules a page flip to `next` at the next vblank, with a flip-complete event. The
    /// frame on screen stays there (and stays the scanout's) until the event:
    /// ``waitForFlip(timeout:)`` or ``completeFlip(_:)`` then hand it back.
    ///
    /// If the flip cannot be scheduled, `next` is released.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/flipPending`` while the previous flip has not
    ///   completed (before the kernel is asked); the errors of the mode set.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ATOMIC` with `DRM_MODE_PAGE_FLIP_EVENT` (or
    /// `DRM_IOCTL_MODE_PAGE_FLIP`).
    public mutating func flip(to next: consuming Frame) throws(XenGntError) {
        guard isOn else { throw XenGntError(.invalidArgument, .pageFlip, path: path.device.path, detail: "the scanout is off") }
        guard incoming == nil else { throw XenGntError(.flipPending, .pageFlip, path: path.device.path) }
        let token = ScanoutPath.nextToken()
        let framebuffer = next.framebuffer
        let path = self.path
        if case .failure(let error) = Result(catching: { () throws(XenGntError) in
            try path.flip(to: framebuffer, token: token, .pageFlip)
        }) {
            _ = consume next
            throw error
        }
        flipToken = token
        incoming = consume next
    }

    /// Completes the pending flip if `event` is its flip-complete event, handing back the
    /// frame that went off screen; `nil` for any other event. For a caller that reads the
    /// device's ``DRMDevice/events()`` itself.
    public mutating func completeFlip(_ event: DRMEvent) -> Frame? {
        guard incoming != nil, event.kind == .flipComplete, event.userData == flipToken else { return nil }
        let old = shown.take()
        shown = incoming.take()
        return old
    }

    /// Waits for the pending flip's event and hands back the frame that went off screen.
    /// Other events read meanwhile stay for the device's ``DRMDevice/events()``.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/displayTimedOut`` after `timeout`;
    ///   `XenGntError.Code.cancelled` when the task is cancelled.
    public mutating func waitForFlip(timeout: Duration? = .seconds(10)) async throws(XenGntError) -> Frame {
        guard incoming != nil else {
            throw XenGntError(.invalidArgument, .waitForFlip, path: path.device.path, detail: "no page flip is pending")
        }
        let token = flipToken
        try await path.device.file.waitForEvent(timeout: timeout, .waitForFlip) {
            $0.kind == .flipComplete && $0.userData == token
        }
        let old = shown.take()!
        shown = incoming.take()
        return old
    }

    /// Like ``waitForFlip(timeout:)``, but blocking the calling thread in `poll` until the
    /// pending flip's event: for a synchronous caller that must not return before the frame is
    /// on screen (a display sink's `present`). Waits at most `timeout`, about a frame normally.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/displayTimedOut`` after `timeout`.
    public mutating func waitForFlipBlocking(timeout: Duration = .seconds(2)) throws(XenGntError) -> Frame {
        guard incoming != nil else {
            throw XenGntError(.invalidArgument, .waitForFlip, path: path.device.path, detail: "no page flip is pending")
        }
        let token = flipToken
        try path.device.file.waitForEventBlocking(timeout: timeout, .waitForFlip) {
            $0.kind == .flipComplete && $0.userData == token
        }
        let old = shown.take()!
        shown = incoming.take()
        return old
    }

    /// Takes the CRTC off screen and hands back the frame last put on it (the one a pending
    /// flip brings, if any; the one it replaces is released, in order).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ATOMIC` (or `DRM_IOCTL_MODE_SETCRTC`).
    public consuming func turnOff() throws(XenGntError) -> Frame {
        isOn = false
        try path.turnOff(writeback: writeback?.attachment, .turnOff)
        if incoming != nil {
            _ = shown.take()
            return incoming.take()!
        }
        return shown.take()!
    }

    deinit {
        // Off screen first; the frames (stored properties) are released after this.
        if isOn { try? path.turnOff(writeback: writeback?.attachment, .turnOff) }
    }
}

extension DRMDevice {
    /// How ``checkScanout(of:connector:mode:by:)`` asks.
    public enum ScanoutCheck: Sendable, Hashable {
        /// An atomic `TEST_ONLY` commit: the driver's check only. vkms passes buffers it cannot
        /// read at the real commit, so this does not say whether the display can show a buffer.
        case testOnly
        /// A real mode set showing the frame, then turning the CRTC off again: what the
        /// display really does with the buffer. Needs DRM master; the screen blinks.
        case realCommit
    }

    /// Whether the display can show `frame`, without giving it up: by default a real mode set
    /// and turn-off (``ScanoutCheck/realCommit``), since a `TEST_ONLY` commit does not prove it.
    ///
    /// - Throws: what ``Scanout/init(on:showing:connector:mode:)`` would throw, such as
    ///   ``XenGnt/XenGntError/Code/displayCannotReadBuffer``.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ATOMIC` (or `DRM_IOCTL_MODE_SETCRTC`).
    public func checkScanout<F: ScanoutFrame & ~Copyable>(
        of frame: borrowing F,
        connector: Connector? = nil,
        mode: DisplayMode? = nil,
        by check: ScanoutCheck = .realCommit
    ) throws(XenGntError) {
        let operation: XenGntError.Operation = check == .testOnly ? .testCommit : .setMode
        let path = try ScanoutPath.choose(on: self, connector: connector, mode: mode, operation)
        try path.show(frame.framebuffer, testOnly: check == .testOnly, operation)
        if check == .realCommit { try path.turnOff(writeback: nil, .turnOff) }
    }
}
