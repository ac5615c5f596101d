internal import CDRM

#if canImport(Glibc)
import Glibc
#endif

/// A DRM pixel format: a fourcc code of `drm_fourcc.h` (`XR24` is `DRM_FORMAT_XRGB8888`).
public struct PixelFormat: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The fourcc code, little-endian: `XR24` is `0x34325258`.
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }

    /// The format whose fourcc is `code` (four ASCII characters, such as `"XR24"`).
    public init?(fourcc code: String) {
        let bytes = Array(code.utf8)
        guard bytes.count == 4 else { return nil }
        rawValue = UInt32(bytes[0]) | UInt32(bytes[1]) << 8 | UInt32(bytes[2]) << 16 | UInt32(bytes[3]) << 24
    }

    /// `DRM_FORMAT_XRGB8888` (`XR24`): 32 bits, x:R:G:B little-endian; what displays show.
    public static let xrgb8888 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_XRGB8888))
    /// `DRM_FORMAT_ARGB8888` (`AR24`).
    public static let argb8888 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_ARGB8888))
    /// `DRM_FORMAT_XBGR8888` (`XB24`).
    public static let xbgr8888 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_XBGR8888))
    /// `DRM_FORMAT_XRGB16161616` (`XR48`).
    public static let xrgb16161616 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_XRGB16161616))
    /// `DRM_FORMAT_ARGB16161616` (`AR48`).
    public static let argb16161616 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_ARGB16161616))
    /// `DRM_FORMAT_RGB565` (`RG16`).
    public static let rgb565 = PixelFormat(rawValue: UInt32(CDRM_FORMAT_RGB565))

    /// The four characters of the code (`XR24`).
    public var fourcc: String {
        String(
            decoding: (0..<4).map { UInt8(truncatingIfNeeded: rawValue >> ($0 * 8)) }.map { $0 >= 0x20 && $0 < 0x7F ? $0 : 0x3F },
            as: UTF8.self
        )
    }

    /// libdrm's name for the format (`XR24`, `AR24`; `drmGetFormatName`), or the raw code.
    public var name: String {
        guard let text = cdrm_format_name(rawValue) else { return "0x" + String(rawValue, radix: 16) }
        defer { free(text) }
        return String(cString: text)
    }

    /// Bytes per pixel of the single-plane RGB formats XenGntDRM knows; `nil` for others.
    public var bytesPerPixel: Int? {
        switch self {
        case .xrgb8888, .argb8888, .xbgr8888, PixelFormat(rawValue: UInt32(CDRM_FORMAT_ABGR8888)),
            PixelFormat(rawValue: UInt32(CDRM_FORMAT_RGBX8888)), PixelFormat(rawValue: UInt32(CDRM_FORMAT_BGRX8888)):
            4
        case .xrgb16161616, .argb16161616: 8
        case .rgb565, PixelFormat(rawValue: UInt32(CDRM_FORMAT_BGR565)): 2
        case PixelFormat(rawValue: UInt32(CDRM_FORMAT_RGB888)), PixelFormat(rawValue: UInt32(CDRM_FORMAT_BGR888)): 3
        default: nil
        }
    }

    public var description: String { name }
}

/// A format modifier (`DRM_FORMAT_MOD_*`): how a buffer's pixels are laid out (linear, tiled,
/// compressed).
public struct FormatModifier: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }

    /// `DRM_FORMAT_MOD_LINEAR`: rows one after another (dumb buffers, exports of linear frames).
    public static let linear = FormatModifier(rawValue: cdrm_format_mod_linear())
    /// `DRM_FORMAT_MOD_INVALID`.
    public static let invalid = FormatModifier(rawValue: cdrm_format_mod_invalid())

    /// libdrm's name for the modifier (`LINEAR`; `drmGetFormatModifierName`), or the raw value.
    public var name: String {
        guard let text = cdrm_format_modifier_name(rawValue) else { return "0x" + String(rawValue, radix: 16) }
        defer { free(text) }
        return String(cString: text)
    }

    public var description: String { name }
}
