internal import CDRM
import SystemPackage
import XenGnt

/// The ids of a display's mode objects and properties (one id space per device), and what
/// each property is.
struct KMSObjects {
    // Properties (drm_mode_config's standard ones, and the writeback connector's).
    let type, fbID, crtcID, srcX, srcY, srcW, srcH, crtcX, crtcY, crtcW, crtcH: UInt32
    let active, modeID, writebackFB, writebackFence, writebackFormats: UInt32
    // Objects.
    let primary, cursor, crtc, display, displayEncoder, writeback, writebackEncoder: UInt32

    init(_ device: SimDRMDevice) {
        type = device.newID()
        fbID = device.newID()
        crtcID = device.newID()
        srcX = device.newID()
        srcY = device.newID()
        srcW = device.newID()
        srcH = device.newID()
        crtcX = device.newID()
        crtcY = device.newID()
        crtcW = device.newID()
        crtcH = device.newID()
        active = device.newID()
        modeID = device.newID()
        writebackFB = device.newID()
        writebackFence = device.newID()
        writebackFormats = device.newID()
        primary = device.newID()
        cursor = device.newID()
        crtc = device.newID()
        display = device.newID()
        displayEncoder = device.newID()
        writeback = device.newID()
        writebackEncoder = device.newID()
    }

    /// Property names, and whether each is atomic-only (hidden from clients without
    /// `DRM_CLIENT_CAP_ATOMIC`) or immutable.
    func describe(_ property: UInt32) -> (name: String, atomic: Bool, immutable: Bool)? {
        switch property {
        case type: ("type", false, true)
        case fbID: ("FB_ID", true, false)
        case crtcID: ("CRTC_ID", true, false)
        case srcX: ("SRC_X", true, false)
        case srcY: ("SRC_Y", true, false)
        case srcW: ("SRC_W", true, false)
        case srcH: ("SRC_H", true, false)
        case crtcX: ("CRTC_X", true, false)
        case crtcY: ("CRTC_Y", true, false)
        case crtcW: ("CRTC_W", true, false)
        case crtcH: ("CRTC_H", true, false)
        case active: ("ACTIVE", true, false)
        case modeID: ("MODE_ID", true, false)
        case writebackFB: ("WRITEBACK_FB_ID", true, false)
        case writebackFence: ("WRITEBACK_OUT_FENCE_PTR", true, false)
        case writebackFormats: ("WRITEBACK_PIXEL_FORMATS", false, true)
        default: nil
        }
    }

    /// The properties an object has, in the kernel's order.
    func properties(of object: UInt32) -> [UInt32]? {
        switch object {
        case primary, cursor: [type, fbID, crtcID, srcX, srcY, srcW, srcH, crtcX, crtcY, crtcW, crtcH]
        case crtc: [active, modeID]
        case display: [crtcID]
        case writeback: [crtcID, writebackFB, writebackFence, writebackFormats]
        default: nil
        }
    }

    /// `DRM_MODE_OBJECT_*` of an object.
    func objectType(_ object: UInt32) -> UInt32? {
        switch object {
        case primary, cursor: UInt32(DRM_MODE_OBJECT_PLANE)
        case crtc: UInt32(DRM_MODE_OBJECT_CRTC)
        case display, writeback: UInt32(DRM_MODE_OBJECT_CONNECTOR)
        case displayEncoder, writebackEncoder: UInt32(DRM_MODE_OBJECT_ENCODER)
        default: nil
        }
    }
}

/// A plane's state: its framebuffer, whether it feeds the CRTC, and its source (16.16 fixed
/// point) and destination rectangles.
struct PlaneState {
    var framebuffer: SimFramebuffer?
    var onCRTC = false
    var srcX: UInt64 = 0, srcY: UInt64 = 0, srcW: UInt64 = 0, srcH: UInt64 = 0
    var crtcX: Int64 = 0, crtcY: Int64 = 0, crtcW: UInt64 = 0, crtcH: UInt64 = 0
}

/// Everything a commit can change on the display.
struct DisplayState {
    var primary = PlaneState()
    var cursor = PlaneState()
    var active = false
    /// The mode (`MODE_ID`'s blob, or `SETCRTC`'s), `nil` when the CRTC is disabled.
    var mode: drm_mode_modeinfo?
    var modeBlob: UInt32 = 0
    var displayOnCRTC = false
    var writebackOnCRTC = false

    var framebuffers: [SimFramebuffer] { [primary.framebuffer, cursor.framebuffer].compactMap { $0 } }

    func uses(_ framebuffer: SimFramebuffer) -> Bool { framebuffers.contains { $0 === framebuffer } }

    /// The bytes of the mode, to tell a mode change.
    var modeBytes: [UInt8]? { mode.map { mode in withUnsafeBytes(of: mode) { Array($0) } } }

    /// `drm_framebuffer_remove`: the planes showing `framebuffer` are turned off, and with the
    /// primary plane the CRTC and its connectors.
    mutating func takeOff(_ framebuffer: SimFramebuffer) {
        if cursor.framebuffer === framebuffer { cursor = PlaneState() }
        if primary.framebuffer === framebuffer {
            primary = PlaneState()
            active = false
            mode = nil
            modeBlob = 0
            displayOnCRTC = false
            writebackOnCRTC = false
        }
    }

    /// Whether going from `old` needs a full mode set (`drm_atomic_crtc_needs_modeset`).
    func needsModeset(from old: DisplayState) -> Bool {
        modeBytes != old.modeBytes || active != old.active || displayOnCRTC != old.displayOnCRTC
            || writebackOnCRTC != old.writebackOnCRTC
    }
}

/// A nonblocking commit waiting for its vblank: its flip-complete event and writeback job.
struct PendingCommit {
    var event: (file: Weak<DRMOpenFile>, userData: UInt64)?
    var writeback: WritebackJob?
}

/// A writeback capture: the framebuffer to compose into and the fence to signal.
struct WritebackJob {
    let framebuffer: SimFramebuffer
    let fence: SyncFileSim?
}

/// drm_mode_validate_basic: a mode whose timings are out of order, or whose clock is 0, is
/// refused (`drm_mode_convert_umode`: EINVAL).
func isValidMode(_ mode: drm_mode_modeinfo) -> Bool {
    mode.clock > 0 && mode.hdisplay > 0 && mode.vdisplay > 0
        && mode.hdisplay <= mode.hsync_start && mode.hsync_start <= mode.hsync_end && mode.hsync_end <= mode.htotal
        && mode.vdisplay <= mode.vsync_start && mode.vsync_start <= mode.vsync_end && mode.vsync_end <= mode.vtotal
}
