internal import CDRM
import Synchronization
import SystemPackage
import XenGnt

/// A CRTC driving a connector in a mode through its primary plane: where a ``Scanout`` shows
/// its frames, and how (atomic commits, or legacy `SETCRTC` and `PAGE_FLIP`).
struct ScanoutPath: Sendable {
    let device: DRMDevice
    let crtc: CRTC
    let connector: Connector
    let plane: Plane?
    let mode: DisplayMode
    /// The property ids for atomic commits; `nil`: the legacy ioctls.
    let properties: ScanoutProperties?

    /// Chooses the connector (given, or the first connected one), its mode (given, or the
    /// preferred one), a CRTC that can drive it and that CRTC's primary plane. Turns atomic
    /// mode setting on when the driver has it.
    static func choose(
        on device: DRMDevice,
        connector wanted: Connector?,
        mode wantedMode: DisplayMode?,
        _ operation: XenGntError.Operation
    ) throws(XenGntError) -> ScanoutPath {
        if device.node == .render {
            throw XenGntError(.renderNode, operation, path: device.path)
        }
        do throws(XenGntError) { try device.enableAtomic() } catch  where error.code == .atomicRequired {}
        let resources = try device.resources()
        let connector: Connector
        if let wanted {
            guard let found = resources.connectors.first(where: { $0.id == wanted.id }) else {
                throw XenGntError(
                    .noDisplay,
                    operation,
                    path: device.path,
                    detail: "connector \(wanted.id) is not one of \(device.path)'s"
                )
            }
            connector = found
        } else {
            guard let found = resources.firstConnectedDisplay else {
                throw XenGntError(
                    .noDisplay,
                    operation,
                    path: device.path,
                    detail:
                        "no connector of \(device.path) is connected (\(resources.connectors.map { "\($0.name): \($0.status)" }.joined(separator: ", ")))"
                )
            }
            connector = found
        }
        guard let mode = wantedMode ?? connector.preferredMode else {
            throw XenGntError(.noDisplay, operation, path: device.path, detail: "\(connector.name) offers no mode")
        }
        let current = resources.encoders.first { $0.id == connector.currentEncoderID }?.crtcID
        let candidates = resources.crtcs(for: connector)
        guard let crtc = candidates.first(where: { $0.id == current }) ?? candidates.first else {
            throw XenGntError(.noDisplay, operation, path: device.path, detail: "no CRTC can drive \(connector.name)")
        }
        let plane = resources.primaryPlane(for: crtc)
        var properties: ScanoutProperties?
        if device.isAtomic {
            guard let plane else {
                throw XenGntError(.noDisplay, operation, path: device.path, detail: "CRTC \(crtc.id) has no primary plane")
            }
            properties = try ScanoutProperties(device: device, connector: connector.id, crtc: crtc.id, plane: plane.id)
        }
        return ScanoutPath(device: device, crtc: crtc, connector: connector, plane: plane, mode: mode, properties: properties)
    }

    /// Refuses a framebuffer this path cannot show, before the kernel is asked.
    func check(_ framebuffer: FramebufferInfo, _ operation: XenGntError.Operation) throws(XenGntError) {
        guard framebuffer.device == ObjectIdentifier(device.file) else {
            throw XenGntError(
                .invalidArgument,
                operation,
                path: device.path,
                detail: "framebuffer \(framebuffer.id) belongs to another descriptor; framebuffers are numbered per device file."
            )
        }
        if let plane, !plane.formats.isEmpty, !plane.formats.contains(framebuffer.format) {
            throw XenGntError(
                .formatNotSupported,
                operation,
                path: device.path,
                flags: framebuffer.format.rawValue,
                detail: plane.formats.map(\.name).joined(separator: ", ")
            )
        }
        guard framebuffer.width >= mode.width, framebuffer.height >= mode.height else {
            throw XenGntError(
                .noDisplay,
                operation,
                path: device.path,
                detail:
                    "the \(framebuffer.width)×\(framebuffer.height) framebuffer is smaller than the mode \(mode.width)×\(mode.height) (the primary plane does not scale)"
            )
        }
    }

    // MARK: Commits

    /// Puts `framebuffer` on screen in the path's mode; with `testOnly`, asks the driver's
    /// atomic check only (which, on vkms, passes buffers the real commit refuses).
    func show(_ framebuffer: FramebufferInfo, testOnly: Bool = false, _ operation: XenGntError.Operation) throws(XenGntError) {
        try check(framebuffer, operation)
        guard let properties else {
            if testOnly { throw XenGntError(.atomicRequired, operation, path: device.path, detail: "a TEST_ONLY commit") }
            return try setCRTC(framebuffer: framebuffer.id, operation)
        }
        var mode = self.mode.modeInfo
        let blob = try withUnsafeBytes(of: &mode) { (raw) throws(XenGntError) in try device.createBlob(raw, operation) }
        defer { _ = device.file.attempt(.destroyBlob(blob)) }  // the CRTC's state keeps its own reference
        var request = AtomicRequest()
        request.set(connector.id, properties.connectorCRTC, UInt64(crtc.id))
        request.set(crtc.id, properties.crtcMode, UInt64(blob))
        request.set(crtc.id, properties.crtcActive, 1)
        setPlane(&request, properties, framebuffer: framebuffer.id)
        let flags = UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET) | (testOnly ? UInt32(CDRM_MODE_ATOMIC_TEST_ONLY) : 0)
        try commit(request, flags: flags, operation)
    }

    /// The plane's part of a commit: `framebuffer` full screen (no scaling: vkms's primary
    /// plane must cover the CRTC).
    func setPlane(_ request: inout AtomicRequest, _ p: ScanoutProperties, framebuffer: UInt32) {
        guard let plane else { return }
        request.set(plane.id, p.planeFB, UInt64(framebuffer))
        request.set(plane.id, p.planeCRTC, UInt64(crtc.id))
        request.set(plane.id, p.srcX, 0)
        request.set(plane.id, p.srcY, 0)
        request.set(plane.id, p.srcW, UInt64(mode.width) << 16)
        request.set(plane.id, p.srcH, UInt64(mode.height) << 16)
        request.set(plane.id, p.crtcX, 0)
        request.set(plane.id, p.crtcY, 0)
        request.set(plane.id, p.crtcW, UInt64(mode.width))
        request.set(plane.id, p.crtcH, UInt64(mode.height))
    }

    /// Sends `request`; an `EINVAL` the driver's atomic check accepts (a `TEST_ONLY` of the same
    /// request succeeds) failed while preparing the buffers: the display cannot read them.
    func commit(
        _ request: AtomicRequest,
        flags: UInt32,
        userData: UInt64 = 0,
        _ operation: XenGntError.Operation
    ) throws(XenGntError) {
        do throws(Errno) {
            try request.commit(on: device.file, flags: flags, userData: userData)
        } catch {
            var code: XenGntError.Code?
            if error == .invalidArgument, flags & UInt32(CDRM_MODE_ATOMIC_TEST_ONLY) == 0 {
                let test =
                    flags & ~UInt32(CDRM_MODE_ATOMIC_NONBLOCK | CDRM_MODE_PAGE_FLIP_EVENT) | UInt32(CDRM_MODE_ATOMIC_TEST_ONLY)
                if (try? request.commit(on: device.file, flags: test)) != nil { code = .displayCannotReadBuffer }
            }
            if error == .resourceBusy { code = .flipPending }
            throw device.file.failure(
                error,
                operation,
                request: DRMRequest.atomic,
                code: code,
                detail: code == .displayCannotReadBuffer ? device.driver.name : nil
            )
        }
    }

    /// Takes the CRTC off screen: the plane, the connectors (and the writeback connector, if one
    /// was attached) let go of it, and it stops.
    func turnOff(writeback: (connector: UInt32, crtcProperty: UInt32)?, _ operation: XenGntError.Operation) throws(XenGntError) {
        guard let properties else { return try setCRTC(framebuffer: 0, operation) }
        var request = AtomicRequest()
        if let plane {
            request.set(plane.id, properties.planeFB, 0)
            request.set(plane.id, properties.planeCRTC, 0)
        }
        request.set(connector.id, properties.connectorCRTC, 0)
        if let writeback { request.set(writeback.connector, writeback.crtcProperty, 0) }
        request.set(crtc.id, properties.crtcActive, 0)
        request.set(crtc.id, properties.crtcMode, 0)
        try commit(request, flags: UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET), operation)
    }

    /// Schedules a flip to `framebuffer` at the next vblank, with a flip-complete event
    /// carrying `token`.
    func flip(to framebuffer: FramebufferInfo, token: UInt64, _ operation: XenGntError.Operation) throws(XenGntError) {
        try check(framebuffer, operation)
        if let properties {
            var request = AtomicRequest()
            if let plane { request.set(plane.id, properties.planeFB, UInt64(framebuffer.id)) }
            try commit(request, flags: UInt32(CDRM_MODE_ATOMIC_NONBLOCK | CDRM_MODE_PAGE_FLIP_EVENT), userData: token, operation)
            return
        }
        var argument = drm_mode_crtc_page_flip()
        argument.crtc_id = crtc.id
        argument.fb_id = framebuffer.id
        argument.flags = UInt32(CDRM_MODE_PAGE_FLIP_EVENT)
        argument.user_data = token
        try device.file.ioctl(DRMRequest.pageFlip, &argument, operation) { $0 == .resourceBusy ? .flipPending : nil }
    }

    /// Legacy mode setting: `framebuffer` 0 turns the CRTC off.
    private func setCRTC(framebuffer: UInt32, _ operation: XenGntError.Operation) throws(XenGntError) {
        var connectors = [connector.id]
        var argument = drm_mode_crtc()
        argument.crtc_id = crtc.id
        argument.fb_id = framebuffer
        if framebuffer != 0 {
            argument.mode_valid = 1
            argument.mode = mode.modeInfo
            argument.count_connectors = 1
        }
        try connectors.withUnsafeMutableBufferPointer { (ids) throws(XenGntError) in
            argument.set_connectors_ptr = framebuffer != 0 ? UInt64(UInt(bitPattern: ids.baseAddress)) : 0
            try device.file.ioctl(DRMRequest.setCRTC, &argument, operation)
        }
    }

    /// A token for a flip's event, unique in this process.
    static func nextToken() -> UInt64 { tokens.add(1, ordering: .relaxed).newValue }
    private static let tokens = Atomic<UInt64>(0x5847_0000_0000_0000)  // "XG"
}
