import Synchronization
import XenGnt

/// Where replies and watch events meet the tasks waiting for them: requests by id, watches by
/// token, and the slots that bound how many requests are in flight.
final class XenStoreMailbox: Sendable {
    /// xenstored's `quota_req_outstanding` for unprivileged domains in Xen 4.17 (xenstored
    /// stops reading from a domain with this many requests unanswered). One connection never
    /// has more in flight, so many tasks sharing it take turns instead of stalling it.
    static let outstandingLimit = 20

    typealias Reply = CheckedContinuation<Result<XenStoreMessage, XenGntError>, Never>

    private struct Waiting {
        let continuation: Reply
        let request: XenStoreMessage
    }

    private struct State {
        var nextID: UInt32 = 1
        var waiting: [UInt32: Waiting] = [:]
        /// Requests whose reply nobody waits for (a cancelled caller, an unwatch from a
        /// `deinit`), kept so that what they started can be undone when the reply comes.
        var ignored: [UInt32: XenStoreMessage] = [:]
        var watches: [String: XenStoreWatchSink] = [:]
        var failure: XenGntError?
        var inFlight = 0
        var slotWaiters: [CheckedContinuation<Bool, Never>] = []
    }

    private let state = Locked(State())

    // MARK: Requests

    /// Records `request` under a fresh id and returns the request to send, or resumes
    /// `continuation` at once (and returns `nil`) when the connection is closed or the caller
    /// was cancelled before it got this far.
    func register(_ request: XenStoreMessage, _ continuation: Reply, ticket: Ticket) -> XenStoreMessage? {
        let outcome: Result<XenStoreMessage, XenGntError> = state.withLock { state in
            if let failure = state.failure { return .failure(failure) }
            let id = state.nextID
            guard ticket.assign(id) else { return .failure(XenGntError(.cancelled, .xenstoreRequest)) }
            state.nextID = state.nextID == UInt32.max ? 1 : state.nextID + 1
            var numbered = request
            numbered.requestID = id
            state.waiting[id] = Waiting(continuation: continuation, request: numbered)
            return .success(numbered)
        }
        switch outcome {
        case .success(let numbered): return numbered
        case .failure(let error):
            continuation.resume(returning: .failure(error))
            return nil
        }
    }

    /// Fails request `id` (its write failed).
    func fail(_ id: UInt32, _ error: XenGntError) {
        state.withLock { $0.waiting.removeValue(forKey: id) }?.continuation.resume(returning: .failure(error))
    }

    /// The caller of request `id` was cancelled: it stops waiting; the reply will be ignored.
    func cancel(_ id: UInt32) {
        let entry = state.withLock { state -> Waiting? in
            guard let entry = state.waiting.removeValue(forKey: id) else { return nil }
            state.ignored[id] = entry.request
            return entry
        }
        entry?.continuation.resume(returning: .failure(XenGntError(.cancelled, .xenstoreRequest)))
    }

    /// Numbers `request` for sending without waiting for its reply.
    func unanswered(_ request: XenStoreMessage) -> XenStoreMessage {
        state.withLock { state in
            var numbered = request
            numbered.requestID = state.nextID
            state.nextID = state.nextID == UInt32.max ? 1 : state.nextID + 1
            state.ignored[numbered.requestID] = numbered
            return numbered
        }
    }

    // MARK: Flow control

    /// Waits for one of the ``outstandingLimit`` request slots.
    func acquireSlot() async throws(XenGntError) {
        let immediate: Result<Bool, XenGntError> = state.withLock { state in
            if let failure = state.failure { return .failure(failure) }
            guard state.inFlight < Self.outstandingLimit else { return .success(false) }
            state.inFlight += 1
            return .success(true)
        }
        if try immediate.get() { return }
        let granted = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let now: Bool? = state.withLock { state in
                if state.failure != nil || Task.isCancelled { return false }
                if state.inFlight < Self.outstandingLimit {
                    state.inFlight += 1
                    return true
                }
                state.slotWaiters.append(continuation)
                return nil
            }
            if let now { continuation.resume(returning: now) }
        }
        guard granted else {
            if let failure = state.withLock({ $0.failure }) { throw failure }
            throw XenGntError(.cancelled, .xenstoreRequest)
        }
    }

    /// Gives a slot back (to the longest waiter, if any).
    func releaseSlot() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if !state.slotWaiters.isEmpty { return state.slotWaiters.removeFirst() }
            state.inFlight -= 1
            return nil
        }
        next?.resume(returning: true)
    }

    // MARK: Watches

    func addWatch(token: String, _ sink: XenStoreWatchSink) throws(XenGntError) {
        let failure = state.withLock { state -> XenGntError? in
            if let failure = state.failure { return failure }
            state.watches[token] = sink
            return nil
        }
        if let failure { throw failure }
    }

    func removeWatch(token: String) {
        state.withLock { _ = $0.watches.removeValue(forKey: token) }
    }

    // MARK: The reader's side

    /// Hands `message` to whoever waits for it. Returns messages to send in consequence: the
    /// end of a transaction, or the removal of a watch, that a cancelled caller started.
    func dispatch(_ message: XenStoreMessage) -> [XenStoreMessage] {
        if message.type == XenStoreMessageType.watchEvent {
            // The request id of an event is meaningless (the kernel leaves it uninitialised).
            let parts = message.strings
            guard parts.count >= 2 else { return [] }
            let sink = state.withLock { $0.watches[parts[1]] }
            sink?.deliver(XenStoreWatch.Event(path: parts[0], token: parts[1]))
            return []
        }
        let (waiter, orphan) = state.withLock { state in
            (state.waiting.removeValue(forKey: message.requestID), state.ignored.removeValue(forKey: message.requestID))
        }
        if let waiter {
            waiter.continuation.resume(returning: .success(message))
            return []
        }
        guard let orphan, message.type != XenStoreMessageType.error else { return [] }
        if orphan.type == XenStoreMessageType.transactionStart, let id = UInt32(message.text) {
            return [
                unanswered(
                    XenStoreMessage(
                        type: XenStoreMessageType.transactionEnd,
                        transactionID: id,
                        payload: XenStoreMessage.payload(["F"])
                    )
                )
            ]
        }
        if orphan.type == XenStoreMessageType.watch {
            return [unanswered(XenStoreMessage(type: XenStoreMessageType.unwatch, payload: orphan.payload))]
        }
        return []
    }

    /// The connection ended: every waiter and watch learns why; later requests fail at once.
    func close(_ error: XenGntError) {
        let (waiting, watches, slots) = state.withLock { state in
            state.failure = state.failure ?? error
            defer {
                state.waiting = [:]
                state.watches = [:]
                state.slotWaiters = []
                state.ignored = [:]
            }
            return (Array(state.waiting.values), Array(state.watches.values), state.slotWaiters)
        }
        for entry in waiting { entry.continuation.resume(returning: .failure(error)) }
        for sink in watches { sink.finish(error) }
        for slot in slots { slot.resume(returning: false) }
    }

    /// Why the connection ended, or `nil` while it is open.
    var failure: XenGntError? { state.withLock { $0.failure } }
}

/// A request's id, as far as its cancellation handler can know it: cancelling before the id
/// is assigned stops the request from being sent at all.
final class Ticket: Sendable {
    private let state = Locked<(id: UInt32?, cancelled: Bool)>((nil, false))

    /// Records `id`; `false` when the caller was cancelled already.
    func assign(_ id: UInt32) -> Bool {
        state.withLock { state in
            if state.cancelled { return false }
            state.id = id
            return true
        }
    }

    /// Marks the ticket cancelled and returns the id it got, if any.
    func cancel() -> UInt32? {
        state.withLock { state in
            state.cancelled = true
            return state.id
        }
    }
}
