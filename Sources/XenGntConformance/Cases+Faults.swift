import XenGnt

// The fault cases: a peer destroyed mid-use, a holder killed with SIGKILL, and a thousand
// export/import/map cycles. Each ends with the same accounting: this process's descriptors and
// mappings as they were, no active grant entry left between the domains, gntalloc's full limit
// free again. Documentation/Reliability.md ("Lab faults") has what they showed in the lab.

extension ConformanceSuite {
    static let faultCases: [ConformanceCase] = [
        ConformanceCase(
            "fault-destroy",
            "xl destroy of a DomU while Dom0 and the PVH DomU map its pages, the PVH DomU exports its grants, and it maps pages both grant it (import, gntalloc): every owner tears down without error, the victim goes, no grant entry is left",
            parts: [
                .dom0: survivor(toolstack: true),
                .pvh: survivor(toolstack: false),
                .victim: { peer in
                    // Its holder process takes everything and keeps it until the domain is destroyed;
                    // this runner then finishes normally.
                    let survivors: [LabRole] = [.dom0, .pvh]
                    var holdings = survivors.map { Holding.share(pages: victimPages, with: peer.id(of: $0)) }
                    for survivor in survivors {
                        holdings.append(.map(refs: try await peer.refs("refs", from: survivor), from: peer.id(of: survivor)))
                    }
                    let holder = try await peer.spawnHolder(holdings)
                    for (i, survivor) in survivors.enumerated() {
                        try await peer.publish(refs: holder.refs[i], as: "refs-\(survivor)")
                    }
                },
            ]
        ),
        ConformanceCase(
            "fault-sigkill",
            "a process holding gntalloc's full limit, a gntdev mapping, an import and (PVH) an export is killed with SIGKILL: its grants are revoked, Xen's grant dump keeps nothing of it, and a new process shares the full limit and maps as many refs again",
            parts: [
                .dom0: killHolder(peerRole: .pvh),
                .pvh: killHolder(peerRole: .dom0),
            ]
        ),
        ConformanceCase(
            "fault-cycles",
            "\(faultCycles) cycles of map+unmap, export+release (PVH), import+release and gntalloc share+unshare between Dom0 and the PVH DomU: descriptors, mappings, grant entries and gntalloc pages end where they started",
            parts: [
                .dom0: cycles(peerRole: .pvh),
                .pvh: cycles(peerRole: .dom0),
            ]
        ),
    ]

    /// Pages the victim shares with each survivor; each survivor grants it twice as many
    /// (an import and a gntalloc share of this size).
    static let victimPages = 2
    /// Pages each side of `fault-sigkill` imports for the other's holder to map (and export).
    static let killedMapPages = 64
    /// Pages the killed holder imports for its peer.
    static let killedImportPages = 16
    /// Cycles of `fault-cycles`.
    static let faultCycles = 1000

    /// A survivor of `fault-destroy`: it maps the victim's pages (and, in PVH, exports them),
    /// grants it an import and gntalloc pages it maps, and tears everything down after the
    /// victim is destroyed. Dom0 is also the toolstack: it reads the grant dump, destroys the
    /// victim and waits for it to go.
    static func survivor(toolstack: Bool) -> ConformanceCase.Part {
        { peer in
            let before = try await peer.footprint()
            let destroyed = try await holdThroughDestruction(peer, toolstack: toolstack)
            let after = try await peer.footprint()
            try check(after == before, "this process after the teardown: \(after.changes(since: before))")
            try await peer.publish("released")
            guard toolstack, let destroyed else { return }

            try await peer.wait(for: "released", from: .pvh)
            let unmapped = ContinuousClock.now
            let victim = peer.id(of: .victim)
            let deadline = unmapped.advanced(by: .seconds(60))
            var state = try await peer.state(of: .victim)
            while state != .gone && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(200))
                state = try await peer.state(of: .victim)
            }
            let gone = ContinuousClock.now
            try check(state == .gone, "the victim is still \(state) 60 s after the survivors let go")
            peer.note(
                "victim gone \(milliseconds(gone - destroyed)) ms after xl destroy began, \(milliseconds(gone - unmapped)) ms after the survivors' teardown"
            )
            let dump = try await peer.grantDump()
            peer.note("grant dump after: \(dump.count(involving: victim)) active entries with \(victim); \(dump)")
            try check(
                !dump.tables.contains(victim) && dump.count(involving: victim) == 0,
                "entries left with the victim: \(dump)"
            )
        }
    }

    /// The survivor's owners, alive from before the destruction until after it. Returns when
    /// Dom0 began `xl destroy` (toolstack only).
    static func holdThroughDestruction(_ peer: Peer, toolstack: Bool) async throws -> ContinuousClock.Instant? {
        let victim = peer.id(of: .victim)
        let gntdev = try GrantDevice(on: peer.system)
        let buffer = try DmaBuf.udmabuf(pages: victimPages, on: peer.system)
        let cpu = try buffer.map()
        let imported = try gntdev.importDmaBuf(buffer, to: victim)
        let shared = try GrantAllocator(on: peer.system).share(pages: victimPages, with: victim)
        try await peer.publish(refs: imported.refs + shared.refs, as: "refs")

        let refs = try await peer.refs("refs-\(peer.role)", from: .victim)
        let mapping = try gntdev.map(refs, from: victim)
        var exported = peer.role.guestType == .pvh ? try gntdev.exportDmaBuf(refs: refs, from: victim) : nil
        try check(
            mapping.withUnsafeBytes { marked($0, pages: refs.count, at: 0, Holding.shareMark) },
            "the victim's shared pages"
        )
        let written = try imported.withBuffer { (buffer) throws(XenGntError) in
            try buffer.withCPUAccess(.readOnly) { cpu.withUnsafeBytes { marked($0, pages: victimPages, at: 1, Holding.mapMark) } }
        }
        try check(written, "the victim's writes into the imported buffer")
        try check(
            shared.withUnsafeBytes { marked($0, pages: victimPages, at: 1, Holding.mapMark) },
            "the victim's writes into the shared pages"
        )
        try await peer.publish("holding")

        var destroyed: ContinuousClock.Instant?
        if toolstack {
            destroyed = try await destroyVictim(peer)
        } else {
            try await peer.wait(for: "destroyed", from: .dom0)
        }
        try check(mapping.withUnsafeBytes { $0[0] } == Holding.shareMark, "the dying victim's page, still mapped")
        try mapping.unmap()
        if let export = exported.take() {
            let pending = try export.release()
            try check(try pending.wait(timeout: .seconds(10)), "wait-released did not report the export released")
        }
        let returned = try imported.release()
        try shared.unshare()
        try cpu.unmap()
        try returned.close()
        return destroyed
    }

    /// Dom0, once both survivors hold everything and the victim's runner has finished: the
    /// grant dump before, `xl destroy`, and the victim must then be dying (its pages are mapped).
    static func destroyVictim(_ peer: Peer) async throws -> ContinuousClock.Instant {
        try await peer.wait(for: "holding", from: .pvh)
        try await peer.waitUntilFinished(.victim)
        let victim = peer.id(of: .victim)
        let dump = try await peer.grantDump()
        peer.note("grant dump before: \(dump.count(involving: victim)) active entries with \(victim); \(dump)")
        for survivor in [LabRole.dom0, .pvh] {
            let id = peer.id(of: survivor)
            try check(
                dump.count(of: victim, mappedBy: id) == victimPages,
                "\(survivor) maps \(dump.count(of: victim, mappedBy: id)) of the victim's refs, not \(victimPages)"
            )
            try check(
                dump.count(of: id, mappedBy: victim) == 2 * victimPages,
                "the victim maps \(dump.count(of: id, mappedBy: victim)) of \(survivor)'s refs, not \(2 * victimPages)"
            )
        }
        let started = ContinuousClock.now
        try await peer.destroy(.victim)
        let returned = ContinuousClock.now
        let state = try await peer.state(of: .victim)
        try check(state == .dying, "after xl destroy, while its pages are mapped, the victim is \(state), not dying")
        peer.note("xl destroy returned after \(milliseconds(returned - started)) ms; the victim is dying while mapped")
        try await peer.publish("destroyed")
        return started
    }

    /// Whether byte `offset` of each of the first `pages` pages is `mark`.
    static func marked(_ bytes: UnsafeRawBufferPointer, pages: Int, at offset: Int, _ mark: UInt8) -> Bool {
        (0..<pages).allSatisfy { bytes[$0 * xenPageSize + offset] == mark }
    }
}

/// Whole milliseconds of a duration.
func milliseconds(_ duration: Duration) -> Int64 {
    duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000
}
