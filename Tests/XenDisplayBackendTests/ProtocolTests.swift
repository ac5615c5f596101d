import Testing
import XenDisplayBackend

/// Requests, responses and events byte for byte as displif.h draws them (its diagrams give each
/// field's end offset), and the checks of `DBUF_CREATE`.
@Suite struct DisplayProtocolTests {
    /// A slot with `fields` (offset, little-endian value, width in bytes) set.
    func slot(_ fields: [(Int, UInt64, Int)]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 64)
        for (offset, value, width) in fields {
            for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
        }
        return bytes
    }

    @Test func decodesBufferCreateAtDisplifOffsets() {
        let bytes = slot([
            (0, 0x1234, 2), (2, 0x10, 1), (8, 0xdead_beef_0000_0001, 8), (16, 640, 4), (20, 480, 4),
            (24, 32, 4), (28, 1_228_800, 4), (32, 1, 4), (36, 77, 4), (40, 4096, 4),
        ])
        let request = DisplayRequest(decoding: bytes)
        #expect(request.id == 0x1234)
        #expect(request.operation == .dbufCreate)
        let expected = DisplayRequest.BufferCreate(
            bufferCookie: 0xdead_beef_0000_0001,
            width: 640,
            height: 480,
            bitsPerPixel: 32,
            bufferSize: 1_228_800,
            flags: 1,
            directoryRef: 77,
            dataOffset: 4096
        )
        #expect(request.body == .bufferCreate(expected))
        #expect(expected.backendAllocates)
        #expect(request.encoded == bytes)
    }

    @Test func decodesEveryOperation() {
        let attach = DisplayRequest(
            decoding: slot([(2, 0x12, 1), (8, 5, 8), (16, 6, 8), (24, 640, 4), (28, 480, 4), (32, 0x3432_5258, 4)])
        )
        #expect(
            attach.body
                == .framebufferAttach(
                    .init(bufferCookie: 5, framebufferCookie: 6, width: 640, height: 480, pixelFormat: 0x3432_5258)
                )
        )
        let config = DisplayRequest(
            decoding: slot([(2, 0x14, 1), (8, 6, 8), (16, 1, 4), (20, 2, 4), (24, 640, 4), (28, 480, 4), (32, 32, 4)])
        )
        #expect(
            config.body == .setConfiguration(.init(framebufferCookie: 6, x: 1, y: 2, width: 640, height: 480, bitsPerPixel: 32))
        )
        #expect(DisplayRequest(decoding: slot([(2, 0x15, 1), (8, 6, 8)])).body == .pageFlip(framebufferCookie: 6))
        #expect(DisplayRequest(decoding: slot([(2, 0x11, 1), (8, 5, 8)])).body == .bufferDestroy(bufferCookie: 5))
        #expect(DisplayRequest(decoding: slot([(2, 0x13, 1), (8, 6, 8)])).body == .framebufferDetach(framebufferCookie: 6))
        #expect(
            DisplayRequest(decoding: slot([(2, 0x16, 1), (8, 32768, 4), (12, 9, 4)])).body
                == .getEdid(.init(bufferSize: 32768, directoryRef: 9))
        )
        let unknown = DisplayRequest(decoding: slot([(0, 7, 2), (2, 0x42, 1)]))
        #expect(unknown.body == .unknown)
        #expect(unknown.operation.rawValue == 0x42)
        #expect(
            DisplayResponse(answering: unknown, .notSupported).encoded
                == slot([(0, 7, 2), (2, 0x42, 1), (4, UInt64(UInt32(bitPattern: -95)), 4)])
        )
    }

    @Test func shortAndLongInputIsASlot() {
        #expect(DisplayRequest(decoding: [0x01, 0x00, 0x15]).body == .pageFlip(framebufferCookie: 0))
        #expect(DisplayRequest(decoding: [UInt8](repeating: 0xff, count: 200)).body == .unknown)
    }

    @Test func responsesAndEventsRoundTrip() {
        let response = DisplayResponse(id: 3, operation: .getEdid, status: .ok, edidSize: 128)
        #expect(response.encoded == slot([(0, 3, 2), (2, 0x16, 1), (8, 128, 4)]))
        #expect(DisplayResponse(decoding: response.encoded) == response)
        let event = DisplayEvent(id: 9, framebufferCookie: 0xabcd)
        #expect(event.encoded == slot([(0, 9, 2), (8, 0xabcd, 8)]))
        #expect(DisplayEvent(decoding: event.encoded) == event)
        #expect(DisplayProtocol.eventPageCapacity == 63)
        #expect(DisplayProtocol.refsPerDirectoryPage == 1023)
    }

    // MARK: DBUF_CREATE's checks

    func create(
        width: UInt32 = 640,
        height: UInt32 = 480,
        bpp: UInt32 = 32,
        size: UInt32 = 640 * 480 * 4,
        offset: UInt32 = 0
    )
        -> DisplayRequest.BufferCreate
    {
        .init(
            bufferCookie: 1,
            width: width,
            height: height,
            bitsPerPixel: bpp,
            bufferSize: size,
            directoryRef: 8,
            dataOffset: offset
        )
    }

    @Test func acceptsWhatTheLinuxFrontendSends() throws {
        let layout = try DisplayBufferLayout(create())
        #expect(layout.pitch == 2560)
        #expect(layout.pageCount == 300)
        #expect(layout.directoryPageCount == 1)
        let big = try DisplayBufferLayout(create(width: 1920, height: 1080, size: 1920 * 1080 * 4))
        #expect(big.pageCount == 2025)
        #expect(big.directoryPageCount == 2)
        // 24 bpp of an odd width: the pitch is rounded up to whole bytes, not to 4.
        #expect(try DisplayBufferLayout(create(width: 3, height: 1, bpp: 24, size: 9)).pitch == 9)
        #expect(try DisplayBufferLayout(create(width: 3, height: 1, bpp: 16, size: 4096, offset: 4090)).dataOffset == 4090)
    }

    struct Hostile: Sendable, CustomStringConvertible {
        let width: UInt32, height: UInt32, bpp: UInt32, size: UInt32, offset: UInt32
        let description: String
        init(_ width: UInt32, _ height: UInt32, _ bpp: UInt32, _ size: UInt32, _ offset: UInt32, _ description: String) {
            self.width = width
            self.height = height
            self.bpp = bpp
            self.size = size
            self.offset = offset
            self.description = description
        }
    }
    static let hostile: [Hostile] = [
        Hostile(0, 480, 32, 4096, 0, "empty"),
        Hostile(640, 480, 12, 640 * 480 * 2, 0, "odd depth"),
        Hostile(640, 480, 32, 640 * 480 * 4 - 1, 0, "one byte short"),
        Hostile(640, 480, 32, 640 * 480 * 4, 1, "data_ofs pushes past the end"),
        Hostile(640, 480, 32, 640 * 480 * 4, UInt32.max, "data_ofs overflows"),
        Hostile(8192, 8192, 32, UInt32.max, 0, "height x pitch over 2^32"),
        Hostile(640, 480, 32, 0, 0, "buffer_sz 0"),
        Hostile(100_000, 1, 32, 400_000, 0, "wider than the limit"),
    ]

    @Test(arguments: hostile)
    func refusesHostileLayouts(_ c: Hostile) {
        #expect(throws: DisplayRefusal.self) {
            try DisplayBufferLayout(create(width: c.width, height: c.height, bpp: c.bpp, size: c.size, offset: c.offset))
        }
    }

    @Test func refusesMorePagesThanTheLimit() throws {
        let limits = DisplayBufferLayout.Limits(maxPages: 100)
        let error = #expect(throws: DisplayRefusal.self) { try DisplayBufferLayout(create(), limits: limits) }
        #expect(error?.status == .tooBig)
    }
}
