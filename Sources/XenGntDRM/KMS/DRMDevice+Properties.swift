internal import CDRM
import SystemPackage
public import XenGnt

/// A property of a mode-setting object: its id (what an atomic commit names) and its value.
public struct PropertyValue: Sendable, Hashable {
    public let id: UInt32
    public let value: UInt64
}

/// The kind of a mode-setting object, for property calls.
public enum DisplayObjectType: Sendable, Hashable {
    case crtc, connector, plane

    var rawValue: UInt32 {
        switch self {
        case .crtc: UInt32(DRM_MODE_OBJECT_CRTC)
        case .connector: UInt32(DRM_MODE_OBJECT_CONNECTOR)
        case .plane: UInt32(DRM_MODE_OBJECT_PLANE)
        }
    }
}

extension DRMDevice {
    /// The properties of object `id` by name (`CRTC_ID`, `FB_ID`, `MODE_ID`, `ACTIVE`,
    /// `WRITEBACK_FB_ID`, ...). Names are read once per property and cached.
    ///
    /// The corresponding ioctls are `DRM_IOCTL_MODE_OBJ_GETPROPERTIES` and
    /// `DRM_IOCTL_MODE_GETPROPERTY`.
    public func properties(of id: UInt32, type: DisplayObjectType) throws(XenGntError) -> [String: PropertyValue] {
        try properties(of: id, type: type.rawValue)
    }

    func properties(of id: UInt32, type: UInt32) throws(XenGntError) -> [String: PropertyValue] {
        var counts = drm_mode_obj_get_properties()
        counts.obj_id = id
        counts.obj_type = type
        try file.ioctl(DRMRequest.objectGetProperties, &counts, .displayResources)
        let ids = KernelArray<UInt32>(count: Int(counts.count_props))
        let values = KernelArray<UInt64>(count: Int(counts.count_props))
        var argument = counts
        argument.props_ptr = ids.address
        argument.prop_values_ptr = values.address
        try file.ioctl(DRMRequest.objectGetProperties, &argument, .displayResources)
        let count = Int(min(argument.count_props, counts.count_props))
        var result: [String: PropertyValue] = [:]
        for (property, value) in zip(ids.prefix(count), values.prefix(count)) {
            result[try propertyName(property)] = PropertyValue(id: property, value: value)
        }
        return result
    }

    /// The name of property `id`.
    func propertyName(_ id: UInt32) throws(XenGntError) -> String {
        if let name = file.cachedPropertyName(id) { return name }
        var argument = drm_mode_get_property()
        argument.prop_id = id
        try file.ioctl(DRMRequest.getProperty, &argument, .displayResources)
        let name = withUnsafeBytes(of: &argument.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        file.cachePropertyName(id, name)
        return name
    }

    /// The bytes of property blob `id` (a mode, `IN_FORMATS`, `WRITEBACK_PIXEL_FORMATS`).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_GETPROPBLOB`.
    public func propertyBlob(_ id: UInt32) throws(XenGntError) -> [UInt8] {
        var counts = drm_mode_get_blob()
        counts.blob_id = id
        try file.ioctl(DRMRequest.getPropertyBlob, &counts, .displayResources)
        let data = KernelArray<UInt8>(count: Int(counts.length))
        var argument = counts
        argument.data = data.address
        try file.ioctl(DRMRequest.getPropertyBlob, &argument, .displayResources)
        return data.prefix(min(argument.length, counts.length))
    }

    /// The formats a writeback connector writes (`WRITEBACK_PIXEL_FORMATS`).
    public func writebackFormats(of connector: Connector) throws(XenGntError) -> [PixelFormat] {
        guard let blob = try properties(of: connector.id, type: .connector)["WRITEBACK_PIXEL_FORMATS"], blob.value != 0 else {
            return []
        }
        let bytes = try propertyBlob(UInt32(truncatingIfNeeded: blob.value))
        return bytes.withUnsafeBytes { raw -> [PixelFormat] in
            (0..<(raw.count / 4)).map { i in PixelFormat(rawValue: raw.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)) }
        }
    }

    /// Creates a property blob holding `bytes` (a mode for `MODE_ID`).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_CREATEPROPBLOB`.
    func createBlob(_ bytes: UnsafeRawBufferPointer, _ operation: XenGntError.Operation) throws(XenGntError) -> UInt32 {
        var argument = drm_mode_create_blob(
            data: UInt64(UInt(bitPattern: bytes.baseAddress)),
            length: UInt32(bytes.count),
            blob_id: 0
        )
        try file.ioctl(DRMRequest.createPropertyBlob, &argument, operation)
        return argument.blob_id
    }
}
