/// A request ring in this process (no shared memory): slots queued by the caller, responses
/// collected. For the daemon's `--demo` and for tests; a real frontend's ring is shared memory.
public struct InProcessRing: DisplayRequestRing, Sendable {
    public var requests: [[UInt8]] = []
    public var responses: [[UInt8]] = []
    private var pending: [[UInt8]] = []

    public init() {}

    public mutating func nextRequest() throws(DisplayRefusal) -> DisplayRequest? {
        requests.isEmpty ? nil : DisplayRequest(decoding: requests.removeFirst())
    }
    public mutating func respond(_ response: DisplayResponse) throws(DisplayRefusal) { pending.append(response.encoded) }
    public mutating func publishResponses() -> Bool {
        guard !pending.isEmpty else { return false }
        responses += pending
        pending = []
        return true
    }
}

/// Event pages in this process: the posted events, per connector, in order.
public struct InProcessEventPages: DisplayEventPages, Sendable {
    public var posted: [(connector: Int, slot: [UInt8])] = []
    public init() {}
    public mutating func post(_ event: DisplayEvent, connector: Int) throws(DisplayRefusal) -> Bool {
        posted.append((connector, event.encoded))
        return true
    }
}
