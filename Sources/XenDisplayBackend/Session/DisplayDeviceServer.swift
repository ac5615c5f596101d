public import Logging

/// A connector's request ring as the server sees it: slots in, slots out. The adapter over
/// XenGntBackend's `BackRing` copies each request out of shared memory once.
public protocol DisplayRequestRing: ~Copyable {
    /// The next request slot, or nil when the ring is empty. Throws when the frontend broke the
    /// ring (its indices out of range): the connection must end.
    mutating func nextRequest() throws(DisplayRefusal) -> [UInt8]?
    /// Queues a response slot.
    mutating func respond(_ slot: [UInt8]) throws(DisplayRefusal)
    /// Publishes the queued responses; whether the frontend must be notified.
    mutating func publishResponses() -> Bool
}

/// The device's event pages, one per connector: `EVT_PG_FLIP` slots out.
public protocol DisplayEventPages: ~Copyable {
    /// Posts an event slot on `connector`'s page; whether the frontend must be notified.
    /// Throws when the frontend broke the page (a consumer index out of range).
    mutating func post(_ slot: [UInt8], connector: Int) throws(DisplayRefusal) -> Bool
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
        logger.info("\(key): connected, protocol \(session.configuration.version), be-alloc=\(session.configuration.backendAllocates ? 1 : 0), connectors \(connectors)")
    }

    /// What one pass over a ring did.
    public struct Pass: Hashable, Sendable {
        public var requests = 0
        /// Notify the frontend on the request channel.
        public var notifyRequests = false
        /// Notify the frontend on `connector`'s event channel.
        public var notifyEvents: Set<Int> = []
    }

    /// Answers every request pending on `connector`'s ring; events go to `events`.
    public mutating func serve<Ring: DisplayRequestRing & ~Copyable, Events: DisplayEventPages & ~Copyable>(
        connector: Int, ring: inout Ring, events: inout Events
    ) throws(DisplayRefusal) -> Pass {
        var pass = Pass()
        while let slot = try ring.nextRequest() {
            let request = DisplayRequest(decoding: slot)
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
            try ring.respond(response.encoded)
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
    public mutating func flipCompleted<Events: DisplayEventPages & ~Copyable>(connector: Int, events: inout Events) throws(DisplayRefusal) -> Bool {
        guard let event = session.flipCompleted(connector: connector) else { return false }
        return try post(event, connector: connector, events: &events)
    }

    /// Ends the connection: everything released in order.
    public mutating func disconnect(reason: String) {
        session.tearDown(resources: &resources)
        modes = [:]
        logger.info("\(key): disconnected (\(reason))")
    }

    private mutating func post<Events: DisplayEventPages & ~Copyable>(_ event: DisplayEvent, connector: Int, events: inout Events) throws(DisplayRefusal) -> Bool {
        let notify = try events.post(event.encoded, connector: connector)
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
