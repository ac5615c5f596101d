internal import CXenBackend
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// `/dev/xen/evtchn` (Linux 6.1 `drivers/xen/evtchn.c`): binds event channel ports to the open
/// file and queues the number of each port an event arrives on. A port is masked once its event
/// is queued (Xen keeps later events pending) until its number is written back; if the queue
/// overflows, reads fail with `EFBIG` until `IOCTL_EVTCHN_RESET`.
struct EvtchnDevice: KernelDriver {
    static let path = "/dev/xen/evtchn"
    var device: SimulatedKernel.Device? { .evtchn }
    var nodes: [DeviceNode] { [DeviceNode(path: Self.path, major: 10, minor: 124)] }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        EvtchnFile(kernel: context.kernel, node: node)
    }
}

/// The request numbers of `/dev/xen/evtchn`, from the header.
enum EvtchnRequest {
    static let bindInterdomain = cxb_request_evtchn_bind_interdomain()
    static let bindUnboundPort = cxb_request_evtchn_bind_unbound_port()
    static let unbind = cxb_request_evtchn_unbind()
    static let notify = cxb_request_evtchn_notify()
    static let reset = cxb_request_evtchn_reset()
}

/// An evtchn open file (`struct per_user_data`).
final class EvtchnFile: DeviceFile, EventSink {
    /// Bound ports and whether each is enabled (unmasked).
    private var enabled: [UInt32: Bool] = [:]
    /// The queue of port numbers (`ring`); its size is 64, doubled as ports are bound beyond it.
    private var queue: [UInt32] = []
    private var queueSize = 0
    private var overflow = false

    override var poll: PollAnswer { .host(events: Int16(POLLIN)) }

    override func decode(_ request: UInt) -> SimulatedIoctl? {
        switch request {
        case EvtchnRequest.bindInterdomain: .evtchnBindInterdomain
        case EvtchnRequest.bindUnboundPort: .evtchnBindUnboundPort
        case EvtchnRequest.unbind: .evtchnUnbind
        case EvtchnRequest.notify: .evtchnNotify
        case EvtchnRequest.reset: .evtchnReset
        default: nil
        }
    }

    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        switch request {
        case EvtchnRequest.bindInterdomain:
            let op = try UserMemory.load(ioctl_evtchn_bind_interdomain.self, from: argument)
            guard op.remote_domain <= UInt32(UInt16.max), let remote = context.hypervisor.domains[UInt16(op.remote_domain)],
                remote.isAlive
            else { throw .noSuchProcess }
            guard let port = context.hypervisor.bindInterdomain(domain, remote: remote, remotePort: op.remote_port) else {
                throw .invalidArgument
            }
            return .done(Int32(bitPattern: attach(port)))
        case EvtchnRequest.bindUnboundPort:
            let op = try UserMemory.load(ioctl_evtchn_bind_unbound_port.self, from: argument)
            guard op.remote_domain <= UInt32(UInt16.max) else { throw .invalidArgument }
            let port = domain.ports.bind(EventPort(remoteDomain: UInt16(op.remote_domain)))
            return .done(Int32(bitPattern: attach(port)))
        case EvtchnRequest.unbind:
            let op = try UserMemory.load(ioctl_evtchn_unbind.self, from: argument)
            guard enabled.removeValue(forKey: op.port) != nil else { throw .socketNotConnected }
            context.hypervisor.close(port: op.port, of: domain)
            return .done(0)
        case EvtchnRequest.notify:
            let op = try UserMemory.load(ioctl_evtchn_notify.self, from: argument)
            guard enabled[op.port] != nil else { throw .socketNotConnected }
            context.hypervisor.notify(port: op.port, of: domain)
            return .done(0)
        case EvtchnRequest.reset:
            queue.removeAll()
            overflow = false
            setReadable(false)
            return .done(0)
        default:
            // IOCTL_EVTCHN_BIND_VIRQ and RESTRICT_DOMID are not simulated.
            throw .noFunction
        }
    }

    /// `evtchn_bind_to_user`: the port starts enabled; the queue grows to hold one entry per
    /// bound port; an event already pending (Xen raises a new interdomain port) is taken.
    private func attach(_ port: UInt32) -> UInt32 {
        enabled[port] = true
        if enabled.count > queueSize { queueSize = max(64, queueSize * 2) }
        domain.ports[port]?.sink = self
        if domain.ports[port]?.pending == true { raise(port, of: domain) }
        return port
    }

    /// `evtchn_interrupt`: an enabled port is disabled and queued (or the queue overflows).
    func raise(_ port: UInt32, of domain: XenDomain) {
        guard enabled[port] == true else { return }
        enabled[port] = false
        domain.ports[port]?.pending = false
        if queue.count < queueSize { queue.append(port) } else { overflow = true }
        setReadable(true)
    }

    override func read(into buffer: UnsafeMutableRawBufferPointer, _ context: Context) throws(Errno) -> ReadOutcome {
        let wanted = min(buffer.count, 4096) / 4
        guard wanted > 0 else { return .bytes(0) }
        if overflow { throw .fileTooLarge }
        guard !queue.isEmpty else {
            setReadable(false)
            return .wouldBlock
        }
        let taken = Array(queue.prefix(wanted))
        queue.removeFirst(taken.count)
        taken.withUnsafeBytes { buffer.copyMemory(from: $0) }
        if queue.isEmpty { setReadable(false) }
        return .bytes(taken.count * 4)
    }

    /// `evtchn_write`: each port number written back that is bound here and disabled is
    /// enabled again (the unmask); a pending event is raised at once.
    override func write(from buffer: UnsafeRawBufferPointer, _ context: Context) throws(Errno) -> Int {
        let count = min(buffer.count, 4096) / 4
        for index in 0..<count {
            let port = buffer.loadUnaligned(fromByteOffset: index * 4, as: UInt32.self)
            guard enabled[port] == false else { continue }
            enabled[port] = true
            if domain.ports[port]?.pending == true { raise(port, of: domain) }
        }
        return count * 4
    }

    /// `evtchn_release`: every port bound here is closed.
    override func release(_ machine: Machine) {
        for port in enabled.keys.sorted() { machine.hypervisor.close(port: port, of: domain) }
        enabled.removeAll()
    }
}
