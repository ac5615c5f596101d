import Testing
import XenDisplayBackend

/// The allocation-free side of the protocol: responses and events written straight into the
/// ring's C struct, requests decoded from any length, and the set of connectors to notify.
@Suite struct SlotEncodingTests {
    @Test func aResponseIsWrittenInPlaceAsTheArrayEncodingSaysAndNeverPastItsDestination() {
        let response = DisplayResponse(id: 0x0102, operation: .getEdid, status: .invalid, edidSize: 256)
        var destination = [UInt8](repeating: 0xEE, count: 80)
        destination.withUnsafeMutableBytes { response.encode(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<64])) }
        #expect(Array(destination[0..<64]) == response.encoded)
        #expect(destination[64...].allSatisfy { $0 == 0xEE })
        #expect(DisplayResponse(decoding: Array(destination[0..<64])) == response)

        var short = [UInt8](repeating: 0xEE, count: 6)
        short.withUnsafeMutableBytes { response.encode(into: $0) }
        #expect(short == Array(response.encoded.prefix(6)))
    }

    @Test func anEventIsWrittenInPlaceWithItsUnusedBytesZeroed() {
        let event = DisplayEvent(id: 7, framebufferCookie: 0xdead_beef_cafe_f00d)
        var destination = [UInt8](repeating: 0xEE, count: 64)
        destination.withUnsafeMutableBytes { event.encode(into: $0) }
        #expect(destination == event.encoded)
        #expect(destination[3..<8].allSatisfy { $0 == 0 } && destination[16...].allSatisfy { $0 == 0 })
        #expect(DisplayEvent(decoding: destination) == event)
    }

    @Test func aRequestDecodesTheSameFromAFullSlotALongerBufferOrAShortOne() {
        let request = DisplayRequest(id: 9, .pageFlip(framebufferCookie: 0x1122_3344_5566_7788))
        let slot = request.encoded
        #expect(DisplayRequest(decoding: slot) == request)
        #expect(DisplayRequest(decoding: slot + [1, 2, 3]) == request)
        #expect(DisplayRequest(decoding: Array(slot.prefix(16))) == request)
        let cut = DisplayRequest(decoding: Array(slot.prefix(12)))  // the cookie's high half missing: zero
        #expect(cut.body == .pageFlip(framebufferCookie: 0x5566_7788))
        #expect(DisplayRequest(decoding: [UInt8]()).id == 0)
    }

    @Test func aConnectorSetHoldsEachIndexOnceInOrderAndIgnoresImpossibleOnes() {
        var set: ConnectorSet = [3, 0, 3]
        #expect(Array(set) == [0, 3])
        #expect(set.count == 2 && set.contains(3) && !set.contains(1))
        set.insert(63)
        set.insert(64)
        set.insert(-1)
        #expect(Array(set) == [0, 3, 63])
        #expect(!set.contains(64) && !set.contains(-1))
        #expect(ConnectorSet().isEmpty)
    }
}
