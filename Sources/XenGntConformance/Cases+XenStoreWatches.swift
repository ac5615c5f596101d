import XenGnt
import XenGntBackend

extension ConformanceSuite {
    static let xenstoreWatchCases: [ConformanceCase] = [
        ConformanceCase(
            "xenstore-transactions",
            "transactions: concurrent read-modify-write from three domains loses no update; a conflict is EAGAIN and reruns the body; a failed body ends its transaction (no quota leak); an unknown transaction is ENOENT",
            parts: [
                .dom0: transactionPart(increments: 20),
                .pv: transactionPart(increments: 20),
                .pvh: transactionPart(increments: 20),
            ]
        ),

        ConformanceCase(
            "xenstore-watches",
            "watches: the first event at registration, one per write (even of an unchanged value) and per removed node, relative paths, a committed transaction's writes, cancel ends the iteration, @releaseDomain and @introduceDomain",
            parts: [
                .dom0: { peer in
                    try await withXenStore(peer) { store in
                        for special in ["@releaseDomain", "@introduceDomain"] {
                            let watch = try await store.watch(special)
                            var events = watch.makeAsyncIterator()
                            try check(try await events.next()?.path == special, "the first event of \(special)")
                            try await watch.cancel()
                        }
                        let path = try await peer.value(of: "path", from: .pvh)
                        try await store.write("\(path)/value", "1")
                        try await peer.wait(for: "first", from: .pvh)
                        try await store.write("\(path)/value", "1")
                        try await peer.wait(for: "unchanged", from: .pvh)
                        try await store.transaction { transaction throws(XenGntError) in
                            try await transaction.write("\(path)/in-transaction", "t")
                        }
                        try await peer.wait(for: "transaction", from: .pvh)
                        try await store.remove("\(path)/value")
                        try await peer.wait(for: "removed", from: .pvh)
                    }
                },
                .pvh: { peer in
                    try await withXenStore(peer) { store in
                        let path = "/local/domain/\(peer.id.rawValue)/data/xengnt-watch"
                        try await removeIfPresent(path, store)
                        try await store.makeDirectory(path)
                        // Dom0 writes this domain's nodes; Dom0 may, and this domain owns them.
                        let watch = try await store.watch(path)
                        var events = watch.makeAsyncIterator()
                        try check(try await events.next()?.path == path, "the first event names the watched path")
                        try await peer.publish("path", path)
                        try await expect(&events, "\(path)/value")
                        try await peer.publish("first")
                        try await expect(&events, "\(path)/value")
                        try await peer.publish("unchanged")
                        try await expect(&events, "\(path)/in-transaction")
                        try await peer.publish("transaction")
                        try await expect(&events, "\(path)/value")
                        try await peer.publish("removed")
                        // A relative watch reports relative paths.
                        let relative = try await store.watch("data/xengnt-watch")
                        var relativeEvents = relative.makeAsyncIterator()
                        try check(try await relativeEvents.next()?.path == "data/xengnt-watch", "a relative watch's first event")
                        try await store.write("\(path)/mine", "m")
                        try await expect(&events, "\(path)/mine")
                        try check(try await relativeEvents.next()?.path == "data/xengnt-watch/mine", "a relative event")
                        // A DomU may watch @releaseDomain (it only gets the first event, unless Dom0
                        // lets it read the special node).
                        let release = try await store.watch("@releaseDomain")
                        var releaseEvents = release.makeAsyncIterator()
                        try check(try await releaseEvents.next()?.path == "@releaseDomain", "@releaseDomain in a DomU")
                        // Cancelling ends every iteration.
                        try await watch.cancel()
                        try check(try await events.next() == nil, "a cancelled watch ends its iteration")
                        try await relative.cancel()
                        try await release.cancel()
                        try await store.remove(path)
                    }
                },
            ]
        ),
    ]

    /// Waits for the next event of a watch and checks its path.
    static func expect(_ events: inout XenStoreWatch.Iterator, _ path: String, line: Int = #line) async throws {
        let event = try await events.next()
        try check(event?.path == path, "expected an event for \(path), got \(event?.path ?? "the end")", line: line)
    }

    /// Each domain adds `increments` to a shared counter, one transaction each, concurrently
    /// with the others; then shows a conflict and an abandoned transaction on its own.
    static func transactionPart(increments: Int) -> ConformanceCase.Part {
        { peer in
            try await withXenStore(peer) { store in
                let counter = "/xengnt/run/xenstore-transactions/counter"
                if peer.role == .dom0 {
                    try await store.write(counter, "0")
                    try await peer.publish("ready")
                } else {
                    try await peer.wait(for: "ready", from: .dom0)
                }
                let runs = Progress()
                for _ in 0..<increments {
                    try await store.transaction { transaction throws(XenGntError) in
                        runs.set(runs.value + 1)
                        let value = try await transaction.read(counter, as: Int.self)
                        try await transaction.write(counter, "\(value + 1)")
                    }
                }
                report(
                    peer,
                    "\(increments) increments took \(runs.value) transaction bodies (\(runs.value - increments) conflicts)"
                )
                try await peer.publish("counted")

                // A conflict made on purpose: another connection writes a node this transaction read.
                let mine = "/xengnt/run/xenstore-transactions/\(peer.role)"
                try await store.write(mine, "0")
                try await withXenStore(peer) { other in
                    try await checkFailsAsync(
                        code: .transactionConflict,
                        errno: .resourceTemporarilyUnavailable,
                        detail: "EAGAIN"
                    ) {
                        try await store.transaction(attempts: 1) { transaction throws(XenGntError) in
                            _ = try await transaction.read(mine)
                            try await other.write(mine, "1")
                            try await transaction.write(mine, "2")
                        }
                    }
                    try check(try await store.read(mine) == "1", "a conflicting transaction changed nothing")
                    let attempts = Progress()
                    try await store.transaction(attempts: 2) { transaction throws(XenGntError) in
                        attempts.set(attempts.value + 1)
                        _ = try await transaction.read(mine)
                        if attempts.value == 1 { try await other.write(mine, "3") }
                        try await transaction.write(mine, "4")
                    }
                    let final = try await store.read(mine)
                    try check(attempts.value == 2 && final == "4", "the body ran again and committed")
                    // A body that fails ends its transaction: 15 in a row stay under the quota of 10.
                    for _ in 0..<15 {
                        try await checkFailsAsync(code: .malformedValue) {
                            try await store.transaction { transaction throws(XenGntError) in
                                _ = try await transaction.read(mine)
                                throw XenGntError(.malformedValue, .xenstoreTransaction, detail: "the body gave up")
                            }
                        }
                    }
                    try await checkFailsAsync(code: .noSuchNode, detail: "ENOENT") {
                        _ = try await store.send(
                            XenStoreMessageType.transactionEnd,
                            payload: XenStoreMessage.payload(["T"]),
                            transaction: 0x7FFF_0000
                        )
                    }
                }
                if peer.role == .dom0 {
                    try await peer.wait(for: "counted", from: .pv)
                    try await peer.wait(for: "counted", from: .pvh)
                    let total = try await store.read(counter, as: Int.self)
                    try check(total == 3 * increments, "the counter is \(total), not \(3 * increments): an update was lost")
                }
            }
        }
    }
}
