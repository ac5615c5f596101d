/// The Linux a simulated domain runs: what its build has (`CONFIG_XEN_GNTDEV_DMABUF`, the lab's
/// export patch, which device nodes exist) and its module parameters.
///
/// Each domain has its own, as on a real host where Dom0 may run Debian's stock kernel beside a
/// DomU with a patched one:
///
/// ```swift
/// let xen = XenSimulation()
/// let dom0 = try xen.addDomain(0, type: .pv, kernel: .debianStock)
/// let domU = try xen.addDomain(1, type: .pvh, kernel: .lab)
/// domU.kernel.gntallocLimit = 16      // a module parameter: applies to the next call
/// ```
public struct SimulatedKernel: Sendable, Hashable {
    /// Device nodes a simulated kernel can provide.
    public enum Device: Sendable, Hashable, CaseIterable {
        /// `/dev/xen/gntdev` (`CONFIG_XEN_GNTDEV`).
        case gntdev
        /// `/dev/xen/gntalloc` (`CONFIG_XEN_GRANT_DEV_ALLOC`).
        case gntalloc
        /// `/dev/udmabuf` (`CONFIG_UDMABUF`).
        case udmabuf
        /// `/dev/dma_heap/system` (`CONFIG_DMABUF_HEAPS_SYSTEM`).
        case dmaHeap
        /// `/dev/xen/evtchn` (`CONFIG_XEN_DEV_EVTCHN`).
        case evtchn
        /// `/dev/xen/xenbus` (the xenbus driver: the kernel's XenStore connection).
        case xenbus
        /// vgem (`CONFIG_DRM_VGEM`): `/dev/dri/card0` and `/dev/dri/renderD128`, render-only.
        case vgem
        /// vkms (`CONFIG_DRM_VKMS`): `/dev/dri/card1`, a display that composes with the CPU,
        /// with a writeback connector.
        case vkms
        /// A simulated display that scans out by DMA (`/dev/dri/card2`, driver
        /// `xengnt-dma-scanout`), as a hardware display controller does: it shows any dma-buf,
        /// a frontend's gntdev export included. The lab's kernel has no such device, so it is
        /// not in ``SimulatedKernel/devices`` unless added.
        case dmaScanout
    }

    /// Whether the kernel has `CONFIG_XEN_GNTDEV_DMABUF` (without it the four gntdev dma-buf
    /// ioctls answer `ENOTTY`, as on Debian's stock kernel).
    public var dmaBufIoctls = true
    /// Whether an x86 PVH/HVM kernel carries the lab's export fix (no `GNTMAP_device_map` for
    /// auto-translated guests, Documentation/Lab.md). Without it every x86 PVH/HVM export fails
    /// with `EINVAL`.
    public var x86ExportFix = true
    /// gntdev's `limit` module parameter: pages per request (`xen_gntdev.limit`).
    public var gntdevLimit = 65536
    /// gntalloc's `limit` module parameter: pages across all gntalloc files of this kernel
    /// (`xen_gntalloc.limit`).
    public var gntallocLimit = 1024
    /// udmabuf's `size_limit_mb` module parameter: the largest udmabuf, in MiB.
    public var udmabufSizeLimitMB = 64
    /// udmabuf's `list_limit` module parameter: items per `UDMABUF_CREATE_LIST`.
    public var udmabufListLimit = 1024
    /// The device nodes that exist: all but ``Device/dmaScanout``, as in the lab's kernel.
    public var devices: Set<Device> = Set(Device.allCases).subtracting([.dmaScanout])

    /// Linux 6.1 with the lab's configuration and patch, and every module parameter at its
    /// default.
    public init() {}

    /// The lab's guest kernel (Documentation/Lab.md): Linux 6.1 with the dma-buf ioctls and the
    /// export patch, booted with `xen_gntalloc.limit=8192`.
    public static var lab: SimulatedKernel {
        var kernel = SimulatedKernel()
        kernel.gntallocLimit = 8192
        return kernel
    }

    /// Debian 12's stock 6.1 kernel: no `CONFIG_XEN_GNTDEV_DMABUF` (the dma-buf ioctls are
    /// `ENOTTY`), no export patch, default module parameters.
    public static var debianStock: SimulatedKernel {
        var kernel = SimulatedKernel()
        kernel.dmaBufIoctls = false
        kernel.x86ExportFix = false
        return kernel
    }
}
