import XenGntBackend

/// The simulated xenstored: one per host, as C xenstored 4.17 behaves — the node tree with
/// permissions, generations and per-domain node counts, transactions, watches (the special ones
/// too), and the quotas it applies to unprivileged domains. Connections are Dom0's sockets
/// (privileged) and the domains' `/dev/xen/xenbus` files; every call runs under the simulator's
/// lock.
final class XenStoreDaemon {
    /// Xen 4.17's C xenstored limits for unprivileged domains (its command-line options).
    struct Quotas: Sendable, Hashable {
        /// `-E`: nodes a domain may own.
        var nodes = 1000
        /// `-W`: watches a domain may have (more than this many is refused).
        var watches = 128
        /// `-t`: transactions a connection may have open (more than this many is refused).
        var transactions = 10
        /// `-S`: a node's record size (see ``XenStoreNode/recordSize``) must stay below this.
        var nodeSize = 2048
        /// `-A`: permissions per node.
        var permissions = 5
    }

    var quotas = Quotas()
    /// Watches each domain's kernel registers itself (Linux 6.1 DomUs have 5), counted against
    /// the watch quota as xenstored does (lab `xenstore-quotas`: 124 user watches fit).
    var kernelWatches: [UInt16: Int] = [:]
    private(set) var nodes: [String: XenStoreNode] = [:]
    private(set) var generation: UInt64 = 0
    /// Nodes owned by each domain (`nbentry`).
    private(set) var owned: [UInt16: Int] = [:]
    private(set) var connections: [XenStoreConnectionState] = []
    /// Domains xenstored was told of (`XS_INTRODUCE`; the toolstack's part in the simulation).
    private(set) var introduced: Set<UInt16> = [0]
    var specialPermissions: [String: [XenStoreAccess]] = [
        "@releaseDomain": [XenStoreAccess(0, XenStoreAccess.none)],
        "@introduceDomain": [XenStoreAccess(0, XenStoreAccess.none)],
    ]

    init() {
        // setup_structure: the root and /local/domain, owned by Dom0, no access for others.
        let dom0Only = [XenStoreAccess(0, XenStoreAccess.none)]
        nodes["/"] = XenStoreNode(permissions: dom0Only, children: ["local", "tool"])
        nodes["/local"] = XenStoreNode(permissions: dom0Only, children: ["domain"])
        nodes["/local/domain"] = XenStoreNode(permissions: dom0Only)
        nodes["/tool"] = XenStoreNode(permissions: dom0Only)
        owned[0] = 4
    }

    // MARK: Connections

    /// A new connection of `domain`: privileged for Dom0, relayed by a kernel for
    /// `/dev/xen/xenbus`. `readable` is called whenever output is queued for it.
    func connect(domain: UInt16, viaKernel: Bool, readable: @escaping () -> Void) -> XenStoreConnectionState {
        let connection = XenStoreConnectionState(
            domain: domain,
            privileged: domain == 0,
            viaKernel: viaKernel,
            readable: readable
        )
        connections.append(connection)
        return connection
    }

    /// The connection closed: its watches and transactions go.
    func disconnect(_ connection: XenStoreConnectionState) {
        connections.removeAll { $0 === connection }
        connection.watches.removeAll()
        connection.transactions.removeAll()
    }

    func isUnprivileged(_ connection: XenStoreConnectionState) -> Bool { !connection.privileged }

    // MARK: Requests

    /// Handles one request: returns its reply, and the events it owes the requesting
    /// connection after the reply (a new watch's first event). Events for other watches it
    /// fires are queued at once, on every connection concerned (the requester's first: C
    /// xenstored queues them before the reply of a write).
    func handle(
        _ request: XenStoreMessage,
        from connection: XenStoreConnectionState
    ) -> (reply: XenStoreMessage, then: [XenStoreMessage]) {
        var then: [XenStoreMessage] = []
        var reply: XenStoreMessage
        do {
            let payload = try answer(request, connection, then: &then)
            reply = XenStoreMessage(
                type: request.type,
                requestID: request.requestID,
                transactionID: request.transactionID,
                payload: payload
            )
        } catch {
            reply = Self.error(error, to: request)
            then = []
        }
        // send_reply refuses a reply over XENSTORE_PAYLOAD_MAX.
        if reply.payload.count > XenStoreMessage.payloadLimit { reply = Self.error(.tooBig, to: request) }
        return (reply, then)
    }

    static func error(_ failure: XenStoreFailure, to request: XenStoreMessage) -> XenStoreMessage {
        XenStoreMessage(
            type: XenStoreMessageType.error,
            requestID: request.requestID,
            transactionID: request.transactionID,
            payload: XenStoreMessage.payload([failure.name])
        )
    }

    private func answer(
        _ request: XenStoreMessage,
        _ connection: XenStoreConnectionState,
        then: inout [XenStoreMessage]
    ) throws(XenStoreFailure) -> [UInt8] {
        let type = request.type
        let privilegedOnly: Set<UInt32> = [
            XenStoreMessageType.control, XenStoreMessageType.introduce, XenStoreMessageType.release,
            XenStoreMessageType.isDomainIntroduced, XenStoreMessageType.resume, XenStoreMessageType.setTarget,
        ]
        if privilegedOnly.contains(type), isUnprivileged(connection) { throw .access }
        let ignoresTransaction = type == XenStoreMessageType.watch || type == XenStoreMessageType.unwatch
        var transaction: XenStoreTransactionState?
        if !ignoresTransaction, request.transactionID != 0 {
            guard let found = connection.transactions[request.transactionID] else { throw .noEntry }
            transaction = found
        }
        let scope = Scope(daemon: self, connection: connection, transaction: transaction)
        let ok = XenStoreMessage.payload(["OK"])
        switch type {
        case XenStoreMessageType.read:
            return try scope.get(try scope.path(oneArgument(request)), need: XenStoreAccess.read).value
        case XenStoreMessageType.directory:
            return XenStoreMessage.payload(
                try scope.get(try scope.path(oneArgument(request)), need: XenStoreAccess.read).children
            )
        case XenStoreMessageType.getPermissions:
            let node = try scope.get(try scope.path(oneArgument(request)), need: XenStoreAccess.read)
            return XenStoreMessage.payload(node.permissions.map(\.text))
        case XenStoreMessageType.write:
            guard let zero = request.payload.firstIndex(of: 0) else { throw .invalid }
            let path = try scope.path(String(decoding: request.payload[..<zero], as: UTF8.self))
            try scope.write(path, value: Array(request.payload[(zero + 1)...]))
            return ok
        case XenStoreMessageType.mkdir:
            try scope.makeDirectory(try scope.path(oneArgument(request)))
            return ok
        case XenStoreMessageType.rm:
            try scope.remove(try scope.path(oneArgument(request)))
            return ok
        case XenStoreMessageType.setPermissions:
            try scope.setPermissions(request.strings)
            return ok
        case XenStoreMessageType.watch:
            return try addWatch(request.strings, connection, then: &then)
        case XenStoreMessageType.unwatch:
            return try removeWatch(request.strings, connection)
        case XenStoreMessageType.transactionStart:
            return XenStoreMessage.payload(["\(try startTransaction(connection, inside: transaction))"])
        case XenStoreMessageType.transactionEnd:
            let argument = try oneArgument(request)
            guard argument == "T" || argument == "F" else { throw .invalid }
            guard let transaction else { throw .noEntry }
            try endTransaction(transaction, connection, commit: argument == "T")
            return ok
        case XenStoreMessageType.getDomainPath:
            let argument = try oneArgument(request)
            let id = Int(argument.prefix { $0.isNumber }) ?? 0
            return XenStoreMessage.payload(["/local/domain/\(id)"])
        case XenStoreMessageType.isDomainIntroduced:
            guard let id = UInt16(try oneArgument(request)) else { throw .invalid }
            return XenStoreMessage.payload([introduced.contains(id) ? "T" : "F"])
        case XenStoreMessageType.resetWatches:
            connection.watches.removeAll()
            return ok
        default:
            throw .notSupported
        }
    }

    /// `onearg`: exactly one NUL, at the end.
    private func oneArgument(_ request: XenStoreMessage) throws(XenStoreFailure) -> String {
        guard let zero = request.payload.firstIndex(of: 0), zero == request.payload.count - 1 else { throw .invalid }
        return String(decoding: request.payload.dropLast(), as: UTF8.self)
    }

    // MARK: The tree (for the scope and the toolstack)

    /// A node as the global store holds it.
    func node(_ path: String) -> XenStoreNode? { nodes[path] }

    /// Stores or removes a node outside any transaction: a new generation, owner counts kept.
    func store(_ path: String, _ node: XenStoreNode?) {
        if let old = nodes[path] { owned[old.owner, default: 0] -= 1 }
        guard var node else {
            nodes[path] = nil
            return
        }
        generation += 1
        node.generation = generation
        nodes[path] = node
        owned[node.owner, default: 0] += 1
    }

    /// What `connection` may do to a node with `permissions` (`perm_for_conn`).
    func access(_ connection: XenStoreConnectionState, _ permissions: [XenStoreAccess]) -> UInt8 {
        let all = XenStoreAccess.read | XenStoreAccess.write | XenStoreAccess.owner
        if connection.privileged || permissions[0].domain == connection.domain { return all }
        if let entry = permissions.dropFirst().first(where: { $0.domain == connection.domain }) { return entry.bits }
        return permissions[0].bits
    }

    // MARK: Domains (the toolstack's and Xen's part)

    /// `XS_INTRODUCE`: xenstored learns of a domain; `@introduceDomain` fires.
    func introduce(_ domain: UInt16) {
        introduced.insert(domain)
        fire("@introduceDomain", exact: true)
    }

    /// The domain died: xenstored forgets it, drops its connections' watches and
    /// transactions, and fires `@releaseDomain`.
    func release(_ domain: UInt16) {
        introduced.remove(domain)
        for connection in connections where connection.domain == domain {
            connection.watches.removeAll()
            connection.transactions.removeAll()
        }
        fire("@releaseDomain", exact: true)
    }
}

/// One client connection's state in the daemon.
final class XenStoreConnectionState {
    let domain: UInt16
    let privileged: Bool
    /// `/dev/xen/xenbus`: the domain's kernel relays (its own watch tokens, no duplicate
    /// check, requests ids restored, events without one).
    let viaKernel: Bool
    let readable: () -> Void
    var watches: [XenStoreWatchState] = []
    var transactions: [UInt32: XenStoreTransactionState] = [:]
    var nextTransactionID: UInt32 = 1
    /// Output not yet read.
    private(set) var output: [XenStoreMessage] = []

    init(domain: UInt16, privileged: Bool, viaKernel: Bool, readable: @escaping () -> Void) {
        self.domain = domain
        self.privileged = privileged
        self.viaKernel = viaKernel
        self.readable = readable
    }

    /// The domain's home, what relative paths are below.
    var home: String { "/local/domain/\(domain)" }

    func enqueue(_ message: XenStoreMessage) {
        output.append(message)
        readable()
    }

    var hasOutput: Bool { !output.isEmpty }

    /// Takes the oldest message.
    func dequeue() -> XenStoreMessage? {
        output.isEmpty ? nil : output.removeFirst()
    }

    /// Whether an identical watch event is still queued (xenstored then drops the new one).
    func hasQueued(event payload: [UInt8]) -> Bool {
        output.contains { $0.type == XenStoreMessageType.watchEvent && $0.payload == payload }
    }

    /// Puts a message back at the front (a reader took less than a whole one).
    func unread(_ message: XenStoreMessage) {
        output.insert(message, at: 0)
    }
}

/// A registered watch.
struct XenStoreWatchState {
    /// Canonical (absolute) path, or a special event's name.
    let path: String
    let token: String
    /// Registered relative: events are reported relative to the home.
    let relative: Bool
}
