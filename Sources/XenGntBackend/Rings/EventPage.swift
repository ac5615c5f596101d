internal import CXenBackend
public import XenGnt

/// The layout of an "event page", the back-to-front channel of `displif.h` and `sndif.h`: a
/// header whose first words are `in_cons` and `in_prod`, then an array of events. The array's
/// length is whatever fits, **not** a power of two — displif's holds
/// (4096 − 64) / 64 = 63 events — so a slot is the free-running index `% length`, never
/// masked.
public struct EventPageGeometry: Sendable, Hashable {
    /// displif's header (`struct xendispl_event_page`, 64 bytes).
    public static let displayHeaderSize = Int(CXB_DISPL_EVENT_PAGE_HEADER)
    static let consumerOffset = Int(CXB_DISPL_IN_CONS)
    static let producerOffset = Int(CXB_DISPL_IN_PROD)

    /// Bytes before the first event.
    public let headerSize: Int
    /// Bytes per event.
    public let eventSize: Int
    /// Events the page holds (`XENDISPL_IN_RING_LEN`).
    public let capacity: Int

    /// The page of `Event`s over `byteCount` bytes behind a `headerSize`-byte header.
    public init<Event>(_ event: Event.Type, byteCount: Int = xenPageSize, headerSize: Int = displayHeaderSize) throws(XenGntError)
    {
        try RingGeometry.requirePlainData(Event.self)
        self.headerSize = headerSize
        eventSize = max(MemoryLayout<Event>.stride, 1)
        capacity = byteCount > headerSize ? (byteCount - headerSize) / eventSize : 0
        guard capacity >= 1, headerSize >= 8 else {
            throw XenGntError(
                .ringTooSmall,
                .attachRing,
                length: byteCount,
                detail: "a \(headerSize)-byte header and \(eventSize)-byte events"
            )
        }
    }

    func slot(_ index: UInt32) -> Int { headerSize + Int(index % UInt32(capacity)) * eventSize }
}

/// The backend's side of an event page: posts events the frontend reads (displif's page
/// flip and frame done, sndif's position), on the page the frontend granted.
///
/// The frontend's consumer index is checked at every post: ahead of what was produced, or
/// behind by more than the page holds, and the page is broken (every later post throws).
public struct EventPageWriter<Event>: ~Copyable {
    let base: UnsafeMutableRawPointer
    /// The page's layout.
    public let geometry: EventPageGeometry
    private var memory: SharedMemory
    private var producer: UInt32
    private var failure: XenGntError?

    /// Attaches to the event page on `mapping` and owns the mapping.
    public init(mapping: consuming GrantMapping, headerSize: Int = EventPageGeometry.displayHeaderSize) throws(XenGntError) {
        guard mapping.access == .readWrite else {
            throw XenGntError(.readOnlyMapping, .attachRing, detail: "an event page is written")
        }
        let geometry = try EventPageGeometry(Event.self, byteCount: mapping.byteCount, headerSize: headerSize)
        let base = mapping.baseAddress
        self.init(base: base, geometry: geometry, memory: .mapping(mapping))
    }

    /// Attaches to an event page at `address` that the caller keeps mapped.
    public init(
        unsafeMemory address: UnsafeMutableRawPointer,
        byteCount: Int = xenPageSize,
        headerSize: Int = EventPageGeometry.displayHeaderSize
    ) throws(XenGntError) {
        let geometry = try EventPageGeometry(Event.self, byteCount: byteCount, headerSize: headerSize)
        self.init(base: address, geometry: geometry, memory: .borrowed)
    }

    private init(base: UnsafeMutableRawPointer, geometry: EventPageGeometry, memory: consuming SharedMemory) {
        self.base = base
        self.geometry = geometry
        self.memory = memory
        producer = Shared.loadAcquire(base, EventPageGeometry.producerOffset)
    }

    /// Events the page holds.
    public var capacity: Int { geometry.capacity }

    /// The error that broke the page, if the frontend broke the protocol.
    public var brokenBy: XenGntError? { failure }

    /// Posts `event`, visible to the frontend when this returns (then notify it).
    ///
    /// - Returns: `false` when the page is full (the frontend has not taken the oldest
    ///   events); the event was not posted.
    /// - Throws: `XenGntError/Code/ringOverflow` or `XenGntError/Code/ringIndexBackwards`
    ///   when the frontend's `in_cons` is impossible.
    public mutating func post(_ event: Event) throws(XenGntError) -> Bool {
        if let failure { throw failure }
        let consumer = Shared.loadAcquire(base, EventPageGeometry.consumerOffset)
        let used = producer &- consumer
        if let problem = geometry.problem(
            distance: used,
            .produceRing,
            backwards: "in_cons \(consumer) is ahead of in_prod \(producer)",
            overflow: "in_cons \(consumer) is \(used) events behind in_prod \(producer)"
        ) {
            failure = problem
            throw problem
        }
        guard used < UInt32(geometry.capacity) else { return false }
        Shared.store(event, to: base + geometry.slot(producer))
        producer &+= 1
        Shared.storeRelease(base, EventPageGeometry.producerOffset, producer)  // wmb; in_prod++
        return true
    }

    /// Stops using the page and unmaps it, reporting errors.
    public consuming func detach() throws(XenGntError) {
        try memory.release()
    }
}

/// The frontend's side of an event page: takes the events the backend posts, on a page this
/// domain shares (zeroed when attached).
public struct EventPageReader<Event>: ~Copyable {
    let base: UnsafeMutableRawPointer
    /// The page's layout.
    public let geometry: EventPageGeometry
    /// The grant references of the page (empty for memory the caller provided).
    public let refs: [GrantRef]
    private var memory: SharedMemory
    private var consumer: UInt32 = 0
    private var failure: XenGntError?

    /// Initialises an event page on `pages` and owns them.
    public init(sharing pages: consuming SharedPages, headerSize: Int = EventPageGeometry.displayHeaderSize) throws(XenGntError) {
        let geometry = try EventPageGeometry(Event.self, byteCount: pages.byteCount, headerSize: headerSize)
        let base = pages.baseAddress
        let refs = pages.refs
        self.init(base: base, geometry: geometry, refs: refs, memory: .shared(pages))
    }

    /// Initialises an event page at `address` that the caller keeps mapped, with both indices
    /// at `start` (0 for a new page).
    public init(
        unsafeMemory address: UnsafeMutableRawPointer,
        byteCount: Int = xenPageSize,
        headerSize: Int = EventPageGeometry.displayHeaderSize,
        startingAt start: UInt32 = 0
    ) throws(XenGntError) {
        let geometry = try EventPageGeometry(Event.self, byteCount: byteCount, headerSize: headerSize)
        self.init(base: address, geometry: geometry, refs: [], memory: .borrowed, start: start)
    }

    private init(
        base: UnsafeMutableRawPointer,
        geometry: EventPageGeometry,
        refs: [GrantRef],
        memory: consuming SharedMemory,
        start: UInt32 = 0
    ) {
        self.base = base
        self.geometry = geometry
        self.refs = refs
        self.memory = memory
        consumer = start
        base.initializeMemory(as: UInt8.self, repeating: 0, count: geometry.headerSize)
        Shared.storeRelaxed(base, EventPageGeometry.consumerOffset, start)
        Shared.storeRelaxed(base, EventPageGeometry.producerOffset, start)
        Shared.fullBarrier()
    }

    /// Takes the next event, or `nil` when none waits.
    ///
    /// - Throws: `XenGntError/Code/ringOverflow` or `XenGntError/Code/ringIndexBackwards`
    ///   when the backend's `in_prod` is impossible.
    public mutating func next() throws(XenGntError) -> Event? {
        if let failure { throw failure }
        let producer = Shared.loadAcquire(base, EventPageGeometry.producerOffset)
        let waiting = producer &- consumer
        if let problem = geometry.problem(
            distance: waiting,
            .consumeRing,
            backwards: "in_prod \(producer) is behind in_cons \(consumer)",
            overflow: "in_prod \(producer) is \(waiting) events ahead of in_cons \(consumer)"
        ) {
            failure = problem
            throw problem
        }
        guard waiting > 0 else { return nil }
        let event = Shared.copy(Event.self, from: base + geometry.slot(consumer))
        consumer &+= 1
        Shared.fullBarrier()
        Shared.storeRelease(base, EventPageGeometry.consumerOffset, consumer)
        return event
    }

    /// Stops using the page and withdraws its grants, reporting errors.
    public consuming func detach() throws(XenGntError) {
        try memory.release()
    }
}

extension EventPageGeometry {
    /// The error for an impossible `distance` between the free-running producer and consumer
    /// indices (`in_prod − in_cons`): negative (an index went backwards) or more events than the
    /// page holds. The details are built only for the error.
    func problem(
        distance: UInt32,
        _ operation: XenGntError.Operation,
        backwards: @autoclosure () -> String,
        overflow: @autoclosure () -> String
    ) -> XenGntError? {
        if Int32(bitPattern: distance) < 0 { return .ring(.ringIndexBackwards, operation, slots: capacity, backwards()) }
        if distance > UInt32(capacity) { return .ring(.ringOverflow, operation, slots: capacity, overflow()) }
        return nil
    }
}
