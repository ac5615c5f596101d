import SystemPackage
import XenGnt

/// The simulated DRM drivers, as the lab's Linux 6.1 has them (`CONFIG_DRM_VGEM`,
/// `CONFIG_DRM_VKMS`, built in: vgem registers first, so it is `card0` and `renderD128`, vkms
/// `card1`; lab `drm-nodes`), and a DMA-scanout display that the lab kernel does not have.
enum DRMDriverKind: Sendable, Hashable, CaseIterable {
    case vgem, vkms, dmaScanout

    /// What `DRM_IOCTL_VERSION` says (Linux 6.1's `vgem_driver`, `vkms_driver`).
    var version: (name: String, major: Int32, minor: Int32, patch: Int32, date: String, description: String) {
        switch self {
        case .vgem: ("vgem", 1, 0, 0, "20120112", "Virtual GEM provider")
        case .vkms: ("vkms", 1, 0, 0, "20180514", "Virtual Kernel Mode Setting")
        case .dmaScanout: ("xengnt-dma-scanout", 1, 0, 0, "20261201", "XenGnt simulated display that scans out by DMA")
        }
    }

    /// `DRIVER_MODESET`: vgem is render-only.
    var hasModesetting: Bool { self != .vgem }

    /// `DRIVER_RENDER`: only vgem has a render node.
    var hasRenderNode: Bool { self == .vgem }

    /// Whether the display reads framebuffers with the CPU, vmapping them in `prepare_fb`
    /// (vkms: `DRM_GEM_SHADOW_PLANE_HELPER_FUNCS`), so a buffer without vmap fails the real
    /// commit (lab `drm-vkms-scanout`, `drm-export-to-display`). The DMA-scanout display reads
    /// the pages through the dma-buf instead.
    var composesWithCPU: Bool { self == .vkms }

    /// Whether its writeback encoder can clone the display encoder. vkms's cannot (6.1 leaves
    /// `possible_clones` 0, which `drm_mode_config` fills with the encoder's own bit: lab
    /// `drm-vkms-scanout`).
    var writebackClones: Bool { self == .dmaScanout }

    var primaryMinor: UInt32 {
        switch self {
        case .vgem: 0
        case .vkms: 1
        case .dmaScanout: 2
        }
    }

    var device: SimulatedKernel.Device {
        switch self {
        case .vgem: .vgem
        case .vkms: .vkms
        case .dmaScanout: .dmaScanout
        }
    }
}

/// A DRM driver's device nodes: `/dev/dri/cardN` and, for a render-capable driver,
/// `/dev/dri/renderD(128+N)` (character major 226).
struct DRMDriver: KernelDriver {
    let kind: DRMDriverKind

    var device: SimulatedKernel.Device? { kind.device }

    var nodes: [DeviceNode] {
        let primary = DeviceNode(path: "/dev/dri/card\(kind.primaryMinor)", major: 226, minor: kind.primaryMinor)
        guard kind.hasRenderNode else { return [primary] }
        return [
            primary, DeviceNode(path: "/dev/dri/renderD\(128 + kind.primaryMinor)", major: 226, minor: 128 + kind.primaryMinor),
        ]
    }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        let device = context.kernel.drmDevice(kind)
        let file = DRMOpenFile(kernel: context.kernel, node: node, device: device, render: node.minor >= 128)
        // drm_master_open: the first descriptor of a primary node becomes its master.
        if !file.isRender, device.master == nil { device.master = file }
        return file
    }
}

extension DomainKernel {
    /// The state of `kind`'s device in this kernel, made on first use.
    func drmDevice(_ kind: DRMDriverKind) -> SimDRMDevice {
        if let device = drm[kind] { return device }
        let device = SimDRMDevice(kind: kind, kernel: self)
        drm[kind] = device
        return device
    }
}
