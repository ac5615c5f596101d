import Synchronization
public import XenGnt

/// A XenStore watch: the changes at or below a path (or the special events `@introduceDomain`
/// and `@releaseDomain`), as an `AsyncSequence`.
///
/// ```swift
/// let watch = try await store.watch("/local/domain/0/backend/vdispl")
/// for try await event in watch {        // the first event comes at once, as xenstored sends it
///     try await rescan(event.path)
/// }
/// ```
///
/// xenstored sends one event as soon as the watch is registered (so a client reads the initial
/// state and then waits for changes, without a race), then one per change: a write (even of an
/// unchanged value), a removal (one event per removed node), a permission change, a committed
/// transaction's changes. An event names the node that changed, which may be below the watched
/// path; events for nodes this domain may not read are not sent. xenstored drops an event
/// identical to one still queued for the connection, so treat an event as "look again", not as
/// a count.
///
/// The watch stays registered while this object lives: cancelling the task that iterates ends
/// the iteration (with `XenGntError/Code/cancelled`) but not the watch; ``cancel()`` or
/// dropping the last reference removes it. Iterate from one task at a time.
public final class XenStoreWatch: AsyncSequence, Sendable {
    public typealias Element = Event
    public typealias Failure = XenGntError

    /// One watch event.
    public struct Event: Sendable, Hashable, CustomStringConvertible {
        /// The node that changed (relative if the watch was registered with a relative path),
        /// or `@introduceDomain` / `@releaseDomain`.
        public let path: String
        /// The token the watch was registered with.
        public let token: String

        public var description: String { path }
    }

    /// The watched path, as given.
    public let path: String
    /// The token this watch was registered with (unique within its connection).
    public let token: String
    let connection: XenStoreConnection
    let sink: XenStoreWatchSink
    private let removed = Atomic<Bool>(false)

    init(path: String, token: String, connection: XenStoreConnection, sink: XenStoreWatchSink) {
        self.path = path
        self.token = token
        self.connection = connection
        self.sink = sink
    }

    deinit {
        if !removed.exchange(true, ordering: .acquiringAndReleasing) {
            connection.mailbox.removeWatch(token: token)
            sink.finish(nil)
            connection.post(Self.unwatchMessage(path: path, token: token))
        }
    }

    /// Removes the watch (`XS_UNWATCH`) and ends every iteration of it.
    public func cancel() async throws(XenGntError) {
        guard !removed.exchange(true, ordering: .acquiringAndReleasing) else { return }
        connection.mailbox.removeWatch(token: token)
        sink.finish(nil)
        _ = try await connection.exchange(Self.unwatchMessage(path: path, token: token), .xenstoreUnwatch, path: path)
    }

    static func unwatchMessage(path: String, token: String) -> XenStoreMessage {
        XenStoreMessage(type: XenStoreMessageType.unwatch, payload: XenStoreMessage.payload([path, token]))
    }

    public func makeAsyncIterator() -> Iterator { Iterator(watch: self) }

    public struct Iterator: AsyncIteratorProtocol {
        // Holds the watch, so that a `for` loop over `try await store.watch(p)` keeps it.
        let watch: XenStoreWatch

        public mutating func next() async throws(XenGntError) -> Event? {
            try await watch.sink.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(XenGntError) -> Event? {
            try await watch.sink.next()
        }
    }
}

/// The events of one watch, queued until its consumer takes them.
final class XenStoreWatchSink: Sendable {
    typealias Waiter = CheckedContinuation<Result<XenStoreWatch.Event?, XenGntError>, Never>

    private struct State {
        var events: [XenStoreWatch.Event] = []
        var head = 0
        var waiter: Waiter?
        /// `nil` while open; `.success` when removed; `.failure` when the connection broke.
        var end: Result<Void, XenGntError>?
    }

    private let state = Locked(State())

    func deliver(_ event: XenStoreWatch.Event) {
        let waiter = state.withLock { state -> Waiter? in
            guard state.end == nil else { return nil }
            if let waiter = state.waiter {
                state.waiter = nil
                return waiter
            }
            state.events.append(event)
            return nil
        }
        waiter?.resume(returning: .success(event))
    }

    /// Ends the events: normally (`nil`: the iteration ends) or with `error`.
    func finish(_ error: XenGntError?) {
        let waiter = state.withLock { state -> Waiter? in
            if state.end == nil { state.end = error.map { .failure($0) } ?? .success(()) }
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: error.map { .failure($0) } ?? .success(nil))
    }

    func next() async throws(XenGntError) -> XenStoreWatch.Event? {
        let result = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: Waiter) in
                let ready = state.withLock { state -> Result<XenStoreWatch.Event?, XenGntError>? in
                    if state.head < state.events.count {
                        let event = state.events[state.head]
                        state.head += 1
                        if state.head >= 64, state.head * 2 >= state.events.count {
                            state.events.removeFirst(state.head)
                            state.head = 0
                        }
                        return .success(event)
                    }
                    switch state.end {
                    case .success?: return .success(nil)
                    case .failure(let error)?: return .failure(error)
                    case nil: break
                    }
                    if Task.isCancelled { return .failure(XenGntError(.cancelled, .xenstoreWatch)) }
                    state.waiter = continuation
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> Waiter? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: .failure(XenGntError(.cancelled, .xenstoreWatch)))
        }
        return try result.get()
    }
}
