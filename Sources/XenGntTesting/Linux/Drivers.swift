import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A device node: its path and device number.
struct DeviceNode: Hashable {
    let path: String
    let major: UInt32
    let minor: UInt32
}

/// A driver of a simulated kernel: the device nodes it creates, the sysfs files it publishes
/// (module parameters) and how it opens a node. A new driver (DRM, `/dev/xen/evtchn`,
/// `/dev/xen/xenbus`) is one new type conforming to this and its `OpenFile` subclass, listed in
/// `DeviceRegistry.drivers`.
protocol KernelDriver: Sendable {
    /// The build switch that includes it (`nil`: always there).
    var device: SimulatedKernel.Device? { get }
    var nodes: [DeviceNode] { get }
    /// sysfs files by path, read when asked (module parameters change at run time).
    func attributes(of kernel: DomainKernel) -> [String: String]
    /// Opens `node`: a new open file of this driver.
    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile
}

extension KernelDriver {
    var nodes: [DeviceNode] { [] }
    func attributes(of kernel: DomainKernel) -> [String: String] { [:] }
    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        throw .noSuchFileOrDirectory
    }
}

/// A Unix socket a simulated kernel's processes can connect to (xenstored's, in Dom0).
protocol SocketEndpoint: Sendable {
    var path: String { get }
    func connect(_ context: Context) throws(Errno) -> OpenFile
}

/// What exists at which path in a kernel of a given configuration: device nodes, sysfs files,
/// sockets, and the directories that hold them.
struct DeviceRegistry {
    /// Every driver a simulated kernel can have.
    static let drivers: [any KernelDriver] = [
        XenSysfs(), NullDevice(), GntdevDevice(), GntallocDevice(), UdmabufDevice(), DmaHeapDevice(),
        EvtchnDevice(), XenbusDevice(),
        DRMDriver(kind: .vgem), DRMDriver(kind: .vkms), DRMDriver(kind: .dmaScanout),
    ]

    private(set) var drivers: [any KernelDriver] = []
    private(set) var nodes: [String: (node: DeviceNode, driver: any KernelDriver)] = [:]
    /// Unix sockets by path: xenstored's, in Dom0, the domain that runs it.
    private(set) var sockets: [String: any SocketEndpoint] = [:]

    init(_ configuration: SimulatedKernel, domain: UInt16) {
        for driver in Self.drivers where driver.device.map(configuration.devices.contains) ?? true {
            drivers.append(driver)
            for node in driver.nodes { nodes[node.path] = (node, driver) }
        }
        if domain == 0 { sockets[XenstoredSocket.path] = XenstoredSocket() }
    }

    /// The sysfs files of every driver, read now.
    func attributes(of kernel: DomainKernel) -> [String: String] {
        drivers.reduce(into: [:]) { files, driver in files.merge(driver.attributes(of: kernel)) { a, _ in a } }
    }

    /// The names in directory `path`: `ENOENT` when nothing lives under it, `ENOTDIR` for a
    /// file.
    func list(_ path: String, kernel: DomainKernel) throws(Errno) -> [String] {
        var directory = path
        while directory.count > 1, directory.hasSuffix("/") { directory.removeLast() }
        let everything = Array(nodes.keys) + Array(attributes(of: kernel).keys) + Array(sockets.keys)
        if everything.contains(directory) { throw .notDirectory }
        let prefix = directory == "/" ? "/" : directory + "/"
        var names = Set<String>()
        for path in everything where path.hasPrefix(prefix) {
            if let name = path.dropFirst(prefix.count).split(separator: "/").first { names.insert(String(name)) }
        }
        guard !names.isEmpty else { throw .noSuchFileOrDirectory }
        return names.sorted()
    }
}

/// `/sys/hypervisor` (`CONFIG_XEN_SYS_HYPERVISOR`): what the probe reads first.
struct XenSysfs: KernelDriver {
    var device: SimulatedKernel.Device? { nil }

    func attributes(of kernel: DomainKernel) -> [String: String] {
        // Arm guests are HVM domains to Linux (xen_domain_type).
        let type = kernel.domain.type == .arm ? "HVM" : kernel.domain.type.rawValue
        // xenfs's /proc/xen/capabilities: "control_d" in Dom0, empty elsewhere (what XenGntDRM
        // reads to tell a PV DomU from a PV Dom0; lab `drm-vgem-share-pv`).
        return [
            Paths.hypervisorType: "xen\n", Paths.guestType: type + "\n",
            "/proc/xen/capabilities": kernel.domain.id == 0 ? "control_d\n" : "",
        ]
    }
}

extension stat {
    /// A character device node's status (`S_IFCHR`, `st_rdev`).
    static func characterDevice(_ node: DeviceNode) -> stat {
        var info = stat()
        info.st_mode = S_IFCHR | 0o600
        info.st_rdev = UInt(node.major) << 8 | UInt(node.minor & 0xFF) | UInt(node.minor & ~0xFF) << 12
        info.st_nlink = 1
        info.st_blksize = 4096
        info.st_ino = UInt(node.major) << 20 | UInt(node.minor)
        info.st_dev = 5  // devtmpfs
        return info
    }
}
