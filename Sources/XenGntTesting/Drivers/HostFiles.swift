import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A file whose every operation is the host's: a memfd or eventfd a process made through the
/// seam, or `/dev/null`. The simulation only counts it (it is the process's descriptor: the
/// census sees it and kill closes it).
final class HostFile: OpenFile {
    enum Kind { case memfd, eventfd, null }
    let kind: Kind

    init(kernel: DomainKernel, kind: Kind) {
        self.kind = kind
        super.init(kernel: kernel)
    }

    override var isHostBacked: Bool { true }
}

/// `/dev/null` (what XenGnt copies over a descriptor number to keep it reserved).
struct NullDevice: KernelDriver {
    var device: SimulatedKernel.Device? { nil }
    var nodes: [DeviceNode] { [DeviceNode(path: Paths.devNull, major: 1, minor: 3)] }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        HostFile(kernel: context.kernel, kind: .null)
    }
}

/// A device file of a simulated driver: its status is the node's.
class DeviceFile: OpenFile {
    let node: DeviceNode

    init(kernel: DomainKernel, node: DeviceNode) {
        self.node = node
        super.init(kernel: kernel)
    }

    override func status() -> stat { .characterDevice(node) }
}
