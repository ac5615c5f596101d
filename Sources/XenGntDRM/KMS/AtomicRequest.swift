internal import CDRM
import SystemPackage
import XenGnt

/// An atomic commit being built: property values per object, sent as one
/// `DRM_IOCTL_MODE_ATOMIC` (objects in order, each with its properties).
struct AtomicRequest {
    private(set) var objects: [(id: UInt32, properties: [(id: UInt32, value: UInt64)])] = []

    /// Sets property `property` of object `object` to `value`.
    mutating func set(_ object: UInt32, _ property: UInt32, _ value: UInt64) {
        if let i = objects.firstIndex(where: { $0.id == object }) {
            objects[i].properties.append((property, value))
        } else {
            objects.append((object, [(property, value)]))
        }
    }

    /// Sends the request with `flags` (`DRM_MODE_ATOMIC_*`, `DRM_MODE_PAGE_FLIP_EVENT`).
    func commit(on file: DRMFile, flags: UInt32, userData: UInt64 = 0) throws(Errno) {
        let ids = KernelArray<UInt32>(count: objects.count)
        let counts = KernelArray<UInt32>(count: objects.count)
        let total = objects.reduce(0) { $0 + $1.properties.count }
        let properties = KernelArray<UInt32>(count: total)
        let values = KernelArray<UInt64>(count: total)
        var next = 0
        for (i, object) in objects.enumerated() {
            ids.buffer[i] = object.id
            counts.buffer[i] = UInt32(object.properties.count)
            for property in object.properties {
                properties.buffer[next] = property.id
                values.buffer[next] = property.value
                next += 1
            }
        }
        var argument = drm_mode_atomic()
        argument.flags = flags
        argument.count_objs = UInt32(objects.count)
        argument.objs_ptr = ids.address
        argument.count_props_ptr = counts.address
        argument.props_ptr = properties.address
        argument.prop_values_ptr = values.address
        argument.user_data = userData
        file.retryParked()
        try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in try file.ioctl(DRMRequest.atomic, raw.baseAddress) }
    }
}

/// The property ids a scanout sets, read once.
struct ScanoutProperties: Sendable {
    let connectorCRTC: UInt32
    let crtcActive: UInt32, crtcMode: UInt32
    let planeFB: UInt32, planeCRTC: UInt32
    let srcX: UInt32, srcY: UInt32, srcW: UInt32, srcH: UInt32
    let crtcX: UInt32, crtcY: UInt32, crtcW: UInt32, crtcH: UInt32

    init(device: DRMDevice, connector: UInt32, crtc: UInt32, plane: UInt32) throws(XenGntError) {
        let c = try device.properties(of: connector, type: .connector)
        let r = try device.properties(of: crtc, type: .crtc)
        let p = try device.properties(of: plane, type: .plane)
        func id(_ table: [String: PropertyValue], _ name: String) throws(XenGntError) -> UInt32 {
            guard let value = table[name] else {
                throw XenGntError(
                    .atomicRequired,
                    .setMode,
                    path: device.path,
                    detail: "the property \(name) is missing, so mode setting"
                )
            }
            return value.id
        }
        connectorCRTC = try id(c, "CRTC_ID")
        crtcActive = try id(r, "ACTIVE")
        crtcMode = try id(r, "MODE_ID")
        planeFB = try id(p, "FB_ID")
        planeCRTC = try id(p, "CRTC_ID")
        srcX = try id(p, "SRC_X")
        srcY = try id(p, "SRC_Y")
        srcW = try id(p, "SRC_W")
        srcH = try id(p, "SRC_H")
        crtcX = try id(p, "CRTC_X")
        crtcY = try id(p, "CRTC_Y")
        crtcW = try id(p, "CRTC_W")
        crtcH = try id(p, "CRTC_H")
    }
}
