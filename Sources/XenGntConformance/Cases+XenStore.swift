import SystemPackage
import XenGnt
import XenGntBackend

extension ConformanceSuite {
    static let xenstoreCases: [ConformanceCase] = [
        ConformanceCase(
            "xenstore-client",
            "the Swift XenStore client: transport, domid, read/write/mkdir/rm/directory, binary values, error strings, path and payload limits, 100 concurrent requests",
            each: LabRole.permanent
        ) { peer in
            try await withXenStore(peer) { store in
                try check(store.transport == (peer.role == .dom0 ? .daemonSocket : .kernelDevice), "transport \(store.transport)")
                let me = try await store.domainID()
                try check(me == peer.id, "domid \(me), expected \(peer.id)")
                try check(try await store.domainPath(of: me) == "/local/domain/\(me.rawValue)", "domain path")
                let base = "/local/domain/\(me.rawValue)/data/xengnt-client"
                try await removeIfPresent(base, store)
                try await store.write("\(base)/a", "1")
                try await store.write("\(base)/b/c", "deep")
                try check(try await store.directory(base).sorted() == ["a", "b"], "directory")
                try check(try await store.read("\(base)/b") == "", "an intermediate node is empty")
                try check(try await store.read("\(base)/b/c") == "deep", "read back")
                try await store.write("\(base)/binary", bytes: [0, 1, 2, 0xFF, 0])
                try check(try await store.readBytes("\(base)/binary") == [0, 1, 2, 0xFF, 0], "binary value")
                try await store.makeDirectory("\(base)/d")
                try await store.makeDirectory("\(base)/d")
                let present = try await store.exists("\(base)/d")
                let absent = try await store.exists("\(base)/nothing")
                try check(present && !absent, "exists")
                try await store.remove("\(base)/b")
                try check(!(try await store.exists("\(base)/b/c")), "removed with its children")
                try await store.remove("\(base)/never-there")
                try await store.write("data/xengnt-client/relative", "r")
                try check(try await store.read("\(base)/relative") == "r", "a relative path is below the domain's home")
                try check(try await store.read("\(base)/a", as: UInt32.self) == 1, "integer")
                try await checkFailsAsync(code: .malformedValue) { _ = try await store.read("\(base)/relative", as: UInt32.self) }

                // xenstored's error strings.
                try await checkFailsAsync(
                    code: .noSuchNode,
                    errno: .noSuchFileOrDirectory,
                    detail: "ENOENT",
                    path: "\(base)/missing"
                ) {
                    _ = try await store.read("\(base)/missing")
                }
                try await checkFailsAsync(code: .invalidRequest, errno: .invalidArgument, detail: "EINVAL") {
                    _ = try await store.read("\(base)/bad.name")
                }
                try await checkFailsAsync(code: .invalidRequest, detail: "EINVAL") {
                    try await store.write("\(base)/trailing/", "x")
                }
                try await checkFailsAsync(code: .invalidRequest, detail: "EINVAL") { _ = try await store.read("/local//domain") }
                try await checkFailsAsync(code: .invalidRequest, detail: "EINVAL") {
                    _ = try await store.send(
                        XenStoreMessageType.setPermissions,
                        payload: XenStoreMessage.payload(["\(base)/a", "x0"])
                    )
                }

                // Limits: a path over 3072 bytes and a payload over the transport's limit are
                // refused before sending; a path over 2048 bytes below the home is xenstored's EINVAL.
                let long = base + "/" + String(repeating: "p", count: 3100)
                try await checkFailsAsync(code: .requestTooLarge, errno: .some(nil)) { _ = try await store.read(long) }
                let deep = base + "/" + String(repeating: "q", count: 2100)
                try await checkFailsAsync(code: .invalidRequest, detail: "EINVAL") { try await store.write(deep, "x") }
                let limit = store.transport.payloadLimit - ("\(base)/big".utf8.count + 1)
                try await checkFailsAsync(code: .requestTooLarge, errno: .some(nil)) {
                    try await store.write("\(base)/big", String(repeating: "v", count: limit + 1))
                }
                if peer.role == .dom0 {
                    try await store.write("\(base)/big", String(repeating: "v", count: limit))
                    try check(try await store.read("\(base)/big").utf8.count == limit, "the largest value a message carries")
                }

                // Many tasks share one connection.
                let values = try await withThrowingTaskGroup(of: String.self) { group in
                    for _ in 0..<100 { group.addTask { try await store.read("\(base)/a") } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                try check(values.count == 100 && values.allSatisfy { $0 == "1" }, "concurrent reads")
                try check(try await store.permissions(of: base).first?.domain == me, "the creator owns a new node")
                try await store.remove(base)
            }
        },

        ConformanceCase(
            "xenstore-permissions",
            "owner and per-domain access: EACCES for others, read-only grants, EPERM for giving a node away, Dom0 sees all, a hidden node's absence is EACCES",
            parts: [
                .pv: { peer in
                    try await withXenStore(peer) { store in
                        let base = "/local/domain/\(peer.id.rawValue)/data/xengnt-perms"
                        try await removeIfPresent(base, store)
                        try await store.write("\(base)/secret", "s")
                        try await store.setPermissions([XenStorePermission(peer.id, .none)], of: base)
                        try await store.setPermissions([XenStorePermission(peer.id, .none)], of: "\(base)/secret")
                        try await peer.publish("path", base)
                        try await peer.wait(for: "denied", from: .pvh)
                        let pvh = peer.id(of: .pvh)
                        let readable = [XenStorePermission(peer.id, .none), XenStorePermission(pvh, .read)]
                        try await store.setPermissions(readable, of: base)
                        try await store.setPermissions(readable, of: "\(base)/secret")
                        try check(try await store.permissions(of: "\(base)/secret") == readable, "permissions read back")
                        try await checkFailsAsync(code: .accessDenied, errno: .notPermitted, detail: "EPERM") {
                            try await store.setPermissions([XenStorePermission(pvh, .none)], of: "\(base)/secret")
                        }
                        try await peer.publish("granted")
                        try await peer.wait(for: "done", from: .pvh)
                        try await peer.wait(for: "done", from: .dom0)
                        try await store.remove(base)
                    }
                },
                .pvh: { peer in
                    try await withXenStore(peer) { store in
                        let base = try await peer.value(of: "path", from: .pv)
                        try await checkFailsAsync(
                            code: .accessDenied,
                            errno: .permissionDenied,
                            detail: "EACCES",
                            path: "\(base)/secret"
                        ) {
                            _ = try await store.read("\(base)/secret")
                        }
                        try await checkFailsAsync(code: .accessDenied, detail: "EACCES") {
                            _ = try await store.read("\(base)/missing")
                        }
                        try await checkFailsAsync(code: .accessDenied, detail: "EACCES") { _ = try await store.directory(base) }
                        try await peer.publish("denied")
                        try await peer.wait(for: "granted", from: .pv)
                        try check(try await store.read("\(base)/secret") == "s", "read access granted")
                        try await checkFailsAsync(code: .noSuchNode, detail: "ENOENT") {
                            _ = try await store.read("\(base)/missing")
                        }
                        try await checkFailsAsync(code: .accessDenied, detail: "EACCES") {
                            try await store.write("\(base)/secret", "mine")
                        }
                        try await checkFailsAsync(code: .accessDenied, detail: "EACCES") {
                            try await store.setPermissions([XenStorePermission(peer.id, .none)], of: "\(base)/secret")
                        }
                        try await peer.publish("done")
                    }
                },
                .dom0: { peer in
                    try await withXenStore(peer) { store in
                        let base = try await peer.value(of: "path", from: .pv)
                        try check(try await store.read("\(base)/secret") == "s", "Dom0 reads any node")
                        try await store.write("\(base)/secret", "s")
                        try check(
                            try await store.permissions(of: base).first == XenStorePermission(peer.id(of: .pv), .none),
                            "owner"
                        )
                        try await peer.publish("done")
                    }
                },
            ]
        ),
    ]

    /// Runs `body` with a XenStore connection of `peer`'s domain, closed on every path out.
    static func withXenStore<R>(_ peer: Peer, _ body: (XenStore) async throws -> R) async throws -> R {
        let store = try XenStore(on: peer.system)
        do {
            let result = try await body(store)
            await store.close()
            return result
        } catch {
            await store.close()
            throw error
        }
    }

    /// Removes `path` unless its parent is missing too.
    static func removeIfPresent(_ path: String, _ store: XenStore) async throws(XenGntError) {
        do {
            try await store.remove(path)
        } catch  where error.code == .noSuchNode {
        }
    }
}

/// Runs `body`, which must throw a `XenGntError` with the given code, errno, xenstored error
/// string and path (each checked only when given).
func checkFailsAsync(
    code: XenGntError.Code? = nil,
    errno: Errno?? = .none,
    detail: String? = nil,
    path: String? = nil,
    line: Int = #line,
    _ body: () async throws -> Void
) async throws {
    do {
        try await body()
    } catch let error as XenGntError {
        if let code, error.code != code { throw ConformanceFailure("expected \(code), got: \(error) (line \(line))") }
        if case .some(let expected) = errno, error.errno != expected {
            throw ConformanceFailure("expected errno \(expected.map { "\($0)" } ?? "none"), got: \(error) (line \(line))")
        }
        if let detail, error.detail != detail { throw ConformanceFailure("expected \(detail), got: \(error) (line \(line))") }
        if let path, error.path != path {
            throw ConformanceFailure("expected the path \(path), got \(error.path ?? "none") (line \(line))")
        }
        return
    }
    throw ConformanceFailure("expected a XenGntError\(code.map { " (\($0))" } ?? ""), but it succeeded (line \(line))")
}
