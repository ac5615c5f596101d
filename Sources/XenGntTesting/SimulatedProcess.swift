public import XenGnt

/// A process of a simulated domain (``SimulatedDomain/spawnProcess()``): its own descriptors
/// and memory mappings, released as Linux releases them when it is killed.
///
/// ```swift
/// let worker = try backend.spawnProcess()
/// let gntdev = try GrantDevice(on: worker.system)
/// _ = try gntdev.map(refs, from: frontend.id)
/// worker.kill()                       // unmapped, closed, released
/// #expect(xen.census().isClean)
/// ```
public struct SimulatedProcess: Sendable, Hashable {
    let simulation: XenSimulation
    let serial: UInt64
    /// The domain it runs in.
    public let domain: DomainID
    /// Its pid in that domain.
    public let pid: Int32

    init(simulation: XenSimulation, domain: DomainID, pid: Int32, serial: UInt64) {
        self.simulation = simulation
        self.domain = domain
        self.pid = pid
        self.serial = serial
    }

    /// The same process of the same simulation.
    public static func == (a: SimulatedProcess, b: SimulatedProcess) -> Bool {
        a.simulation === b.simulation && a.serial == b.serial
    }

    /// Hashes the simulation and the process.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(ObjectIdentifier(simulation))
        hasher.combine(serial)
    }

    /// Where its calls go: pass to `GrantDevice(on:)` and the like.
    public var system: XenSystem {
        XenSystem(ProcessSystemCalls(simulation: simulation, serial: .serial(serial)), domainID: domain)
    }

    /// Whether it still runs (not killed, its domain not destroyed).
    public var isAlive: Bool {
        simulation.machine.withLock { machine in machine.processes[serial]?.isAlive ?? false }
    }

    /// SIGKILL: what the process held is released as the kernel does at exit — every mapping
    /// it made is unmapped (gntdev maps put, gntalloc pages released) and every descriptor
    /// closed (files released at their last reference). A blocked poll or read of it ends with
    /// `ESRCH`, and every later call through its ``system`` fails with `ESRCH` without touching
    /// the host (an owner's deinit never closes a number the host has since given to someone
    /// else).
    public func kill() {
        simulation.machine.withLock { machine in
            if let process = machine.processes[serial] { machine.kill(process) }
        }
    }
}
