/// A generated EDID 1.4 base block (128 bytes, no extensions) that describes one connector of
/// a fixed resolution: the connector's resolution at 60 Hz as the preferred (and only) detailed
/// timing, with reduced blanking, a 96-dpi physical size, sRGB primaries, a monitor name and a
/// serial number derived from the connector's `unique-id`. What `GET_EDID` writes.
public struct EDID: Hashable, Sendable {
    /// The 128 bytes, checksum included.
    public let bytes: [UInt8]

    /// The largest side a base block's detailed timing can describe (12 bits).
    public static let maxDimension = 4095

    /// The block for a `width`×`height` connector; `nil` when a side is 0 or larger than
    /// ``maxDimension`` (the frontend then keeps the XenStore `resolution`).
    public init?(width: Int, height: Int, refreshHz: Int = 60, name: String = "Xen vdispl", uniqueID: String = "") {
        guard (1...Self.maxDimension).contains(width), (1...Self.maxDimension).contains(height),
            (1...240).contains(refreshHz)
        else { return nil }
        var b = [UInt8](repeating: 0, count: 128)
        b[0...7] = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]
        // Manufacturer "XEN": three 5-bit letters, big-endian.
        let maker: UInt16 = (24 << 10) | (5 << 5) | 14
        b[8] = UInt8(maker >> 8)
        b[9] = UInt8(maker & 0xff)
        b[10] = 0x09
        b[11] = 0x00  // product code 9 (issue 9), little-endian
        let serial = Self.fnv1a(uniqueID)
        for i in 0..<4 { b[12 + i] = UInt8(truncatingIfNeeded: serial >> (8 * i)) }
        b[16] = 0xff  // week 0xff: byte 17 is the model year
        b[17] = UInt8(2026 - 1990)
        b[18] = 1
        b[19] = 4  // EDID 1.4
        b[20] = 0xa0  // digital, 8 bits per colour
        let widthMM = max(1, width * 254 / 960)
        let heightMM = max(1, height * 254 / 960)
        b[21] = UInt8(min(255, (widthMM + 5) / 10))
        b[22] = UInt8(min(255, (heightMM + 5) / 10))
        b[23] = 120  // gamma 2.2
        b[24] = 0x06  // RGB 4:4:4, sRGB, preferred timing is native
        Self.chromaticity(into: &b)
        for i in stride(from: 38, to: 54, by: 2) {
            b[i] = 0x01
            b[i + 1] = 0x01
        }  // no standard timings
        let timing = Timing(width: width, height: height, refreshHz: refreshHz)
        b.replaceSubrange(54..<72, with: timing.descriptor(widthMM: widthMM, heightMM: heightMM))
        b.replaceSubrange(72..<90, with: Self.text(0xfc, name))
        b.replaceSubrange(90..<108, with: timing.rangeLimits)
        b.replaceSubrange(108..<126, with: Self.text(0xff, uniqueID.isEmpty ? "0" : uniqueID))
        b[126] = 0  // no extension blocks
        b[127] = UInt8((256 - Int(b[0..<127].reduce(0) { ($0 + Int($1)) & 0xff })) & 0xff)
        bytes = b
    }

    /// Whether `bytes` is a well-formed base block: the header, and a sum of 0 modulo 256.
    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 128 && Array(bytes[0..<8]) == [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]
            && bytes[0..<128].reduce(0) { ($0 + Int($1)) & 0xff } == 0
    }

    /// The preferred mode a block describes: active width and height, and the refresh in Hz.
    public static func preferredMode(_ bytes: [UInt8]) -> (width: Int, height: Int, refreshHz: Int)? {
        guard isValid(bytes) else { return nil }
        let d = Array(bytes[54..<72])
        let clock = (Int(d[0]) | Int(d[1]) << 8) * 10_000
        let width = Int(d[2]) | Int(d[4] >> 4) << 8
        let hBlank = Int(d[3]) | Int(d[4] & 0xf) << 8
        let height = Int(d[5]) | Int(d[7] >> 4) << 8
        let vBlank = Int(d[6]) | Int(d[7] & 0xf) << 8
        guard clock > 0 else { return nil }
        let total = (width + hBlank) * (height + vBlank)
        return (width, height, (clock + total / 2) / total)
    }

    // MARK: The parts

    /// CVT-RB-like timing: 160 pixels of horizontal blanking, at least 460 µs of vertical.
    struct Timing {
        let width, height, refreshHz: Int
        let hFront = 48, hSync = 32, hBlank = 160
        let vFront = 3, vSync = 5
        var vBlank: Int {
            // Lines of 460 µs at this refresh, over (height + blank) lines: solve approximately.
            let lineTime = 1.0 / Double(refreshHz) / Double(height)
            return max(vFront + vSync + 6, Int((460e-6 / lineTime).rounded(.up)))
        }
        /// The pixel clock in units of 10 kHz, at most 0xffff (655.35 MHz): a large mode then
        /// refreshes more slowly than asked.
        var clock10kHz: Int {
            let total = (width + hBlank) * (height + vBlank) * refreshHz
            return min(0xffff, max(1, (total + 5_000) / 10_000))
        }

        func descriptor(widthMM: Int, heightMM: Int) -> [UInt8] {
            var d = [UInt8](repeating: 0, count: 18)
            let clock = clock10kHz
            let vBlank = vBlank
            d[0] = UInt8(clock & 0xff)
            d[1] = UInt8(clock >> 8)
            d[2] = UInt8(width & 0xff)
            d[3] = UInt8(hBlank & 0xff)
            d[4] = UInt8((width >> 8) << 4 | (hBlank >> 8))
            d[5] = UInt8(height & 0xff)
            d[6] = UInt8(vBlank & 0xff)
            d[7] = UInt8((height >> 8) << 4 | (vBlank >> 8))
            d[8] = UInt8(hFront & 0xff)
            d[9] = UInt8(hSync & 0xff)
            d[10] = UInt8((vFront & 0xf) << 4 | (vSync & 0xf))
            d[11] = UInt8((hFront >> 8) << 6 | (hSync >> 8) << 4 | (vFront >> 4) << 2 | (vSync >> 4))
            let w = min(widthMM, 4095)
            let h = min(heightMM, 4095)
            d[12] = UInt8(w & 0xff)
            d[13] = UInt8(h & 0xff)
            d[14] = UInt8((w >> 8) << 4 | (h >> 8))
            d[17] = 0x1a  // digital separate sync, +hsync, -vsync
            return d
        }

        /// A display range limits descriptor around this one mode.
        var rangeLimits: [UInt8] {
            var d = [UInt8](repeating: 0, count: 18)
            d[3] = 0xfd
            let hz = Double(clock10kHz) * 10_000 / Double((width + hBlank) * (height + vBlank))
            let hKHz = Double(clock10kHz) * 10 / Double(width + hBlank)
            d[5] = UInt8(max(1, min(255, Int(hz) - 1)))
            d[6] = UInt8(max(1, min(255, Int(hz.rounded(.up)) + 1)))
            d[7] = UInt8(max(1, min(255, Int(hKHz) - 1)))
            d[8] = UInt8(max(1, min(255, Int(hKHz.rounded(.up)) + 1)))
            d[9] = UInt8(max(1, min(255, (clock10kHz + 999) / 1000)))  // MHz / 10, rounded up
            d[10] = 0x01  // range limits only
            d[11] = 0x0a
            for i in 12..<18 { d[i] = 0x20 }
            return d
        }
    }

    /// A text descriptor (`0xfc` monitor name, `0xff` serial): 13 characters, ended by a
    /// newline and padded with spaces.
    static func text(_ tag: UInt8, _ value: String) -> [UInt8] {
        var d: [UInt8] = [0, 0, 0, tag, 0]
        let ascii = value.unicodeScalars.map {
            $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? UInt8($0.value) : UInt8(ascii: "?")
        }
        let text = Array(ascii.prefix(13))
        d += text
        if text.count < 13 { d.append(0x0a) }
        while d.count < 18 { d.append(0x20) }
        return d
    }

    /// sRGB primaries and D65 white, as 10-bit fractions.
    static func chromaticity(into b: inout [UInt8]) {
        let values = [0.640, 0.330, 0.300, 0.600, 0.150, 0.060, 0.3127, 0.3290].map { Int(($0 * 1024).rounded()) }
        b[25] = UInt8((values[0] & 3) << 6 | (values[1] & 3) << 4 | (values[2] & 3) << 2 | (values[3] & 3))
        b[26] = UInt8((values[4] & 3) << 6 | (values[5] & 3) << 4 | (values[6] & 3) << 2 | (values[7] & 3))
        for i in 0..<8 { b[27 + i] = UInt8(values[i] >> 2) }
    }

    static func fnv1a(_ text: String) -> UInt32 {
        var hash: UInt32 = 2_166_136_261
        for byte in text.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return hash
    }
}
