internal import CDRM
import Synchronization
import SystemPackage
public import XenGnt

/// What a DRM device offers, from `DRM_IOCTL_GET_CAP` and `DRM_IOCTL_SET_CLIENT_CAP`.
public struct DRMCapabilities: Sendable, Hashable {
    /// PRIME import of dma-bufs (`DRM_CAP_PRIME` & `DRM_PRIME_CAP_IMPORT`).
    public var primeImport: Bool
    /// PRIME export of GEM handles (`DRM_CAP_PRIME` & `DRM_PRIME_CAP_EXPORT`).
    public var primeExport: Bool
    /// Kernel mode setting: the driver answers KMS capabilities (vgem does not: `EOPNOTSUPP`).
    public var modesetting: Bool
    /// Dumb buffers through KMS (`DRM_CAP_DUMB_BUFFER`); `false` on drivers without KMS even
    /// when, like vgem, they create dumb buffers anyway.
    public var dumbBuffers: Bool
    /// Framebuffers with format modifiers (`DRM_CAP_ADDFB2_MODIFIERS`).
    public var framebufferModifiers: Bool
    /// Atomic mode setting: `DRM_IOCTL_SET_CLIENT_CAP(DRM_CLIENT_CAP_ATOMIC)` succeeded (it is
    /// left on for this device).
    public var atomic: Bool
}

extension DRMDevice {
    /// The value of capability `id` (`DRM_CAP_*`).
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/noModesetting`` for a KMS capability of a driver
    ///   without KMS (vgem).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_GET_CAP`.
    public func capability(_ id: UInt64) throws(XenGntError) -> UInt64 {
        var argument = drm_get_cap(capability: id, value: 0)
        try file.ioctl(DRMRequest.getCap, &argument, .drmCapability)
        return argument.value
    }

    /// What the device offers. Turns atomic mode setting on for this device when the driver
    /// has it (that is how the kernel says whether it has it).
    ///
    /// The corresponding ioctls are `DRM_IOCTL_GET_CAP` and `DRM_IOCTL_SET_CLIENT_CAP`.
    public func capabilities() throws(XenGntError) -> DRMCapabilities {
        let prime = try capability(UInt64(DRM_CAP_PRIME))
        var modesetting = true
        var dumb = false
        do throws(XenGntError) {
            dumb = try capability(UInt64(DRM_CAP_DUMB_BUFFER)) != 0
        } catch  where error.errno == .notSupported {
            modesetting = false
        }
        let modifiers = modesetting ? try capability(UInt64(DRM_CAP_ADDFB2_MODIFIERS)) != 0 : false
        let atomic = node == .primary && modesetting && (try? enableAtomic()) != nil
        return DRMCapabilities(
            primeImport: prime & UInt64(CDRM_PRIME_CAP_IMPORT) != 0,
            primeExport: prime & UInt64(CDRM_PRIME_CAP_EXPORT) != 0,
            modesetting: modesetting,
            dumbBuffers: dumb,
            framebufferModifiers: modifiers,
            atomic: atomic
        )
    }

    /// Sets a client capability (`DRM_CLIENT_CAP_*`) of this descriptor.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/renderNode`` on a render node (`EACCES`),
    ///   ``XenGnt/XenGntError/Code/noModesetting`` on a driver without KMS (`EOPNOTSUPP`).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_SET_CLIENT_CAP`.
    public func setClientCapability(_ id: UInt64, to value: UInt64) throws(XenGntError) {
        var argument = drm_set_client_cap(capability: id, value: value)
        try file.ioctl(DRMRequest.setClientCap, &argument, .setClientCapability)
        if id == UInt64(DRM_CLIENT_CAP_ATOMIC) { file.atomic.store(value != 0, ordering: .releasing) }
        if id == UInt64(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS) { file.writeback.store(value != 0, ordering: .releasing) }
    }

    /// Turns atomic mode setting on for this descriptor (which also exposes every plane).
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/atomicRequired`` when the driver has no atomic mode
    ///   setting (`EOPNOTSUPP`).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_SET_CLIENT_CAP` (`DRM_CLIENT_CAP_ATOMIC`).
    public func enableAtomic() throws(XenGntError) {
        if isAtomic { return }
        do throws(XenGntError) {
            try setClientCapability(UInt64(DRM_CLIENT_CAP_ATOMIC), to: 1)
        } catch  where error.errno == .notSupported && driverHasModesetting {
            throw XenGntError(
                .atomicRequired,
                .setClientCapability,
                call: error.call,
                errno: error.errno,
                path: path,
                detail: "atomic mode setting on '\(driver.name)'"
            )
        }
    }

    /// Turns on atomic mode setting and then writeback connectors (the kernel refuses the
    /// second without the first: `EINVAL`), so that ``resources()`` lists writeback connectors.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_SET_CLIENT_CAP` (`DRM_CLIENT_CAP_ATOMIC`, then
    /// `DRM_CLIENT_CAP_WRITEBACK_CONNECTORS`).
    public func enableWritebackConnectors() throws(XenGntError) {
        if isWritebackEnabled { return }
        try enableAtomic()
        try setClientCapability(UInt64(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS), to: 1)
    }

    /// Whether atomic mode setting is on for this descriptor.
    public var isAtomic: Bool { file.atomic.load(ordering: .acquiring) }

    /// Whether writeback connectors are on for this descriptor.
    public var isWritebackEnabled: Bool { file.writeback.load(ordering: .acquiring) }

    /// Whether the driver answers KMS capabilities (`false` for vgem).
    var driverHasModesetting: Bool {
        var argument = drm_get_cap(capability: UInt64(DRM_CAP_DUMB_BUFFER), value: 0)
        do throws(Errno) {
            try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in try file.ioctl(DRMRequest.getCap, raw.baseAddress)
            }
            return true
        } catch {
            return error != .notSupported
        }
    }

    /// Makes this descriptor the DRM master, the one that may set modes, flip pages and commit.
    /// The kernel makes the first descriptor opened on a primary node its master by itself;
    /// another may become master once that one has dropped it (as root, or as the process that
    /// was master before).
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/masterHeld`` while another descriptor is master
    ///   (`EBUSY`); `XenGntError.Code.permissionDenied` without the right to
    ///   (`EACCES`: not root).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_SET_MASTER`.
    public func becomeMaster() throws(XenGntError) {
        var none: UInt8 = 0
        try file.ioctl(DRMRequest.setMaster, &none, .becomeMaster) { errno in
            switch errno {
            case .resourceBusy: .masterHeld
            case .permissionDenied: node == .render ? .renderNode : .permissionDenied
            default: nil
            }
        }
    }

    /// Gives up DRM master, so that another descriptor can take it.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/notMaster`` when this descriptor is not the master
    ///   (`EINVAL`).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_DROP_MASTER`.
    public func dropMaster() throws(XenGntError) {
        var none: UInt8 = 0
        try file.ioctl(DRMRequest.dropMaster, &none, .dropMaster) { errno in
            errno == .invalidArgument ? .notMaster : nil
        }
    }
}
