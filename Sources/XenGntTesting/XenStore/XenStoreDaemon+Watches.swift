import XenGntBackend

/// A transaction's view: the generation of every node it touched when it first touched it
/// (`nil`: absent), its copy of each, which it changed, and the watches to fire at commit.
final class XenStoreTransactionState {
    let id: UInt32
    var accessed: [String: UInt64?] = [:]
    var view: [String: XenStoreNode?] = [:]
    var modified: Set<String> = []
    var createdNodes = false
    var watches: [(path: String, exact: Bool, old: [XenStoreAccess]?)] = []

    init(id: UInt32) { self.id = id }
}

extension XenStoreDaemon {
    // MARK: Watches

    func addWatch(
        _ strings: [String],
        _ connection: XenStoreConnectionState,
        then: inout [XenStoreMessage]
    ) throws(XenStoreFailure) -> [UInt8] {
        guard strings.count >= 2 else { throw .invalid }
        let given = strings[0]
        let token = strings[1]
        let path: String
        let relative: Bool
        if given.hasPrefix("@") {
            guard given.utf8.count <= 2048 else { throw .invalid }
            path = given
            relative = false
        } else {
            relative = !given.hasPrefix("/")
            path = try Scope(daemon: self, connection: connection, transaction: nil).path(given)
        }
        // Through the kernel every watch gets a token of its own, so duplicates are allowed.
        if !connection.viaKernel, connection.watches.contains(where: { $0.path == path && $0.token == token }) { throw .exists }
        if isUnprivileged(connection), watchCount(connection.domain) > quotas.watches { throw .tooBig }
        let watch = XenStoreWatchState(path: path, token: token, relative: relative)
        connection.watches.append(watch)
        // Fired once at registration, whatever the permissions.
        then.append(event(watch, reporting: path, to: connection))
        return XenStoreMessage.payload(["OK"])
    }

    func removeWatch(_ strings: [String], _ connection: XenStoreConnectionState) throws(XenStoreFailure) -> [UInt8] {
        guard strings.count >= 2 else { throw .invalid }
        let path = strings[0].hasPrefix("/") || strings[0].hasPrefix("@") ? strings[0] : "\(connection.home)/\(strings[0])"
        guard let index = connection.watches.firstIndex(where: { $0.path == path && $0.token == strings[1] }) else {
            // The kernel answers OK for a watch it does not have.
            if connection.viaKernel { return XenStoreMessage.payload(["OK"]) }
            throw .noEntry
        }
        connection.watches.remove(at: index)
        return XenStoreMessage.payload(["OK"])
    }

    /// The watches of `domain`'s connections, and its kernel's own (`domain_watch`).
    func watchCount(_ domain: UInt16) -> Int {
        connections.filter { $0.domain == domain }.reduce(kernelWatches[domain] ?? 0) { $0 + $1.watches.count }
    }

    /// `fire_watches`: queues an event for every watch on `path` (exactly) or above it, of every
    /// connection allowed to know (a special event: allowed to read it; a node: allowed to read
    /// it, its permissions before the change, or its parent). Inside a transaction the event
    /// waits for the commit.
    func fire(_ path: String, exact: Bool, scope: Scope? = nil, oldPermissions: [XenStoreAccess]? = nil) {
        if let transaction = scope?.transaction {
            transaction.watches.append((path, exact, oldPermissions ?? scope?.node(path)?.permissions))
            return
        }
        for connection in connections {
            if path.hasPrefix("@") {
                guard let special = specialPermissions[path], access(connection, special) & XenStoreAccess.read != 0 else {
                    continue
                }
            } else if !mayLearn(connection, path, oldPermissions) {
                continue
            }
            for watch in connection.watches where exact ? watch.path == path : XenStorePaths.isBelow(path, watch.path) {
                let message = event(watch, reporting: path, to: connection)
                // xenstored drops an event identical to one still queued for a socket (the
                // kernel takes a domain's events off its ring at once).
                if !connection.viaKernel, !path.hasPrefix("@"), connection.hasQueued(event: message.payload) { continue }
                connection.enqueue(message)
            }
        }
    }

    /// `watch_permitted`.
    private func mayLearn(_ connection: XenStoreConnectionState, _ path: String, _ old: [XenStoreAccess]?) -> Bool {
        if let old, access(connection, old) & XenStoreAccess.read != 0 { return true }
        guard let node = node(path) else { return false }
        if access(connection, node.permissions) & XenStoreAccess.read != 0 { return true }
        guard let parent = self.node(XenStorePaths.parent(path)) else { return false }
        return access(connection, parent.permissions) & XenStoreAccess.read != 0
    }

    /// An `XS_WATCH_EVENT`: the path (relative to the home for a relative watch) and the token.
    /// Through the kernel its request id is whatever was on the kernel's stack.
    func event(_ watch: XenStoreWatchState, reporting path: String, to connection: XenStoreConnectionState) -> XenStoreMessage {
        var reported = path
        if watch.relative {
            reported = String(path.dropFirst(connection.home.count))
            if reported.hasPrefix("/") { reported.removeFirst() }
        }
        return XenStoreMessage(
            type: XenStoreMessageType.watchEvent,
            requestID: connection.viaKernel ? 0xDEAD_BEEF : 0,
            payload: XenStoreMessage.payload([reported, watch.token])
        )
    }

    // MARK: Transactions

    func startTransaction(
        _ connection: XenStoreConnectionState,
        inside: XenStoreTransactionState?
    ) throws(XenStoreFailure) -> UInt32 {
        if inside != nil { throw .busy }
        if isUnprivileged(connection), transactionCount(connection) > quotas.transactions { throw .noSpace }
        var id = connection.nextTransactionID
        while id == 0 || connection.transactions[id] != nil { id &+= 1 }
        connection.nextTransactionID = id &+ 1
        connection.transactions[id] = XenStoreTransactionState(id: id)
        return id
    }

    /// Open transactions counted against the quota: the connection's, or, through the kernel,
    /// every one of the domain's (they share its one connection to xenstored).
    private func transactionCount(_ connection: XenStoreConnectionState) -> Int {
        guard connection.viaKernel else { return connection.transactions.count }
        return connections.filter { $0.viaKernel && $0.domain == connection.domain }.reduce(0) { $0 + $1.transactions.count }
    }

    /// `do_transaction_end`: abandons, or commits if no node the transaction touched changed
    /// since (`EAGAIN` otherwise) and the owners' node counts stay within the quota.
    func endTransaction(
        _ transaction: XenStoreTransactionState,
        _ connection: XenStoreConnectionState,
        commit: Bool
    ) throws(XenStoreFailure) {
        connection.transactions[transaction.id] = nil
        guard commit else { return }
        for (path, seen) in transaction.accessed where node(path)?.generation != seen {
            throw .again
        }
        var counts: [UInt16: Int] = [:]
        for path in transaction.modified {
            if let old = node(path) { counts[old.owner, default: 0] -= 1 }
            if let new = transaction.view[path] ?? nil { counts[new.owner, default: 0] += 1 }
        }
        if transaction.createdNodes, isUnprivileged(connection) {
            for (domain, change) in counts where change > 0 && (owned[domain] ?? 0) + change >= quotas.nodes { throw .noSpace }
        }
        for path in transaction.modified.sorted() { store(path, transaction.view[path] ?? nil) }
        for watch in transaction.watches { fire(watch.path, exact: watch.exact, oldPermissions: watch.old) }
    }
}
