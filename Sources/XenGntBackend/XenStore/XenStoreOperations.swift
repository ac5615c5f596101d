public import XenGnt

/// Where a XenStore request goes: a connection and a transaction (0 for none). Opaque.
public struct XenStoreRoute: Sendable {
    let connection: XenStoreConnection
    let transactionID: UInt32
    let transport: XenStore.Transport

    /// Refuses what no xenstored accepts before sending it: an empty path, a NUL in it, or a
    /// path over `XENSTORE_ABS_PATH_MAX` (3072 bytes). xenstored judges the rest (characters,
    /// `//`, a trailing `/`, 2048 bytes below a domain's home) and answers `EINVAL`.
    func validate(path: String, operation: XenGntError.Operation) throws(XenGntError) {
        let length = path.utf8.count
        if length == 0 || path.utf8.contains(0) {
            throw XenGntError(.invalidRequest, operation, path: path, detail: "an empty path or one with a NUL byte")
        }
        if length > XenStoreMessage.absolutePathLimit {
            throw XenGntError(
                .requestTooLarge,
                operation,
                path: String(path.prefix(64)) + "...",
                limit: XenStoreMessage.absolutePathLimit,
                length: length
            )
        }
    }

    /// Sends a request of `type` whose payload is `strings` (NUL-terminated) plus `trailing`
    /// raw bytes, and returns the reply.
    func send(
        _ type: UInt32,
        _ strings: [String],
        trailing: [UInt8] = [],
        _ operation: XenGntError.Operation,
        path: String?
    ) async throws(XenGntError) -> XenStoreMessage {
        if let path { try validate(path: path, operation: operation) }
        var payload = XenStoreMessage.payload(strings)
        if !trailing.isEmpty {
            payload.append(contentsOf: trailing)
        }
        if payload.count > transport.payloadLimit {
            throw XenGntError(.requestTooLarge, operation, path: path, limit: transport.payloadLimit, length: payload.count)
        }
        return try await connection.exchange(
            XenStoreMessage(type: type, transactionID: transactionID, payload: payload),
            operation,
            path: path
        )
    }
}

/// What can be done to XenStore, directly (``XenStore``) or inside a transaction
/// (``XenStoreTransaction``). Paths are absolute (`/local/domain/3/device`) or relative to the
/// domain's home (`/local/domain/<this domain>`).
public protocol XenStoreOperations: Sendable {
    /// Where requests go.
    var route: XenStoreRoute { get }
}

extension XenStoreOperations {
    /// The value of `path` as bytes.
    ///
    /// - Throws: `XenGntError/Code/noSuchNode` (`ENOENT`), `XenGntError/Code/accessDenied`
    ///   (`EACCES`: this domain may not read it, or may not learn whether it exists).
    ///
    /// The corresponding message is `XS_READ`.
    public func readBytes(_ path: String) async throws(XenGntError) -> [UInt8] {
        try await route.send(XenStoreMessageType.read, [path], .xenstoreRead, path: path).payload
    }

    /// The value of `path` as text (UTF-8; invalid bytes are replaced).
    ///
    /// The corresponding message is `XS_READ`.
    public func read(_ path: String) async throws(XenGntError) -> String {
        String(decoding: try await readBytes(path), as: UTF8.self)
    }

    /// The value of `path`, or `nil` when it does not exist.
    ///
    /// The corresponding message is `XS_READ`.
    public func readIfPresent(_ path: String) async throws(XenGntError) -> String? {
        do {
            return try await read(path)
        } catch  where error.code == .noSuchNode {
            return nil
        }
    }

    /// The value of `path` as a decimal integer (a domain id, a grant reference, a port, a
    /// state).
    ///
    /// - Throws: `XenGntError/Code/malformedValue` when it is not one.
    ///
    /// The corresponding message is `XS_READ`.
    public func read<Value: FixedWidthInteger>(_ path: String, as type: Value.Type) async throws(XenGntError) -> Value {
        let text = try await read(path)
        guard let value = Value(text, radix: 10) else {
            throw XenGntError(.malformedValue, .xenstoreRead, call: "XS_READ", path: path, detail: String(text.prefix(64)))
        }
        return value
    }

    /// Writes `value` to `path`, creating it and any missing parents (which inherit their
    /// parent's permissions; in an unprivileged domain, the domain owns what it creates).
    /// Watches fire even when the value does not change.
    ///
    /// The corresponding message is `XS_WRITE`.
    public func write(_ path: String, _ value: String) async throws(XenGntError) {
        try await write(path, bytes: Array(value.utf8))
    }

    /// Writes raw bytes to `path` (at most 4096 bytes with the path, less through
    /// `/dev/xen/xenbus`).
    ///
    /// The corresponding message is `XS_WRITE`.
    public func write(_ path: String, bytes: [UInt8]) async throws(XenGntError) {
        _ = try await route.send(XenStoreMessageType.write, [path], trailing: bytes, .xenstoreWrite, path: path)
    }

    /// Creates `path` with an empty value if it does not exist (no error if it does).
    ///
    /// The corresponding message is `XS_MKDIR`.
    public func makeDirectory(_ path: String) async throws(XenGntError) {
        _ = try await route.send(XenStoreMessageType.mkdir, [path], .xenstoreMakeDirectory, path: path)
    }

    /// Removes `path` and everything below it. Removing a node that does not exist succeeds
    /// when its parent exists.
    ///
    /// The corresponding message is `XS_RM`.
    public func remove(_ path: String) async throws(XenGntError) {
        _ = try await route.send(XenStoreMessageType.rm, [path], .xenstoreRemove, path: path)
    }

    /// The names of the children of `path`.
    ///
    /// The corresponding message is `XS_DIRECTORY`.
    public func directory(_ path: String) async throws(XenGntError) -> [String] {
        try await route.send(XenStoreMessageType.directory, [path], .xenstoreDirectory, path: path).strings
    }

    /// Whether `path` exists (and this domain may read it).
    ///
    /// The corresponding message is `XS_READ`.
    public func exists(_ path: String) async throws(XenGntError) -> Bool {
        do {
            _ = try await readBytes(path)
            return true
        } catch  where error.code == .noSuchNode || error.code == .accessDenied {
            return false
        }
    }

    /// The permissions of `path`: the owner first (with what every domain not listed may do),
    /// then the domains given other access.
    ///
    /// The corresponding message is `XS_GET_PERMS`.
    public func permissions(of path: String) async throws(XenGntError) -> [XenStorePermission] {
        let reply = try await route.send(XenStoreMessageType.getPermissions, [path], .xenstoreGetPermissions, path: path)
        var permissions: [XenStorePermission] = []
        for text in reply.strings {
            guard let permission = XenStorePermission(text) else {
                throw XenGntError(.malformedValue, .xenstoreGetPermissions, call: "XS_GET_PERMS", path: path, detail: text)
            }
            permissions.append(permission)
        }
        return permissions
    }

    /// Sets the permissions of `path`: `permissions[0]` names the owner and what every domain
    /// not listed may do. Only the owner (or a privileged domain) may; an unprivileged domain
    /// may not change the owner (`EPERM`).
    ///
    /// The corresponding message is `XS_SET_PERMS`.
    public func setPermissions(_ permissions: [XenStorePermission], of path: String) async throws(XenGntError) {
        guard !permissions.isEmpty else {
            throw XenGntError(
                .invalidRequest,
                .xenstoreSetPermissions,
                path: path,
                detail: "no permissions (the first names the owner)"
            )
        }
        _ = try await route.send(
            XenStoreMessageType.setPermissions,
            [path] + permissions.map(\.description),
            .xenstoreSetPermissions,
            path: path
        )
    }

    /// The home path of `domain` (`/local/domain/<id>`).
    ///
    /// The corresponding message is `XS_GET_DOMAIN_PATH`.
    public func domainPath(of domain: DomainID) async throws(XenGntError) -> String {
        try await route.send(XenStoreMessageType.getDomainPath, ["\(domain.rawValue)"], .xenstoreDomainPath, path: nil).text
    }

    /// The id of the domain this runs in: its home's `domid` key, written by the toolstack
    /// (`xen-init-dom0` in Dom0).
    ///
    /// The corresponding message is `XS_READ` of `domid`.
    public func domainID() async throws(XenGntError) -> DomainID {
        DomainID(try await read("domid", as: UInt16.self))
    }

    /// Whether xenstored knows `domain` (it forgets a domain when it is destroyed). Only a
    /// privileged domain may ask (`XenGntError/Code/accessDenied` otherwise).
    ///
    /// The corresponding message is `XS_IS_DOMAIN_INTRODUCED`.
    public func isDomainIntroduced(_ domain: DomainID) async throws(XenGntError) -> Bool {
        let reply = try await route.send(
            XenStoreMessageType.isDomainIntroduced,
            ["\(domain.rawValue)"],
            .xenstoreIsDomainIntroduced,
            path: nil
        )
        return reply.text == "T"
    }

    /// Sends a raw request of `type` with `payload` and returns the reply's payload (an
    /// `XS_ERROR` reply is thrown). For tests and messages this API does not cover.
    package func send(_ type: UInt32, payload: [UInt8], transaction: UInt32? = nil) async throws(XenGntError) -> XenStoreMessage {
        try await route.connection.exchange(
            XenStoreMessage(type: type, transactionID: transaction ?? route.transactionID, payload: payload),
            .xenstoreRequest,
            path: nil
        )
    }
}

/// One entry of a node's permissions: a domain and what it may do (`n0`, `r5`, `b3`).
public struct XenStorePermission: Sendable, Hashable, CustomStringConvertible {
    /// What a domain may do.
    public enum Access: Character, Sendable, Hashable {
        case none = "n"
        case read = "r"
        case write = "w"
        case readWrite = "b"
    }

    /// The domain.
    public var domain: DomainID
    /// What it may do. In the first entry, what every domain not listed may do.
    public var access: Access

    public init(_ domain: DomainID, _ access: Access) {
        self.domain = domain
        self.access = access
    }

    /// Parses `n0`, `r5`, `b3`, `w12`.
    public init?(_ text: String) {
        guard let first = text.first, let access = Access(rawValue: first),
            let id = UInt16(text.dropFirst(), radix: 10)
        else { return nil }
        self.init(DomainID(id), access)
    }

    /// `n0`, `r5`.
    public var description: String { "\(access.rawValue)\(domain.rawValue)" }
}
