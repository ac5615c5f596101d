import SystemPackage
import XenGnt

/// One grant side of a grant copy, resolved by Xen.
enum CopySide {
    case page(Page)
    case failed(GrantStatus)
}

/// The simulated Xen 4.17: its domains, their grant tables, maptracks, event channels and
/// memory. The Linux of each domain is a `DomainKernel`; the host's xenstored, when it comes,
/// will sit beside this.
final class Hypervisor {
    /// The host's `gnttab_max_frames` (every domain's `max_grant_frames`).
    let maxGrantFrames: Int
    private(set) var domains: [UInt16: XenDomain] = [:]
    /// Ids of domains that were destroyed and are gone (until the id is used again).
    private(set) var goneDomains: Set<UInt16> = []
    private var nextSerial: UInt64 = 0

    init(maxGrantFrames: Int) {
        self.maxGrantFrames = maxGrantFrames
    }

    func createDomain(_ id: UInt16, type: GuestType) throws(Errno) -> XenDomain {
        nextSerial += 1
        let domain = try XenDomain(id: id, serial: nextSerial, type: type, maxGrantFrames: maxGrantFrames)
        domains[id] = domain
        goneDomains.remove(id)
        return domain
    }

    // MARK: Grant maps (GNTTABOP_map_grant_ref / unmap_grant_ref)

    /// Maps every grant or none (Xen checks each; one bad grant fails the whole request).
    ///
    /// Lab cases `map-bad-refs`, `map-read-only`, `export-bad-input`, `export-read-only-grant`:
    /// an invalid, unused or foreign ref, a read-only grant mapped writable, or an unknown
    /// domain fails the whole request. A destroyed (dying) domain's grants cannot be mapped
    /// anew.
    func map(_ grants: [(domid: UInt32, ref: UInt32)], by mapper: XenDomain, writable: Bool) -> [MaptrackEntry]? {
        guard mapper.isAlive else { return nil }
        var mapped: [MaptrackEntry] = []
        mapped.reserveCapacity(grants.count)
        for grant in grants {
            guard grant.domid <= UInt32(UInt16.max),
                let owner = domains[UInt16(grant.domid)], owner.isAlive,
                Int(grant.ref) < owner.grantTable.size,
                let entry = owner.grantTable[grant.ref], !entry.endRequested,
                entry.grantee == mapper.id,
                !(writable && entry.readOnly)
            else {
                unmap(mapped)
                return nil
            }
            entry.mapCount += 1
            mapped.append(mapper.track(owner, entry))
        }
        return mapped
    }

    /// Unmaps what `mapped` still holds (a mapping Xen already tore down is skipped).
    func unmap(_ mapped: [MaptrackEntry]) {
        for mapping in mapped where mapping.isLive {
            mapping.isLive = false
            mapping.mapper?.maptrack[mapping.handle] = nil
            mapping.entry.mapCount -= 1
            releaseIfUnused(mapping.entry, of: mapping.owner)
        }
    }

    // MARK: Grants

    /// Ends access to `ref` of `domain`; deferred while another domain maps the page.
    func endAccess(_ ref: UInt32, of domain: XenDomain) {
        guard let entry = domain.grantTable[ref] else { return }
        entry.endRequested = true
        releaseIfUnused(entry, of: domain)
    }

    private func releaseIfUnused(_ entry: GrantEntry, of owner: XenDomain) {
        guard entry.endRequested, entry.mapCount == 0, owner.grantTable[entry.ref] === entry else { return }
        owner.grantTable.remove(entry)
        if entry.ownsPage { owner.memory.free(entry.page) }
        if owner.state == .dying, owner.grantTable.entries.isEmpty { reap(owner) }
    }

    /// Xen's checks for one grant side of a copy (lab `grant-copy`): an unknown or dying
    /// domain is `GNTST_bad_domain`, a ref at or past the table's current size
    /// `GNTST_bad_gntref`, an unused or foreign entry or a write to a read-only grant
    /// `GNTST_general_error` ("Bad flags or dom", "write-pin a r/o grant entry").
    func resolveForCopy(_ domid: UInt16, _ ref: UInt32, by mapper: XenDomain, writing: Bool) -> CopySide {
        guard let owner = domains[domid], owner.isAlive else { return .failed(.badDomain) }
        guard Int(ref) < owner.grantTable.size else { return .failed(.badGrantRef) }
        guard let entry = owner.grantTable[ref], !entry.endRequested, entry.grantee == mapper.id,
            !(writing && entry.readOnly)
        else { return .failed(.generalError) }
        return .page(entry.page)
    }

    // MARK: Domain lifecycle

    /// `xl destroy`, Xen's part (the domain's kernel is gone already): every mapping the domain
    /// holds of other domains' pages is torn down, so their deferred ends of access complete;
    /// its own grants end, but pages others still map stay mapped. The domain is dying until
    /// the last of those is unmapped, then it is gone.
    func destroy(_ domain: XenDomain) {
        guard domain.isAlive else { return }
        domain.state = .dying
        for port in domain.ports.numbers { close(port: port, of: domain) }
        unmap(Array(domain.maptrack.values))
        for entry in Array(domain.grantTable.entries.values) {
            entry.endRequested = true
            releaseIfUnused(entry, of: domain)
        }
        if domain.state == .dying, domain.grantTable.entries.isEmpty { reap(domain) }
    }

    private func reap(_ domain: XenDomain) {
        domain.state = .gone
        guard domains[domain.id] === domain else { return }
        domains[domain.id] = nil
        goneDomains.insert(domain.id)
    }
}
