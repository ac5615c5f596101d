internal import CPNG
public import XenGnt

extension XenGntError.Code {
    /// A PNG file could not be written (the headless sink).
    public static var pngWriteFailed: XenGntError.Code {
        .init("pngWriteFailed") {
            "libpng could not write the file\($0.path.map { " \($0)" } ?? "")\($0.detail.map { ": \($0)" } ?? "")"
        }
    }
}

extension XenGntError.Operation {
    /// Writing a frame as a PNG file.
    public static var writePNG: XenGntError.Operation { .init("writePNG") }
}

/// PNG files through libpng.
public enum PNGFile {
    /// Writes `frame` to `path` as an 8-bit RGB PNG.
    public static func write(_ frame: FrameView, to path: String) throws(XenGntError) {
        let rgb = frame.packedRGB()
        var message = [CChar](repeating: 0, count: 256)
        let status = rgb.withUnsafeBufferPointer { pixels in
            message.withUnsafeMutableBufferPointer { text in
                cpng_write_rgb(
                    path,
                    pixels.baseAddress,
                    UInt32(frame.width),
                    UInt32(frame.height),
                    frame.width * 3,
                    text.baseAddress,
                    text.count
                )
            }
        }
        guard status == 0 else {
            let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw XenGntError(.pngWriteFailed, .writePNG, path: path, detail: detail)
        }
    }
}
