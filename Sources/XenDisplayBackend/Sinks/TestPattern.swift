/// The two frames libdrm's `modetest` flips between, recognised by sampling: its SMPTE colour
/// bars (the top two thirds: seven bars of 75% grey, yellow, cyan, green, magenta, red, blue)
/// and its plain second buffer (every byte 0x77). The lab uses this to check what reached the
/// display — the headless sink's frames, or a writeback capture — without shipping images.
public enum TestPattern: String, Sendable, Hashable, CaseIterable {
    case smpte
    case plain

    /// The top band's bars, as (red, green, blue).
    static let bars: [(UInt8, UInt8, UInt8)] = [
        (192, 192, 192), (192, 192, 0), (0, 192, 192), (0, 192, 0), (192, 0, 192), (192, 0, 0), (0, 0, 192),
    ]

    /// Which pattern `frame` shows, or `nil` for neither. Each bar is sampled at its centre in
    /// three rows of the top band; colours may differ by `tolerance` per channel (a display
    /// may dither or convert).
    public static func classify(_ frame: FrameView, tolerance: Int = 8) -> TestPattern? {
        guard frame.width >= 14, frame.height >= 9 else { return nil }
        func near(_ a: (UInt8, UInt8, UInt8), _ b: (UInt8, UInt8, UInt8)) -> Bool {
            abs(Int(a.0) - Int(b.0)) <= tolerance && abs(Int(a.1) - Int(b.1)) <= tolerance
                && abs(Int(a.2) - Int(b.2)) <= tolerance
        }
        let rows = [frame.height / 9, frame.height / 3, frame.height * 5 / 9]
        let smpte = rows.allSatisfy { y in
            bars.indices.allSatisfy { bar in
                near(frame.rgb(x: (2 * bar + 1) * frame.width / 14, y: y), bars[bar])
            }
        }
        if smpte { return .smpte }
        let samples = [
            (0, 0), (frame.width / 2, frame.height / 2), (frame.width - 1, frame.height - 1), (frame.width / 3, frame.height / 5),
        ]
        if samples.allSatisfy({ near(frame.rgb(x: $0.0, y: $0.1), (0x77, 0x77, 0x77)) }) { return .plain }
        return nil
    }

    /// Draws the pattern's recognisable part into XRGB8888 pixels (for tests and the simulated
    /// frontend): the bars over the top two thirds, the rest black; or the plain fill.
    public func pixel(x: Int, y: Int, width: Int, height: Int) -> UInt32 {
        switch self {
        case .plain:
            return 0x7777_7777
        case .smpte:
            guard y < height * 6 / 9 else { return 0 }
            let (r, g, b) = Self.bars[x * 7 / width]
            return UInt32(r) << 16 | UInt32(g) << 8 | UInt32(b)
        }
    }
}
