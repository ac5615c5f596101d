public import XenGnt

/// The front end of a `ring.h` ring: puts requests and takes the backend's responses, on pages
/// this domain shares with the backend.
///
/// ```swift
/// let pages = try GrantAllocator().share(pages: 1, with: backend)
/// var ring = try FrontRing<xendispl_req, xendispl_resp>(sharing: pages)
/// try await store.write("\(frontend)/req-ring-ref", "\(ring.refs[0].rawValue)")
/// try ring.enqueue(request)
/// if ring.publishRequests() { try channel.notify() }
/// ```
///
/// The backend's producer index is checked each time it is read: ahead by more than the ring
/// holds, ahead of the requests sent (more responses than requests), or moved backwards, and
/// the ring is broken (every later call throws the same error); each response is copied out
/// once. A garbage `req_event` can only cause a spurious or a missing notification.
public struct FrontRing<Request, Response>: ~Copyable {
    let base: UnsafeMutableRawPointer
    /// Where the ring is and how many slots it has.
    public let geometry: RingGeometry
    /// The grant references of the ring's pages (empty for memory the caller provided).
    public let refs: [GrantRef]
    private var memory: SharedMemory
    private var requestProducer: UInt32 = 0
    private var publishedRequests: UInt32 = 0
    private var responseConsumer: UInt32 = 0
    private var lastResponseProducer: UInt32 = 0
    private var failure: XenGntError?

    /// Initialises a ring on `pages` (shared with the backend, writable) and owns them.
    ///
    /// The corresponding macros are `SHARED_RING_INIT` and `FRONT_RING_INIT`.
    public init(sharing pages: consuming SharedPages) throws(XenGntError) {
        let geometry = try RingGeometry(Request.self, Response.self, byteCount: pages.byteCount)
        let base = pages.baseAddress
        let refs = pages.refs
        self.init(base: base, geometry: geometry, refs: refs, memory: .shared(pages))
    }

    /// Initialises a ring at `address` (`byteCount` bytes) that the caller keeps mapped for as
    /// long as the ring is used.
    public init(unsafeMemory address: UnsafeMutableRawPointer, byteCount: Int) throws(XenGntError) {
        let geometry = try RingGeometry(Request.self, Response.self, byteCount: byteCount)
        self.init(base: address, geometry: geometry, refs: [], memory: .borrowed)
    }

    private init(base: UnsafeMutableRawPointer, geometry: RingGeometry, refs: [GrantRef], memory: consuming SharedMemory) {
        self.base = base
        self.geometry = geometry
        self.refs = refs
        self.memory = memory
        // SHARED_RING_INIT: producers 0, event thresholds 1, private bytes and padding zeroed.
        base.initializeMemory(as: UInt8.self, repeating: 0, count: RingGeometry.headerSize)
        Shared.storeRelaxed(base, RingGeometry.requestEvent, 1)
        Shared.storeRelaxed(base, RingGeometry.responseEvent, 1)
        Shared.fullBarrier()
    }

    /// Slots in the ring.
    public var slotCount: Int { geometry.slotCount }

    /// Slots free for requests (requests not yet answered occupy theirs).
    ///
    /// The corresponding macro is `RING_FREE_REQUESTS`.
    public var freeSlots: Int { geometry.slotCount - Int(requestProducer &- responseConsumer) }

    /// The error that broke the ring, if the backend broke the protocol.
    public var brokenBy: XenGntError? { failure }

    /// Puts a request in the next slot, not yet visible to the backend (``publishRequests()``).
    ///
    /// - Throws: `XenGntError/Code/ringFull` when every slot holds an unanswered request.
    public mutating func enqueue(_ request: Request) throws(XenGntError) {
        if let failure { throw failure }
        guard freeSlots > 0 else { throw XenGntError(.ringFull, .produceRing, limit: geometry.slotCount) }
        let slot = Int(requestProducer & UInt32(geometry.slotCount - 1))
        Shared.store(request, to: base + RingGeometry.headerSize + slot * geometry.slotSize)
        requestProducer &+= 1
    }

    /// Makes the requests visible and says whether the backend asked to be notified
    /// (`req_event` among the new requests).
    ///
    /// The corresponding macro is `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`.
    public mutating func publishRequests() -> Bool {
        let old = publishedRequests
        let new = requestProducer
        guard new != old else { return false }
        Shared.storeRelease(base, RingGeometry.requestProducer, new)  // xen_wmb(); req_prod = new
        publishedRequests = new
        Shared.fullBarrier()  // xen_mb()
        let event = Shared.loadRelaxed(base, RingGeometry.requestEvent)
        return new &- event < new &- old
    }

    /// How many responses wait, after checking the backend's producer index.
    ///
    /// The corresponding macros are `RING_HAS_UNCONSUMED_RESPONSES` and
    /// `RING_RESPONSE_PROD_OVERFLOW`.
    public mutating func unconsumedResponses() throws(XenGntError) -> Int {
        if let failure { throw failure }
        let producer = Shared.loadAcquire(base, RingGeometry.responseProducer)
        var problem: XenGntError?
        if Int32(bitPattern: producer &- lastResponseProducer) < 0 || Int32(bitPattern: producer &- responseConsumer) < 0 {
            problem = .ring(
                .ringIndexBackwards,
                .consumeRing,
                slots: geometry.slotCount,
                "rsp_prod went from \(lastResponseProducer) to \(producer), responses consumed up to \(responseConsumer)"
            )
        } else if producer &- responseConsumer > UInt32(geometry.slotCount) {
            problem = .ring(
                .ringOverflow,
                .consumeRing,
                slots: geometry.slotCount,
                "rsp_prod \(producer), responses consumed \(responseConsumer)"
            )
        } else if producer &- responseConsumer > publishedRequests &- responseConsumer {
            problem = .ring(
                .ringProtocolViolation,
                .consumeRing,
                slots: geometry.slotCount,
                "rsp_prod \(producer) is ahead of the \(publishedRequests) requests published"
            )
        }
        if let problem {
            failure = problem
            throw problem
        }
        lastResponseProducer = producer
        return Int(producer &- responseConsumer)
    }

    /// Takes the next response, copied out of shared memory once, or `nil` when none waits.
    ///
    /// The corresponding macro is `RING_COPY_RESPONSE`.
    public mutating func nextResponse() throws(XenGntError) -> Response? {
        guard try unconsumedResponses() > 0 else { return nil }
        let slot = Int(responseConsumer & UInt32(geometry.slotCount - 1))
        let response = Shared.copy(Response.self, from: base + RingGeometry.headerSize + slot * geometry.slotSize)
        responseConsumer &+= 1
        return response
    }

    /// Before sleeping: asks to be notified of the next response (`rsp_event`), then looks
    /// again. `true` means responses wait: take them before sleeping.
    ///
    /// The corresponding macro is `RING_FINAL_CHECK_FOR_RESPONSES`.
    public mutating func finalCheckForResponses() throws(XenGntError) -> Bool {
        if try unconsumedResponses() > 0 { return true }
        Shared.storeRelaxed(base, RingGeometry.responseEvent, responseConsumer &+ 1)
        Shared.fullBarrier()  // xen_mb()
        return try unconsumedResponses() > 0
    }

    /// Stops using the ring and releases its pages (withdraws the grants), reporting errors.
    public consuming func detach() throws(XenGntError) {
        try memory.release()
    }
}
