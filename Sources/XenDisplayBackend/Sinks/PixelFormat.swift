/// The DRM fourcc codes `xen-drm-front` offers (`xen_drm_front_conn.c`), and how to read one
/// pixel of each as 8-bit RGB.
public struct DisplayPixelFormat: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    static func fourcc(_ code: String) -> UInt32 {
        code.utf8.prefix(4).enumerated().reduce(0) { $0 | UInt32($1.element) << (8 * UInt32($1.offset)) }
    }

    public static let xrgb8888 = DisplayPixelFormat(rawValue: fourcc("XR24"))
    public static let argb8888 = DisplayPixelFormat(rawValue: fourcc("AR24"))
    public static let rgb565 = DisplayPixelFormat(rawValue: fourcc("RG16"))
    public static let xrgb4444 = DisplayPixelFormat(rawValue: fourcc("XR12"))
    public static let argb4444 = DisplayPixelFormat(rawValue: fourcc("AR12"))
    public static let xrgb1555 = DisplayPixelFormat(rawValue: fourcc("XR15"))
    public static let argb1555 = DisplayPixelFormat(rawValue: fourcc("AR15"))

    /// Bytes per pixel, or `nil` for a format this backend cannot read.
    public var bytesPerPixel: Int? {
        switch self {
        case .xrgb8888, .argb8888: 4
        case .rgb565, .xrgb4444, .argb4444, .xrgb1555, .argb1555: 2
        default: nil
        }
    }

    public var description: String {
        let chars = (0..<4).map { Character(Unicode.Scalar(UInt8(truncatingIfNeeded: rawValue >> (8 * $0)))) }
        return chars.allSatisfy { $0.isASCII && !$0.isWhitespace || $0 == " " }
            ? String(chars) : "0x" + String(rawValue, radix: 16)
    }

    /// The pixel at `offset` as (red, green, blue).
    func rgb(_ bytes: UnsafeRawBufferPointer, _ offset: Int) -> (UInt8, UInt8, UInt8) {
        func wide(_ value: UInt16, _ shift: Int, _ bits: Int) -> UInt8 {
            let v = Int(value >> UInt16(shift)) & ((1 << bits) - 1)
            return UInt8((v * 255 + ((1 << bits) - 1) / 2) / ((1 << bits) - 1))
        }
        switch self {
        case .xrgb8888, .argb8888:
            return (bytes[offset + 2], bytes[offset + 1], bytes[offset])
        case .rgb565:
            let v = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            return (wide(v, 11, 5), wide(v, 5, 6), wide(v, 0, 5))
        case .xrgb4444, .argb4444:
            let v = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            return (wide(v, 8, 4), wide(v, 4, 4), wide(v, 0, 4))
        case .xrgb1555, .argb1555:
            let v = UInt16(bytes[offset]) | UInt16(bytes[offset + 1]) << 8
            return (wide(v, 10, 5), wide(v, 5, 5), wide(v, 0, 5))
        default:
            return (0, 0, 0)
        }
    }
}

/// A frame in memory: `height` rows of `width` pixels of `format`, `pitch` bytes apart,
/// starting `offset` bytes into `bytes`. The caller keeps the memory alive while it is read.
public struct FrameView: @unchecked Sendable {
    public let bytes: UnsafeRawBufferPointer
    public let offset: Int
    public let width: Int
    public let height: Int
    public let pitch: Int
    public let format: DisplayPixelFormat

    /// A view, or `nil` when the rows do not lie inside `bytes` or the format is unknown.
    public init?(bytes: UnsafeRawBufferPointer, offset: Int = 0, width: Int, height: Int, pitch: Int, format: DisplayPixelFormat)
    {
        guard let bpp = format.bytesPerPixel, width > 0, height > 0, offset >= 0,
            pitch >= width * bpp
        else { return nil }
        let (rows, o1) = (height - 1).multipliedReportingOverflow(by: pitch)
        let (end, o2) = rows.addingReportingOverflow(offset + width * bpp)
        guard !o1, !o2, end <= bytes.count else { return nil }
        self.bytes = bytes
        self.offset = offset
        self.width = width
        self.height = height
        self.pitch = pitch
        self.format = format
    }

    /// The pixel at (`x`, `y`) as (red, green, blue).
    public func rgb(x: Int, y: Int) -> (UInt8, UInt8, UInt8) {
        format.rgb(bytes, offset + y * pitch + x * (format.bytesPerPixel ?? 4))
    }

    /// Packed 8-bit RGB rows (`width × 3` bytes each).
    public func packedRGB() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let bpp = format.bytesPerPixel ?? 4
        out.withUnsafeMutableBufferPointer { out in
            var o = 0
            for y in 0..<height {
                var i = offset + y * pitch
                for _ in 0..<width {
                    let (r, g, b) = format.rgb(bytes, i)
                    out[o] = r
                    out[o + 1] = g
                    out[o + 2] = b
                    o += 3
                    i += bpp
                }
            }
        }
        return out
    }

    /// A 64-bit hash of the visible pixels (row padding excluded), eight bytes at a step: whether
    /// a frame changed. Not cryptographic; a frontend gains nothing by colliding it.
    public func contentHash() -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        let rowBytes = width * (format.bytesPerPixel ?? 4)
        for y in 0..<height {
            let start = offset + y * pitch
            var i = start
            while i + 8 <= start + rowBytes {
                hash = (hash ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01b3
                hash ^= hash >> 29
                i += 8
            }
            while i < start + rowBytes {
                hash = (hash ^ UInt64(bytes[i])) &* 0x100_0000_01b3
                i += 1
            }
        }
        return hash
    }
}
