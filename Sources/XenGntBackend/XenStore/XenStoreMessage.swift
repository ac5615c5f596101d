internal import CXenBackend

/// A message of the XenStore wire protocol (`xen/io/xs_wire.h`): a 16-byte header
/// (`struct xsd_sockmsg`: type, request id, transaction id, payload length, native-endian
/// `uint32_t`s) followed by the payload, usually NUL-terminated strings.
package struct XenStoreMessage: Sendable, Equatable {
    /// `XS_READ`, `XS_WATCH_EVENT`, ... (`enum xsd_sockmsg_type`).
    package var type: UInt32
    /// Echoed in the reply. The kernel's `/dev/xen/xenbus` replaces it on the way to xenstored
    /// and restores it in the reply; in a watch event it is meaningless.
    package var requestID: UInt32
    /// The transaction, or 0.
    package var transactionID: UInt32
    package var payload: [UInt8]

    package init(type: UInt32, requestID: UInt32 = 0, transactionID: UInt32 = 0, payload: [UInt8]) {
        self.type = type
        self.requestID = requestID
        self.transactionID = transactionID
        self.payload = payload
    }

    /// The header size, `sizeof(struct xsd_sockmsg)`.
    package static let headerSize = Int(CXB_XS_HEADER_SIZE)
    /// `XENSTORE_PAYLOAD_MAX`: the most payload a message may carry.
    package static let payloadLimit = Int(CXB_XS_PAYLOAD_MAX)
    /// `XENSTORE_ABS_PATH_MAX`.
    package static let absolutePathLimit = Int(CXB_XS_ABS_PATH_MAX)

    /// The header and payload, ready to write.
    package var bytes: [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(Self.headerSize + payload.count)
        for word in [type, requestID, transactionID, UInt32(payload.count)] {
            withUnsafeBytes(of: word) { out.append(contentsOf: $0) }
        }
        out.append(contentsOf: payload)
        return out
    }

    /// The payload split at NULs (a trailing NUL ends the last string, it does not start one).
    package var strings: [String] {
        guard !payload.isEmpty else { return [] }
        var parts = payload.split(separator: 0, omittingEmptySubsequences: false)
        if payload.last == 0 { parts.removeLast() }
        return parts.map { String(decoding: $0, as: UTF8.self) }
    }

    /// The payload as one string, without its trailing NUL.
    package var text: String {
        String(decoding: payload.last == 0 ? payload.dropLast() : payload[...], as: UTF8.self)
    }

    /// A payload of NUL-terminated strings.
    package static func payload(_ strings: [String]) -> [UInt8] {
        var out = [UInt8]()
        for string in strings {
            out.append(contentsOf: string.utf8)
            out.append(0)
        }
        return out
    }
}

/// The message types of `xs_wire.h`, from the header itself.
package enum XenStoreMessageType {
    package static let control = XS_CONTROL.rawValue
    package static let directory = XS_DIRECTORY.rawValue
    package static let read = XS_READ.rawValue
    package static let getPermissions = XS_GET_PERMS.rawValue
    package static let watch = XS_WATCH.rawValue
    package static let unwatch = XS_UNWATCH.rawValue
    package static let transactionStart = XS_TRANSACTION_START.rawValue
    package static let transactionEnd = XS_TRANSACTION_END.rawValue
    package static let introduce = XS_INTRODUCE.rawValue
    package static let release = XS_RELEASE.rawValue
    package static let getDomainPath = XS_GET_DOMAIN_PATH.rawValue
    package static let write = XS_WRITE.rawValue
    package static let mkdir = XS_MKDIR.rawValue
    package static let rm = XS_RM.rawValue
    package static let setPermissions = XS_SET_PERMS.rawValue
    package static let watchEvent = XS_WATCH_EVENT.rawValue
    package static let error = XS_ERROR.rawValue
    package static let isDomainIntroduced = XS_IS_DOMAIN_INTRODUCED.rawValue
    package static let resume = XS_RESUME.rawValue
    package static let setTarget = XS_SET_TARGET.rawValue
    package static let resetWatches = XS_RESET_WATCHES.rawValue
    package static let directoryPart = XS_DIRECTORY_PART.rawValue

    /// `XS_READ`, for error messages and the failing call of an error.
    package static func name(_ type: UInt32) -> String {
        let names = [
            "XS_CONTROL", "XS_DIRECTORY", "XS_READ", "XS_GET_PERMS", "XS_WATCH", "XS_UNWATCH",
            "XS_TRANSACTION_START", "XS_TRANSACTION_END", "XS_INTRODUCE", "XS_RELEASE",
            "XS_GET_DOMAIN_PATH", "XS_WRITE", "XS_MKDIR", "XS_RM", "XS_SET_PERMS", "XS_WATCH_EVENT",
            "XS_ERROR", "XS_IS_DOMAIN_INTRODUCED", "XS_RESUME", "XS_SET_TARGET", "XS_RESTRICT",
            "XS_RESET_WATCHES", "XS_DIRECTORY_PART",
        ]
        return Int(type) < names.count ? names[Int(type)] : "XS_\(type)"
    }
}

/// Splits a byte stream into messages. The stream may deliver a message in pieces (a socket)
/// or several at once (the kernel's queue).
package struct XenStoreMessageParser: Sendable {
    private var buffer: [UInt8] = []

    package init() {}

    /// Appends `bytes` and returns every complete message they finish.
    ///
    /// - Throws: a description of the violation when a header announces more than
    ///   `XENSTORE_PAYLOAD_MAX` bytes: the stream cannot be resynchronised after that.
    package mutating func feed(_ bytes: UnsafeRawBufferPointer) throws(ParseError) -> [XenStoreMessage] {
        buffer.append(contentsOf: bytes)
        var messages: [XenStoreMessage] = []
        var start = 0
        let header = XenStoreMessage.headerSize
        while buffer.count - start >= header {
            let words = buffer.withUnsafeBytes { raw in
                (0..<4).map { raw.loadUnaligned(fromByteOffset: start + $0 * 4, as: UInt32.self) }
            }
            let length = Int(words[3])
            guard length <= XenStoreMessage.payloadLimit else { throw ParseError(length: length) }
            guard buffer.count - start >= header + length else { break }
            let payload = Array(buffer[(start + header)..<(start + header + length)])
            messages.append(XenStoreMessage(type: words[0], requestID: words[1], transactionID: words[2], payload: payload))
            start += header + length
        }
        if start > 0 { buffer.removeFirst(start) }
        return messages
    }

    /// A header announced a payload longer than the protocol allows.
    package struct ParseError: Error, Sendable {
        package let length: Int
    }
}
