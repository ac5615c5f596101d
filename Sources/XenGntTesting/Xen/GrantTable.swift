import SystemPackage
import XenGnt

/// An entry of a domain's grant table: the page it grants, to whom, and who maps it.
final class GrantEntry {
    let ref: UInt32
    let grantee: UInt16
    let page: Page
    let readOnly: Bool
    /// Whether the page came from the domain's own memory (freed when access ends), rather
    /// than from a buffer that owns it (an imported dma-buf).
    let ownsPage: Bool
    /// Foreign mappings of the page (maptrack entries of any domain).
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

/// A domain's grant table, as Xen and the domain's Linux share it.
///
/// Version 1 entries are 8 bytes, so a 4 KiB frame holds 512. Linux starts a guest with one
/// frame and grows the table when its free list runs out (`gnttab_expand`), up to the domain's
/// `max_grant_frames` (Xen 4.17's default `gnttab_max_frames` is 64: 32768 entries); a full
/// table is `ENOSPC`. Xen checks a ref against the table's **current** size: one at or beyond
/// it is `GNTST_bad_gntref`. Refs 0-7 are Linux's own (`GNTTAB_NR_RESERVED_ENTRIES`).
final class GrantTable {
    static let entriesPerFrame = 4096 / 8
    static let reservedEntries: UInt32 = 8

    let maxFrames: Int
    /// Frames Linux has set up so far.
    private(set) var frames = 1
    private(set) var entries: [UInt32: GrantEntry] = [:]
    /// The next ref never used (refs below it are in use or free).
    private var nextRef = reservedEntries
    /// Freed refs, reused last-in first-out as Linux's free list does.
    private var freeRefs: [UInt32] = []

    init(maxFrames: Int) {
        self.maxFrames = max(maxFrames, 1)
    }

    /// The number of entries the table has now (what Xen checks refs against).
    var size: Int { frames * Self.entriesPerFrame }

    /// How many more entries can be granted, growing the table to its maximum.
    var available: Int { maxFrames * Self.entriesPerFrame - Int(nextRef) + freeRefs.count }

    subscript(ref: UInt32) -> GrantEntry? { entries[ref] }

    /// Adds an entry granting `page` to `grantee`, growing the table by a frame when needed;
    /// `ENOSPC` once the table has `maxFrames` frames and no free entry.
    func grant(_ page: Page, to grantee: UInt16, readOnly: Bool, ownsPage: Bool) throws(Errno) -> GrantEntry {
        let ref: UInt32
        if let free = freeRefs.popLast() {
            ref = free
        } else {
            if Int(nextRef) == size {
                guard frames < maxFrames else { throw .noSpace }
                frames += 1
            }
            ref = nextRef
            nextRef += 1
        }
        let entry = GrantEntry(ref: ref, grantee: grantee, page: page, readOnly: readOnly, ownsPage: ownsPage)
        entries[ref] = entry
        return entry
    }

    /// Takes `entry` out of the table; its ref becomes free.
    func remove(_ entry: GrantEntry) {
        guard entries[entry.ref] === entry else { return }
        entries[entry.ref] = nil
        freeRefs.append(entry.ref)
    }
}
