import SystemPackage
public import XenGnt

/// A domain of a ``XenSimulation``: open devices as it with ``system`` (its main process) or a
/// process of ``spawnProcess()``, configure its kernel with ``kernel``, and act as its kernel
/// from a test — grant pages the way a frontend driver does, read and write them, bind event
/// channels.
public struct SimulatedDomain: Sendable, Hashable {
    let simulation: XenSimulation
    /// Tells this domain from a later one with the same id.
    let serial: UInt64
    let mainProcess: UInt64
    /// The domain id.
    public let id: DomainID
    /// The guest type its kernel reports.
    public let type: GuestType

    init(simulation: XenSimulation, id: DomainID, type: GuestType, serial: UInt64, mainProcess: UInt64) {
        self.simulation = simulation
        self.id = id
        self.type = type
        self.serial = serial
        self.mainProcess = mainProcess
    }

    /// The same domain of the same simulation (not a later one with its id).
    public static func == (a: SimulatedDomain, b: SimulatedDomain) -> Bool {
        a.simulation === b.simulation && a.serial == b.serial
    }

    /// Hashes the simulation and the domain.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(simulation))
        hasher.combine(serial)
    }

    /// The domain's main process: pass to `GrantDevice(on:)`, `GrantAllocator(on:)`,
    /// `DmaBuf.udmabuf(pages:on:)`.
    public var system: XenSystem {
        XenSystem(ProcessSystemCalls(simulation: simulation, serial: .serial(mainProcess)), domainID: id)
    }

    /// The domain's kernel build and module parameters; a change applies to the next call
    /// (such as lowering gntalloc's limit). Only this domain's kernel changes.
    public var kernel: SimulatedKernel {
        get { simulation.machine.withLock { machine in machine.kernel(of: self)?.configuration ?? SimulatedKernel() } }
        nonmutating set { simulation.machine.withLock { machine in machine.kernel(of: self)?.configuration = newValue } }
    }

    /// What Xen says of this domain.
    public var state: XenSimulation.DomainState {
        simulation.machine.withLock { machine in machine.kernel(of: self)?.domain.state ?? .gone }
    }

    /// Starts another process in this domain, with its own descriptors and mappings.
    public func spawnProcess() throws(SimulationError) -> SimulatedProcess {
        try withRunningKernel { (machine, kernel) throws(SimulationError) in
            let process = machine.spawn(in: kernel)
            return SimulatedProcess(simulation: simulation, domain: id, pid: process.pid, serial: process.serial)
        }
    }

    /// Runs `body` with this domain's kernel, if the domain is running.
    func withRunningKernel<T>(_ body: (Machine, DomainKernel) throws(SimulationError) -> T) throws(SimulationError) -> T {
        try simulation.machine.withLock { (machine) throws(SimulationError) -> UncheckedBox<T> in
            guard let kernel = machine.kernel(of: self) else { throw SimulationError(.noSuchDomain(id)) }
            guard kernel.domain.state == .running else { throw SimulationError(.domainNotRunning(id, kernel.domain.state)) }
            return UncheckedBox(try body(machine, kernel))
        }.value
    }

    /// Reads the domain (whatever its state) under the lock.
    func inspect<T: Sendable>(_ absent: T, _ body: (Machine, XenDomain) -> T) -> T {
        simulation.machine.withLock { machine in
            guard let kernel = machine.kernel(of: self) else { return absent }
            return body(machine, kernel.domain)
        }
    }
}

extension Machine {
    /// The kernel of `domain`, unless a later domain has taken its id.
    func kernel(of domain: SimulatedDomain) -> DomainKernel? {
        guard let kernel = kernels[domain.id.rawValue], kernel.domain.serial == domain.serial else { return nil }
        return kernel
    }
}
