internal import CXenGnt
public import SystemPackage

/// What the grant devices can do in this domain, found without side effects.
///
/// ```swift
/// let capabilities = XenCapabilities.probe()
/// if capabilities.export == .refusedInPV { /* share by import instead */ }
/// ```
public struct XenCapabilities: Sendable, Hashable {
    /// Whether a device node can be used.
    public enum DeviceState: Sendable, Hashable {
        /// Opened successfully.
        case available
        /// The node does not exist (no driver, or not Xen).
        case missing
        /// The node exists but this process may not open it.
        case permissionDenied
        /// Opening failed otherwise.
        case failed(Errno)
    }

    /// Whether dma-buf export (grant refs → dma-buf) can work here.
    public enum ExportSupport: Sendable, Hashable {
        /// Arm: the driver exports without `GNTMAP_device_map`.
        case supported
        /// x86 PV: the kernel always refuses export.
        case refusedInPV
        /// x86 PVH/HVM: works only on kernels that do not map exports with
        /// `GNTMAP_device_map` (not fixed upstream as of Linux 6.1); cannot be probed without
        /// real grants, so an export failure there is ambiguous.
        case uncertain
        /// The kernel has no dma-buf ioctls (`CONFIG_XEN_GNTDEV_DMABUF` off).
        case notCompiledIn
        /// gntdev could not be opened, or this is not a Xen domain.
        case unknown
    }

    /// `/sys/hypervisor/type` says `xen`.
    public var isXenDomain: Bool
    /// The guest type, when known.
    public var guestType: GuestType?
    /// `/dev/xen/gntdev`.
    public var gntdev: DeviceState
    /// `/dev/xen/gntalloc`.
    public var gntalloc: DeviceState
    /// Whether the gntdev dma-buf ioctls exist (`nil` when gntdev could not be opened).
    public var dmaBufIoctls: Bool?
    /// Whether export can work.
    public var export: ExportSupport
    /// gntdev's per-call page limit, when readable.
    public var gntdevLimit: Int?
    /// gntalloc's global page limit, when readable.
    public var gntallocLimit: Int?

    /// Probes `system`. Opens the devices and sends one harmless ioctl
    /// (`IOCTL_GNTDEV_DMABUF_IMP_RELEASE` of a descriptor number that cannot exist, which is
    /// `ENOENT` with the dma-buf ioctls and `ENOTTY` without); changes nothing.
    public static func probe(on system: XenSystem = .kernel) -> XenCapabilities {
        let calls = system.calls
        let isXen = (try? calls.readSmallFile(Paths.hypervisorType))?.trimmingWhitespace() == "xen"
        let guestType = GuestType.detect(calls)
        var capabilities = XenCapabilities(
            isXenDomain: isXen,
            guestType: guestType,
            gntdev: .missing,
            gntalloc: .missing,
            dmaBufIoctls: nil,
            export: .unknown,
            gntdevLimit: DeviceHandle.readInteger(Paths.gntdevLimit, calls: calls),
            gntallocLimit: DeviceHandle.readInteger(Paths.gntallocLimit, calls: calls)
        )
        do {
            let handle = try DeviceHandle(path: Paths.gntdev, calls: calls, operation: .probe)
            capabilities.gntdev = .available
            var argument = ioctl_gntdev_dmabuf_imp_release(fd: UInt32.max, reserved: 0)
            do throws(Errno) {
                _ = try handle.ioctl(Request.impRelease, &argument)
                capabilities.dmaBufIoctls = true
            } catch {
                capabilities.dmaBufIoctls = error != .inappropriateIOCTLForDevice
            }
        } catch {
            capabilities.gntdev = Self.state(error)
        }
        do {
            _ = try DeviceHandle(path: Paths.gntalloc, calls: calls, operation: .probe)
            capabilities.gntalloc = .available
        } catch {
            capabilities.gntalloc = Self.state(error)
        }
        capabilities.export =
            switch (capabilities.dmaBufIoctls, guestType) {
            case (nil, _), (_, nil): .unknown
            case (false?, _): .notCompiledIn
            case (true?, .pv?): .refusedInPV
            case (true?, .arm?): .supported
            case (true?, .pvh?), (true?, .hvm?): .uncertain
            }
        return capabilities
    }

    private static func state(_ error: XenGntError) -> DeviceState {
        switch error.code {
        case .deviceMissing: .missing
        case .permissionDenied: .permissionDenied
        default: .failed(error.errno ?? .ioError)
        }
    }
}
