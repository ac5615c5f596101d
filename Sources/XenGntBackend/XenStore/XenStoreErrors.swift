package import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// How xenstored's error strings become `XenGntError`s.
package enum XenStoreErrors {
    /// The errors of `xs_wire.h`'s `xsd_errors` table, by name (`EQUOTA` is oxenstored's
    /// quota error and has no Linux errno).
    package static let errnos: [String: Errno] = [
        "EINVAL": .invalidArgument, "EACCES": .permissionDenied, "EEXIST": .fileExists,
        "EISDIR": .isDirectory, "ENOENT": .noSuchFileOrDirectory, "ENOMEM": .noMemory,
        "ENOSPC": .noSpace, "EIO": .ioError, "ENOTEMPTY": .directoryNotEmpty, "ENOSYS": .noFunction,
        "EROFS": .readOnlyFileSystem, "EBUSY": .resourceBusy, "EAGAIN": .resourceTemporarilyUnavailable,
        "EISCONN": .socketIsConnected, "E2BIG": .argListTooLong, "EPERM": .notPermitted,
    ]

    /// The error for xenstored's answer `name` (`ENOENT`) to a request of `type`.
    static func error(name: String, type: UInt32, operation: XenGntError.Operation, path: String?) -> XenGntError {
        let isWatch = type == XenStoreMessageType.watch
        let code: XenGntError.Code =
            switch name {
            case "ENOENT": .noSuchNode
            case "EACCES", "EPERM": .accessDenied
            case "EAGAIN": .transactionConflict
            case "EINVAL": .invalidRequest
            case "ENOSPC", "EQUOTA": .quotaExceeded
            case "E2BIG": isWatch ? .quotaExceeded : .requestTooLarge
            case "EEXIST" where isWatch: .watchExists
            default: .xenstoreRefused
            }
        return XenGntError(
            code,
            operation,
            call: XenStoreMessageType.name(type),
            errno: errnos[name],
            path: path,
            limit: code == .requestTooLarge ? XenStoreMessage.payloadLimit : nil,
            detail: name
        )
    }
}

extension XenGntError {
    /// The same error, reported for `operation` on `path`.
    func reported(as operation: Operation, path: String?) -> XenGntError {
        XenGntError(
            code,
            operation,
            call: call,
            errno: errno,
            path: path ?? self.path,
            count: count,
            actualCount: actualCount,
            limit: limit,
            offset: offset,
            length: length,
            domain: domain,
            flags: flags,
            port: port,
            guestType: guestType,
            allocation: allocation,
            detail: detail
        )
    }
}
