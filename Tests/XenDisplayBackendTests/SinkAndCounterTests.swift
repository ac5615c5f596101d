import Glibc
import Testing
import XenDisplayBackend

/// Pixels, PNG files, counters.
@Suite struct SinkAndCounterTests {
    /// A 4×2 XRGB8888 frame with 8 bytes of row padding, 4 bytes into the buffer.
    func frame(_ body: (FrameView) throws -> Void) rethrows {
        var bytes = [UInt8](repeating: 0, count: 4 + 2 * 24)
        let colours: [(UInt8, UInt8, UInt8)] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
        for y in 0..<2 {
            for (x, c) in colours.enumerated() {
                let i = 4 + y * 24 + x * 4
                bytes[i] = c.2
                bytes[i + 1] = c.1
                bytes[i + 2] = c.0
                bytes[i + 3] = 0xee
            }
        }
        try bytes.withUnsafeBytes { raw in
            try body(FrameView(bytes: raw, offset: 4, width: 4, height: 2, pitch: 24, format: .xrgb8888)!)
        }
    }

    @Test func readsPixels() {
        frame { view in
            #expect(view.rgb(x: 0, y: 1) == (255, 0, 0))
            #expect(view.rgb(x: 2, y: 0) == (0, 0, 255))
            #expect(view.packedRGB().count == 24)
        }
        #expect(DisplayPixelFormat.xrgb8888.rawValue == 0x3432_5258)
        #expect(DisplayPixelFormat.xrgb8888.description == "XR24")
        [UInt8](repeating: 0, count: 10).withUnsafeBytes { raw in
            #expect(FrameView(bytes: raw, width: 4, height: 2, pitch: 16, format: .xrgb8888) == nil)  // past the end
            #expect(FrameView(bytes: raw, width: 1, height: 1, pitch: 4, format: .init(rawValue: 1)) == nil)
        }
        let rgb565: [UInt8] = [0x00, 0xf8, 0xe0, 0x07]  // red, green
        rgb565.withUnsafeBytes { raw in
            let view = FrameView(bytes: raw, width: 2, height: 1, pitch: 4, format: .rgb565)!
            #expect(view.rgb(x: 0, y: 0) == (255, 0, 0))
            #expect(view.rgb(x: 1, y: 0) == (0, 255, 0))
        }
    }

    @Test func headlessSinkWritesChangedFramesAsPNG() throws {
        var template = Array("/tmp/xengnt-display-test-XXXXXX".utf8CString)
        let directory = String(cString: mkdtemp(&template)!)
        var sink = try HeadlessSink(directory: directory)
        let key = FrontendKey(domain: 3, device: 0)
        try frame { view in
            let first = try sink.show(view, for: key, connector: 0)
            let second = try sink.show(view, for: key, connector: 0)
            #expect(first.path == directory + "/dom3-vdispl0-conn0-000000.png")
            #expect(second.path == nil)
            #expect(second.frame == 1 && second.hash == first.hash)
            let file = try #require(fopen(first.path!, "rb"))
            var signature = [UInt8](repeating: 0, count: 8)
            #expect(fread(&signature, 1, 8, file) == 8)
            fclose(file)
            #expect(signature == [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
        }
        var everySecond = try HeadlessSink(directory: directory, policy: .every(2))
        try frame { view in
            let paths = try (0..<4).map { _ in try everySecond.show(view, for: key, connector: 1).path }
            #expect(paths.map { $0 != nil } == [true, false, true, false])
        }
        #expect(throws: (any Error).self) {
            try frame { view in try PNGFile.write(view, to: "/nonexistent-dir/x.png") }
        }
    }

    @Test func countersAsOneJSONLine() {
        let counters = DisplayCounters()
        let a = FrontendKey(domain: 2, device: 0)
        let b = FrontendKey(domain: 1, device: 0)
        counters.update(a) {
            $0.framesShown += 3
            $0.path = .copied
            $0.bytesCopied += 100
        }
        counters.update(b) {
            $0.framesShown += 1
            $0.path = .backendAllocated
        }
        let line = counters.jsonLine()
        #expect(!line.contains("\n"))
        #expect(line.hasPrefix("{\"frontends\":[{\"domain\":1,\"device\":0,\"path\":\"backend-allocated\",\"frames_shown\":1,"))
        #expect(line.contains("\"total\":{\"frames_shown\":4,\"frames_copied\":0,\"bytes_copied\":100,"))
        #expect(counters.total().framesShown == 4)
    }
}

/// Recognising modetest's two frames.
@Suite struct TestPatternTests {
    func frame(_ width: Int, _ height: Int, _ pixel: (Int, Int) -> UInt32, _ body: (FrameView) -> Void) {
        var words = [UInt32](repeating: 0, count: width * height)
        for y in 0..<height { for x in 0..<width { words[y * width + x] = pixel(x, y) } }
        words.withUnsafeBytes { body(FrameView(bytes: $0, width: width, height: height, pitch: width * 4, format: .xrgb8888)!) }
    }

    @Test(arguments: [(640, 480), (64, 48), (1920, 1080)])
    func recognisesBothFrames(width: Int, height: Int) {
        for pattern in TestPattern.allCases {
            frame(width, height, { pattern.pixel(x: $0, y: $1, width: width, height: height) }) {
                #expect(TestPattern.classify($0) == pattern)
            }
        }
        frame(width, height, { _, _ in 0x00ff_0000 }) { #expect(TestPattern.classify($0) == nil) }
        // A frame shifted by a bar is not the pattern.
        frame(width, height, { TestPattern.smpte.pixel(x: ($0 + width / 7) % width, y: $1, width: width, height: height) }) {
            #expect(TestPattern.classify($0) == nil)
        }
    }
}
