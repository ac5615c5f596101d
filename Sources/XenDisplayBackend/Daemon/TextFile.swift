import SystemPackage
public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension XenGntError.Operation {
    /// Writing a small text file (the counters, the ready file).
    public static var writeFile: XenGntError.Operation { .init("writeFile") }
}

extension XenGntError.Code {
    /// A text file could not be written.
    public static var fileWriteFailed: XenGntError.Code {
        .init("fileWriteFailed") { "cannot write \($0.path ?? "the file")" }
    }
}

/// Small text files written whole (replaced atomically through a temporary file and rename).
public enum TextFile {
    public static func write(_ text: String, to path: String) throws(XenGntError) {
        let temporary = path + ".tmp"
        guard let file = fopen(temporary, "w") else {
            throw XenGntError(.fileWriteFailed, .writeFile, errno: Errno(rawValue: errno), path: path)
        }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        let closed = fclose(file)
        guard written == bytes.count, closed == 0, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw XenGntError(.fileWriteFailed, .writeFile, errno: Errno(rawValue: errno), path: path)
        }
    }
}
