import XenGntBackend

/// The node operations of one request: on the global tree, or through a transaction's own view
/// of every node it touched (what C xenstored keeps as transaction-specific records).
struct Scope {
    let daemon: XenStoreDaemon
    let connection: XenStoreConnectionState
    let transaction: XenStoreTransactionState?

    var unprivileged: Bool { daemon.isUnprivileged(connection) }

    /// `canonicalize` then `is_valid_nodename`.
    func path(_ given: String) throws(XenStoreFailure) -> String {
        let absolute = given.hasPrefix("/") || given.hasPrefix("@") ? given : "\(connection.home)/\(given)"
        guard !given.isEmpty, XenStorePaths.isValid(absolute) else { throw .invalid }
        return absolute
    }

    /// The node as this request sees it (recording a transaction's first access).
    func node(_ path: String) -> XenStoreNode? {
        guard let transaction else { return daemon.node(path) }
        if let seen = transaction.view[path] { return seen }
        let current = daemon.node(path)
        transaction.accessed[path] = current?.generation
        transaction.view[path] = current
        return current
    }

    func store(_ path: String, _ node: XenStoreNode?) {
        guard let transaction else { return daemon.store(path, node) }
        _ = self.node(path)
        transaction.view[path] = node
        transaction.modified.insert(path)
    }

    /// `get_node`: the node if this connection has `need` on it; else `EACCES`, or `ENOENT`
    /// when it does not exist — but `EACCES` if the nearest existing ancestor does not give
    /// `need` either, so a domain learns nothing of nodes it may not see (`errno_from_parents`).
    func get(_ path: String, need: UInt8) throws(XenStoreFailure) -> XenStoreNode {
        if let node = node(path) {
            guard daemon.access(connection, node.permissions) & need == need else { throw .access }
            return node
        }
        var ancestor = XenStorePaths.parent(path)
        while node(ancestor) == nil { ancestor = XenStorePaths.parent(ancestor) }
        throw daemon.access(connection, node(ancestor)!.permissions) & need != 0 ? .noEntry : .access
    }

    /// `write_node`'s quota check for an unprivileged connection.
    func checkSize(_ node: XenStoreNode) throws(XenStoreFailure) {
        if unprivileged, node.recordSize >= daemon.quotas.nodeSize { throw .noSpace }
    }

    // MARK: Requests

    func write(_ path: String, value: [UInt8]) throws(XenStoreFailure) {
        do {
            var node = try get(path, need: XenStoreAccess.write)
            node.value = value
            try checkSize(node)
            store(path, node)
        } catch .noEntry {
            try create(path, value: value)
        }
        daemon.fire(path, exact: false, scope: self)
    }

    func makeDirectory(_ path: String) throws(XenStoreFailure) {
        do {
            _ = try get(path, need: XenStoreAccess.write)
        } catch .noEntry {
            try create(path, value: [])
            daemon.fire(path, exact: false, scope: self)
        }
    }

    /// `create_node`: the node and its missing ancestors, each inheriting its parent's
    /// permissions (an unprivileged domain owns what it creates), all or nothing.
    private func create(_ path: String, value: [UInt8]) throws(XenStoreFailure) {
        var missing: [String] = []
        var existing = path
        while node(existing) == nil {
            missing.append(existing)
            existing = XenStorePaths.parent(existing)
        }
        var parent = node(existing)!
        var made: [(String, XenStoreNode)] = []
        var inheriting = parent.permissions
        if unprivileged { inheriting[0].domain = connection.domain }
        let count = daemon.owned[connection.domain] ?? 0
        for (index, name) in missing.reversed().enumerated() {
            if unprivileged, count + index >= daemon.quotas.nodes { throw .noSpace }
            var node = XenStoreNode(permissions: index == 0 ? inheriting : made[index - 1].1.permissions)
            if name == path { node.value = value }
            try checkSize(node)
            if index == 0 {
                parent.children.append(XenStorePaths.base(name))
                try checkSize(parent)
            } else {
                made[index - 1].1.children.append(XenStorePaths.base(name))
                try checkSize(made[index - 1].1)
            }
            made.append((name, node))
        }
        store(existing, parent)
        for (name, node) in made { store(name, node) }
        transaction?.createdNodes = true
    }

    func remove(_ path: String) throws(XenStoreFailure) {
        do {
            _ = try get(path, need: XenStoreAccess.write)
        } catch .noEntry {
            // Not there: fine if its parent is.
            if node(XenStorePaths.parent(path)) != nil { return }
            throw .noEntry
        }
        guard path != "/" else { throw .invalid }
        // Children first, each firing the watches on it exactly; the root of the removal fires
        // the watches above it too (`delnode_sub`).
        var order: [String] = []
        func walk(_ here: String) {
            for child in node(here)?.children ?? [] { walk(XenStorePaths.child(here, child)) }
            order.append(here)
        }
        walk(path)
        for gone in order {
            daemon.fire(gone, exact: gone != path, scope: self)
            store(gone, nil)
        }
        let parentPath = XenStorePaths.parent(path)
        if var parent = node(parentPath) {
            parent.children.removeAll { $0 == XenStorePaths.base(path) }
            store(parentPath, parent)
        }
    }

    /// `do_set_perms`: the owner (or a privileged domain) sets them; an unprivileged domain may
    /// not change the owner (`EPERM`) nor set more than the quota allows.
    func setPermissions(_ strings: [String]) throws(XenStoreFailure) {
        guard strings.count >= 2 else { throw .invalid }
        let list = strings.dropFirst()
        if unprivileged, list.count > daemon.quotas.permissions { throw .noSpace }
        var permissions: [XenStoreAccess] = []
        for text in list {
            guard let entry = XenStoreAccess(text) else { throw .invalid }
            permissions.append(entry)
        }
        if strings[0].hasPrefix("@") {
            guard let special = daemon.specialPermissions[strings[0]] else { throw .invalid }
            let needed = XenStoreAccess.write | XenStoreAccess.owner
            guard daemon.access(connection, special) & needed == needed else { throw .access }
            daemon.specialPermissions[strings[0]] = permissions
            return
        }
        let path = try self.path(strings[0])
        var node = try get(path, need: XenStoreAccess.write | XenStoreAccess.owner)
        if unprivileged, permissions[0].domain != node.permissions[0].domain { throw .notPermitted }
        let old = node.permissions
        node.permissions = permissions
        try checkSize(node)
        store(path, node)
        daemon.fire(path, exact: false, scope: self, oldPermissions: old)
    }
}
