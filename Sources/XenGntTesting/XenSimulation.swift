public import SystemPackage
public import XenGnt

/// A simulated Xen host: the hypervisor (domains, grant tables, event channels, memory) and,
/// in each domain, its own Linux (processes, open files, the gntdev, gntalloc, udmabuf and
/// DMA-heap drivers, module parameters) — behind the same seam XenGnt uses for the real kernel.
///
/// The simulator receives the raw ioctl request numbers and argument structs and answers as
/// Linux 6.1 on Xen 4.17 does (every rule is checked against the real kernel in the lab; see
/// Documentation/Lab.md). Mapped memory aliases the granting domain's pages, so a write on one
/// side is visible on the other with no copy. Descriptors are real (eventfd, memfd), so code
/// that passes them around works unchanged; the simulator sees closes that go through XenGnt.
///
/// ```swift
/// let xen = XenSimulation()
/// let frontend = try xen.addDomain(1, type: .pvh)
/// let backend = try xen.addDomain(2, type: .pvh)
/// let refs = try frontend.grantPages(4, to: backend.id)
/// let gntdev = try GrantDevice(on: backend.system)
/// let buffer = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
/// #expect(xen.census().isClean == false)
/// ```
public final class XenSimulation: Sendable {
    /// What Xen says of a domain (`xl list`).
    public enum DomainState: Sendable, Hashable, CustomStringConvertible {
        /// Running.
        case running
        /// Its kernel oopsed: every call of the domain fails with `EIO`; Xen still runs it
        /// (its grants stay mappable) until it is destroyed.
        case crashed
        /// Destroyed while other domains still map its pages: it is gone once they unmap them.
        case dying
        /// Destroyed, and nothing of it is left.
        case gone

        /// `running`, `crashed`, `dying` or `gone`.
        public var description: String {
            switch self {
            case .running: "running"
            case .crashed: "crashed"
            case .dying: "dying"
            case .gone: "gone"
            }
        }
    }

    let machine: Locked<Machine>
    /// The host's `gnttab_max_frames`: each domain's grant table grows to at most this many
    /// 4 KiB frames of 512 entries.
    public let maxGrantFrames: Int

    /// A host whose domains' grant tables grow to at most `maxGrantFrames` frames (Xen 4.17's
    /// default is 64: 32768 grants).
    public init(maxGrantFrames: Int = 64) {
        self.maxGrantFrames = min(max(maxGrantFrames, 1), 1 << 23)
        machine = Locked(Machine(maxGrantFrames: self.maxGrantFrames))
    }

    /// Creates a domain running `kernel`, with a main process (``SimulatedDomain/system``).
    @discardableResult
    public func addDomain(
        _ id: DomainID,
        type: GuestType,
        kernel: SimulatedKernel = SimulatedKernel()
    ) throws(SimulationError) -> SimulatedDomain {
        if id.isReserved { throw SimulationError(.reservedDomain(id)) }
        return try machine.withLock { (machine) throws(SimulationError) -> SimulatedDomain in
            if machine.hypervisor.domains[id.rawValue] != nil { throw SimulationError(.domainExists(id)) }
            do throws(Errno) {
                let (domain, main) = try machine.addDomain(id.rawValue, type: type, kernel: kernel)
                return SimulatedDomain(simulation: self, id: id, type: type, serial: domain.serial, mainProcess: main.serial)
            } catch {
                throw SimulationError(.host(error))
            }
        }
    }

    /// The domain with `id`, if the simulation has it (running, crashed or dying).
    public func existingDomain(_ id: DomainID) -> SimulatedDomain? {
        machine.withLock { machine in
            guard let kernel = machine.kernels[id.rawValue], kernel.domain.state != .gone else { return nil }
            return SimulatedDomain(
                simulation: self,
                id: id,
                type: kernel.domain.type,
                serial: kernel.domain.serial,
                mainProcess: kernel.mainSerial
            )
        }
    }

    /// Where to open devices as the main process of domain `id`: pass it to
    /// `GrantDevice(on:)`, `GrantAllocator(on:)` and the `DmaBuf` constructors. Calls fail with
    /// `ENODEV` while the simulation has no such domain, and with `ESRCH` once it is destroyed.
    public func system(of id: DomainID) -> XenSystem {
        let serial = machine.withLock { machine in machine.kernels[id.rawValue]?.mainSerial }
        return XenSystem(
            ProcessSystemCalls(simulation: self, serial: serial.map(ProcessName.serial) ?? .mainProcess(of: id.rawValue)),
            domainID: id
        )
    }

    /// What Xen says of domain `id`; `nil` if the simulation never had it.
    public func state(of id: DomainID) -> DomainState? {
        machine.withLock { machine in
            if let domain = machine.hypervisor.domains[id.rawValue] { return domain.state }
            return machine.hypervisor.goneDomains.contains(id.rawValue) ? .gone : nil
        }
    }

    /// Destroys a domain, as `xl destroy` does: its processes are killed (so its kernel releases
    /// everything they held), Xen tears down every mapping it held of other domains' pages (so
    /// their deferred ends of access complete), and nobody can map its grants anew. Pages of it
    /// that others still map stay mapped: the domain is ``DomainState/dying`` until the last is
    /// unmapped, then ``DomainState/gone``. Every later call through its systems fails with
    /// `ESRCH` without touching the host.
    public func destroyDomain(_ id: DomainID) {
        machine.withLock { machine in machine.destroyDomain(id.rawValue) }
    }

    /// Makes the next `times` calls of `call` (by `domain`, or by any domain) fail with `errno`.
    /// `EINTR` proves that XenGnt retries; `ENOMEM`, `EFAULT` and the like exercise error paths.
    public func injectFault(_ errno: Errno, on call: SimulatedCall, times: Int = 1, domain: DomainID? = nil) {
        machine.withLock { machine in
            machine.faults.append(FaultRule(call: call, errno: errno, remaining: times, domain: domain?.rawValue))
        }
    }

    /// How many entries of `granter`'s grant table grant access to `grantee` (including those
    /// whose end of access is deferred because they are still mapped).
    public func grants(from granter: DomainID, to grantee: DomainID) -> Int {
        machine.withLock { machine in
            machine.hypervisor.domains[granter.rawValue]?.grantTable.entries.values.count { $0.grantee == grantee.rawValue } ?? 0
        }
    }

    /// How many pages of `owner` domain `mapper` maps (entries of `mapper`'s maptrack).
    public func mappings(by mapper: DomainID, of owner: DomainID) -> Int {
        machine.withLock { machine in
            machine.hypervisor.domains[mapper.rawValue]?.maptrack.values.count { $0.owner.id == owner.rawValue } ?? 0
        }
    }
}
