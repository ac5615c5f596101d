public import XenGnt

/// The back end of a `ring.h` ring: takes the frontend's requests and puts responses, on a
/// page the frontend granted. Generic over the protocol's C structs (`xendispl_req` and
/// `xendispl_resp` for `displif.h`, `xensnd_req` and `xensnd_resp` for `sndif.h`, ...).
///
/// ```swift
/// var ring = try BackRing<xendispl_req, xendispl_resp>(mapping: try gntdev.map([ref], from: frontend))
/// for try await _ in channel.notifications {
///     if try ring.serve({ request in handle(request) }).notify { try channel.notify() }
/// }
/// ```
///
/// The frontend is not trusted. Each request is copied out of shared memory once, before the
/// caller sees it, and never read there again (`RING_COPY_REQUEST`), so a frontend that
/// rewrites a slot afterwards changes nothing. The frontend's producer index is checked each
/// time it is read: ahead of the responses by more than the ring holds
/// (`XenGntError/Code/ringOverflow`), or moved backwards
/// (`XenGntError/Code/ringIndexBackwards`), and the ring is broken: every later call throws
/// the same error, and nothing is read outside the ring. A garbage `rsp_event` can only cause
/// a spurious or a missing notification of the frontend.
public struct BackRing<Request, Response>: ~Copyable {
    let base: UnsafeMutableRawPointer
    /// Where the ring is and how many slots it has.
    public let geometry: RingGeometry
    private var memory: SharedMemory
    private var requestConsumer: UInt32 = 0
    private var responseProducer: UInt32 = 0
    private var publishedResponses: UInt32 = 0
    private var lastRequestProducer: UInt32 = 0
    private var failure: XenGntError?

    /// Attaches to the ring on `mapping` (the frontend's ring page(s), mapped writable) and
    /// owns the mapping. The frontend initialised the ring (`SHARED_RING_INIT`).
    ///
    /// The corresponding macro is `BACK_RING_INIT`.
    public init(mapping: consuming GrantMapping) throws(XenGntError) {
        guard mapping.access == .readWrite else {
            throw XenGntError(.readOnlyMapping, .attachRing, detail: "a back ring writes responses")
        }
        let geometry = try RingGeometry(Request.self, Response.self, byteCount: mapping.byteCount)
        self.init(base: mapping.baseAddress, geometry: geometry, memory: .mapping(mapping))
    }

    /// Attaches to a ring at `address` (`byteCount` bytes) that the caller keeps mapped for
    /// as long as the ring is used.
    public init(unsafeMemory address: UnsafeMutableRawPointer, byteCount: Int) throws(XenGntError) {
        let geometry = try RingGeometry(Request.self, Response.self, byteCount: byteCount)
        self.init(base: address, geometry: geometry, memory: .borrowed)
    }

    private init(base: UnsafeMutableRawPointer, geometry: RingGeometry, memory: consuming SharedMemory) {
        self.base = base
        self.geometry = geometry
        self.memory = memory
    }

    /// Slots in the ring.
    public var slotCount: Int { geometry.slotCount }

    /// The error that broke the ring, if the frontend broke the protocol.
    public var brokenBy: XenGntError? { failure }

    /// How many requests wait, after checking the frontend's producer index.
    ///
    /// The corresponding macros are `RING_HAS_UNCONSUMED_REQUESTS` and
    /// `RING_REQUEST_PROD_OVERFLOW`.
    public mutating func unconsumedRequests() throws(XenGntError) -> Int {
        if let failure { throw failure }
        let size = UInt32(geometry.slotCount)
        let producer = Shared.loadAcquire(base, RingGeometry.requestProducer)
        var problem: XenGntError?
        if Int32(bitPattern: producer &- lastRequestProducer) < 0 || Int32(bitPattern: producer &- requestConsumer) < 0 {
            problem = .ring(
                .ringIndexBackwards,
                .consumeRing,
                slots: geometry.slotCount,
                "req_prod went from \(lastRequestProducer) to \(producer), requests consumed up to \(requestConsumer)"
            )
        } else if producer &- responseProducer > size {
            problem = .ring(
                .ringOverflow,
                .consumeRing,
                slots: geometry.slotCount,
                "req_prod \(producer), responses produced \(responseProducer)"
            )
        }
        if let problem {
            failure = problem
            throw problem
        }
        lastRequestProducer = producer
        return Int(min(producer &- requestConsumer, size &- (requestConsumer &- responseProducer)))
    }

    /// Takes the next request, copied out of shared memory once, or `nil` when none waits.
    ///
    /// The corresponding macro is `RING_COPY_REQUEST`.
    public mutating func nextRequest() throws(XenGntError) -> Request? {
        guard try unconsumedRequests() > 0 else { return nil }
        let slot = Int(requestConsumer & UInt32(geometry.slotCount - 1))
        let request = Shared.copy(Request.self, from: base + RingGeometry.headerSize + slot * geometry.slotSize)
        requestConsumer &+= 1
        return request
    }

    /// Puts a response in the next slot, not yet visible to the frontend
    /// (``publishResponses()``). Responses may answer requests in any order, but never
    /// outnumber the requests taken.
    ///
    /// - Throws: `XenGntError/Code/ringProtocolViolation` when every request taken has a
    ///   response already.
    public mutating func respond(_ response: Response) throws(XenGntError) {
        if let failure { throw failure }
        guard responseProducer != requestConsumer else {
            throw .ring(
                .ringProtocolViolation,
                .produceRing,
                slots: geometry.slotCount,
                "a response with no request taken to answer (\(responseProducer) of \(requestConsumer))"
            )
        }
        let slot = Int(responseProducer & UInt32(geometry.slotCount - 1))
        Shared.store(response, to: base + RingGeometry.headerSize + slot * geometry.slotSize)
        responseProducer &+= 1
    }

    /// Makes the responses visible and says whether the frontend asked to be notified
    /// (`rsp_event` among the new responses).
    ///
    /// The corresponding macro is `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`.
    public mutating func publishResponses() -> Bool {
        let old = publishedResponses
        let new = responseProducer
        guard new != old else { return false }
        Shared.storeRelease(base, RingGeometry.responseProducer, new)  // xen_wmb(); rsp_prod = new
        publishedResponses = new
        Shared.fullBarrier()  // xen_mb()
        let event = Shared.loadRelaxed(base, RingGeometry.responseEvent)
        return new &- event < new &- old
    }

    /// Before sleeping: asks to be notified of the next request (`req_event`), then looks
    /// again, so a request pushed meanwhile is not left waiting for a notification that will
    /// not come. `true` means requests wait: take them before sleeping.
    ///
    /// The corresponding macro is `RING_FINAL_CHECK_FOR_REQUESTS`.
    public mutating func finalCheckForRequests() throws(XenGntError) -> Bool {
        if try unconsumedRequests() > 0 { return true }
        Shared.storeRelaxed(base, RingGeometry.requestEvent, requestConsumer &+ 1)
        Shared.fullBarrier()  // xen_mb()
        return try unconsumedRequests() > 0
    }

    /// Takes every waiting request, answers each with `handle`, publishes the responses, and
    /// ends with the final check, so nothing is left behind when it returns.
    ///
    /// - Returns: how many requests were handled, and whether to notify the frontend.
    public mutating func serve(
        _ handle: (Request) throws(XenGntError) -> Response
    ) throws(XenGntError) -> (handled: Int, notify: Bool) {
        var handled = 0
        var notify = false
        repeat {
            while let request = try nextRequest() {
                try respond(try handle(request))
                handled += 1
            }
            notify = publishResponses() || notify
        } while try finalCheckForRequests()
        return (handled, notify)
    }

    /// Detaches from the ring and releases its memory (unmaps the frontend's pages),
    /// reporting errors.
    public consuming func detach() throws(XenGntError) {
        try memory.release()
    }
}
