internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A grant-table entry of a simulated domain.
final class GrantEntry {
    let ref: UInt32
    let grantee: UInt16
    let page: Page
    let readOnly: Bool
    /// Whether the page came from the domain's own memory (freed when access ends).
    let ownsPage: Bool
    /// Foreign mappings of the page (gntdev maps and exports of other domains).
    var mapCount = 0
    /// End of access was asked for while the page was mapped: done when the last map goes
    /// (Linux's deferred `gnttab_end_foreign_access`).
    var endRequested = false

    init(ref: UInt32, grantee: UInt16, page: Page, readOnly: Bool, ownsPage: Bool) {
        self.ref = ref
        self.grantee = grantee
        self.page = page
        self.readOnly = readOnly
        self.ownsPage = ownsPage
    }
}

/// A simulated domain: its memory, grant table and bound event channels.
final class SimDomain {
    let id: UInt16
    let type: GuestType
    var alive = true
    let memory: MemoryObject
    var memoryPages = 0
    var freePages: [Int] = []
    var grants: [UInt32: GrantEntry] = [:]
    /// Linux keeps the first refs for itself (`GNTTAB_NR_RESERVED_ENTRIES`).
    var nextRef: UInt32 = 8
    var freeRefs: [UInt32] = []
    /// Bound event channel ports.
    var ports: [UInt32: EventPort] = [:]
    var nextPort: UInt32 = 1

    init(id: UInt16, type: GuestType) throws(Errno) {
        self.id = id
        self.type = type
        self.memory = try MemoryObject.create(name: "xengnt-sim-dom\(id)", bytes: 0)
    }

    func allocatePage() throws(Errno) -> Page {
        if let index = freePages.popLast() {
            let page = Page(memory: memory, index: index)
            page.write([UInt8](repeating: 0, count: xenPageSize), at: 0)
            return page
        }
        let index = memoryPages
        try memory.resize((index + 1) * xenPageSize)
        memoryPages += 1
        return Page(memory: memory, index: index)
    }

    /// Adds a grant of `page` to `grantee`, or throws `ENOSPC` when the table is full.
    func grant(_ page: Page, to grantee: UInt16, readOnly: Bool, ownsPage: Bool, tableSize: Int) throws(Errno) -> UInt32 {
        let ref: UInt32
        if let free = freeRefs.popLast() {
            ref = free
        } else {
            guard Int(nextRef) < tableSize else { throw .noSpace }
            ref = nextRef
            nextRef += 1
        }
        grants[ref] = GrantEntry(ref: ref, grantee: grantee, page: page, readOnly: readOnly, ownsPage: ownsPage)
        return ref
    }

    /// Ends access to `ref`; deferred while another domain maps the page.
    func endAccess(_ ref: UInt32) {
        guard let entry = grants[ref] else { return }
        entry.endRequested = true
        removeIfUnused(entry)
    }

    func removeIfUnused(_ entry: GrantEntry) {
        guard entry.endRequested, entry.mapCount == 0, grants[entry.ref] === entry else { return }
        grants[entry.ref] = nil
        freeRefs.append(entry.ref)
        if entry.ownsPage { freePages.append(entry.page.index) }
    }
}

/// An event channel port bound in a domain.
struct EventPort {
    /// Notifications sent through this port.
    var sent = 0
    /// Events delivered to this port by its peer.
    var received = 0
    /// The domain allowed to bind to this port (an unbound port), or the peer's domain.
    var remoteDomain: UInt16?
    /// The peer's port once the channel is connected.
    var remotePort: UInt32?
}

/// A page of another domain mapped by this one.
struct MappedGrant {
    let owner: SimDomain
    let entry: GrantEntry
}

/// A simulated open file (`struct file`). `references` counts descriptors, memory mappings and
/// kernel holders (an exported buffer holds its gntdev file, an import holds its dma-buf); the
/// file is released when it reaches zero.
class SimFile {
    let domain: SimDomain
    var references = 0
    var isReleased = false

    init(domain: SimDomain) { self.domain = domain }
}

/// A gntdev open file.
final class GntdevFile: SimFile {
    var maps: [GntdevMap] = []
    /// Exported buffers, newest first (the kernel's `list_add`), found by descriptor number.
    var exports: [ExportedBuffer] = []
    /// Imports, newest first, found by descriptor number.
    var imports: [ImportRecord] = []
}

/// A gntdev grant map (`struct gntdev_grant_map`).
final class GntdevMap {
    /// First page index in the file.
    let index: UInt64
    let grants: [(domid: UInt32, ref: UInt32)]
    var inList = true
    /// Set on the first mmap and never cleared (Linux 6.1's `in_use`).
    var inUse = false
    var vmaLive = false
    var readOnly: Bool?
    var mapped: [MappedGrant]?
    var notifyFlags: UInt32 = 0
    var notifyOffset = 0
    var notifyPort: UInt32 = 0

    init(index: UInt64, grants: [(domid: UInt32, ref: UInt32)]) {
        self.index = index
        self.grants = grants
    }

    var count: Int { grants.count }
}

/// An exported dma-buf as its gntdev file sees it.
final class ExportedBuffer {
    let fdNumber: Int32
    let buffer: DmaBufFile
    init(fdNumber: Int32, buffer: DmaBufFile) {
        self.fdNumber = fdNumber
        self.buffer = buffer
    }
}

/// An imported dma-buf.
final class ImportRecord {
    let fdNumber: Int32
    let buffer: DmaBufFile
    let refs: [UInt32]
    init(fdNumber: Int32, buffer: DmaBufFile, refs: [UInt32]) {
        self.fdNumber = fdNumber
        self.buffer = buffer
        self.refs = refs
    }
}

/// A gntalloc open file.
final class GntallocFile: SimFile {
    /// Grants in file order (`priv->list`).
    var grefs: [GntallocGref] = []
    var nextIndex: UInt64 = 0
}

/// One gntalloc page (`struct gntalloc_gref`).
final class GntallocGref {
    let fileIndex: UInt64
    let ref: UInt32
    let page: Page
    /// The file list's reference plus one per memory mapping.
    var users = 1
    var notifyFlags: UInt32 = 0
    var notifyOffset = 0
    var notifyPort: UInt32 = 0
    var deleted = false

    init(fileIndex: UInt64, ref: UInt32, page: Page) {
        self.fileIndex = fileIndex
        self.ref = ref
        self.page = page
    }
}

/// A dma-buf.
final class DmaBufFile: SimFile {
    enum Origin {
        /// Exported by gntdev from grants: the pages are foreign, the exporter has no mmap.
        case gntdevExport(exporter: GntdevFile, mapped: [MappedGrant])
        /// udmabuf over a memfd.
        case udmabuf
        /// A DMA heap allocation.
        case heap
    }

    let pages: [Page]
    var origin: Origin
    var name: String?
    /// Set when the last reference went (what wait-released waits for).
    var released = false

    init(domain: SimDomain, pages: [Page], origin: Origin) {
        self.pages = pages
        self.origin = origin
        super.init(domain: domain)
    }

    var size: Int { pages.count * xenPageSize }
}

/// Any other file the simulator opened (/dev/null placeholders, device nodes it serves).
final class PlainFile: SimFile {
    enum Kind { case devNull, udmabufDevice, dmaHeap }
    let kind: Kind
    init(domain: SimDomain, kind: Kind) {
        self.kind = kind
        super.init(domain: domain)
    }
}

/// A memory mapping made through the simulated kernel.
final class Region {
    enum Kind {
        case gntdev(GntdevMap)
        case gntalloc([GntallocGref])
        case dmaBuf
    }
    let length: Int
    let file: SimFile
    let kind: Kind
    init(length: Int, file: SimFile, kind: Kind) {
        self.length = length
        self.file = file
        self.kind = kind
    }
}

/// A fault to inject.
struct FaultRule {
    let call: SimulatedCall
    let errno: Errno
    var remaining: Int
    let domain: UInt16?
}

/// The whole simulated kernel and hypervisor state. Only touched under `XenSimulation`'s lock.
final class SimKernel: @unchecked Sendable {
    var configuration: XenSimulation.Configuration
    var domains: [UInt16: SimDomain] = [:]
    /// Descriptor number → open file.
    var files: [Int32: SimFile] = [:]
    /// Mapping start address → region.
    var regions: [UInt: Region] = [:]
    /// Pages gntalloc has allocated, all files together (its global `gref_size`).
    var gntallocPages = 0
    var faults: [FaultRule] = []

    init(configuration: XenSimulation.Configuration) {
        self.configuration = configuration
    }

    // MARK: Faults

    func takeFault(_ call: SimulatedCall, domain: UInt16) -> Errno? {
        for i in faults.indices where faults[i].remaining > 0 && faults[i].call.matches(call) && (faults[i].domain == nil || faults[i].domain == domain) {
            faults[i].remaining -= 1
            let errno = faults[i].errno
            faults.removeAll { $0.remaining == 0 }
            return errno
        }
        return nil
    }

    // MARK: Descriptors

    func register(_ fd: Int32, _ file: SimFile) {
        files[fd] = file
        file.references += 1
    }

    func file(_ fd: Int32, in domain: SimDomain) -> SimFile? {
        guard let file = files[fd], file.domain === domain else { return nil }
        return file
    }

    func unregister(_ fd: Int32) {
        if let file = files.removeValue(forKey: fd) { drop(file) }
    }

    /// Drops one reference; releases the file when it was the last.
    func drop(_ file: SimFile) {
        file.references -= 1
        guard file.references == 0, !file.isReleased else { return }
        file.isReleased = true
        switch file {
        case let gntdev as GntdevFile: release(gntdev)
        case let gntalloc as GntallocFile: release(gntalloc)
        case let buffer as DmaBufFile: release(buffer)
        default: break
        }
    }

    /// A fresh real descriptor for a simulated file: an eventfd (cheap, not seekable or
    /// mappable), or a memfd of `size` bytes for dma-bufs so `lseek` works even outside the seam.
    func newDescriptor(size: Int? = nil) throws(Errno) -> Int32 {
        if let size {
            let fd = try HostCalls.memfdCreate("xengnt-sim-dmabuf")
            do throws(Errno) {
                try HostCalls.ftruncate(fd, length: Int64(size))
            } catch {
                try? HostCalls.close(fd)
                throw error
            }
            return fd
        }
        return try HostCalls.eventfd()
    }

    // MARK: Grants

    /// Maps every grant or none (Xen checks each; one bad grant fails the whole request).
    ///
    /// Lab cases `map-bad-refs`, `map-read-only`, `export-bad-input`, `export-read-only-grant`:
    /// an invalid, unused or foreign ref, a read-only grant mapped writable, or an unknown
    /// domain fails the whole request.
    func mapGrants(_ grants: [(domid: UInt32, ref: UInt32)], by mapper: SimDomain, writable: Bool) -> [MappedGrant]? {
        var mapped: [MappedGrant] = []
        mapped.reserveCapacity(grants.count)
        for grant in grants {
            guard grant.domid <= UInt32(UInt16.max),
                  let owner = domains[UInt16(grant.domid)], owner.alive,
                  let entry = owner.grants[grant.ref], !entry.endRequested,
                  entry.grantee == mapper.id,
                  !(writable && entry.readOnly)
            else {
                unmap(mapped)
                return nil
            }
            entry.mapCount += 1
            mapped.append(MappedGrant(owner: owner, entry: entry))
        }
        return mapped
    }

    func unmap(_ mapped: [MappedGrant]) {
        for grant in mapped {
            grant.entry.mapCount -= 1
            grant.owner.removeIfUnused(grant.entry)
        }
    }

    // MARK: Releases

    func release(_ file: GntdevFile) {
        for map in file.maps where map.inList {
            map.inList = false
            put(map, in: file)
        }
        file.maps.removeAll()
        for record in file.imports {
            endImport(record, in: file)
        }
        file.imports.removeAll()
    }

    /// Drops the grant map when neither the file's list nor a memory mapping holds it
    /// (`gntdev_put_map`): the notification fires and the grants are unmapped (lab
    /// `notify-clear-byte`, `notify-send-event`).
    func put(_ map: GntdevMap, in file: GntdevFile) {
        guard !map.inList, !map.vmaLive else { return }
        if let mapped = map.mapped {
            if map.notifyFlags & UInt32(UNMAP_NOTIFY_CLEAR_BYTE) != 0 {
                let page = map.notifyOffset / xenPageSize
                if page < mapped.count {
                    mapped[page].entry.page.write([0], at: map.notifyOffset % xenPageSize)
                }
            }
            unmap(mapped)
            map.mapped = nil
        }
        if map.notifyFlags & UInt32(UNMAP_NOTIFY_SEND_EVENT) != 0 {
            notify(port: map.notifyPort, of: file.domain)
        }
        map.notifyFlags = 0
        file.maps.removeAll { $0 === map }
    }

    /// Sends an event through `port` of `domain`: counted there, and delivered to the peer's
    /// port if the channel is connected.
    func notify(port: UInt32, of domain: SimDomain) {
        guard var local = domain.ports[port] else { return }
        local.sent += 1
        domain.ports[port] = local
        if let remoteDomain = local.remoteDomain, let remotePort = local.remotePort,
           let peer = domains[remoteDomain], peer.alive {
            peer.ports[remotePort]?.received += 1
        }
    }

    func release(_ file: GntallocFile) {
        for gref in file.grefs {
            gref.users -= 1
            if gref.users == 0 { delete(gref, of: file.domain) }
        }
        file.grefs.removeAll()
    }

    /// `__del_gref`: the notification fires, access ends (deferred while mapped), the page
    /// leaves gntalloc's global count (lab `notify-clear-byte`, `gntalloc-limit`).
    func delete(_ gref: GntallocGref, of domain: SimDomain) {
        guard !gref.deleted else { return }
        gref.deleted = true
        if gref.notifyFlags & UInt32(UNMAP_NOTIFY_CLEAR_BYTE) != 0 {
            gref.page.write([0], at: gref.notifyOffset)
        }
        if gref.notifyFlags & UInt32(UNMAP_NOTIFY_SEND_EVENT) != 0 {
            notify(port: gref.notifyPort, of: domain)
        }
        domain.endAccess(gref.ref)
        gntallocPages -= 1
    }

    func release(_ buffer: DmaBufFile) {
        buffer.released = true
        if case .gntdevExport(let exporter, let mapped) = buffer.origin {
            unmap(mapped)
            buffer.origin = .gntdevExport(exporter: exporter, mapped: [])
            exporter.exports.removeAll { $0.buffer === buffer }
            // The export held its gntdev file open.
            drop(exporter)
        }
    }

    func endImport(_ record: ImportRecord, in file: GntdevFile) {
        for ref in record.refs { file.domain.endAccess(ref) }
        drop(record.buffer)
    }

    // MARK: Domains

    /// Xen tears down every mapping a dying domain holds, so its peers' deferred ends complete;
    /// its own grants stay mapped where others map them, but cannot be mapped anew.
    func destroy(_ domain: SimDomain) {
        domain.alive = false
        var seen = Set<ObjectIdentifier>()
        let held = files.values.map { $0 } + regions.values.map(\.file)
        for file in held where file.domain === domain && seen.insert(ObjectIdentifier(file)).inserted {
            tearDownMappings(of: file)
        }
    }

    private func tearDownMappings(of file: SimFile) {
        switch file {
        case let gntdev as GntdevFile:
            for map in gntdev.maps {
                if let mapped = map.mapped { unmap(mapped); map.mapped = [] }
            }
            for export in gntdev.exports {
                if case .gntdevExport(let exporter, let mapped) = export.buffer.origin {
                    unmap(mapped)
                    export.buffer.origin = .gntdevExport(exporter: exporter, mapped: [])
                }
            }
        case let buffer as DmaBufFile:
            if case .gntdevExport(let exporter, let mapped) = buffer.origin {
                unmap(mapped)
                buffer.origin = .gntdevExport(exporter: exporter, mapped: [])
            }
        default:
            break
        }
    }
}
