public import XenGnt

// What the fault cases (Cases+Faults.swift) observe and do beyond the public API: the
// toolstack's view of a domain, Xen's grant dump, a process's descriptors and mappings, and a
// separate process that holds resources until it is killed.

/// A domain as the toolstack lists it (`xl list`).
public enum DomainState: String, Sendable, Hashable, CustomStringConvertible {
    /// Listed and not dying (running, blocked or paused).
    case running
    /// Listed with the `d` flag: destroyed, but kept while other domains still map its pages.
    case dying
    /// No longer listed.
    case gone

    public var description: String { rawValue }
}

/// Xen's active grant entries, as `xl debug-keys g` prints them: for each granting domain, the
/// grant references another domain currently maps (a nonzero pin). Each mapping of a ref pins
/// it and takes a maptrack entry in the mapping domain, so "no active entry between two
/// domains" also means no maptrack entry. Grants nobody maps are not listed.
///
/// The toolstack's own entries (refs below 8: the console and xenstore rings Dom0's daemons
/// map) are left out; ``tables`` still says which domains have a grant table at all.
public struct GrantDump: Sendable, Hashable, CustomStringConvertible {
    /// A granting domain and the domain that maps its pages.
    public struct Link: Sendable, Hashable {
        public var granter: DomainID
        public var mapper: DomainID
        public init(granter: DomainID, mapper: DomainID) {
            self.granter = granter
            self.mapper = mapper
        }
    }

    /// Distinct refs of `granter` that `mapper` maps, by link (only nonzero counts).
    public var active: [Link: Int]
    /// The domains whose grant table the dump lists (every domain that still exists, dying
    /// ones included).
    public var tables: Set<DomainID>

    public init(active: [Link: Int], tables: Set<DomainID>) {
        self.active = active.filter { $0.value > 0 }
        self.tables = tables
    }

    /// Refs of `granter` that `mapper` maps.
    public func count(of granter: DomainID, mappedBy mapper: DomainID) -> Int {
        active[Link(granter: granter, mapper: mapper)] ?? 0
    }

    /// Active entries between `a` and `b`, both ways.
    public func count(between a: DomainID, and b: DomainID) -> Int {
        count(of: a, mappedBy: b) + count(of: b, mappedBy: a)
    }

    /// Active entries in which `domain` grants or maps.
    public func count(involving domain: DomainID) -> Int {
        active.filter { $0.key.granter == domain || $0.key.mapper == domain }.values.reduce(0, +)
    }

    public var description: String {
        let links = active.sorted { ($0.key.granter, $0.key.mapper) < ($1.key.granter, $1.key.mapper) }
            .map { "\($0.key.granter)→\($0.key.mapper): \($0.value)" }
        return "active [\(links.joined(separator: ", "))], tables \(tables.sorted().map(\.description).joined(separator: ","))"
    }
}

/// What a process holds from the kernel: its open descriptors and its file-backed memory
/// mappings (devices, dma-bufs, memfds; anonymous memory, which the allocator and the runtime
/// change at will, is left out).
public struct ProcessFootprint: Sendable, Hashable, CustomStringConvertible {
    /// One line per descriptor, `<number> <what it refers to>`, sorted.
    public var descriptors: [String]
    /// One line per file-backed mapping, `<range> <permissions> <path>`, sorted.
    public var mappings: [String]

    public init(descriptors: [String], mappings: [String]) {
        self.descriptors = descriptors.sorted()
        self.mappings = mappings.sorted()
    }

    /// What `self` has that `before` had not, and what it lost; empty when equal.
    public func changes(since before: ProcessFootprint) -> String {
        func diff(_ what: String, _ now: [String], _ then: [String]) -> [String] {
            let added = Set(now).subtracting(then).sorted()
            let removed = Set(then).subtracting(now).sorted()
            return (added.isEmpty ? [] : ["\(what) added: \(added.joined(separator: "; "))"])
                + (removed.isEmpty ? [] : ["\(what) gone: \(removed.joined(separator: "; "))"])
        }
        return (diff("descriptors", descriptors, before.descriptors) + diff("mappings", mappings, before.mappings)).joined(
            separator: "; "
        )
    }

    public var description: String { "\(descriptors.count) descriptors, \(mappings.count) file-backed mappings" }
}

/// One resource a holder process takes and keeps until it is killed.
public enum Holding: Sendable, Hashable, CustomStringConvertible {
    /// gntalloc pages shared with a domain; the first byte of each page is ``Holding/shareMark``.
    case share(pages: Int, with: DomainID)
    /// A gntdev mapping of another domain's grants; byte 1 of each page is set to
    /// ``Holding/mapMark``.
    case map(refs: [GrantRef], from: DomainID)
    /// A dma-buf exported from another domain's grants (PVH/HVM only).
    case export(refs: [GrantRef], from: DomainID)
    /// A udmabuf of `pages` pages imported to refs for a domain.
    case importBuffer(pages: Int, to: DomainID)

    /// What a holder writes into the first byte of each page it shares.
    public static let shareMark: UInt8 = 0x48
    /// What a holder writes into byte 1 of each page it maps.
    public static let mapMark: UInt8 = 0x5A

    /// One command-line word: `share:<pages>:<domid>`, `map:<domid>:<ref,ref...>`,
    /// `export:<domid>:<ref,ref...>`, `import:<pages>:<domid>`.
    public var encoded: String {
        func refs(_ refs: [GrantRef]) -> String { refs.map { String($0.rawValue) }.joined(separator: ",") }
        return switch self {
        case .share(let pages, let domain): "share:\(pages):\(domain.rawValue)"
        case .map(let list, let domain): "map:\(domain.rawValue):\(refs(list))"
        case .export(let list, let domain): "export:\(domain.rawValue):\(refs(list))"
        case .importBuffer(let pages, let domain): "import:\(pages):\(domain.rawValue)"
        }
    }

    /// Parses ``encoded``.
    public init?(encoded: String) {
        let parts = encoded.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, let first = UInt32(parts[1]) else { return nil }
        let refs = parts[2].split(separator: ",").compactMap { UInt32($0).map { GrantRef($0) } }
        switch parts[0] {
        case "share":
            guard let domain = UInt16(parts[2]) else { return nil }
            self = .share(pages: Int(first), with: DomainID(domain))
        case "import":
            guard let domain = UInt16(parts[2]) else { return nil }
            self = .importBuffer(pages: Int(first), to: DomainID(domain))
        case "map": self = .map(refs: refs, from: DomainID(UInt16(truncatingIfNeeded: first)))
        case "export": self = .export(refs: refs, from: DomainID(UInt16(truncatingIfNeeded: first)))
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .share(let pages, let domain): "\(pages) gntalloc pages shared with \(domain)"
        case .map(let refs, let domain): "a mapping of \(refs.count) refs of \(domain)"
        case .export(let refs, let domain): "an export of \(refs.count) refs of \(domain)"
        case .importBuffer(let pages, let domain): "a \(pages)-page import for \(domain)"
        }
    }
}

/// A holder process: it took its ``Holding``s and keeps them until it is killed.
public protocol HolderProcess: Sendable {
    /// For each holding, the refs the holder granted (a share's or an import's); empty for a
    /// mapping or an export.
    var refs: [[GrantRef]] { get }
    /// Kills the process with SIGKILL (its owners never run their deinit) and waits until the
    /// kernel has reaped it.
    func kill() async throws
}

/// The resources of a holder, taken in order; they are kept until this object goes away (in a
/// lab holder process: never, the process is killed).
public final class HeldResources: @unchecked Sendable {
    /// For each holding, the refs granted (share, import); empty otherwise.
    public let refs: [[GrantRef]]
    private let kept: [AnyObject]

    public init(_ holdings: [Holding], on system: XenSystem) throws {
        var refs: [[GrantRef]] = []
        var kept: [AnyObject] = []
        let gntdev = try GrantDevice(on: system)
        for holding in holdings {
            switch holding {
            case .share(let pages, let domain):
                let shared = try GrantAllocator(on: system).share(pages: pages, with: domain)
                shared.withUnsafeMutableBytes { bytes in
                    for page in 0..<pages { bytes[page * xenPageSize] = Holding.shareMark }
                }
                refs.append(shared.refs)
                kept.append(Kept(shared))
            case .map(let grants, let domain):
                let mapping = try gntdev.map(grants, from: domain)
                try mapping.withUnsafeMutableBytes { bytes in
                    for page in 0..<grants.count { bytes[page * xenPageSize + 1] = Holding.mapMark }
                }
                refs.append([])
                kept.append(Kept(mapping))
            case .export(let grants, let domain):
                refs.append([])
                kept.append(Kept(try gntdev.exportDmaBuf(refs: grants, from: domain)))
            case .importBuffer(let pages, let domain):
                let imported = try gntdev.importDmaBuf(DmaBuf.udmabuf(pages: pages, on: system), to: domain)
                refs.append(imported.refs)
                kept.append(Kept(imported))
            }
        }
        self.refs = refs
        self.kept = kept
    }
}

/// Keeps a noncopyable owner alive in a list.
final class Kept<Value: ~Copyable> {
    let value: Value
    init(_ value: consuming Value) { self.value = value }
}
