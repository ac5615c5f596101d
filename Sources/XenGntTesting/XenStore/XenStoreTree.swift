import XenGntBackend

/// One node of the simulated XenStore: a value, permissions (the first names the owner and what
/// every domain not listed may do), its children in the order they were added, and the
/// generation of its last change (what transactions compare).
struct XenStoreNode {
    var value: [UInt8] = []
    var permissions: [XenStoreAccess]
    var children: [String] = []
    var generation: UInt64 = 0

    /// The owner (`perms[0].id`).
    var owner: UInt16 { permissions[0].domain }

    /// What C xenstored stores for the node and checks against `quota_max_entry_size`: a
    /// 24-byte record header (`struct xs_tdb_record_hdr`), 8 bytes per permission, the value and
    /// the children's names with their NULs (lab `xenstore-quotas`: 2015 value bytes fit, 2016
    /// do not).
    var recordSize: Int {
        24 + 8 * permissions.count + value.count + children.reduce(0) { $0 + $1.utf8.count + 1 }
    }
}

/// One permission entry (`struct xs_permissions`): a domain and its access bits.
struct XenStoreAccess: Equatable {
    static let none: UInt8 = 0
    static let read: UInt8 = 1
    static let write: UInt8 = 2
    /// Not stored: what the owner (and a privileged domain) has on top of read and write.
    static let owner: UInt8 = 8

    var domain: UInt16
    var bits: UInt8

    init(_ domain: UInt16, _ bits: UInt8) {
        self.domain = domain
        self.bits = bits
    }

    /// `n0`, `r5`, `w3`, `b1`, as `xs_strings_to_perms` parses them (the id in any base strtol
    /// accepts; here decimal and 0x hex).
    init?(_ text: String) {
        guard let letter = text.first else { return nil }
        switch letter {
        case "n": bits = Self.none
        case "r": bits = Self.read
        case "w": bits = Self.write
        case "b": bits = Self.read | Self.write
        default: return nil
        }
        let number = text.dropFirst()
        let parsed = number.hasPrefix("0x") ? UInt32(number.dropFirst(2), radix: 16) : UInt32(number, radix: 10)
        guard let id = parsed, id <= UInt32(UInt16.max) else { return nil }
        domain = UInt16(id)
    }

    /// What `xs_perm_to_string` writes.
    var text: String {
        let letter =
            switch bits & (Self.read | Self.write) {
            case Self.read: "r"
            case Self.write: "w"
            case Self.read | Self.write: "b"
            default: "n"
            }
        return "\(letter)\(domain)"
    }
}

/// Paths as C xenstored checks and splits them.
enum XenStorePaths {
    /// `is_valid_nodename`: absolute, no trailing `/` (but `/` itself), no `//`, only
    /// `A-Za-z0-9-/_@`, and at most 2048 bytes below `/local/domain/<id>/` (3072 in all, which
    /// the protocol limits anyway).
    static func isValid(_ path: String, relativeLimit: Int = 2048) -> Bool {
        guard path.hasPrefix("/") else { return false }
        if path != "/", path.hasSuffix("/") { return false }
        if path.contains("//") { return false }
        let allowed = path.utf8.allSatisfy { byte in
            (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || (byte >= 0x30 && byte <= 0x39)
                || byte == 0x2D || byte == 0x2F || byte == 0x5F || byte == 0x40
        }
        guard allowed else { return false }
        return path.utf8.count <= localOffset(path) + relativeLimit
    }

    /// The length of a `/local/domain/<id>/` prefix, or 0.
    static func localOffset(_ path: String) -> Int {
        let prefix = "/local/domain/"
        guard path.hasPrefix(prefix) else { return 0 }
        let rest = path.dropFirst(prefix.count)
        let digits = rest.prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 5, rest.dropFirst(digits.count).first == "/" else { return 0 }
        return prefix.count + digits.count + 1
    }

    /// `get_parent`: `/a/b` → `/a`, `/a` → `/`.
    static func parent(_ path: String) -> String {
        guard let slash = path.dropFirst().lastIndex(of: "/") else { return "/" }
        return String(path[..<slash])
    }

    /// The last component.
    static func base(_ path: String) -> String {
        String(path[path.index(after: path.lastIndex(of: "/")!)...])
    }

    /// `/a/b/c` is below `/a/b` (and everything is below `/`).
    static func isBelow(_ child: String, _ parent: String) -> Bool {
        if parent == "/" { return true }
        guard child.hasPrefix(parent) else { return false }
        let rest = child.dropFirst(parent.count)
        return rest.isEmpty || rest.first == "/"
    }

    /// `path` and its children's paths, children first (`walk_node_tree`'s exit order).
    static func child(_ parent: String, _ name: String) -> String {
        parent == "/" ? "/" + name : parent + "/" + name
    }
}

/// The errors of `xs_wire.h`'s table, by the name xenstored sends.
struct XenStoreFailure: Error, Equatable {
    let name: String

    static let invalid = XenStoreFailure(name: "EINVAL")
    static let access = XenStoreFailure(name: "EACCES")
    static let exists = XenStoreFailure(name: "EEXIST")
    static let noEntry = XenStoreFailure(name: "ENOENT")
    static let noSpace = XenStoreFailure(name: "ENOSPC")
    static let notSupported = XenStoreFailure(name: "ENOSYS")
    static let busy = XenStoreFailure(name: "EBUSY")
    static let again = XenStoreFailure(name: "EAGAIN")
    static let tooBig = XenStoreFailure(name: "E2BIG")
    static let notPermitted = XenStoreFailure(name: "EPERM")
}
