import XenGnt
import XenGntBackend

extension ConformanceSuite {
    static let xenstoreQuotaCases: [ConformanceCase] = [
        ConformanceCase(
            "xenstore-quotas",
            "xenstored's quotas for an unprivileged domain: a node of 2048 bytes with its header and permissions (ENOSPC), 11 open transactions (ENOSPC), 128 watches with the kernel's own (E2BIG, failing the device write), and 20 outstanding requests (200 concurrent reads complete)",
            each: [.pv, .pvh]
        ) { peer in
            try await withXenStore(peer) { store in
                let base = "/local/domain/\(peer.id.rawValue)/data/xengnt-quota"
                try await removeIfPresent(base, store)
                // A node's record is a 24-byte header, 8 bytes per permission, the value and the
                // children's names; 2048 bytes or more is refused.
                try await store.write("\(base)/value", String(repeating: "x", count: 2015))
                try await checkFailsAsync(code: .quotaExceeded, errno: .noSpace, detail: "ENOSPC", path: "\(base)/value") {
                    try await store.write("\(base)/value", String(repeating: "x", count: 2016))
                }
                try check(try await store.read("\(base)/value").utf8.count == 2015, "the refused write changed the node")

                // Transactions: xenstored refuses a start when more than 10 are open.
                var open: [UInt32] = []
                var refusal: XenGntError?
                while open.count < 20 {
                    do throws(XenGntError) {
                        let reply = try await store.send(XenStoreMessageType.transactionStart, payload: [0])
                        open.append(UInt32(reply.text) ?? 0)
                    } catch {
                        refusal = error
                        break
                    }
                }
                for id in open {
                    _ = try await store.send(
                        XenStoreMessageType.transactionEnd,
                        payload: XenStoreMessage.payload(["F"]),
                        transaction: id
                    )
                }
                report(peer, "\(open.count) transactions open at once, then: \(refusal.map { "\($0.detail ?? "?")" } ?? "none")")
                try check(
                    open.count == 11 && refusal?.code == .quotaExceeded && refusal?.detail == "ENOSPC",
                    "\(open.count) transactions, then \(refusal.map { "\($0)" } ?? "no refusal")"
                )

                // Watches: 128 per domain, counting the kernel's own.
                var watches: [XenStoreWatch] = []
                var watchRefusal: XenGntError?
                while watches.count < 200 {
                    do throws(XenGntError) {
                        watches.append(try await store.watch("\(base)/w\(watches.count)"))
                    } catch {
                        watchRefusal = error
                        break
                    }
                }
                for watch in watches { try await watch.cancel() }
                report(peer, "\(watches.count) watches registered, then: \(watchRefusal.map { "\($0)" } ?? "none")")
                try check(
                    watchRefusal?.code == .quotaExceeded && watchRefusal?.errno == .argListTooLong,
                    "watch refusal: \(watchRefusal.map { "\($0)" } ?? "none")"
                )
                try check(watches.count > 100 && watches.count <= 129, "\(watches.count) watches")
                try await store.watch("\(base)/after").cancel()

                // Outstanding requests: the client keeps at most 20 in flight.
                let values = try await withThrowingTaskGroup(of: Int.self) { group in
                    for _ in 0..<200 { group.addTask { try await store.read("\(base)/value").utf8.count } }
                    return try await group.reduce(0) { $0 + ($1 == 2015 ? 1 : 0) }
                }
                try check(values == 200, "\(values) of 200 concurrent reads")
                try await store.remove(base)
            }
        }
    ]
}
