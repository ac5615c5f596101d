internal import CDRM
import SystemPackage
public import XenGnt

extension DRMDevice {
    /// The device's connectors (with their modes: asking probes them), encoders, CRTCs and
    /// planes. Planes are all listed once atomic mode setting is on (``enableAtomic()``), and
    /// writeback connectors once ``enableWritebackConnectors()`` was called.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/noModesetting`` on a driver without KMS (vgem:
    ///   `EOPNOTSUPP`); ``XenGnt/XenGntError/Code/renderNode`` on a render node (`EACCES`).
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_GETRESOURCES`, `GETCONNECTOR`, `GETENCODER`,
    /// `GETCRTC`, `GETPLANERESOURCES`, `GETPLANE` and `OBJ_GETPROPERTIES`.
    public func resources() throws(XenGntError) -> DisplayResources {
        var counts = drm_mode_card_res()
        var card = drm_mode_card_res()
        var fbs = KernelArray<UInt32>(count: 0)
        var crtcIDs = fbs
        var connectorIDs = fbs
        var encoderIDs = fbs
        // The lists can grow between the two calls (hotplug): ask again until they fit.
        for _ in 0..<8 {
            counts = drm_mode_card_res()
            try file.ioctl(DRMRequest.getResources, &counts, .displayResources)
            fbs = KernelArray(count: Int(counts.count_fbs))
            crtcIDs = KernelArray(count: Int(counts.count_crtcs))
            connectorIDs = KernelArray(count: Int(counts.count_connectors))
            encoderIDs = KernelArray(count: Int(counts.count_encoders))
            card = counts
            card.fb_id_ptr = fbs.address
            card.crtc_id_ptr = crtcIDs.address
            card.connector_id_ptr = connectorIDs.address
            card.encoder_id_ptr = encoderIDs.address
            try file.ioctl(DRMRequest.getResources, &card, .displayResources)
            if card.count_fbs <= counts.count_fbs, card.count_crtcs <= counts.count_crtcs,
                card.count_connectors <= counts.count_connectors, card.count_encoders <= counts.count_encoders
            {
                break
            }
        }
        let crtcs = try crtcIDs.prefix(min(card.count_crtcs, counts.count_crtcs)).enumerated().map {
            (index, id) throws(XenGntError) in
            try crtc(id, index: index)
        }
        let connectors = try connectorIDs.prefix(min(card.count_connectors, counts.count_connectors)).map {
            (id) throws(XenGntError) in
            try connector(id)
        }
        let encoders = try encoderIDs.prefix(min(card.count_encoders, counts.count_encoders)).map { (id) throws(XenGntError) in
            try encoder(id)
        }
        return DisplayResources(
            connectors: connectors,
            encoders: encoders,
            crtcs: crtcs,
            planes: try planes(),
            framebufferIDs: fbs.prefix(min(card.count_fbs, counts.count_fbs)),
            minWidth: Int(card.min_width),
            maxWidth: Int(card.max_width),
            minHeight: Int(card.min_height),
            maxHeight: Int(card.max_height)
        )
    }

    func connector(_ id: UInt32) throws(XenGntError) -> Connector {
        var counts = drm_mode_get_connector()
        counts.connector_id = id
        try file.ioctl(DRMRequest.getConnector, &counts, .displayResources)  // count_modes 0: probe
        var argument = counts
        let modes = KernelArray<drm_mode_modeinfo>(count: Int(counts.count_modes))
        let encoders = KernelArray<UInt32>(count: Int(counts.count_encoders))
        // Properties are read separately (OBJ_GETPROPERTIES); none are asked for here.
        argument.count_props = 0
        argument.props_ptr = 0
        argument.prop_values_ptr = 0
        argument.modes_ptr = modes.address
        argument.encoders_ptr = encoders.address
        try file.ioctl(DRMRequest.getConnector, &argument, .displayResources)
        let status: ConnectionStatus =
            switch argument.connection {
            case 1: .connected
            case 2: .disconnected
            default: .unknown
            }
        return Connector(
            id: id,
            type: argument.connector_type,
            typeIndex: argument.connector_type_id,
            status: status,
            modes: modes.prefix(min(argument.count_modes, counts.count_modes)).map(DisplayMode.init),
            encoderIDs: encoders.prefix(min(argument.count_encoders, counts.count_encoders)),
            currentEncoderID: argument.encoder_id
        )
    }

    func encoder(_ id: UInt32) throws(XenGntError) -> Encoder {
        var argument = drm_mode_get_encoder()
        argument.encoder_id = id
        try file.ioctl(DRMRequest.getEncoder, &argument, .displayResources)
        return Encoder(id: id, type: argument.encoder_type, crtcID: argument.crtc_id, possibleCRTCs: argument.possible_crtcs)
    }

    func crtc(_ id: UInt32, index: Int) throws(XenGntError) -> CRTC {
        var argument = drm_mode_crtc()
        argument.crtc_id = id
        try file.ioctl(DRMRequest.getCRTC, &argument, .displayResources)
        return CRTC(
            id: id,
            index: index,
            framebufferID: argument.fb_id,
            mode: argument.mode_valid != 0 ? DisplayMode(argument.mode) : nil
        )
    }

    func planes() throws(XenGntError) -> [Plane] {
        var counts = drm_mode_get_plane_res()
        try file.ioctl(DRMRequest.getPlaneResources, &counts, .displayResources)
        let ids = KernelArray<UInt32>(count: Int(counts.count_planes))
        var argument = counts
        argument.plane_id_ptr = ids.address
        try file.ioctl(DRMRequest.getPlaneResources, &argument, .displayResources)
        return try ids.prefix(min(argument.count_planes, counts.count_planes)).map { (id) throws(XenGntError) in try plane(id) }
    }

    func plane(_ id: UInt32) throws(XenGntError) -> Plane {
        var counts = drm_mode_get_plane()
        counts.plane_id = id
        try file.ioctl(DRMRequest.getPlane, &counts, .displayResources)
        let formats = KernelArray<UInt32>(count: Int(counts.count_format_types))
        var argument = counts
        argument.format_type_ptr = formats.address
        try file.ioctl(DRMRequest.getPlane, &argument, .displayResources)
        let type = try properties(of: id, type: UInt32(DRM_MODE_OBJECT_PLANE))["type"]?.value
        // The "type" property's values are the kernel's enum drm_plane_type: overlay 0, primary
        // 1, cursor 2 (include/drm/drm_plane.h; not in the uapi headers).
        let kind: PlaneKind =
            switch type {
            case 1: .primary
            case 2: .cursor
            default: .overlay
            }
        return Plane(
            id: id,
            kind: kind,
            crtcID: argument.crtc_id,
            framebufferID: argument.fb_id,
            possibleCRTCs: argument.possible_crtcs,
            formats: formats.prefix(min(argument.count_format_types, counts.count_format_types)).map(PixelFormat.init(rawValue:))
        )
    }
}
