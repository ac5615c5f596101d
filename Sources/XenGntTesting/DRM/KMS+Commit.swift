internal import CDRM
import SystemPackage
import XenGnt

/// Mode setting: atomic commits, and the legacy `SETCRTC` and `PAGE_FLIP` (Linux 6.1
/// `drm_atomic_uapi.c`, `drm_atomic.c`, `drm_atomic_helper.c`, `vkms_plane.c`,
/// `vkms_writeback.c`).
extension KMS {
    struct CommitFlags {
        var nonblocking = false
        var testOnly = false
        var allowModeset = false
        var event: UInt64?
    }

    /// drm_mode_atomic_ioctl: only for atomic clients (EINVAL); flags are checked (an undefined
    /// one, `PAGE_FLIP_ASYNC`, or `TEST_ONLY` with an event: EINVAL); each object must exist
    /// (ENOENT) and have each property (ENOENT); then the commit.
    func atomic(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile, _ context: Context) throws(Errno) -> IoctlOutcome {
        let op = try UserMemory.load(drm_mode_atomic.self, from: argument)
        guard file.atomic else { throw .invalidArgument }
        let known =
            UInt32(CDRM_MODE_PAGE_FLIP_EVENT) | UInt32(DRM_MODE_PAGE_FLIP_ASYNC) | UInt32(CDRM_MODE_ATOMIC_TEST_ONLY)
            | UInt32(CDRM_MODE_ATOMIC_NONBLOCK) | UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET)
        if op.flags & ~known != 0 || op.reserved != 0 || op.flags & UInt32(DRM_MODE_PAGE_FLIP_ASYNC) != 0 {
            throw .invalidArgument
        }
        if op.flags & UInt32(CDRM_MODE_ATOMIC_TEST_ONLY) != 0, op.flags & UInt32(CDRM_MODE_PAGE_FLIP_EVENT) != 0 {
            throw .invalidArgument
        }
        let count = Int(op.count_objs)
        guard count <= 64 else { throw .invalidArgument }
        let objects = try UserMemory.array(of: UInt32.self, at: pointer(op.objs_ptr), offset: 0, count: count)
        let counts = try UserMemory.array(of: UInt32.self, at: pointer(op.count_props_ptr), offset: 0, count: count)
        var new = committed
        var writeback: SimFramebuffer?
        var fence: UnsafeMutableRawPointer?
        var next = 0
        for i in 0..<count {
            let object = objects[i]
            // Only GETRESOURCES hides writeback connectors from clients without the cap.
            guard let owned = ids.properties(of: object) else { throw .noSuchFileOrDirectory }
            let n = Int(counts[i])
            guard n <= 64 else { throw .invalidArgument }
            let properties = try UserMemory.array(of: UInt32.self, at: pointer(op.props_ptr), offset: next * 4, count: n)
            let values = try UserMemory.array(of: UInt64.self, at: pointer(op.prop_values_ptr), offset: next * 8, count: n)
            for j in 0..<n {
                guard owned.contains(properties[j]) else { throw .noSuchFileOrDirectory }
                try set(properties[j], to: values[j], of: object, in: &new, writeback: &writeback, fence: &fence)
            }
            next += n
        }
        var flags = CommitFlags()
        flags.nonblocking = op.flags & UInt32(CDRM_MODE_ATOMIC_NONBLOCK) != 0
        flags.testOnly = op.flags & UInt32(CDRM_MODE_ATOMIC_TEST_ONLY) != 0
        flags.allowModeset = op.flags & UInt32(CDRM_MODE_ATOMIC_ALLOW_MODESET) != 0
        if op.flags & UInt32(CDRM_MODE_PAGE_FLIP_EVENT) != 0 { flags.event = op.user_data }
        return try commit(new, writeback: writeback, fence: fence, flags, file, context)
    }

    private func pointer(_ value: UInt64) throws(Errno) -> UnsafeMutableRawPointer {
        guard let pointer = UnsafeMutableRawPointer(bitPattern: UInt(value)) else { throw .badAddress }
        return pointer
    }

    /// drm_atomic_set_property: a framebuffer id that names none is no framebuffer; a CRTC id
    /// that names none is EACCES; `MODE_ID` must name a blob holding a valid mode (EINVAL);
    /// `WRITEBACK_OUT_FENCE_PTR` is written -1 at once (EFAULT if it cannot be); immutable
    /// properties cannot be set (EINVAL).
    private func set(
        _ property: UInt32,
        to value: UInt64,
        of object: UInt32,
        in state: inout DisplayState,
        writeback: inout SimFramebuffer?,
        fence: inout UnsafeMutableRawPointer?
    ) throws(Errno) {
        func crtc() throws(Errno) -> Bool {
            if value == 0 { return false }
            guard value == UInt64(ids.crtc) else { throw .permissionDenied }
            return true
        }
        if object == ids.primary || object == ids.cursor {
            var plane = object == ids.primary ? state.primary : state.cursor
            switch property {
            case ids.fbID: plane.framebuffer = value == 0 ? nil : device.framebuffers[UInt32(truncatingIfNeeded: value)]
            case ids.crtcID: plane.onCRTC = try crtc()
            case ids.srcX: plane.srcX = value
            case ids.srcY: plane.srcY = value
            case ids.srcW: plane.srcW = value
            case ids.srcH: plane.srcH = value
            case ids.crtcX: plane.crtcX = Int64(Int32(truncatingIfNeeded: value))
            case ids.crtcY: plane.crtcY = Int64(Int32(truncatingIfNeeded: value))
            case ids.crtcW: plane.crtcW = value
            case ids.crtcH: plane.crtcH = value
            default: throw .invalidArgument
            }
            if object == ids.primary { state.primary = plane } else { state.cursor = plane }
            return
        }
        switch (object, property) {
        case (ids.crtc, ids.active):
            state.active = value != 0
        case (ids.crtc, ids.modeID):
            if value == 0 {
                state.mode = nil
                state.modeBlob = 0
            } else {
                guard let blob = device.blobs[UInt32(truncatingIfNeeded: value)],
                    blob.count == MemoryLayout<drm_mode_modeinfo>.size
                else { throw .invalidArgument }
                let mode = blob.withUnsafeBytes { $0.loadUnaligned(as: drm_mode_modeinfo.self) }
                guard isValidMode(mode) else { throw .invalidArgument }
                state.mode = mode
                state.modeBlob = UInt32(truncatingIfNeeded: value)
            }
        case (ids.display, ids.crtcID):
            state.displayOnCRTC = try crtc()
        case (ids.writeback, ids.crtcID):
            state.writebackOnCRTC = try crtc()
        case (ids.writeback, ids.writebackFB):
            writeback = value == 0 ? nil : device.framebuffers[UInt32(truncatingIfNeeded: value)]
        case (ids.writeback, ids.writebackFence):
            guard value != 0 else { return }
            let target = try UserMemory.check(UnsafeMutableRawPointer(bitPattern: UInt(value)), bytes: 4)
            target.storeBytes(of: Int32(-1), as: Int32.self)
            fence = target
        default:
            throw .invalidArgument
        }
    }

    /// The atomic check, the driver's `prepare_fb`, then the commit: `TEST_ONLY` stops after
    /// the check; a nonblocking commit with one still pending is EBUSY; a blocking one waits
    /// for it (`stall_checks`), then takes effect at once; a nonblocking one takes effect at
    /// the next vblank, with its flip-complete event.
    func commit(
        _ new: DisplayState,
        writeback: SimFramebuffer?,
        fence: UnsafeMutableRawPointer?,
        _ flags: CommitFlags,
        _ file: DRMOpenFile,
        _ context: Context
    ) throws(Errno) -> IoctlOutcome {
        try check(new, writeback: writeback, fence: fence != nil, allowModeset: flags.allowModeset)
        if flags.nonblocking, pending != nil { throw .resourceBusy }
        if flags.testOnly { return .done(0) }
        try prepare(new, writeback: writeback)
        let event = flags.event.map { (file: Weak(file), userData: $0) }
        if flags.nonblocking {
            let job = try writeback.map { (framebuffer) throws(Errno) in try makeJob(framebuffer, fence: fence, context) }
            replace(&committed, with: new, context.machine)
            pending = PendingCommit(event: event, writeback: job)
            return .done(0)
        }
        let apply = { [self] (machine: Machine, context: Context) throws(Errno) -> Int32 in
            let job = try writeback.map { (framebuffer) throws(Errno) in try makeJob(framebuffer, fence: fence, context) }
            replace(&committed, with: new, machine)
            finish(PendingCommit(event: event, writeback: job), machine)
            return 0
        }
        if pending == nil { return .done(try apply(context.machine, context)) }
        // Hold what the new state shows while it waits.
        for framebuffer in new.framebuffers + [writeback].compactMap({ $0 }) { framebuffer.get() }
        let kernel = context.kernel
        return .block(
            BlockedCall(
                isReady: { [self] machine in
                    if pending != nil, clock(of: kernel) == .automatic { vblank(machine) }
                    return pending == nil
                },
                finish: { (machine) throws(Errno) -> Int32 in
                    defer { for framebuffer in new.framebuffers + [writeback].compactMap({ $0 }) { framebuffer.put(machine) } }
                    return try apply(machine, context)
                }
            )
        )
    }

    /// drm_atomic_check_only, with vkms's plane and writeback checks.
    private func check(_ new: DisplayState, writeback: SimFramebuffer?, fence: Bool, allowModeset: Bool) throws(Errno) {
        for (plane, formats, primary) in [(new.primary, primaryFormats, true), (new.cursor, cursorFormats, false)] {
            // drm_atomic_plane_check: a framebuffer without a CRTC, or the reverse, is EINVAL.
            if (plane.framebuffer != nil) != plane.onCRTC { throw .invalidArgument }
            guard let framebuffer = plane.framebuffer else { continue }
            // A format the plane does not take (vkms's primary: no AR24; lab `drm-vkms-resources`).
            if !formats.contains(framebuffer.format) { throw .invalidArgument }
            // The source must lie in the framebuffer: ENOSPC.
            let width = UInt64(framebuffer.width) << 16
            let height = UInt64(framebuffer.height) << 16
            if plane.srcW > width || plane.srcX > width - plane.srcW || plane.srcH > height || plane.srcY > height - plane.srcH {
                throw .noSpace
            }
            // vkms_plane_atomic_check: the primary plane must be visible and cover the CRTC.
            guard let mode = new.mode else {
                if primary { throw .invalidArgument }
                continue
            }
            if plane.srcW >> 16 != plane.crtcW || plane.srcH >> 16 != plane.crtcH { throw .outOfRange }  // no scaling
            if primary,
                plane.crtcX != 0 || plane.crtcY != 0 || plane.crtcW != UInt64(mode.hdisplay)
                    || plane.crtcH != UInt64(mode.vdisplay)
            {
                throw .invalidArgument
            }
        }
        // drm_atomic_helper_check_modeset: an active CRTC needs a mode; enabled exactly when a
        // connector is attached.
        if new.active && new.mode == nil { throw .invalidArgument }
        if (new.mode != nil) != (new.displayOnCRTC || new.writebackOnCRTC) { throw .invalidArgument }
        // drm_atomic_connector_check and vkms_wb_encoder_atomic_check.
        if let writeback {
            guard new.writebackOnCRTC, new.active, let mode = new.mode else { throw .invalidArgument }
            if device.kind == .vkms, writeback.width != Int(mode.hdisplay) || writeback.height != Int(mode.vdisplay) {
                throw .invalidArgument
            }
            if !writebackFormats.contains(writeback.format) { throw .invalidArgument }
        } else if fence {
            throw .invalidArgument
        }
        if new.needsModeset(from: committed) {
            // drm_atomic_check_valid_clones: vkms's encoders clone only themselves (lab
            // `drm-vkms-scanout`: Virtual-1 and Writeback-1 on one CRTC is EINVAL).
            if new.displayOnCRTC, new.writebackOnCRTC, !device.kind.writebackClones { throw .invalidArgument }
            if !allowModeset { throw .invalidArgument }
        }
    }

    /// vkms's `prepare_fb` (`drm_gem_prepare_shadow_fb`) vmaps every framebuffer it will read,
    /// and its writeback job's: a buffer without vmap fails the real commit with EINVAL, after
    /// the check passed (lab `drm-vkms-scanout`: a udmabuf; `drm-export-to-display`: a gntdev
    /// export).
    private func prepare(_ new: DisplayState, writeback: SimFramebuffer?) throws(Errno) {
        guard device.kind.composesWithCPU else { return }
        for framebuffer in new.framebuffers + [writeback].compactMap({ $0 }) where !framebuffer.objects.allSatisfy(\.canVmap) {
            throw .invalidArgument
        }
    }

    private func makeJob(
        _ framebuffer: SimFramebuffer,
        fence: UnsafeMutableRawPointer?,
        _ context: Context
    ) throws(Errno) -> WritebackJob {
        framebuffer.get()
        guard let fence else { return WritebackJob(framebuffer: framebuffer, fence: nil) }
        let file = SyncFileSim(kernel: context.kernel, kms: self)
        let fd = try context.machine.newDescriptor()
        context.install(fd, file)
        fence.storeBytes(of: fd, as: Int32.self)
        return WritebackJob(framebuffer: framebuffer, fence: file)
    }

    /// Moves `state` to `new`, taking references on what it shows and dropping the old ones.
    func replace(_ state: inout DisplayState, with new: DisplayState, _ machine: Machine) {
        for framebuffer in new.framebuffers { framebuffer.get() }
        let old = state
        state = new
        for framebuffer in old.framebuffers { framebuffer.put(machine) }
    }

    // MARK: Legacy

    /// drm_mode_setcrtc (through drm_atomic_helper_set_config): with a mode, the framebuffer
    /// (−1: the current one) full screen from (x, y) on the listed connectors; without, the
    /// CRTC off (a framebuffer or connectors then are EINVAL). Blocking, mode setting allowed.
    func setCRTC(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile, _ context: Context) throws(Errno) -> IoctlOutcome {
        let op = try UserMemory.load(drm_mode_crtc.self, from: argument)
        guard op.crtc_id == ids.crtc else { throw .noSuchFileOrDirectory }
        var new = committed
        if op.mode_valid != 0 {
            guard isValidMode(op.mode), op.count_connectors > 0, op.count_connectors <= 8 else { throw .invalidArgument }
            let connectors = try UserMemory.array(
                of: UInt32.self,
                at: pointer(op.set_connectors_ptr),
                offset: 0,
                count: Int(op.count_connectors)
            )
            for i in 0..<connectors.count where connectors[i] != ids.display { throw .noSuchFileOrDirectory }
            let framebuffer: SimFramebuffer
            if op.fb_id == UInt32.max {
                guard let current = committed.primary.framebuffer else { throw .invalidArgument }
                framebuffer = current
            } else {
                guard let found = device.framebuffers[op.fb_id] else { throw .noSuchFileOrDirectory }
                framebuffer = found
            }
            // drm_crtc_check_viewport: the mode must fit in the framebuffer from (x, y).
            if Int(op.x) + Int(op.mode.hdisplay) > framebuffer.width || Int(op.y) + Int(op.mode.vdisplay) > framebuffer.height {
                throw .noSpace
            }
            new.mode = op.mode
            new.modeBlob = 0
            new.active = true
            new.displayOnCRTC = true
            new.primary = PlaneState(
                framebuffer: framebuffer,
                onCRTC: true,
                srcX: UInt64(op.x) << 16,
                srcY: UInt64(op.y) << 16,
                srcW: UInt64(op.mode.hdisplay) << 16,
                srcH: UInt64(op.mode.vdisplay) << 16,
                crtcX: 0,
                crtcY: 0,
                crtcW: UInt64(op.mode.hdisplay),
                crtcH: UInt64(op.mode.vdisplay)
            )
        } else {
            guard op.fb_id == 0, op.count_connectors == 0 else { throw .invalidArgument }
            new = DisplayState()
            new.cursor = committed.cursor.onCRTC ? PlaneState() : committed.cursor
        }
        var flags = CommitFlags()
        flags.allowModeset = true
        return try commit(new, writeback: nil, fence: nil, flags, file, context)
    }

    /// drm_mode_page_flip_ioctl: undefined flags or `ASYNC` are EINVAL; the CRTC must be on
    /// with a framebuffer (EINVAL), the new one of the same format (EINVAL); a nonblocking
    /// commit, EBUSY while one is pending.
    func pageFlip(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile, _ context: Context) throws(Errno) -> IoctlOutcome {
        let op = try UserMemory.load(drm_mode_crtc_page_flip.self, from: argument)
        if op.flags & ~(UInt32(CDRM_MODE_PAGE_FLIP_EVENT) | UInt32(DRM_MODE_PAGE_FLIP_ASYNC)) != 0
            || op.flags & UInt32(DRM_MODE_PAGE_FLIP_ASYNC) != 0
        {
            throw .invalidArgument
        }
        guard op.crtc_id == ids.crtc else { throw .noSuchFileOrDirectory }
        guard let framebuffer = device.framebuffers[op.fb_id] else { throw .noSuchFileOrDirectory }
        guard committed.active, let current = committed.primary.framebuffer else { throw .invalidArgument }
        if current.format != framebuffer.format { throw .invalidArgument }
        var new = committed
        new.primary.framebuffer = framebuffer
        var flags = CommitFlags()
        flags.nonblocking = true
        if op.flags & UInt32(CDRM_MODE_PAGE_FLIP_EVENT) != 0 { flags.event = op.user_data }
        return try commit(new, writeback: nil, fence: nil, flags, file, context)
    }
}
