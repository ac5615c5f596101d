import Synchronization
import SystemPackage
public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A connection to XenStore: the configuration tree domains share, where the toolstack
/// describes devices and frontends and backends meet.
///
/// It speaks the wire protocol of `xen/io/xs_wire.h` through XenGnt's seam, to xenstored's
/// Unix socket in the domain that runs it (Dom0: `/var/run/xenstored/socket`) or to the
/// kernel's `/dev/xen/xenbus` in any domain, which relays to xenstored over the domain's
/// XenStore ring. Many tasks can use one `XenStore` at once: replies are matched to requests
/// by request id.
///
/// ```swift
/// let store = try XenStore()                          // on: .kernel
/// let me = try await store.domainID()
/// try await store.write("data/greeting", "hello")     // relative to /local/domain/<me>
/// for try await event in try await store.watch("/local/domain/0/backend/vdispl") { ... }
/// ```
///
/// Reading and writing are in ``XenStoreOperations``, which transactions share
/// (``transaction(attempts:_:)``). Failures are `XenGntError`s whose `XenGntError/detail`
/// is xenstored's error string (`ENOENT`, `EACCES`, ...) and whose `XenGntError/path` is the
/// node asked for.
public final class XenStore: XenStoreOperations, Sendable {
    /// How a `XenStore` reaches xenstored.
    public enum Transport: Sendable, Hashable, CustomStringConvertible {
        /// xenstored's Unix socket (in the domain that runs it; a privileged connection).
        case socket(String)
        /// The kernel's xenbus device, which relays to xenstored over this domain's ring.
        case xenbus(String)

        /// xenstored's socket on Debian and upstream builds.
        public static let daemonSocket = Transport.socket("/var/run/xenstored/socket")
        /// The kernel's XenStore device.
        public static let kernelDevice = Transport.xenbus("/dev/xen/xenbus")

        /// The socket or device path.
        public var path: String {
            switch self {
            case .socket(let path), .xenbus(let path): path
            }
        }

        public var description: String {
            switch self {
            case .socket(let path): "socket \(path)"
            case .xenbus(let path): "device \(path)"
            }
        }

        /// The largest payload a message may carry: `XENSTORE_PAYLOAD_MAX`, or 16 bytes less
        /// through the xenbus device, whose 4096-byte buffer holds the header too.
        public var payloadLimit: Int {
            switch self {
            case .socket: XenStoreMessage.payloadLimit
            case .xenbus: XenStoreMessage.payloadLimit - XenStoreMessage.headerSize
            }
        }
    }

    /// Where calls go.
    public let system: XenSystem
    /// How this connection reaches xenstored.
    public let transport: Transport
    let connection: XenStoreConnection
    private let tokens = Atomic<UInt64>(0)

    /// Connects to XenStore.
    ///
    /// - Parameters:
    ///   - system: where to connect (the kernel, or a simulated domain).
    ///   - transport: `nil` (the default) does what libxenstore's `xs_open` does: xenstored's
    ///     socket when it accepts a connection, else the kernel's `/dev/xen/xenbus`.
    /// - Throws: `XenGntError/Code/xenstoreUnavailable` when neither can be opened.
    ///
    /// The corresponding C functions are `connect` and `open`.
    public init(on system: XenSystem = .kernel, transport: Transport? = nil) throws(XenGntError) {
        self.system = system
        let calls = system.calls
        let chosen: Transport
        let fd: Int32
        switch transport {
        case .socket(let path)?:
            fd = try Self.connect(path, calls: calls)
            chosen = .socket(path)
        case .xenbus(let path)?:
            fd = try Self.open(path, calls: calls)
            chosen = .xenbus(path)
        case nil:
            if let socket = try? Self.connect(Transport.daemonSocket.path, calls: calls) {
                fd = socket
                chosen = .daemonSocket
            } else {
                fd = try Self.open(Transport.kernelDevice.path, calls: calls)
                chosen = .kernelDevice
            }
        }
        self.transport = chosen
        connection = XenStoreConnection(wire: XenStoreWire(fd: fd, calls: calls))
    }

    /// Closes the connection and waits until its descriptor is closed. Watches on it end with
    /// `XenGntError/Code/connectionLost`; so does every later request. (Dropping the last
    /// reference to the store and its watches closes it too, a moment later.)
    public func close() async {
        await connection.close()
    }

    /// Where ``XenStoreOperations`` send their requests: this connection, no transaction.
    public var route: XenStoreRoute { XenStoreRoute(connection: connection, transactionID: 0, transport: transport) }

    // MARK: Watches

    /// Registers a watch on `path` (absolute, relative to this domain's home, or
    /// `@introduceDomain` / `@releaseDomain`) and returns its events.
    ///
    /// The first event, sent by xenstored at registration, is already on its way when this
    /// returns. xenstored allows an unprivileged domain 128 watches (more are refused with
    /// `XenGntError/Code/quotaExceeded`); `@releaseDomain` reaches only domains its
    /// permissions let read it (Dom0 by default).
    ///
    /// The corresponding message is `XS_WATCH`.
    public func watch(_ path: String) async throws(XenGntError) -> XenStoreWatch {
        try route.validate(path: path, operation: .xenstoreWatch)
        let token = "xengnt-\(tokens.add(1, ordering: .relaxed).newValue)"
        let sink = XenStoreWatchSink()
        // Registered before the request: the first event can arrive before the reply (through
        // /dev/xen/xenbus it usually does).
        try connection.mailbox.addWatch(token: token, sink)
        let message = XenStoreMessage(type: XenStoreMessageType.watch, payload: XenStoreMessage.payload([path, token]))
        do {
            _ = try await connection.exchange(message, .xenstoreWatch, path: path)
        } catch {
            connection.mailbox.removeWatch(token: token)
            throw error
        }
        return XenStoreWatch(path: path, token: token, connection: connection, sink: sink)
    }

    // MARK: Transactions

    /// Runs `body` in a XenStore transaction and commits it: either every change `body` made
    /// takes effect, or none does.
    ///
    /// When another writer changed a node the transaction read or wrote, xenstored refuses the
    /// commit (`EAGAIN`) and this runs `body` again in a new transaction, up to `attempts`
    /// times, so `body` must be safe to repeat and must not act on what it read before the
    /// commit succeeded (return it instead). Attempts after the first wait a random time, up to
    /// 64 ms, so that writers that conflicted do not meet again. If `body` throws, the
    /// transaction is abandoned
    /// (ended without committing, so it does not count against the domain's 10-transaction
    /// quota) and the error is rethrown.
    ///
    /// - Throws: `XenGntError/Code/transactionConflict` with `XenGntError/count` when every
    ///   attempt conflicted; `XenGntError/Code/cancelled` when the task is cancelled between
    ///   attempts; what `body` throws.
    ///
    /// The corresponding messages are `XS_TRANSACTION_START` and `XS_TRANSACTION_END`.
    public func transaction<Result>(
        attempts: Int = 16,
        _ body: (XenStoreTransaction) async throws(XenGntError) -> Result
    ) async throws(XenGntError) -> Result {
        for attempt in 0..<max(attempts, 1) {
            if attempt > 0 { try await Self.backOff(after: attempt) }
            if Task.isCancelled { throw XenGntError(.cancelled, .xenstoreTransaction) }
            let started = try await connection.exchange(
                XenStoreMessage(type: XenStoreMessageType.transactionStart, payload: [0]),
                .xenstoreTransaction,
                path: nil
            )
            guard let id = UInt32(started.text), id != 0 else {
                throw XenGntError(.malformedValue, .xenstoreTransaction, call: "XS_TRANSACTION_START", detail: started.text)
            }
            let transaction = XenStoreTransaction(
                route: XenStoreRoute(connection: connection, transactionID: id, transport: transport)
            )
            let result: Result
            do {
                result = try await body(transaction)
            } catch {
                try? await end(id, commit: false)
                if error.code == .transactionConflict { continue }
                throw error
            }
            do {
                try await end(id, commit: true)
                return result
            } catch  where error.code == .transactionConflict {
                continue
            }
        }
        throw XenGntError(
            .transactionConflict,
            .xenstoreTransaction,
            call: "XS_TRANSACTION_END",
            errno: .resourceTemporarilyUnavailable,
            count: max(attempts, 1),
            detail: "EAGAIN"
        )
    }

    /// Waits a random time below 2^attempt ms (at most 64 ms) before another attempt: writers
    /// that conflicted and retried at once would meet again, and one of them could lose every
    /// time (the simulator, where all run in lockstep, showed it).
    private static func backOff(after attempt: Int) async throws(XenGntError) {
        let ceiling = 1000 << min(attempt, 6)
        do {
            try await Task.sleep(for: .microseconds(Int.random(in: 0..<ceiling)))
        } catch {
            throw XenGntError(.cancelled, .xenstoreTransaction)
        }
    }

    private func end(_ id: UInt32, commit: Bool) async throws(XenGntError) {
        let message = XenStoreMessage(
            type: XenStoreMessageType.transactionEnd,
            transactionID: id,
            payload: XenStoreMessage.payload([commit ? "T" : "F"])
        )
        _ = try await connection.exchange(message, .xenstoreTransaction, path: nil)
    }

    // MARK: Connecting

    private static func connect(_ path: String, calls: any SystemCalls) throws(XenGntError) -> Int32 {
        let fd: Int32
        do throws(Errno) {
            fd = try retryingOnInterrupt { () throws(Errno) in try calls.connectUnixSocket(path) }
        } catch {
            throw XenGntError(.xenstoreUnavailable, .xenstoreConnect, call: "connect", errno: error, path: path)
        }
        do throws(Errno) {
            let flags = try calls.fcntl(fd, command: F_GETFL, argument: 0)
            _ = try calls.fcntl(fd, command: F_SETFL, argument: flags | O_NONBLOCK)
        } catch {
            try? calls.close(fd)
            throw XenGntError(.xenstoreUnavailable, .xenstoreConnect, call: "fcntl", errno: error, path: path)
        }
        return fd
    }

    private static func open(_ path: String, calls: any SystemCalls) throws(XenGntError) -> Int32 {
        do throws(Errno) {
            return try retryingOnInterrupt { () throws(Errno) in
                try calls.open(path, flags: O_RDWR | O_CLOEXEC | O_NONBLOCK, mode: 0)
            }
        } catch {
            let code: XenGntError.Code =
                error == .permissionDenied || error == .notPermitted ? .permissionDenied : .xenstoreUnavailable
            throw XenGntError(code, .xenstoreConnect, call: "open", errno: error, path: path)
        }
    }
}

/// Operations inside one XenStore transaction (see ``XenStore/transaction(attempts:_:)``). Use
/// it only inside the transaction's body.
public struct XenStoreTransaction: XenStoreOperations, Sendable {
    public let route: XenStoreRoute

    /// The transaction's id, as xenstored numbered it.
    public var id: UInt32 { route.transactionID }
}
