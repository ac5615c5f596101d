import XenGnt

/// The Linux of one simulated domain: its build and module parameters, the drivers that serve
/// its device nodes, its processes, and the state its modules keep (gntalloc's page count).
final class DomainKernel {
    let domain: XenDomain
    var configuration: SimulatedKernel {
        didSet {
            if configuration.devices != oldValue.devices { registry = DeviceRegistry(configuration, domain: domain.id) }
        }
    }
    /// Device nodes, sysfs files and sockets, by path.
    private(set) var registry: DeviceRegistry
    /// Live processes, by pid.
    var processes: [Int32: Process] = [:]
    private var nextPID: Int32 = 1
    /// The serial of the process `XenSimulation.system(of:)` and `SimulatedDomain.system` give
    /// (kept once it is dead, so their calls fail with ESRCH).
    var mainSerial: UInt64 = 0
    /// Open files not yet released (held by descriptors, mappings or other kernel objects).
    var liveFiles: [ObjectIdentifier: OpenFile] = [:]
    /// gntalloc's global `gref_size`: pages allocated through every gntalloc file.
    var gntallocPages = 0
    /// Set once an x86 PVH/HVM process has mapped a grant of its own domain: the kernel's page
    /// tables are corrupt, and the next gntalloc mmap oopses (lab `pvh-self-map`).
    var selfMapCorrupted = false
    /// The last inode number given to a dma-buf.
    var dmaBufInodes: UInt = 0
    /// What oopsed this kernel, once it has.
    var oops: String?
    /// The DRM devices' state (vgem, vkms, the DMA-scanout display), made on first open.
    var drm: [DRMDriverKind: SimDRMDevice] = [:]
    /// How its displays reach their vblanks.
    var displayClock: SimulatedDisplayClock = .automatic

    init(domain: XenDomain, configuration: SimulatedKernel) {
        self.domain = domain
        self.configuration = configuration
        self.registry = DeviceRegistry(configuration, domain: domain.id)
    }

    func newPID() -> Int32 {
        defer { nextPID += 1 }
        return nextPID
    }

    /// Records that this kernel oopsed: every later call of the domain fails (`EIO`).
    func oops(_ what: String) {
        guard oops == nil else { return }
        oops = what
        if domain.state == .running { domain.state = .crashed }
    }
}
