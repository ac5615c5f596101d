import SystemPackage
public import XenGnt

/// The domains of the lab: a PV Dom0, a PV DomU and a PVH DomU, which live for the whole run,
/// and a disposable PV DomU, the victim, which Dom0 creates for the fault cases and destroys
/// in the middle of one. The simulator plays the same cast with the same guest types.
public enum LabRole: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case dom0
    case pv
    case pvh
    case victim

    /// The domains that live for the whole run (every role but the victim).
    public static let permanent: [LabRole] = [.dom0, .pv, .pvh]

    /// The guest type the role's kernel must report.
    public var guestType: GuestType { self == .pvh ? .pvh : .pv }

    public var description: String { rawValue }
}

/// What the suite needs from the world it runs in: the simulator, or a real Xen.
public protocol ConformanceWorld: Sendable {
    /// Where `role` opens its devices.
    func system(for role: LabRole) -> XenSystem
    /// The domain id of `role`.
    func domainID(of role: LabRole) -> DomainID
    /// Writes a value other domains can read (xenstore in the lab).
    func write(_ key: String, _ value: String, as role: LabRole) async throws
    /// Reads a value, or `nil` while it does not exist.
    func read(_ key: String, as role: LabRole) async throws -> String?
    /// Allocates an event channel port that `remote` may connect to.
    func bindUnboundPort(as role: LabRole, remote: DomainID) async throws -> UInt32
    /// Connects a new local port to `remotePort` of `remote`.
    func bindInterdomain(as role: LabRole, remote: DomainID, remotePort: UInt32) async throws -> UInt32
    /// Waits until an event arrives on `port`.
    func waitForEvent(as role: LabRole, port: UInt32, timeout: Duration) async throws -> Bool
    /// Why `role` will publish nothing more (its runner finished, or its domain died), or `nil`
    /// while it is running.
    func hasStopped(_ role: LabRole) async throws -> String?
    /// Whether Xen's C library (libxengnttab) reaches the same devices, which is only true on
    /// a real Xen.
    var hasReferenceLibrary: Bool { get }
    /// How long a domain waits for its peer at a rendezvous.
    var rendezvousTimeout: Duration { get }
    /// How often a rendezvous polls.
    var pollInterval: Duration { get }

    // MARK: Faults (Cases+Faults.swift). Worlds without them (a single local domain) fail
    // those cases; the simulator and the lab have them all.

    /// Starts a separate process in `role`'s domain that takes `holdings` and keeps them until
    /// it is killed or its domain goes; returns once it holds them all.
    func spawnHolder(_ holdings: [Holding], as role: LabRole) async throws -> any HolderProcess
    /// Destroys `victim`'s domain as the toolstack does (`xl destroy`); `actor` must be Dom0.
    func destroyDomain(_ victim: LabRole, as actor: LabRole) async throws
    /// Whether `role`'s domain is running, dying or gone (`xl list`); `actor` must be Dom0.
    func domainState(of role: LabRole, as actor: LabRole) async throws -> DomainState
    /// Xen's active grant entries (`xl debug-keys g`, `xl dmesg`); `actor` must be Dom0.
    func grantDump(as actor: LabRole) async throws -> GrantDump
    /// The descriptors and file-backed mappings of the process running `role`'s part.
    func footprint(as role: LabRole) async throws -> ProcessFootprint
    /// Records a figure or an observation of a case (the lab prints it as an `INFO` line).
    func note(_ line: String, in caseName: String, as role: LabRole)
}

extension ConformanceWorld {
    public func spawnHolder(_ holdings: [Holding], as role: LabRole) async throws -> any HolderProcess {
        throw ConformanceFailure("this world cannot spawn processes")
    }
    public func destroyDomain(_ victim: LabRole, as actor: LabRole) async throws {
        throw ConformanceFailure("this world cannot destroy domains")
    }
    public func domainState(of role: LabRole, as actor: LabRole) async throws -> DomainState {
        throw ConformanceFailure("this world has no toolstack")
    }
    public func grantDump(as actor: LabRole) async throws -> GrantDump {
        throw ConformanceFailure("this world has no grant dump")
    }
    public func footprint(as role: LabRole) async throws -> ProcessFootprint {
        throw ConformanceFailure("this world cannot list a process's descriptors")
    }
    public func note(_ line: String, in caseName: String, as role: LabRole) {}
}

/// A failed check.
public struct ConformanceFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// One conformance case: what each participating domain does. Parts run concurrently, one per
/// domain, and meet through ``Peer/publish(_:_:)`` and ``Peer/value(of:from:)``.
public struct ConformanceCase: Sendable, CustomStringConvertible {
    public typealias Part = @Sendable (Peer) async throws -> Void

    /// A short, stable name (`export-balloon`); the simulator cites it for each rule.
    public let name: String
    /// What the case shows.
    public let summary: String
    /// Cases that need libxengnttab to reach the devices cannot run in the simulator.
    public let needsReferenceLibrary: Bool
    /// Whether each domain's part stands alone (no rendezvous), so it can run in any one domain.
    public let isSingleDomain: Bool
    let parts: [LabRole: Part]

    public init(_ name: String, _ summary: String, needsReferenceLibrary: Bool = false, parts: [LabRole: Part]) {
        self.name = name
        self.summary = summary
        self.needsReferenceLibrary = needsReferenceLibrary
        self.isSingleDomain = false
        self.parts = parts
    }

    /// A case each listed role runs on its own.
    init(_ name: String, _ summary: String, each roles: [LabRole], _ part: @escaping Part) {
        self.name = name
        self.summary = summary
        self.needsReferenceLibrary = false
        self.isSingleDomain = true
        self.parts = Dictionary(uniqueKeysWithValues: roles.map { ($0, part) })
    }

    /// The domains that take part.
    public var roles: [LabRole] { LabRole.allCases.filter { parts[$0] != nil } }

    public var description: String { name }
}

/// The outcome of one case in one domain.
public struct ConformanceResult: Sendable, CustomStringConvertible {
    public enum Outcome: Sendable, Equatable {
        case pass
        case fail(String)
        case skip(String)
    }

    public let caseName: String
    public let role: LabRole
    public let outcome: Outcome
    public let duration: Duration

    /// `PASS <case> <domain>`, `FAIL <case> <domain> <reason>` or `SKIP <case> <domain> <reason>`.
    public var description: String {
        switch outcome {
        case .pass: "PASS \(caseName) \(role)"
        case .fail(let reason): "FAIL \(caseName) \(role) \(reason)"
        case .skip(let reason): "SKIP \(caseName) \(role) \(reason)"
        }
    }
}

extension ConformanceCase {
    /// Runs this case's part for `role`. A failure is published so the peers stop waiting.
    public func run(as role: LabRole, in world: any ConformanceWorld) async -> ConformanceResult {
        let started = ContinuousClock.now
        guard let part = parts[role] else {
            return ConformanceResult(caseName: name, role: role, outcome: .skip("\(role) takes no part"), duration: .zero)
        }
        if needsReferenceLibrary && !world.hasReferenceLibrary {
            return ConformanceResult(
                caseName: name,
                role: role,
                outcome: .skip("needs libxengnttab on a real Xen"),
                duration: .zero
            )
        }
        let peer = Peer(role: role, caseName: name, participants: roles, world: world)
        do {
            try await part(peer)
            return ConformanceResult(caseName: name, role: role, outcome: .pass, duration: ContinuousClock.now - started)
        } catch {
            let reason = "\(error)".replacingNewlines()
            // Within xenstored's node quota for a DomU (2048 bytes), or the peers never see it.
            try? await world.write("\(name)/\(role)/failed", String(decoding: reason.utf8.prefix(1500), as: UTF8.self), as: role)
            return ConformanceResult(caseName: name, role: role, outcome: .fail(reason), duration: ContinuousClock.now - started)
        }
    }
}

/// What a case's part gets: who it is, where to open devices, and a channel to its peers.
public struct Peer: Sendable {
    /// The domain this part runs as.
    public let role: LabRole
    let caseName: String
    let participants: [LabRole]
    let world: any ConformanceWorld

    /// Where to open devices.
    public var system: XenSystem { world.system(for: role) }
    /// This domain's id.
    public var id: DomainID { world.domainID(of: role) }
    /// Another domain's id.
    public func id(of other: LabRole) -> DomainID { world.domainID(of: other) }

    /// Publishes `value` under `key` for the peers of this case.
    public func publish(_ key: String, _ value: String = "1") async throws {
        try await world.write("\(caseName)/\(role)/\(key)", value, as: role)
    }

    /// Waits for `key` from `other`; fails at once if a participant reported a failure.
    public func value(of key: String, from other: LabRole) async throws -> String {
        let deadline = ContinuousClock.now.advanced(by: world.rendezvousTimeout)
        while true {
            if let value = try await world.read("\(caseName)/\(other)/\(key)", as: role) { return value }
            for participant in participants where participant != role {
                if let reason = try await world.read("\(caseName)/\(participant)/failed", as: role) {
                    throw ConformanceFailure("\(participant) failed: \(reason)")
                }
            }
            if let reason = try await world.hasStopped(other),
                try await world.read("\(caseName)/\(other)/\(key)", as: role) == nil
            {
                throw ConformanceFailure("\(other) stopped (\(reason)) without publishing \(key)")
            }
            if ContinuousClock.now >= deadline {
                throw ConformanceFailure("timed out waiting for \(other)'s \(key)")
            }
            try await Task.sleep(for: world.pollInterval)
        }
    }

    /// Publishes grant references, in chunks of 250 (at most 1500 bytes), so that a node a
    /// DomU writes stays within xenstored's default quota of 2048 bytes per node.
    public func publish(refs: [GrantRef], as key: String) async throws {
        let chunks = stride(from: 0, to: refs.count, by: 250).map { refs[$0..<min($0 + 250, refs.count)] }
        for (i, chunk) in chunks.enumerated() {
            try await publish("\(key)-\(i)", chunk.map { String($0.rawValue) }.joined(separator: ","))
        }
        try await publish("\(key)-chunks", String(chunks.count))
    }

    /// Reads grant references published with ``publish(refs:as:)``.
    public func refs(_ key: String, from other: LabRole) async throws -> [GrantRef] {
        guard let chunks = Int(try await value(of: "\(key)-chunks", from: other)) else {
            throw ConformanceFailure("bad chunk count for \(key)")
        }
        var refs: [GrantRef] = []
        for i in 0..<chunks {
            for text in try await value(of: "\(key)-\(i)", from: other).split(separator: ",") {
                guard let raw = UInt32(text) else { throw ConformanceFailure("bad ref \(text)") }
                refs.append(GrantRef(raw))
            }
        }
        return refs
    }

    /// Waits for `key` from `other` to be published.
    public func wait(for key: String, from other: LabRole) async throws {
        _ = try await value(of: key, from: other)
    }

    /// Allocates an event channel port `remote` may connect to.
    public func bindUnboundPort(remote: LabRole) async throws -> UInt32 {
        try await world.bindUnboundPort(as: role, remote: id(of: remote))
    }

    /// Connects to `port` of `remote`.
    public func bindInterdomain(remote: LabRole, port: UInt32) async throws -> UInt32 {
        try await world.bindInterdomain(as: role, remote: id(of: remote), remotePort: port)
    }

    /// Waits for an event on `port`.
    public func waitForEvent(port: UInt32, timeout: Duration) async throws -> Bool {
        try await world.waitForEvent(as: role, port: port, timeout: timeout)
    }

    /// Waits until `other`'s runner has finished (the lab: its done key); fails at once if a
    /// participant reported a failure.
    public func waitUntilFinished(_ other: LabRole) async throws {
        let deadline = ContinuousClock.now.advanced(by: world.rendezvousTimeout)
        while try await world.hasStopped(other) == nil {
            for participant in participants where participant != role {
                if let reason = try await world.read("\(caseName)/\(participant)/failed", as: role) {
                    throw ConformanceFailure("\(participant) failed: \(reason)")
                }
            }
            if ContinuousClock.now >= deadline { throw ConformanceFailure("timed out waiting for \(other) to finish") }
            try await Task.sleep(for: world.pollInterval)
        }
    }

    // MARK: Faults

    /// Starts a holder process in this domain (see ``ConformanceWorld/spawnHolder(_:as:)``).
    public func spawnHolder(_ holdings: [Holding]) async throws -> any HolderProcess {
        try await world.spawnHolder(holdings, as: role)
    }

    /// Destroys `victim`'s domain (Dom0 only).
    public func destroy(_ victim: LabRole) async throws { try await world.destroyDomain(victim, as: role) }

    /// The toolstack's view of `other`'s domain (Dom0 only).
    public func state(of other: LabRole) async throws -> DomainState { try await world.domainState(of: other, as: role) }

    /// Xen's active grant entries (Dom0 only).
    public func grantDump() async throws -> GrantDump { try await world.grantDump(as: role) }

    /// This part's process: its descriptors and file-backed mappings.
    public func footprint() async throws -> ProcessFootprint { try await world.footprint(as: role) }

    /// Records a figure or an observation (an `INFO` line in the lab).
    public func note(_ line: String) { world.note(line, in: caseName, as: role) }
}

extension String {
    func replacingNewlines() -> String {
        String(map { $0.isNewline ? " " : $0 })
    }
}
