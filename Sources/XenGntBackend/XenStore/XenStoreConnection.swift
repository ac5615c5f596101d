import Synchronization
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// One connection to XenStore, shared by every task that uses a ``XenStore`` (and by its
/// watches): requests are written by the asking task, replies are read by one reader task (on
/// XenGnt's poll reader) and matched to their requests by request id; watch events go to their
/// watch by token.
///
/// The reader holds only the descriptor and the mailbox, so when the last ``XenStore`` or
/// ``XenStoreWatch`` using the connection goes away, the connection is released, cancels the
/// reader, and the reader closes the descriptor on its way out (never while it may still poll
/// it).
package final class XenStoreConnection: Sendable {
    let wire: XenStoreWire
    let mailbox: XenStoreMailbox
    private let reader: Task<Void, Never>

    init(wire: XenStoreWire) {
        self.wire = wire
        let mailbox = XenStoreMailbox()
        self.mailbox = mailbox
        reader = Task.detached { await XenStoreConnection.read(wire, into: mailbox) }
    }

    deinit { reader.cancel() }

    /// Stops the reader and waits until it has closed the descriptor. Pending and later
    /// requests fail with `XenGntError/Code/connectionLost`.
    func close() async {
        reader.cancel()
        await reader.value
        wire.close()
    }

    /// Sends `message` (its request id is assigned here) and waits for the reply; an `XS_ERROR`
    /// reply is thrown as the error it names, for `operation` on `path`.
    ///
    /// At most ``XenStoreMailbox/outstandingLimit`` requests of this connection are in flight
    /// at once (xenstored's quota for unprivileged domains); further callers wait their turn.
    /// A cancelled caller stops waiting at once; its reply is dropped when it comes (a
    /// transaction it started is ended, a watch it registered is removed).
    func exchange(
        _ message: XenStoreMessage,
        _ operation: XenGntError.Operation,
        path: String?
    ) async throws(XenGntError) -> XenStoreMessage {
        try await mailbox.acquireSlot()
        defer { mailbox.releaseSlot() }
        let ticket = Ticket()
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: XenStoreMailbox.Reply) in
                guard let request = mailbox.register(message, continuation, ticket: ticket) else { return }
                do throws(Errno) {
                    try wire.send(request.bytes)
                } catch {
                    mailbox.fail(request.requestID, XenStoreConnection.sendFailure(error, request, operation, path: path))
                }
            }
        } onCancel: {
            if let id = ticket.cancel() { mailbox.cancel(id) }
        }
        let reply = try result.mapError { $0.reported(as: operation, path: path) }.get()
        if reply.type == XenStoreMessageType.error {
            throw XenStoreErrors.error(name: reply.text, type: message.type, operation: operation, path: path)
        }
        return reply
    }

    /// Sends `message` without waiting for its reply (unwatching from a `deinit`).
    func post(_ message: XenStoreMessage) {
        try? wire.send(mailbox.unanswered(message).bytes)
    }

    /// A write the device refused. `/dev/xen/xenbus` answers a watch it could not register by
    /// failing the write with xenstored's errno (no reply follows), and a message too large for
    /// its 4096-byte buffer with `E2BIG`/`EINVAL`.
    static func sendFailure(
        _ errno: Errno,
        _ request: XenStoreMessage,
        _ operation: XenGntError.Operation,
        path: String?
    ) -> XenGntError {
        let call = XenStoreMessageType.name(request.type)
        let isWatch = request.type == XenStoreMessageType.watch || request.type == XenStoreMessageType.unwatch
        switch errno {
        case .argListTooLong where !isWatch, .invalidArgument where request.bytes.count > XenStoreMessage.payloadLimit:
            return XenGntError(
                .requestTooLarge,
                operation,
                call: call,
                errno: errno,
                path: path,
                limit: XenStoreMessage.payloadLimit - XenStoreMessage.headerSize,
                length: request.payload.count
            )
        case .brokenPipe, .connectionReset, .badFileDescriptor:
            return XenGntError(
                .connectionLost,
                operation,
                call: call,
                errno: errno,
                path: path,
                detail: "writing to XenStore failed with \(errno.symbolicName)"
            )
        default:
            return XenStoreErrors.error(name: errno.symbolicName, type: request.type, operation: operation, path: path)
        }
    }

    // MARK: The reader

    private static func read(_ wire: XenStoreWire, into mailbox: XenStoreMailbox) async {
        let parser = Locked(XenStoreMessageParser())
        let calls = wire.calls
        let stream = EventStream<XenStoreMessage>(fd: wire.fd, calls: calls) { fd, messages throws(XenGntError) in
            let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 8192, alignment: 8)
            defer { chunk.deallocate() }
            while true {
                let count: Int
                do throws(Errno) {
                    count = try calls.read(fd, into: chunk)
                } catch .interrupted {
                    continue
                } catch .resourceTemporarilyUnavailable {
                    return .more
                } catch {
                    throw XenGntError(
                        .connectionLost,
                        .xenstoreRequest,
                        call: "read",
                        errno: error,
                        detail: "reading from XenStore failed with \(error.symbolicName)"
                    )
                }
                if count == 0 { return .end }
                do throws(XenStoreMessageParser.ParseError) {
                    let decoded = try parser.withLock { parser throws(XenStoreMessageParser.ParseError) in
                        try parser.feed(UnsafeRawBufferPointer(rebasing: chunk[..<count]))
                    }
                    messages.append(contentsOf: decoded)
                } catch {
                    throw XenGntError(
                        .connectionLost,
                        .xenstoreRequest,
                        detail: "XenStore sent a message of \(error.length) bytes, over the protocol's 4096"
                    )
                }
                if !messages.isEmpty { return .more }
            }
        }
        var ending = XenGntError(.connectionLost, .xenstoreRequest, detail: "xenstored closed the connection")
        do {
            for try await message in stream {
                for followUp in mailbox.dispatch(message) {
                    try? wire.send(followUp.bytes)
                }
            }
        } catch  where error.code == .cancelled {
            ending = XenGntError(.connectionLost, .xenstoreRequest, detail: "the XenStore was closed")
        } catch {
            ending = error
        }
        mailbox.close(ending)
    }
}

/// The descriptor to xenstored (its socket, or `/dev/xen/xenbus`) and the lock that keeps
/// messages whole when several tasks write.
final class XenStoreWire: Sendable {
    let fd: Int32
    let calls: any SystemCalls
    /// Held while writing and while closing, so a write never reaches a closed (and perhaps
    /// reused) descriptor number; `true` once closed.
    private let writing = Locked(false)

    init(fd: Int32, calls: any SystemCalls) {
        self.fd = fd
        self.calls = calls
    }

    deinit { close() }

    /// Closes the descriptor (once). The reader has stopped when this is called.
    func close() {
        writing.withLock { closed in
            guard !closed else { return }
            closed = true
            try? calls.close(fd)
        }
    }

    /// Writes all of `bytes` as one message. A full socket buffer (`EAGAIN`: the descriptor is
    /// non-blocking for the reader's sake) is waited out in `poll` for writability.
    func send(_ bytes: [UInt8]) throws(Errno) {
        try writing.withLock { closed throws(Errno) in
            guard !closed else { throw .badFileDescriptor }
            var offset = 0
            while offset < bytes.count {
                let start = offset
                let written = bytes.withUnsafeBytes { raw in
                    Result { () throws(Errno) in try calls.write(fd, from: UnsafeRawBufferPointer(rebasing: raw[start...])) }
                }
                do throws(Errno) {
                    offset += try written.get()
                } catch .interrupted {
                    continue
                } catch .resourceTemporarilyUnavailable {
                    var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    _ = try withUnsafeMutablePointer(to: &entry) { pointer throws(Errno) in
                        try retryingOnInterrupt { () throws(Errno) in
                            try calls.poll(UnsafeMutableBufferPointer(start: pointer, count: 1), timeout: -1)
                        }
                    }
                }
            }
        }
    }
}
