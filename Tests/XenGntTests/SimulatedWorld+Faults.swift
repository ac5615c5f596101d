import Synchronization
import XenGnt
import XenGntConformance
import XenGntTesting

/// The fault cases' world on the simulator: a holder is a spawned simulated process whose owners
/// live in this test process, and killing it is `SimulatedProcess.kill()` (its kernel releases
/// everything; the owners' later deinit calls never reach the host). Dom0's toolstack is the
/// simulation itself.
extension SimulatedWorld {
    func spawnHolder(_ holdings: [Holding], as role: LabRole) async throws -> any HolderProcess {
        guard let domain = xen.existingDomain(domainID(of: role)) else { throw ConformanceFailure("\(role) is gone") }
        let process = try domain.spawnProcess()
        let holder = SimulatedHolder(process: process, resources: try HeldResources(holdings, on: process.system))
        keep(holder)  // a holder lives until it is killed or its domain is destroyed
        return holder
    }

    func destroyDomain(_ victim: LabRole, as actor: LabRole) async throws {
        try requireToolstack(actor)
        xen.destroyDomain(domainID(of: victim))
    }

    func domainState(of role: LabRole, as actor: LabRole) async throws -> DomainState {
        try requireToolstack(actor)
        return switch xen.state(of: domainID(of: role)) {
        case .running, .crashed: .running
        case .dying: .dying
        case .gone, nil: .gone
        }
    }

    /// What `xl debug-keys g` shows: for every domain not gone, the refs at or above 8 that
    /// some domain maps (a map or an export), by the grantee that maps them.
    func grantDump(as actor: LabRole) async throws -> GrantDump {
        try requireToolstack(actor)
        var active: [GrantDump.Link: Int] = [:]
        var tables = Set<DomainID>()
        for role in LabRole.allCases {
            guard let domain = xen.existingDomain(domainID(of: role)) else { continue }
            tables.insert(domain.id)
            for raw in UInt32(8)..<UInt32(xen.maxGrantFrames * 512) where domain.mapCount(of: GrantRef(raw)) > 0 {
                guard let mapper = domain.grantee(of: GrantRef(raw)) else { continue }
                active[GrantDump.Link(granter: domain.id, mapper: mapper), default: 0] += 1
            }
        }
        return GrantDump(active: active, tables: tables)
    }

    /// The simulated kernel's count of what the domain's processes hold (when a part measures
    /// it, no holder of its domain is alive, so it is the part's own process).
    func footprint(as role: LabRole) async throws -> ProcessFootprint {
        guard let domain = xen.census()[domainID(of: role)] else { throw ConformanceFailure("\(role) is gone") }
        return ProcessFootprint(
            descriptors: ["\(domain.descriptors) descriptors", "\(domain.openFiles) open files"],
            mappings: ["\(domain.memoryMappings) memory mappings", "\(domain.grantMaps) gntdev grant maps"]
        )
    }

    func note(_ line: String, in caseName: String, as role: LabRole) {
        notes.withLock { $0.append("\(caseName) \(role) \(line)") }
    }

    private func requireToolstack(_ actor: LabRole) throws {
        guard actor == .dom0 else { throw ConformanceFailure("only Dom0 runs the toolstack") }
    }
}

/// A holder on the simulator.
final class SimulatedHolder: HolderProcess {
    let process: SimulatedProcess
    let refs: [[GrantRef]]
    private let resources: Mutex<HeldResources?>

    init(process: SimulatedProcess, resources: HeldResources) {
        self.process = process
        self.refs = resources.refs
        self.resources = Mutex(resources)
    }

    func kill() async throws {
        guard process.isAlive else { throw ConformanceFailure("the holder ended before the SIGKILL") }
        process.kill()
        // Its owners go now; their calls fail with ESRCH and never reach the host.
        resources.withLock { $0 = nil }
    }
}
