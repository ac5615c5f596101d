import XenGnt

extension ConformanceSuite {
    /// One side of `fault-sigkill`. Each side imports a udmabuf for the other; a holder process
    /// shares gntalloc's full limit, maps the peer's refs (and, in PVH, exports them) and imports
    /// a buffer of its own; Dom0 reads the grant dump; both holders are killed. Then each side
    /// checks that the peer's killed holder's grants are revoked, Dom0 that the dump is back to
    /// where it was, and each side, a new process, shares the full limit and maps the refs again.
    static func killHolder(peerRole other: LabRole) -> ConformanceCase.Part {
        { peer in
            let before = try await peer.footprint()
            let baseline = peer.role == .dom0 ? try await peer.grantDump() : nil
            try await killAndRecover(peer, other: other, baseline: baseline)
            let after = try await peer.footprint()
            try check(after == before, "this process after the case: \(after.changes(since: before))")
        }
    }

    static func killAndRecover(_ peer: Peer, other: LabRole, baseline: GrantDump?) async throws {
        let me = peer.id
        let them = peer.id(of: other)
        let limit = try gntallocLimit(peer)
        let gntdev = try GrantDevice(on: peer.system)
        let buffer = try DmaBuf.udmabuf(pages: killedMapPages, on: peer.system)
        let cpu = try buffer.map()
        try buffer.withCPUAccess(.readWrite) { () throws(XenGntError) in
            try cpu.withUnsafeMutableBytes {
                $0.copyBytes(from: pattern(peer.role == .dom0 ? 3 : 4, count: killedMapPages * xenPageSize))
            }
        }
        let imported = try gntdev.importDmaBuf(buffer, to: them)
        try await peer.publish(refs: imported.refs, as: "refs")
        let theirs = try await peer.refs("refs", from: other)

        var holdings: [Holding] = [
            .share(pages: limit, with: them), .map(refs: theirs, from: them), .importBuffer(pages: killedImportPages, to: them),
        ]
        if peer.role.guestType == .pvh { holdings.append(.export(refs: theirs, from: them)) }
        let holder = try await peer.spawnHolder(holdings)
        try check(holder.refs[0].count == limit && holder.refs[2].count == killedImportPages, "the holder's refs")
        try await peer.publish("held")
        if let baseline {
            try await peer.wait(for: "held", from: other)
            let dump = try await peer.grantDump()
            let mine = dump.count(of: me, mappedBy: them) - baseline.count(of: me, mappedBy: them)
            let mapped = dump.count(of: them, mappedBy: me) - baseline.count(of: them, mappedBy: me)
            peer.note("grant dump with both holders: \(me)→\(them) +\(mine), \(them)→\(me) +\(mapped) active entries; \(dump)")
            try check(
                mine == killedMapPages && mapped == killedMapPages,
                "the holders' mappings in the grant dump: \(mine) and \(mapped), not \(killedMapPages) each"
            )
            try await peer.publish("dumped")
        } else {
            try await peer.wait(for: "dumped", from: .dom0)
        }

        let started = ContinuousClock.now
        try await holder.kill()
        peer.note(
            "holder of \(holdings.map(\.description).joined(separator: ", ")) killed and reaped in \(milliseconds(ContinuousClock.now - started)) ms"
        )
        try await peer.publish(refs: holder.refs[0] + holder.refs[2], as: "killed-refs")
        let killed = try await peer.refs("killed-refs", from: other)
        try await checkRevoked(killed, of: them, stillGranted: theirs[0], gntdev)
        peer.note(
            "all \(killed.count) refs \(other)'s killed holder shared or imported are revoked (grant copy: GNTST_general_error)"
        )
        try await peer.publish("revoked")

        if let baseline {
            try await peer.wait(for: "revoked", from: other)
            let (dump, dumps) = try await settledDump(peer, like: baseline, between: me, them)
            peer.note(
                "grant dump after the kills: \(dump.count(between: me, and: them)) active entries between \(me) and \(them) (before the case: \(baseline.count(between: me, and: them))), at dump \(dumps)"
            )
            try await peer.publish("dumped-after")
        } else {
            try await peer.wait(for: "dumped-after", from: .dom0)
        }

        // This process is the new one: the full limit and the same mapping again.
        try GrantAllocator(on: peer.system).share(pages: limit, with: them).unshare()
        let mapping = try gntdev.map(theirs, from: them)
        var expected = pattern(peer.role == .dom0 ? 4 : 3, count: killedMapPages * xenPageSize)
        for page in 0..<killedMapPages { expected[page * xenPageSize + 1] = Holding.mapMark }  // the killed holder's writes
        try check(mapping.withUnsafeBytes { $0.elementsEqual(expected) }, "the peer's pages, mapped again")
        try mapping.unmap()
        try await peer.publish("remapped")
        try await peer.wait(for: "remapped", from: other)
        let returned = try imported.release()
        try cpu.unmap()
        try returned.close()
    }

    /// The refs of `granter` (a killed holder's, or ended ones) are revoked: a grant copy from
    /// each fails with `GNTST_general_error`, while one from a ref still granted succeeds.
    static func checkRevoked(_ refs: [GrantRef], of granter: DomainID, stillGranted: GrantRef, _ gntdev: GrantDevice) async throws
    {
        var byte: [UInt8] = [0]
        let statuses = try byte.withUnsafeMutableBytes { into in
            var segments = ([stillGranted] + refs).map {
                GrantCopySegment(
                    from: .grant(ForeignGrant(domain: granter, ref: $0), offset: 0),
                    to: .local(into.baseAddress!),
                    length: 1
                )
            }
            try gntdev.copy(&segments)
            return segments.map(\.status)
        }
        try check(statuses[0] == .okay, "a grant copy from a ref still granted: \(statuses[0])")
        let live = statuses.dropFirst().filter { $0 != .generalError }
        try check(live.isEmpty, "\(live.count) of \(refs.count) refs of \(granter) are not revoked: \(Set(live))")
    }

    /// The grant dump once the entries between `a` and `b` are back to `baseline`'s (the kernel
    /// may unmap asynchronously for a moment after a process is reaped), bounded to 10 s; and
    /// how many dumps that took.
    static func settledDump(
        _ peer: Peer,
        like baseline: GrantDump,
        between a: DomainID,
        _ b: DomainID
    ) async throws -> (GrantDump, Int) {
        let started = ContinuousClock.now
        var dumps = 0
        while true {
            let dump = try await peer.grantDump()
            dumps += 1
            if dump.count(between: a, and: b) == baseline.count(between: a, and: b) {
                return (dump, dumps)
            }
            if ContinuousClock.now - started > .seconds(10) {
                throw ConformanceFailure(
                    "active entries between \(a) and \(b): \(dump.count(between: a, and: b)), before the case \(baseline.count(between: a, and: b)), 10 s on: \(dump)"
                )
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    /// gntalloc's global limit, which the fault cases fill.
    static func gntallocLimit(_ peer: Peer) throws -> Int {
        guard let limit = try GrantAllocator(on: peer.system).globalLimit, limit >= 2025 else {
            throw ConformanceFailure("gntalloc's limit is unreadable or below one 1080p frame")
        }
        return limit
    }

    /// One side of `fault-cycles`: each side shares 4 pages with the other once, then runs the
    /// cycles concurrently with it; Dom0 compares the grant dump with the one before, and each
    /// side shares gntalloc's full limit at the end.
    static func cycles(peerRole other: LabRole) -> ConformanceCase.Part {
        { peer in
            let before = try await peer.footprint()
            let baseline = peer.role == .dom0 ? try await peer.grantDump() : nil
            let them = peer.id(of: other)
            try await runCycles(peer, other: other)
            try await peer.publish("unshared")
            try await peer.wait(for: "unshared", from: other)
            if let baseline {
                let (dump, dumps) = try await settledDump(peer, like: baseline, between: peer.id, them)
                peer.note(
                    "grant dump after the cycles: \(dump.count(between: peer.id, and: them)) active entries between \(peer.id) and \(them), as before the case (at dump \(dumps))"
                )
            }
            let limit = try gntallocLimit(peer)
            try GrantAllocator(on: peer.system).share(pages: limit, with: them).unshare()
            let after = try await peer.footprint()
            try check(after == before, "this process after \(faultCycles) cycles: \(after.changes(since: before))")
        }
    }

    static func runCycles(_ peer: Peer, other: LabRole) async throws {
        let them = peer.id(of: other)
        let allocator = try GrantAllocator(on: peer.system)
        let shared = try allocator.share(pages: 4, with: them)
        shared.withUnsafeMutableBytes { $0.copyBytes(from: pattern(peer.role == .dom0 ? 5 : 6, count: 4 * xenPageSize)) }
        try await peer.publish(refs: shared.refs, as: "refs")
        let theirs = try await peer.refs("refs", from: other)
        let expected = pattern(peer.role == .dom0 ? 6 : 5, count: 4 * xenPageSize)[3 * xenPageSize + 5]
        let gntdev = try GrantDevice(on: peer.system)
        var buffer: DmaBuf? = try DmaBuf.udmabuf(pages: 4, on: peer.system)
        let exports = peer.role.guestType == .pvh
        let started = ContinuousClock.now
        var ended: [GrantRef] = []
        for cycle in 0..<faultCycles {
            let mapping = try gntdev.map(theirs, from: them)
            let seen = mapping.withUnsafeBytes { $0[3 * xenPageSize + 5] }
            try mapping.unmap()
            if seen != expected { throw ConformanceFailure("cycle \(cycle): the peer's byte is \(seen), not \(expected)") }
            if exports { try gntdev.exportDmaBuf(refs: theirs, from: them).releaseAndWait(timeout: .seconds(5)) }
            let imported = try gntdev.importDmaBuf(buffer.take()!, to: them)
            let importRefs = imported.refs
            buffer = try imported.release()
            let churned = try allocator.share(pages: 4, with: them)
            let shareRefs = churned.refs
            try churned.unshare()
            if cycle == faultCycles - 1 { ended = importRefs + shareRefs }
        }
        let elapsed = ContinuousClock.now - started
        let rate = Double(faultCycles) / (Double(milliseconds(elapsed)) / 1000)
        peer.note(
            "\(faultCycles) cycles (map+unmap\(exports ? ", export+release" : ""), import+release, share+unshare of 4 pages) in \(milliseconds(elapsed)) ms: \(Int(rate.rounded())) cycles/s"
        )
        // Xen's dump lists only mapped grants: the peer checks that the last cycle's grants of
        // this side were ended, while both long-lived shares still stand.
        try await peer.publish(refs: ended, as: "ended-refs")
        try await peer.publish("cycled")
        try await peer.wait(for: "cycled", from: other)
        try await checkRevoked(try await peer.refs("ended-refs", from: other), of: them, stillGranted: theirs[0], gntdev)
        try await peer.publish("checked")
        try await peer.wait(for: "checked", from: other)
        try shared.unshare()
        try buffer.take()!.close()
    }
}
