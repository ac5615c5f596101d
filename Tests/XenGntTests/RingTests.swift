import CXenBackend
import Testing
import XenGnt
import XenGntBackend

/// One page of memory, zeroed, page-aligned, for rings that need no Xen.
final class Page {
    let base: UnsafeMutableRawPointer
    let byteCount: Int
    init(_ byteCount: Int = 4096) {
        self.byteCount = byteCount
        base = .allocate(byteCount: byteCount, alignment: 4096)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: byteCount)
    }
    deinit { base.deallocate() }
    func word(at offset: Int) -> UInt32 { base.load(fromByteOffset: offset, as: UInt32.self) }
    func setWord(_ value: UInt32, at offset: Int) { base.storeBytes(of: value, toByteOffset: offset, as: UInt32.self) }
}

typealias VxRequest = cxb_vxengnt_request
typealias VxResponse = cxb_vxengnt_response

func request(_ sequence: UInt64, length: UInt32 = 48) -> VxRequest {
    var request = VxRequest()
    request.sequence = sequence
    request.operation = 1
    request.length = length
    withUnsafeMutableBytes(of: &request.payload) {
        for i in 0..<$0.count { $0[i] = UInt8(truncatingIfNeeded: Int(sequence) + i) }
    }
    return request
}

func response(_ sequence: UInt64) -> VxResponse {
    var response = VxResponse()
    response.sequence = sequence
    response.checksum = UInt32(truncatingIfNeeded: sequence &* 7)
    return response
}

@Suite struct SharedRings {
    @Test func theGeometryIsRingHsOwn() throws {
        #expect(RingGeometry.headerSize == 64)
        let vxengnt = try RingGeometry(VxRequest.self, VxResponse.self, byteCount: 4096)
        #expect(vxengnt.slotCount == Int(cxb_vxengnt_ring_size(4096)) && vxengnt.slotCount == 32 && vxengnt.slotSize == 64)
        let displif = try RingGeometry(xendispl_req.self, xendispl_resp.self, byteCount: 4096)
        #expect(displif.slotCount == Int(cxb_displif_ring_size(4096)))
        for pages in [1, 2, 4, 8] {
            #expect(
                try RingGeometry(VxRequest.self, VxResponse.self, byteCount: pages * 4096).slotCount
                    == Int(cxb_vxengnt_ring_size(pages * 4096))
            )
        }
        #expect(throws: XenGntError.self) { _ = try RingGeometry(VxRequest.self, VxResponse.self, byteCount: 100) }
        #expect(XenbusState.headerValues == XenbusState.allCases.map(\.rawValue))
    }

    /// ring.h's own front end (the C macros) against the Swift back end, and the Swift front
    /// end against ring.h's back end, over 1 000 requests in batches of every size.
    @Test func swiftAndRingHsMacrosAgree() throws {
        let page = Page()
        var cFront = cxb_vxengnt_front_ring_t()
        cxb_vxengnt_front_init(&cFront, page.base, 4096)
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        var sent: UInt64 = 0
        var answered: UInt64 = 0
        for batch in 1...32 where sent < 1000 {
            for _ in 0..<batch {
                cxb_vxengnt_front_next_request(&cFront)!.pointee = request(sent)
                sent += 1
            }
            _ = cxb_vxengnt_front_push(&cFront)
            let (handled, _) = try back.serve { request in response(request.sequence) }
            #expect(handled == batch)
            var taken = VxResponse()
            while cxb_vxengnt_front_take_response(&cFront, &taken) == 1 {
                #expect(taken.sequence == answered)
                answered += 1
            }
        }
        #expect(answered == sent)

        let other = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: other.base, byteCount: 4096)
        var cBack = cxb_vxengnt_back_ring_t()
        cxb_vxengnt_back_init(&cBack, other.base, 4096)
        for sequence in 0..<UInt64(500) {
            try front.enqueue(request(sequence))
            let notify = front.publishRequests()
            #expect(notify == (sequence == 0))  // req_event stays 1: only the first notifies
            var taken = VxRequest()
            #expect(cxb_vxengnt_back_take_request(&cBack, &taken) == 1 && taken.sequence == sequence)
            var answer = response(sequence)
            _ = cxb_vxengnt_back_respond(&cBack, &answer)
            #expect(try front.nextResponse()?.sequence == sequence)
        }
    }

    /// The notification hold-off: a side that sleeps after RING_FINAL_CHECK_FOR_* is notified
    /// of the next message, and only then.
    @Test func finalChecksAskForExactlyTheNextNotification() throws {
        let page = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        try front.enqueue(request(0))
        var notify = front.publishRequests()
        #expect(notify)  // req_event starts at 1
        #expect(try back.nextRequest()?.sequence == 0)
        try front.enqueue(request(1))
        notify = front.publishRequests()
        #expect(!notify)  // the back end has not asked again
        #expect(try back.finalCheckForRequests())  // and would find it before sleeping
        #expect(try back.nextRequest()?.sequence == 1)
        #expect(try !back.finalCheckForRequests())  // asks: req_event = 3
        #expect(page.word(at: 4) == 3)
        try front.enqueue(request(2))
        notify = front.publishRequests()
        #expect(notify)  // so this one notifies
        try back.respond(response(0))
        try back.respond(response(1))
        notify = back.publishResponses()
        #expect(notify)  // rsp_event starts at 1
        #expect(try front.nextResponse()?.sequence == 0)
        #expect(try front.nextResponse()?.sequence == 1)
        #expect(try !front.finalCheckForResponses())
        #expect(try back.nextRequest()?.sequence == 2)
        try back.respond(response(2))
        notify = back.publishResponses()
        #expect(notify)
        #expect(try front.nextResponse()?.sequence == 2)
        #expect(front.freeSlots == 32)
    }

    @Test func aProducerAheadByMoreThanTheRingBreaksIt() throws {
        let page = Page()
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        page.setWord(33, at: 0)
        #expect(throws: XenGntError.self) { _ = try back.nextRequest() }
        #expect(back.brokenBy?.code == .ringOverflow)
        page.setWord(1, at: 0)  // a fix does not unbreak it
        let error = #expect(throws: XenGntError.self) { _ = try back.nextRequest() }
        #expect(error?.code == .ringOverflow)
        // Exactly a ring ahead is allowed: 32 requests are taken.
        let full = Page()
        var fine = try BackRing<VxRequest, VxResponse>(unsafeMemory: full.base, byteCount: 4096)
        full.setWord(32, at: 0)
        var count = 0
        while try fine.nextRequest() != nil { count += 1 }
        #expect(count == 32)
    }

    @Test func aProducerMovingBackwardsBreaksTheRing() throws {
        let page = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        for sequence in 0..<3 { try front.enqueue(request(UInt64(sequence))) }
        _ = front.publishRequests()
        while try back.nextRequest() != nil {}
        for sequence in 0..<3 { try back.respond(response(UInt64(sequence))) }
        _ = back.publishResponses()
        page.setWord(1, at: 0)
        let error = #expect(throws: XenGntError.self) { _ = try back.unconsumedRequests() }
        #expect(error?.code == .ringIndexBackwards)
        // The front end too: rsp_prod backwards, or more responses than requests.
        #expect(try front.nextResponse() != nil)
        page.setWord(0, at: 8)
        #expect((#expect(throws: XenGntError.self) { _ = try front.nextResponse() })?.code == .ringIndexBackwards)
        let other = Page()
        var lonely = try FrontRing<VxRequest, VxResponse>(unsafeMemory: other.base, byteCount: 4096)
        other.setWord(1, at: 8)
        #expect((#expect(throws: XenGntError.self) { _ = try lonely.nextResponse() })?.code == .ringProtocolViolation)
    }

    @Test func aGarbageEventIndexOnlyChangesWhetherToNotify() throws {
        let page = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        for garbage: UInt32 in [0xDEAD_BEEF, 0, 0xFFFF_FFFF, 7] {
            try front.enqueue(request(0))
            _ = front.publishRequests()
            page.setWord(garbage, at: 12)  // rsp_event
            page.setWord(garbage, at: 4)  // req_event
            _ = try back.serve { response($0.sequence) }
            #expect(try front.nextResponse()?.sequence == 0)
        }
        #expect(back.brokenBy == nil && front.brokenBy == nil)
    }

    /// RING_COPY_REQUEST: what the caller gets is the copy made when the request was taken; a
    /// frontend rewriting the slot afterwards changes nothing.
    @Test func aRequestRewrittenAfterItWasTakenChangesNothing() throws {
        let page = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        var back = try BackRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        try front.enqueue(request(9, length: 16))
        _ = front.publishRequests()
        let taken = try #require(try back.nextRequest())
        let slot = page.base + RingGeometry.headerSize
        slot.storeBytes(of: UInt32(0xFFFF_FFFF), toByteOffset: 12, as: UInt32.self)  // length
        slot.initializeMemory(as: UInt8.self, repeating: 0xEE, count: 8)  // sequence
        #expect(taken.length == 16 && taken.sequence == 9)
        try back.respond(response(taken.sequence))
        #expect(throws: XenGntError.self) { try back.respond(response(10)) }  // no second request taken
    }

    @Test func aFullFrontRingRefusesMore() throws {
        let page = Page()
        var front = try FrontRing<VxRequest, VxResponse>(unsafeMemory: page.base, byteCount: 4096)
        for sequence in 0..<32 { try front.enqueue(request(UInt64(sequence))) }
        #expect((#expect(throws: XenGntError.self) { try front.enqueue(request(32)) })?.code == .ringFull)
    }
}

@Suite struct EventPages {
    @Test func displifsPageHolds63EventsIndexedModulo63() throws {
        let geometry = try EventPageGeometry(xendispl_evt.self)
        #expect(geometry.capacity == 63 && geometry.capacity == Int(CXB_DISPL_IN_RING_LEN) && geometry.headerSize == 64)
        // Free-running indices across the 32-bit wrap: 2^32 is not a multiple of 63, so the
        // slot is always index % 63 of the same index on both sides.
        let page = Page()
        let start: UInt32 = UInt32.max - 40
        var reader = try EventPageReader<xendispl_evt>(unsafeMemory: page.base, startingAt: start)
        var writer = try EventPageWriter<xendispl_evt>(unsafeMemory: page.base)
        for id in 0..<200 {
            var event = xendispl_evt()
            event.id = UInt16(id)
            #expect(try writer.post(event))
            let slot = Int((start &+ UInt32(id)) % 63)
            #expect(page.base.load(fromByteOffset: 64 + slot * 64, as: UInt16.self) == UInt16(id))
            #expect(try reader.next()?.id == UInt16(id))
        }
    }

    @Test func aFullPageAndAnImpossibleConsumerAreTold() throws {
        let page = Page()
        var writer = try EventPageWriter<xendispl_evt>(unsafeMemory: page.base)
        for _ in 0..<63 { #expect(try writer.post(xendispl_evt())) }
        #expect(try !writer.post(xendispl_evt()))  // full: the frontend took nothing
        page.setWord(100, at: 0)  // in_cons beyond in_prod
        #expect((#expect(throws: XenGntError.self) { _ = try writer.post(xendispl_evt()) })?.code == .ringIndexBackwards)
        let other = Page()
        var reader = try EventPageReader<xendispl_evt>(unsafeMemory: other.base)
        other.setWord(64, at: 4)  // in_prod 64 ahead of in_cons 0
        #expect((#expect(throws: XenGntError.self) { _ = try reader.next() })?.code == .ringOverflow)
    }
}
