import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A fault to inject.
struct FaultRule {
    let call: SimulatedCall
    let errno: Errno
    var remaining: Int
    let domain: UInt16?
}

/// Which process a seam's calls are made by.
enum ProcessName: Sendable {
    case serial(UInt64)
    /// The main process of whatever domain has this id when the call is made (a system asked
    /// for before the domain was added).
    case mainProcess(of: UInt16)
}

/// A descriptor number of the host process, as the simulation sees it: which simulated process
/// holds it and which simulated file it names.
struct Descriptor {
    let process: Process
    let file: OpenFile
}

/// The calling task of a seam call (Linux's `current`).
struct Context {
    let machine: Machine
    let process: Process

    var kernel: DomainKernel { process.kernel }
    var domain: XenDomain { process.kernel.domain }
    var hypervisor: Hypervisor { machine.hypervisor }
    var configuration: SimulatedKernel { process.kernel.configuration }

    /// What `fd` names for this process.
    func lookup(_ fd: Int32) -> Lookup {
        guard let descriptor = machine.descriptors[fd] else { return SimulatorDescriptors.contains(fd) ? .foreign : .host }
        return descriptor.process === process ? .file(descriptor.file) : .foreign
    }

    /// The simulated file `fd` names for this process; `EBADF` for another process's number,
    /// `nil` for a host descriptor the simulation does not know.
    func file(_ fd: Int32) throws(Errno) -> OpenFile? {
        switch lookup(fd) {
        case .file(let file): return file
        case .foreign: throw .badFileDescriptor
        case .host: return nil
        }
    }

    /// Installs a new descriptor of this process.
    func install(_ fd: Int32, _ file: OpenFile) {
        machine.install(fd, file, in: process)
    }
}

/// What a descriptor number is to a process.
enum Lookup {
    /// A simulated file of this process.
    case file(OpenFile)
    /// A number another simulated process holds, or the simulator itself (not in this
    /// process's table).
    case foreign
    /// A number the simulation does not know: a descriptor the test opened itself and handed
    /// to this process, passed to the host.
    case host
}

/// Everything a `XenSimulation` holds, behind its one lock: the hypervisor, each domain's
/// kernel, and the host resources (descriptor numbers, mappings) standing for simulated ones.
final class Machine: @unchecked Sendable {
    let hypervisor: Hypervisor
    /// The host's xenstored, beside the hypervisor (in Dom0's userspace on a real host).
    let xenstored = XenStoreDaemon()
    var kernels: [UInt16: DomainKernel] = [:]
    /// Live processes by serial.
    var processes: [UInt64: Process] = [:]
    private var nextProcess: UInt64 = 0
    /// Descriptor number → holder and file.
    var descriptors: [Int32: Descriptor] = [:]
    /// Start address → memory mapping.
    var areas: [UInt: VMArea] = [:]
    var faults: [FaultRule] = []

    init(maxGrantFrames: Int) {
        hypervisor = Hypervisor(maxGrantFrames: maxGrantFrames)
    }

    /// Kernels and their live files and processes refer to each other; what is left when the
    /// simulation goes is let go (descriptor numbers are not closed: whoever took them out of
    /// the simulation owns them).
    deinit {
        for kernel in kernels.values {
            kernel.liveFiles.removeAll()
            kernel.processes.removeAll()
            // Two domains mapping each other's pages refer to each other through maptrack.
            kernel.domain.maptrack.removeAll()
        }
    }

    // MARK: Calls

    /// The context of a seam call of process `name`: `ENODEV` when it names a domain the
    /// simulation does not have, `ESRCH` once the process is dead (no host resource is
    /// touched), `EIO` once its kernel oopsed.
    func context(of name: ProcessName) throws(Errno) -> Context {
        let serial: UInt64
        switch name {
        case .serial(let number):
            serial = number
        case .mainProcess(let domain):
            guard let kernel = kernels[domain], kernel.domain.state != .gone else { throw .noDevice }
            serial = kernel.mainSerial
        }
        guard let process = processes[serial], process.isAlive else { throw .noSuchProcess }
        if process.kernel.oops != nil { throw .ioError }
        return Context(machine: self, process: process)
    }

    func takeFault(_ call: SimulatedCall, domain: UInt16) -> Errno? {
        for i in faults.indices
        where faults[i].remaining > 0 && faults[i].call.matches(call) && (faults[i].domain ?? domain) == domain {
            faults[i].remaining -= 1
            let errno = faults[i].errno
            faults.removeAll { $0.remaining <= 0 }
            return errno
        }
        return nil
    }

    // MARK: Processes

    func spawn(in kernel: DomainKernel) -> Process {
        nextProcess += 1
        let process = Process(serial: nextProcess, pid: kernel.newPID(), kernel: kernel)
        processes[process.serial] = process
        kernel.processes[process.pid] = process
        return process
    }

    // MARK: Descriptors

    /// Records that host number `fd` is a descriptor of `process` naming `file`. A number the
    /// host hands out again was closed behind the simulation's back: its old entry goes.
    func install(_ fd: Int32, _ file: OpenFile, in process: Process) {
        if descriptors[fd] != nil { forget(fd) }
        descriptors[fd] = Descriptor(process: process, file: file)
        process.descriptors.insert(fd)
        file.numbers.insert(fd)
        file.hold()
    }

    /// Removes descriptor `fd` from the tables (its host number is closed, or reused) and drops
    /// its file reference.
    func forget(_ fd: Int32) {
        guard let descriptor = descriptors.removeValue(forKey: fd) else { return }
        descriptor.process.descriptors.remove(fd)
        descriptor.file.numbers.remove(fd)
        descriptor.file.drop(self)
    }

    /// A fresh host descriptor for a simulated file: an eventfd for a device (cheap; a driver
    /// with readiness signals it), or, with `size`, a memfd of that size for a dma-buf, so that
    /// `lseek` and `fstat` work even outside the seam.
    func newDescriptor(size: Int? = nil, nonBlocking: Bool = false) throws(Errno) -> Int32 {
        guard let size else { return try HostCalls.eventfd(flags: nonBlocking ? O_NONBLOCK : 0) }
        let fd = try HostCalls.memfdCreate("xengnt-sim-dmabuf")
        do throws(Errno) {
            try HostCalls.ftruncate(fd, length: Int64(size))
        } catch {
            try? HostCalls.close(fd)
            throw error
        }
        return fd
    }
}
