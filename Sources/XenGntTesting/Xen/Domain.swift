import SystemPackage
import XenGnt

/// A Xen domain (`struct domain`): its RAM, grant table, the mappings it holds of other
/// domains' pages (maptrack) and its event channel ports. Its Linux is a `DomainKernel`.
final class XenDomain {
    /// Each simulated domain's RAM: a buffer its kernel would have to back with more fails with
    /// `ENOMEM` (the simulator never allocates what a real domain could not).
    static let ramBytes = 2 << 30

    let id: UInt16
    /// Tells this domain from an earlier one with the same id.
    let serial: UInt64
    let type: GuestType
    var state: XenSimulation.DomainState = .running
    let memory: DomainMemory
    let grantTable: GrantTable
    var ports = EventChannels()
    /// Mappings this domain holds of other domains' pages, by handle (Xen's maptrack).
    var maptrack: [UInt32: MaptrackEntry] = [:]
    private var nextHandle: UInt32 = 0

    init(id: UInt16, serial: UInt64, type: GuestType, maxGrantFrames: Int) throws(Errno) {
        self.id = id
        self.serial = serial
        self.type = type
        self.memory = try DomainMemory(domain: id)
        self.grantTable = GrantTable(maxFrames: maxGrantFrames)
    }

    /// Running (or running with an oopsed kernel): not yet destroyed.
    var isAlive: Bool { state == .running || state == .crashed }

    /// Whether Xen translates this guest's physical memory (every type but x86 PV) on x86.
    var isX86AutoTranslated: Bool { type == .pvh || type == .hvm }

    func track(_ owner: XenDomain, _ entry: GrantEntry) -> MaptrackEntry {
        nextHandle &+= 1
        let mapping = MaptrackEntry(handle: nextHandle, owner: owner, entry: entry, mapper: self)
        maptrack[nextHandle] = mapping
        return mapping
    }
}

/// One page of another domain mapped by a domain (an entry of the mapper's maptrack).
final class MaptrackEntry {
    let handle: UInt32
    let owner: XenDomain
    let entry: GrantEntry
    weak var mapper: XenDomain?
    /// Cleared when unmapped (by its holder, or by Xen when the mapper dies).
    var isLive = true

    init(handle: UInt32, owner: XenDomain, entry: GrantEntry, mapper: XenDomain) {
        self.handle = handle
        self.owner = owner
        self.entry = entry
        self.mapper = mapper
    }

    var page: Page { entry.page }
}
