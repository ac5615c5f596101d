import SystemPackage

/// A simulated Linux process: its descriptor numbers and its memory mappings. Descriptor
/// numbers are real numbers of the host process (each names a host eventfd, memfd or file), so
/// they are unique across every simulated process; the `Machine` maps each to its process and
/// open file.
final class Process {
    /// Unique across the whole simulation (a pid is only unique in its domain).
    let serial: UInt64
    let pid: Int32
    let kernel: DomainKernel
    private(set) var isAlive = true
    /// Descriptor numbers this process holds.
    var descriptors: Set<Int32> = []
    /// Start addresses of the memory mappings this process made through the seam.
    var areas: Set<UInt> = []
    /// An eventfd a blocked `poll` of this process also waits on, signalled when the process
    /// is killed (made on first use, closed when the last poll has let go of the process).
    private var deathSignal: Int32?

    init(serial: UInt64, pid: Int32, kernel: DomainKernel) {
        self.serial = serial
        self.pid = pid
        self.kernel = kernel
    }

    var domain: XenDomain { kernel.domain }

    /// The eventfd that becomes readable when this process dies.
    func deathEventfd() throws(Errno) -> Int32 {
        if let deathSignal { return deathSignal }
        let fd = try HostCalls.eventfd(initialValue: isAlive ? 0 : 1)
        SimulatorDescriptors.insert(fd)
        deathSignal = fd
        return fd
    }

    /// Marks the process dead and wakes its blocked polls (their memory and descriptors are
    /// released by the `Machine`).
    func die() {
        isAlive = false
        if let deathSignal { HostCalls.signal(eventfd: deathSignal) }
    }

    deinit {
        if let deathSignal {
            SimulatorDescriptors.remove(deathSignal)
            try? HostCalls.close(deathSignal)
        }
    }
}
