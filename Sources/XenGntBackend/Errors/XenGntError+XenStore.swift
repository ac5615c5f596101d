public import XenGnt

extension XenGntError.Code {
    // MARK: XenStore

    /// Neither xenstored's socket nor `/dev/xen/xenbus` can be opened: `XenGntError/path`.
    public static var xenstoreUnavailable: Self {
        Self("xenstoreUnavailable") { e in
            "cannot reach XenStore through \(e.path ?? "its socket or device"): in Dom0, start xenstored (its socket is /var/run/xenstored/socket); in a guest, the kernel needs CONFIG_XEN (the xenbus driver makes /dev/xen/xenbus)."
        }
    }
    /// xenstored answered `ENOENT`: `XenGntError/path` does not exist (or, inside a
    /// transaction, the transaction is gone).
    public static var noSuchNode: Self {
        Self("noSuchNode") { e in
            "\(e.path ?? "the node") does not exist in XenStore (xenstored: \(e.detail ?? "ENOENT"))."
        }
    }
    /// xenstored answered `EACCES` or `EPERM`: this domain may not do that to `XenGntError/path`.
    public static var accessDenied: Self {
        Self("accessDenied") { e in
            "xenstored refused access to \(e.path ?? "the node") (\(e.detail ?? "EACCES")): a node's first permission names its owner and what every domain not listed may do; only the owner (or Dom0) may change permissions, and an unprivileged domain may not give a node away."
        }
    }
    /// A transaction kept conflicting with other writers: it was retried
    /// `XenGntError/count` times.
    public static var transactionConflict: Self {
        Self("transactionConflict") { e in
            "the transaction conflicted with concurrent changes (xenstored: EAGAIN) \(e.count.map { "\($0) times" } ?? "too often"); every attempt was abandoned and nothing it wrote took effect. Make the transaction smaller, or retry later."
        }
    }
    /// xenstored answered `EINVAL`: a malformed path or argument (`XenGntError/path`).
    public static var invalidRequest: Self {
        Self("invalidRequest") { e in
            "xenstored refused \(e.path.map { "'\($0)'" } ?? "the request") as invalid (\(e.detail ?? "EINVAL")): a path is absolute (/...) or relative to the domain's home, uses only A-Z a-z 0-9 - / _ @, has no // and no trailing /, and is at most 3072 bytes (2048 below /local/domain/<id>/); a permission is n, r, w or b followed by a domain id."
        }
    }
    /// A quota of xenstored for unprivileged domains was exceeded (`ENOSPC`, `EQUOTA`, or
    /// `E2BIG` for watches): `XenGntError/path`, `XenGntError/detail`.
    public static var quotaExceeded: Self {
        Self("quotaExceeded") { e in
            "xenstored refused \(e.path.map { "'\($0)'" } ?? "the request") because a quota of unprivileged domains was exceeded (\(e.detail ?? "ENOSPC")). Xen 4.17's C xenstored allows each such domain 1000 nodes (-E), 128 watches (-W), 10 transactions (-t), 2048-byte nodes counting their permissions and child names (-S), 5 permissions per node and 20 outstanding requests; remove what is no longer needed, or raise the quota on xenstored's command line."
        }
    }
    /// A request or reply too large for the protocol: `XenGntError/length`,
    /// `XenGntError/limit` (bytes).
    public static var requestTooLarge: Self {
        Self("requestTooLarge") { e in
            "the XenStore message is \(e.length.map { "\($0) bytes" } ?? "too large")\(e.limit.map { ", over the limit of \($0)" } ?? ""): a message carries at most 4096 bytes of payload (path, NUL and value; 4080 through /dev/xen/xenbus, whose buffer also holds the 16-byte header) and a path at most 3072 bytes; store large data elsewhere (a shared page) and put its grant reference in XenStore."
        }
    }
    /// A watch on the same path with the same token exists (`EEXIST`).
    public static var watchExists: Self {
        Self("watchExists") { e in
            "a watch on \(e.path ?? "that path") with the same token already exists on this connection."
        }
    }
    /// Any other answer of xenstored (`XenGntError/detail` is its error string).
    public static var xenstoreRefused: Self {
        Self("xenstoreRefused") { e in
            "xenstored refused the request on \(e.path ?? "the node") with \(e.detail ?? "an error")."
        }
    }
    /// The connection to XenStore ended or broke (`XenGntError/detail` says how).
    public static var connectionLost: Self {
        Self("connectionLost") { e in
            "the connection to XenStore ended: \(e.detail ?? "it was closed"); open a new XenStore."
        }
    }
    /// A value that should be a number (a domain id, state, grant reference or port) is not:
    /// `XenGntError/path`, `XenGntError/detail` (the value).
    public static var malformedValue: Self {
        Self("malformedValue") { e in
            "\(e.path ?? "a XenStore value") holds \(e.detail.map { "'\($0)'" } ?? "a value") where a number was expected; the peer (or the toolstack) wrote something else."
        }
    }
}

extension XenGntError.Operation {
    /// Connecting to XenStore (``XenStore/init(on:transport:)``).
    public static let xenstoreConnect = Self("xenstoreConnect")
    /// ``XenStore/read(_:)`` and its variants (`XS_READ`).
    public static let xenstoreRead = Self("xenstoreRead")
    /// ``XenStore/write(_:_:)`` (`XS_WRITE`).
    public static let xenstoreWrite = Self("xenstoreWrite")
    /// ``XenStore/makeDirectory(_:)`` (`XS_MKDIR`).
    public static let xenstoreMakeDirectory = Self("xenstoreMakeDirectory")
    /// ``XenStore/remove(_:)`` (`XS_RM`).
    public static let xenstoreRemove = Self("xenstoreRemove")
    /// ``XenStore/directory(_:)`` (`XS_DIRECTORY`).
    public static let xenstoreDirectory = Self("xenstoreDirectory")
    /// ``XenStore/permissions(of:)`` (`XS_GET_PERMS`).
    public static let xenstoreGetPermissions = Self("xenstoreGetPermissions")
    /// ``XenStore/setPermissions(_:of:)`` (`XS_SET_PERMS`).
    public static let xenstoreSetPermissions = Self("xenstoreSetPermissions")
    /// ``XenStore/transaction(attempts:_:)`` (`XS_TRANSACTION_START`, `XS_TRANSACTION_END`).
    public static let xenstoreTransaction = Self("xenstoreTransaction")
    /// ``XenStore/watch(_:)`` (`XS_WATCH`) and waiting for its events.
    public static let xenstoreWatch = Self("xenstoreWatch")
    /// ``XenStoreWatch/cancel()`` (`XS_UNWATCH`).
    public static let xenstoreUnwatch = Self("xenstoreUnwatch")
    /// ``XenStore/domainPath(of:)`` (`XS_GET_DOMAIN_PATH`).
    public static let xenstoreDomainPath = Self("xenstoreDomainPath")
    /// ``XenStore/isDomainIntroduced(_:)`` (`XS_IS_DOMAIN_INTRODUCED`).
    public static let xenstoreIsDomainIntroduced = Self("xenstoreIsDomainIntroduced")
    /// Any other request sent with `send(_:payload:transaction:)`.
    public static let xenstoreRequest = Self("xenstoreRequest")
}
