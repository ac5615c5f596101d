internal import CDRM
import SystemPackage
import XenGnt

/// The display of a KMS driver, as vkms builds it in Linux 6.1 (`vkms_output_init`,
/// `vkms_enable_writeback_connector`): one CRTC; a primary plane (XR24, XR48, RG16) and a
/// cursor plane (AR24, XR24, XR48, AR48, RG16); a `Virtual` connector without EDID offering the
/// DMT modes up to 8192×8192, 1024×768 preferred; a writeback connector writing XR24, XR48, AR48
/// and RG16 (lab `drm-vkms-resources`). The DMA-scanout display has the same shape, a primary
/// plane that also takes AR24, and encoders that clone.
final class KMS {
    unowned let device: SimDRMDevice
    let ids: KMSObjects
    /// The state the kernel has (`drm_atomic_state` swapped in at commit).
    var committed = DisplayState()
    /// What is on screen: `committed` once the vblank after a nonblocking commit has passed.
    var scanout = DisplayState()
    /// A nonblocking commit waiting for its vblank.
    var pending: PendingCommit?
    /// Vblank events asked for with `WAIT_VBLANK`.
    var vblankRequests: [(file: Weak<DRMOpenFile>, userData: UInt64, sequence: UInt64)] = []
    /// Vblanks so far.
    var sequence: UInt64 = 0
    /// The simulated monotonic time of the last vblank.
    var time: Duration = .seconds(1000)
    let primaryFormats: [PixelFormatCode]
    let cursorFormats: [PixelFormatCode] = [.argb8888, .xrgb8888, .xrgb16161616, .argb16161616, .rgb565]
    let writebackFormats: [PixelFormatCode] = [.xrgb8888, .xrgb16161616, .argb16161616, .rgb565]
    /// The writeback connector's `WRITEBACK_PIXEL_FORMATS` blob.
    let writebackFormatsBlob: UInt32
    /// The display connector's modes, sorted as `drm_mode_sort` does (preferred first, then
    /// larger, faster, higher clock).
    let modes: [drm_mode_modeinfo]

    init(device: SimDRMDevice) {
        self.device = device
        ids = KMSObjects(device)
        primaryFormats =
            device.kind == .dmaScanout ? [.xrgb8888, .argb8888, .xrgb16161616, .rgb565] : [.xrgb8888, .xrgb16161616, .rgb565]
        writebackFormatsBlob = device.newID()
        var blob: [UInt8] = []
        for format in [PixelFormatCode.xrgb8888, .xrgb16161616, .argb16161616, .rgb565] {
            withUnsafeBytes(of: format.rawValue) { blob += $0 }
        }
        device.blobs[writebackFormatsBlob] = blob
        var modes = dmtModesUpTo8192.map { row -> drm_mode_modeinfo in
            var mode = drm_mode_modeinfo()
            mode.clock = row[0]
            mode.hdisplay = UInt16(row[1])
            mode.hsync_start = UInt16(row[2])
            mode.hsync_end = UInt16(row[3])
            mode.htotal = UInt16(row[4])
            mode.hskew = UInt16(row[5])
            mode.vdisplay = UInt16(row[6])
            mode.vsync_start = UInt16(row[7])
            mode.vsync_end = UInt16(row[8])
            mode.vtotal = UInt16(row[9])
            mode.vscan = UInt16(row[10])
            mode.vrefresh = row[11]
            mode.flags = row[12]
            mode.type = UInt32(DRM_MODE_TYPE_DRIVER)
            withUnsafeMutableBytes(of: &mode.name) { $0.copyBytes(from: Array("\(row[1])x\(row[6])".utf8)) }
            return mode
        }
        // drm_set_preferred_mode(connector, 1024, 768): the first match.
        if let i = modes.firstIndex(where: { $0.hdisplay == 1024 && $0.vdisplay == 768 }) {
            modes[i].type |= UInt32(DRM_MODE_TYPE_PREFERRED)
        }
        self.modes = modes.sorted { a, b in
            let ap = a.type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0
            let bp = b.type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0
            if ap != bp { return ap }
            let aa = Int(a.hdisplay) * Int(a.vdisplay)
            let ba = Int(b.hdisplay) * Int(b.vdisplay)
            if aa != ba { return aa > ba }
            if a.vrefresh != b.vrefresh { return a.vrefresh > b.vrefresh }
            return a.clock > b.clock
        }
    }

    var hasPendingWork: Bool { pending != nil || !vblankRequests.isEmpty }

    /// The display clock of `kernel`.
    func clock(of kernel: DomainKernel) -> SimulatedDisplayClock { kernel.displayClock }

    /// Forgets what `file` asked for (it is closing).
    func forget(_ file: DRMOpenFile) {
        vblankRequests.removeAll { $0.file.value == nil || $0.file.value === file }
        if pending?.event?.file.value === file { pending?.event = nil }
    }

    // MARK: Ioctls

    func ioctl(
        _ request: UInt,
        _ argument: UnsafeMutableRawPointer?,
        _ file: DRMOpenFile,
        _ context: Context
    ) throws(Errno) -> IoctlOutcome {
        switch request {
        case DRMIoctl.getResources: return .done(try getResources(argument, file))
        case DRMIoctl.getConnector: return .done(try getConnector(argument, file))
        case DRMIoctl.getEncoder: return .done(try getEncoder(argument))
        case DRMIoctl.getCRTC: return .done(try getCRTC(argument))
        case DRMIoctl.getPlaneResources: return .done(try getPlaneResources(argument, file))
        case DRMIoctl.getPlane: return .done(try getPlane(argument))
        case DRMIoctl.objectGetProperties: return .done(try objectGetProperties(argument, file))
        case DRMIoctl.getProperty: return .done(try getProperty(argument))
        case DRMIoctl.getPropertyBlob: return .done(try getPropertyBlob(argument))
        case DRMIoctl.createPropertyBlob: return .done(try createPropertyBlob(argument, file))
        case DRMIoctl.destroyPropertyBlob: return .done(try destroyPropertyBlob(argument, file))
        case DRMIoctl.addFramebuffer2: return .done(try addFramebuffer(argument, file))
        case DRMIoctl.removeFramebuffer: return try removeFramebuffer(argument, file, context)
        case DRMIoctl.atomic: return try atomic(argument, file, context)
        case DRMIoctl.setCRTC: return try setCRTC(argument, file, context)
        case DRMIoctl.pageFlip: return try pageFlip(argument, file, context)
        case DRMIoctl.waitVblank: return try waitVblank(argument, file, context)
        default: throw .invalidArgument
        }
    }

    // MARK: Framebuffers

    /// drm_mode_addfb2: flags other than `INTERLACED | MODIFIERS` are EINVAL; the size must be
    /// within the driver's limits (20–8192); `framebuffer_check` (known format, non-zero size,
    /// a handle for each plane, pitch at least a row, no stray modifiers); then
    /// `drm_gem_fb_create`: each handle must name an object (ENOENT) big enough for the planes
    /// (EINVAL). The plane's formats are not checked here (lab `drm-vkms-scanout`: an AR24
    /// framebuffer is added; the primary plane refuses it at commit).
    func addFramebuffer(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_fb_cmd2.self, from: argument)
        if op.flags & ~(UInt32(DRM_MODE_FB_INTERLACED) | UInt32(CDRM_MODE_FB_MODIFIERS)) != 0 { throw .invalidArgument }
        guard (20...8192).contains(op.width), (20...8192).contains(op.height) else { throw .invalidArgument }
        let format = PixelFormatCode(rawValue: op.pixel_format)
        guard let cpp = PixelFormatCode.known[format] else { throw .invalidArgument }
        let handles = withUnsafeBytes(of: op.handles) { Array($0.bindMemory(to: UInt32.self)) }
        let pitches = withUnsafeBytes(of: op.pitches) { Array($0.bindMemory(to: UInt32.self)) }
        let offsets = withUnsafeBytes(of: op.offsets) { Array($0.bindMemory(to: UInt32.self)) }
        let modifiers = withUnsafeBytes(of: op.modifier) { Array($0.bindMemory(to: UInt64.self)) }
        guard handles[0] != 0 else { throw .invalidArgument }
        if UInt64(op.height) * UInt64(pitches[0]) + UInt64(offsets[0]) > UInt64(UInt32.max) { throw .outOfRange }
        guard UInt64(pitches[0]) >= UInt64(op.width) * UInt64(cpp) else { throw .invalidArgument }
        if op.flags & UInt32(CDRM_MODE_FB_MODIFIERS) == 0, modifiers.contains(where: { $0 != 0 }) { throw .invalidArgument }
        for i in 1..<4
        where modifiers[i] != 0
            || (op.flags & UInt32(CDRM_MODE_FB_MODIFIERS) != 0 && (handles[i] != 0 || pitches[i] != 0 || offsets[i] != 0))
        {
            throw .invalidArgument
        }
        guard let object = file.handles[handles[0]] else { throw .noSuchFileOrDirectory }
        let needed = UInt64(op.height - 1) * UInt64(pitches[0]) + UInt64(op.width) * UInt64(cpp) + UInt64(offsets[0])
        guard UInt64(object.size) >= needed else { throw .invalidArgument }
        let framebuffer = SimFramebuffer(
            device: device,
            id: device.newID(),
            width: Int(op.width),
            height: Int(op.height),
            format: format,
            objects: [object],
            pitches: [Int(pitches[0])],
            offsets: [Int(offsets[0])]
        )
        framebuffer.owner = file
        framebuffer.get()  // the file's list
        device.framebuffers[framebuffer.id] = framebuffer
        file.framebuffers.append(framebuffer.id)
        op.fb_id = framebuffer.id
        argument!.storeBytes(of: op, as: drm_mode_fb_cmd2.self)
        return 0
    }

    /// drm_mode_rmfb: ENOENT for a framebuffer this file did not add; one still on a plane is
    /// taken off first (`drm_framebuffer_remove`: the plane, and for the primary plane the
    /// CRTC and its connectors, are turned off).
    func removeFramebuffer(
        _ argument: UnsafeMutableRawPointer?,
        _ file: DRMOpenFile,
        _ context: Context
    ) throws(Errno) -> IoctlOutcome {
        let id = try UserMemory.load(UInt32.self, from: argument)
        guard let index = file.framebuffers.firstIndex(of: id) else { throw .noSuchFileOrDirectory }
        file.framebuffers.remove(at: index)
        removeFramebuffer(id, context.machine)
        return .done(0)
    }

    /// Takes framebuffer `id` off screen if needed and drops its file's reference.
    func removeFramebuffer(_ id: UInt32, _ machine: Machine) {
        guard let framebuffer = device.framebuffers[id] else { return }
        if committed.uses(framebuffer) || scanout.uses(framebuffer) || pending != nil {
            var off = committed
            off.takeOff(framebuffer)
            if let pending { finish(pending, machine) }
            replace(&committed, with: off, machine)
            replace(&scanout, with: off, machine)
        }
        framebuffer.put(machine)
    }
}

/// A weak reference, for lists of files.
struct Weak<Value: AnyObject> {
    weak var value: Value?
    init(_ value: Value) { self.value = value }
}
