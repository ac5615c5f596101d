import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

/// One step of a random sequence: which operation, and two numbers it uses to pick its
/// arguments (which mapping, how many pages, which byte).
struct Step: Sendable, CustomStringConvertible {
    let operation: Operation
    let a: Int
    let b: Int

    init(_ op: Int, _ a: Int, _ b: Int) {
        operation = Operation.weighted[op % Operation.weighted.count]
        self.a = a
        self.b = b
    }

    var description: String { "\(operation)(\(a),\(b))" }

    /// Every public operation, and each documented way to make it fail.
    enum Operation: String, CaseIterable, Sendable {
        case grant, endAccess
        case map, mapReadOnly, mapBadRef, mapEmpty, mapTooMany, mapMisstated, mapReserved, mapOwnGrants, mapVictim
        case unmap, write, notifyClearByte, notifyOutOfRange, notifyUnboundPort, mappedRange
        case export, exportBadRef, exportInPV, exportOutOfMemory, duplicate, closeHolder, mapExport
        case release, wait, dropPending, releaseAndWait
        case importBuffer, importWrongCount, releaseImport
        case share, unshare
        case copy, copyCrossingPage
        case interrupt, destroyVictim, victimGrant

        /// Every operation, those that need an export twice (exports come and go often).
        static let weighted: [Operation] =
            allCases + [.export, .duplicate, .closeHolder, .release, .wait, .dropPending, .releaseAndWait]
    }
}

/// What every run counts, over all sequences: outcome by operation.
final class Tally: Sendable {
    private let counts = Locked<[String: Int]>([:])

    func note(_ operation: Step.Operation, _ outcome: String) {
        note("\(operation.rawValue) \(outcome)")
    }

    func note<Kind>(_ kind: Kind, _ outcome: String) {
        note("\(kind) \(outcome)")
    }

    func note(_ key: String) {
        counts.withLock { $0[key, default: 0] += 1 }
    }

    var snapshot: [String: Int] { counts.withLock { $0 } }

    func successes(_ operation: Step.Operation) -> Int { snapshot["\(operation.rawValue) ok"] ?? 0 }

    /// How often a failure with `code` was seen, all operations together.
    func failures(_ code: XenGntError.Code) -> Int {
        snapshot.filter { $0.key.hasSuffix(" \(code.name)") }.values.reduce(0, +)
    }

    var total: Int { snapshot.values.reduce(0, +) }
}

/// A noncopyable owner kept in a collection.
final class Held<Value: ~Copyable> {
    var value: Value?
    init(_ value: consuming Value) { self.value = consume value }

    /// `body`'s result on the value, or `nil` once it has been taken.
    func borrow<T: ~Copyable>(_ body: (borrowing Value) throws -> T) rethrows -> T? {
        switch value {
        case .some(let held): return try body(held)
        case .none: return nil
        }
    }

    var isEmpty: Bool {
        switch value {
        case .some: false
        case .none: true
        }
    }
}

/// A failed check of the model.
struct ModelMismatch: Error, CustomStringConvertible {
    let description: String
}

/// The system under test (a simulated host and XenGnt devices on it) beside a reference model
/// of what the host must hold after each step.
final class ModelWorld {
    // The system.
    let xen = XenSimulation()
    let dom0: SimulatedDomain, frontend: SimulatedDomain, backend: SimulatedDomain, victim: SimulatedDomain
    let gntdev: GrantDevice, dom0Device: GrantDevice, frontendDevice: GrantDevice
    let allocator: GrantAllocator
    static let gntallocLimit = 48
    static let gntdevLimit = 16
    static let port: UInt32 = 9999

    // The model.
    struct RefModel {
        let ref: GrantRef
        let owner: DomainID
        var ended = false
        var maps = 0
    }
    var refs: [RefModel] = []
    final class MappingModel {
        let mapping: Held<GrantMapping>
        let refs: [Int]
        let access: Access
        /// A clear-byte notification: which of `refs` and where in its page.
        var clearByte: (ref: Int, offset: Int)?
        init(_ mapping: consuming GrantMapping, refs: [Int], access: Access) {
            self.mapping = Held(mapping)
            self.refs = refs
            self.access = access
        }
    }
    var mappings: [MappingModel] = []
    final class ExportModel {
        let refs: [Int]
        var owner: Held<ExportedDmaBuf>?
        var pending: Held<PendingRelease>?
        var holders: [Held<DmaBuf>] = []
        /// Whether its pages still count as mapped in the model.
        var maps = true
        init(_ buffer: consuming ExportedDmaBuf, refs: [Int]) {
            owner = Held(buffer)
            self.refs = refs
        }
        /// The kernel still has the buffer: the exporter's descriptor or a holder is open.
        var isLive: Bool { owner != nil || !holders.isEmpty }
    }
    var exports: [ExportModel] = []
    var imports: [(import: Held<DmaBufImport>, pages: Int)] = []
    var shares: [(share: Held<SharedPages>, pages: Int)] = []
    var victimAlive = true

    init() throws {
        var kernel = SimulatedKernel()
        kernel.gntallocLimit = Self.gntallocLimit
        kernel.gntdevLimit = Self.gntdevLimit
        dom0 = try xen.addDomain(0, type: .pv, kernel: kernel)
        frontend = try xen.addDomain(1, type: .pvh, kernel: kernel)
        backend = try xen.addDomain(2, type: .pvh, kernel: kernel)
        victim = try xen.addDomain(3, type: .pvh, kernel: kernel)
        gntdev = try GrantDevice(on: backend.system)
        dom0Device = try GrantDevice(on: dom0.system)
        frontendDevice = try GrantDevice(on: frontend.system)
        allocator = try GrantAllocator(on: dom0.system)
    }

    /// Whether the entry's ref has left the grant table (its number may be granted again).
    func isFreed(_ model: RefModel) -> Bool { model.ended && model.maps == 0 }

    /// Indices of `count` live (granted) refs of `owner`, picked by `seed`; nil if too few.
    /// `includingEnded` adds refs whose end of access waits for their maps.
    func pick(_ count: Int, of owner: DomainID, seed: Int, includingEnded: Bool = false) -> [Int]? {
        let candidates = refs.indices.filter {
            refs[$0].owner == owner && (includingEnded ? !isFreed(refs[$0]) : !refs[$0].ended)
        }
        guard candidates.count >= count, count > 0 else { return nil }
        return (0..<count).map { candidates[(seed + $0 * 7) % candidates.count] }
    }

    func grantRefs(_ indices: [Int]) -> [GrantRef] { indices.map { refs[$0].ref } }

    /// Compares the simulated host with the model.
    func check(after step: Step) throws {
        let census = xen.census()
        func expect(_ condition: Bool, _ what: @autoclosure () -> String) throws {
            if !condition { throw ModelMismatch(description: "after \(step): \(what())\n\(xen.census())") }
        }
        try expect(census.grantMaps == mappings.count, "grant maps \(census.grantMaps), model \(mappings.count)")
        let liveExports = exports.filter(\.isLive).count
        try expect(census.exports == liveExports, "exports \(census.exports), model \(liveExports)")
        try expect(census.imports == imports.count, "imports \(census.imports), model \(imports.count)")
        let pages = shares.reduce(0) { $0 + $1.pages }
        try expect(census.gntallocPages == pages, "gntalloc pages \(census.gntallocPages), model \(pages)")
        try expect(census.memoryMappings == mappings.count + shares.count, "memory mappings \(census.memoryMappings)")
        for model in refs where !isFreed(model) && (model.owner == frontend.id || victimAlive) {
            let owner = model.owner == frontend.id ? frontend : victim
            try expect(
                owner.mapCount(of: model.ref) == model.maps,
                "\(model.ref) of \(model.owner) maps \(owner.mapCount(of: model.ref)), model \(model.maps)"
            )
            try expect(
                owner.isGranted(model.ref) == (!model.ended || model.maps > 0),
                "\(model.ref) granted: \(owner.isGranted(model.ref)), model ended \(model.ended) maps \(model.maps)"
            )
        }
    }

    /// Releases everything the model holds and ends every grant; the host must then be clean.
    func tearDown() throws {
        for model in mappings { try model.mapping.value.take()!.unmap() }
        mappings.removeAll()
        for model in exports {
            for holder in model.holders { try holder.value.take()!.close() }
            model.holders.removeAll()
            if let owner = model.owner { try owner.value.take()!.releaseAndWait(timeout: .zero) }
            if let pending = model.pending { _ = try pending.borrow { try $0.wait(timeout: .zero) } }
            model.pending = nil
        }
        exports.removeAll()
        for entry in imports { _ = try entry.import.value.take()!.release() }
        imports.removeAll()
        for entry in shares { try entry.share.value.take()!.unshare() }
        shares.removeAll()
        frontend.endAccess(refs.filter { $0.owner == frontend.id }.map(\.ref))
        victim.endAccess(refs.filter { $0.owner == victim.id }.map(\.ref))
        refs.removeAll()
    }
}
