public import Logging

/// A connector's request ring as the server sees it: requests in, responses out. The adapter
/// over XenGntBackend's `BackRing` copies each request out of shared memory once and decodes
/// that copy; nothing on this path allocates.
public protocol DisplayRequestRing: ~Copyable {
    /// The next request, or nil when the ring is empty. Throws when the frontend broke the ring
    /// (its indices out of range): the connection must end.
    mutating func nextRequest() throws(DisplayRefusal) -> DisplayRequest?
    /// Queues a response.
    mutating func respond(_ response: DisplayResponse) throws(DisplayRefusal)
    /// Publishes the queued responses; whether the frontend must be notified.
    mutating func publishResponses() -> Bool
}

/// The device's event pages, one per connector: `EVT_PG_FLIP` events out.
public protocol DisplayEventPages: ~Copyable {
    /// Posts `event` on `connector`'s page; whether the frontend must be notified.
    /// Throws when the frontend broke the page (a consumer index out of range).
    mutating func post(_ event: DisplayEvent, connector: Int) throws(DisplayRefusal) -> Bool
}

/// A set of connector indices (a device has at most ``FrontendConfiguration/maxConnectors``),
/// kept in one word so that serving a flip allocates nothing.
public struct ConnectorSet: Sequence, Hashable, Sendable, ExpressibleByArrayLiteral {
    private var bits: UInt64 = 0

    public init() {}
    public init(arrayLiteral elements: Int...) {
        for element in elements { insert(element) }
    }

    /// Adds `connector`; an index outside 0..<64 (never a valid connector) is ignored.
    public mutating func insert(_ connector: Int) {
        guard (0..<64).contains(connector) else { return }
        bits |= 1 << UInt64(connector)
    }
    public func contains(_ connector: Int) -> Bool {
        (0..<64).contains(connector) && bits & (1 << UInt64(connector)) != 0
    }
    public var isEmpty: Bool { bits == 0 }
    public var count: Int { bits.nonzeroBitCount }

    public func makeIterator() -> Iterator { Iterator(bits: bits) }
    public struct Iterator: IteratorProtocol {
        var bits: UInt64
        public mutating func next() -> Int? {
            guard bits != 0 else { return nil }
            let index = bits.trailingZeroBitCount
            bits &= bits - 1
            return index
        }
    }
}

/// Serves one vdispl device over its rings: decodes each request, answers it through its
/// ``DisplaySession``, posts flip events, counts (``DisplayCounters``) and logs what matters
/// once (a connect, a mode change, an error), never per frame.
public struct DisplayDeviceServer<Resources: DisplayResources> {
    public var session: DisplaySession
    public var resources: Resources
    public let key: FrontendKey
    public let counters: DisplayCounters
    let logger: Logger
    private var modes: [Int: String] = [:]

    public init(session: DisplaySession, resources: Resources, key: FrontendKey, counters: DisplayCounters, logger: Logger) {
        self.session = session
        self.resources = resources
        self.key = key
        self.counters = counters
        self.logger = logger
        counters.update(key) { $0.connects += 1 }
        let connectors = session.configuration.connectors.map { "\($0.width)x\($0.height)" }.joined(separator: ", ")
        logger.info(
            "\(key): connected, protocol \(session.configuration.version), be-alloc=\(session.configuration.backendAllocates ? 1 : 0), connectors \(connectors)"
        )
    }

    /// What one pass over a ring did.
    public struct Pass: Hashable, Sendable {
        public var requests = 0
        /// Notify the frontend on the request channel.
        public var notifyRequests = false
        /// Notify the frontend on `connector`'s event channel.
        public var notifyEvents = ConnectorSet()
    }

    /// Answers every request pending on `connector`'s ring; events go to `events`.
    public mutating func serve<Ring: DisplayRequestRing & ~Copyable, Events: DisplayEventPages & ~Copyable>(
        connector: Int,
        ring: inout Ring,
        events: inout Events
    ) throws(DisplayRefusal) -> Pass {
        var pass = Pass()
        while let request = try ring.nextRequest() {
            let response: DisplayResponse
            var outcome = DisplaySession.Outcome.none
            do throws(DisplayRefusal) {
                (response, outcome) = try session.check(request, connector: connector, resources: &resources)
                note(request, connector: connector)
            } catch {
                response = DisplayResponse(answering: request, error.status)
                counters.update(key) { $0.errors += 1 }
                logger.notice("\(key): \(request.operation) on connector \(connector) refused: \(error)")
            }
            try ring.respond(response)
            pass.requests += 1
            counters.update(key) { $0.requests += 1 }
            if case .flipEvent(let c, let event) = outcome, try post(event, connector: c, events: &events) {
                pass.notifyEvents.insert(c)
            }
        }
        pass.notifyRequests = ring.publishResponses()
        return pass
    }

    /// A flip the resources finished later (a KMS flip event): posts its `EVT_PG_FLIP`.
    public mutating func flipCompleted<Events: DisplayEventPages & ~Copyable>(
        connector: Int,
        events: inout Events
    ) throws(DisplayRefusal) -> Bool {
        guard let event = session.flipCompleted(connector: connector) else { return false }
        return try post(event, connector: connector, events: &events)
    }

    /// Ends the connection: everything released in order.
    public mutating func disconnect(reason: String) {
        session.tearDown(resources: &resources)
        modes = [:]
        logger.info("\(key): disconnected (\(reason))")
    }

    private mutating func post<Events: DisplayEventPages & ~Copyable>(
        _ event: DisplayEvent,
        connector: Int,
        events: inout Events
    ) throws(DisplayRefusal) -> Bool {
        let notify = try events.post(event, connector: connector)
        counters.update(key) { $0.flipEvents += 1 }
        return notify
    }

    private mutating func note(_ request: DisplayRequest, connector: Int) {
        switch request.body {
        case .pageFlip:
            counters.update(key) { $0.pageFlips += 1 }
        case .setConfiguration(let config):
            let mode = config.disables ? "off" : "\(config.width)x\(config.height) at \(config.bitsPerPixel) bpp"
            if modes[connector] != mode {
                modes[connector] = mode
                logger.info("\(key): connector \(connector) mode \(mode)")
            }
        default:
            break
        }
    }
}
