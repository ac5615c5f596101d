internal import CDRM
import SystemPackage
import XenGnt

/// The ioctls that describe the display (Linux 6.1 `drm_mode_config.c`, `drm_connector.c`,
/// `drm_crtc.c`, `drm_plane.c`, `drm_encoder.c`, `drm_mode_object.c`, `drm_property.c`).
extension KMS {
    /// Copies `values` to the caller's array at `address` when it has room for them all
    /// (`count` is what the caller said), as the kernel's two-call lists do.
    private func copyOut<T>(_ values: [T], to address: UInt64, room count: UInt32) throws(Errno) {
        guard !values.isEmpty, Int(count) >= values.count else { return }
        let target = try UserMemory.check(
            UnsafeMutableRawPointer(bitPattern: UInt(address)),
            bytes: values.count * MemoryLayout<T>.stride
        )
        values.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
    }

    /// drm_mode_getresources: writeback connectors only for clients that asked for them (the
    /// one place Linux 6.1 hides them; lab `drm-vkms-resources`); framebuffers are this file's;
    /// sizes are vkms's limits.
    func getResources(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_card_res.self, from: argument)
        let connectors = file.writebackConnectors ? [ids.display, ids.writeback] : [ids.display]
        let encoders = [ids.displayEncoder, ids.writebackEncoder]
        try copyOut(file.framebuffers, to: op.fb_id_ptr, room: op.count_fbs)
        try copyOut([ids.crtc], to: op.crtc_id_ptr, room: op.count_crtcs)
        try copyOut(connectors, to: op.connector_id_ptr, room: op.count_connectors)
        try copyOut(encoders, to: op.encoder_id_ptr, room: op.count_encoders)
        op.count_fbs = UInt32(file.framebuffers.count)
        op.count_crtcs = 1
        op.count_connectors = UInt32(connectors.count)
        op.count_encoders = UInt32(encoders.count)
        op.min_width = 20
        op.max_width = 8192
        op.min_height = 20
        op.max_height = 8192
        argument!.storeBytes(of: op, as: drm_mode_card_res.self)
        return 0
    }

    /// drm_mode_getconnector: ENOENT for an id that is not a connector; modes (the DMT modes
    /// up to 8192×8192, 1024×768 preferred: lab `drm-vkms-resources`), encoders, status.
    func getConnector(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_connector.self, from: argument)
        let isWriteback: Bool
        switch op.connector_id {
        case ids.display: isWriteback = false
        case ids.writeback: isWriteback = true
        default: throw .noSuchFileOrDirectory
        }
        // A writeback connector's modes are the same list, none preferred.
        let modes =
            isWriteback
            ? self.modes.map {
                var m = $0
                m.type &= ~UInt32(DRM_MODE_TYPE_PREFERRED)
                return m
            } : self.modes
        try copyOut(modes, to: op.modes_ptr, room: op.count_modes)
        try copyOut([isWriteback ? ids.writebackEncoder : ids.displayEncoder], to: op.encoders_ptr, room: op.count_encoders)
        let properties = ids.properties(of: op.connector_id)!.filter { file.atomic || !(ids.describe($0)?.atomic ?? false) }
        try copyOut(properties, to: op.props_ptr, room: op.count_props)
        try copyOut(properties.map { value(of: $0, on: op.connector_id) }, to: op.prop_values_ptr, room: op.count_props)
        op.count_modes = UInt32(modes.count)
        op.count_encoders = 1
        op.count_props = UInt32(properties.count)
        let attached = isWriteback ? committed.writebackOnCRTC : committed.displayOnCRTC
        op.encoder_id = attached ? (isWriteback ? ids.writebackEncoder : ids.displayEncoder) : 0
        op.connector_type = UInt32(isWriteback ? DRM_MODE_CONNECTOR_WRITEBACK : DRM_MODE_CONNECTOR_VIRTUAL)
        op.connector_type_id = 1
        op.connection = 1  // connector_status_connected
        op.mm_width = 0
        op.mm_height = 0
        op.subpixel = 1  // SubPixelUnknown
        argument!.storeBytes(of: op, as: drm_mode_get_connector.self)
        return 0
    }

    /// drm_mode_getencoder: both encoders feed CRTC 0; vkms's clone only themselves (6.1 leaves
    /// `possible_clones` 0, filled with the encoder's own bit), the DMA display's clone each
    /// other.
    func getEncoder(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_encoder.self, from: argument)
        guard op.encoder_id == ids.displayEncoder || op.encoder_id == ids.writebackEncoder else { throw .noSuchFileOrDirectory }
        let isWriteback = op.encoder_id == ids.writebackEncoder
        op.encoder_type = UInt32(DRM_MODE_ENCODER_VIRTUAL)
        op.crtc_id = (isWriteback ? committed.writebackOnCRTC : committed.displayOnCRTC) ? ids.crtc : 0
        op.possible_crtcs = 1
        op.possible_clones = device.kind.writebackClones ? 0b11 : (isWriteback ? 0b10 : 0b01)
        argument!.storeBytes(of: op, as: drm_mode_get_encoder.self)
        return 0
    }

    /// drm_mode_getcrtc: the primary plane's framebuffer and the mode.
    func getCRTC(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_crtc.self, from: argument)
        guard op.crtc_id == ids.crtc else { throw .noSuchFileOrDirectory }
        op.fb_id = committed.primary.framebuffer?.id ?? 0
        op.x = UInt32(committed.primary.srcX >> 16)
        op.y = UInt32(committed.primary.srcY >> 16)
        op.gamma_size = 0
        if let mode = committed.mode {
            op.mode_valid = 1
            op.mode = mode
        } else {
            op.mode_valid = 0
            op.mode = drm_mode_modeinfo()
        }
        argument!.storeBytes(of: op, as: drm_mode_crtc.self)
        return 0
    }

    /// drm_mode_getplane_res: without universal planes (atomic implies them) only overlay
    /// planes are listed, and vkms has none by default.
    func getPlaneResources(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_plane_res.self, from: argument)
        let planes = file.universalPlanes ? [ids.primary, ids.cursor] : []
        try copyOut(planes, to: op.plane_id_ptr, room: op.count_planes)
        op.count_planes = UInt32(planes.count)
        argument!.storeBytes(of: op, as: drm_mode_get_plane_res.self)
        return 0
    }

    /// drm_mode_getplane: its CRTC, framebuffer and formats (lab `drm-vkms-resources`).
    func getPlane(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_plane.self, from: argument)
        let state: PlaneState
        let formats: [PixelFormatCode]
        switch op.plane_id {
        case ids.primary: (state, formats) = (committed.primary, primaryFormats)
        case ids.cursor: (state, formats) = (committed.cursor, cursorFormats)
        default: throw .noSuchFileOrDirectory
        }
        try copyOut(formats.map(\.rawValue), to: op.format_type_ptr, room: op.count_format_types)
        op.count_format_types = UInt32(formats.count)
        op.crtc_id = state.onCRTC ? ids.crtc : 0
        op.fb_id = state.framebuffer?.id ?? 0
        op.possible_crtcs = 1
        op.gamma_size = 0
        argument!.storeBytes(of: op, as: drm_mode_get_plane.self)
        return 0
    }

    /// drm_mode_obj_get_properties_ioctl: ENOENT for an unknown object or a type that does not
    /// match; atomic-only properties only for atomic clients.
    func objectGetProperties(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_obj_get_properties.self, from: argument)
        guard let type = ids.objectType(op.obj_id), op.obj_type == 0 || op.obj_type == type else { throw .noSuchFileOrDirectory }
        let properties = (ids.properties(of: op.obj_id) ?? []).filter { file.atomic || !(ids.describe($0)?.atomic ?? false) }
        try copyOut(properties, to: op.props_ptr, room: op.count_props)
        try copyOut(properties.map { value(of: $0, on: op.obj_id) }, to: op.prop_values_ptr, room: op.count_props)
        op.count_props = UInt32(properties.count)
        argument!.storeBytes(of: op, as: drm_mode_obj_get_properties.self)
        return 0
    }

    /// The value a property of `object` reports now.
    func value(of property: UInt32, on object: UInt32) -> UInt64 {
        let plane = object == ids.cursor ? committed.cursor : committed.primary
        switch property {
        case ids.type: return object == ids.cursor ? 2 : 1  // enum drm_plane_type: primary 1, cursor 2
        case ids.fbID: return UInt64(plane.framebuffer?.id ?? 0)
        case ids.crtcID:
            let on =
                object == ids.display
                ? committed.displayOnCRTC : object == ids.writeback ? committed.writebackOnCRTC : plane.onCRTC
            return on ? UInt64(ids.crtc) : 0
        case ids.srcX: return plane.srcX
        case ids.srcY: return plane.srcY
        case ids.srcW: return plane.srcW
        case ids.srcH: return plane.srcH
        case ids.crtcX: return UInt64(bitPattern: plane.crtcX)
        case ids.crtcY: return UInt64(bitPattern: plane.crtcY)
        case ids.crtcW: return plane.crtcW
        case ids.crtcH: return plane.crtcH
        case ids.active: return committed.active ? 1 : 0
        case ids.modeID: return UInt64(committed.modeBlob)
        case ids.writebackFormats: return UInt64(writebackFormatsBlob)
        default: return 0  // WRITEBACK_FB_ID and the fence pointer read back as 0 (one-shot)
        }
    }

    /// drm_mode_getproperty_ioctl: the name and flags (no values or enums are listed).
    func getProperty(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_property.self, from: argument)
        guard let property = ids.describe(op.prop_id) else { throw .noSuchFileOrDirectory }
        withUnsafeMutableBytes(of: &op.name) { raw in
            raw.initializeMemory(as: UInt8.self, repeating: 0)
            raw.copyBytes(from: Array(property.name.utf8.prefix(raw.count - 1)))
        }
        op.flags =
            (property.atomic ? UInt32(DRM_MODE_PROP_ATOMIC) : 0) | (property.immutable ? UInt32(DRM_MODE_PROP_IMMUTABLE) : 0)
        op.count_values = 0
        op.count_enum_blobs = 0
        argument!.storeBytes(of: op, as: drm_mode_get_property.self)
        return 0
    }

    /// drm_mode_getblob_ioctl: the length, and the data when the caller made room for it all.
    func getPropertyBlob(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_get_blob.self, from: argument)
        guard let data = device.blobs[op.blob_id] else { throw .noSuchFileOrDirectory }
        if op.length >= UInt32(data.count), !data.isEmpty {
            let target = try UserMemory.check(UnsafeMutableRawPointer(bitPattern: UInt(op.data)), bytes: data.count)
            data.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: data.count) }
        }
        op.length = UInt32(data.count)
        argument!.storeBytes(of: op, as: drm_mode_get_blob.self)
        return 0
    }

    /// drm_mode_createblob_ioctl: EINVAL for an empty blob; EFAULT for unreadable data.
    func createPropertyBlob(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_create_blob.self, from: argument)
        guard op.length > 0 else { throw .invalidArgument }
        let source = try UserMemory.check(UnsafeMutableRawPointer(bitPattern: UInt(op.data)), bytes: Int(op.length))
        op.blob_id = device.newID()
        device.blobs[op.blob_id] = Array(UnsafeRawBufferPointer(start: source, count: Int(op.length)))
        file.blobs.insert(op.blob_id)
        argument!.storeBytes(of: op, as: drm_mode_create_blob.self)
        return 0
    }

    /// drm_mode_destroyblob_ioctl: ENOENT unless this file created it. A CRTC using it keeps
    /// its mode.
    func destroyPropertyBlob(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile) throws(Errno) -> Int32 {
        let op = try UserMemory.load(drm_mode_destroy_blob.self, from: argument)
        guard file.blobs.remove(op.blob_id) != nil else { throw .noSuchFileOrDirectory }
        if committed.modeBlob != op.blob_id { device.blobs[op.blob_id] = nil }
        return 0
    }
}
