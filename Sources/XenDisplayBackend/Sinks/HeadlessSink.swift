public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// The display with no screen: it takes every frame a connector shows and writes it as a PNG
/// file when the frame changed or every `every`-th frame, for tests, CI and the demo. A frame is
/// shown at once, so its flip completes at once.
///
/// Files are `<directory>/dom<D>-vdispl<N>-conn<C>-<frame>.png`, `frame` counting from 0 per
/// connector.
public struct HeadlessSink: Sendable {
    public enum Policy: Hashable, Sendable {
        /// A file whenever the frame differs from the connector's previous one.
        case whenChanged
        /// A file for frames 0, N, 2N, …
        case every(Int)
        /// No files (the frames are still counted and hashed).
        case never
    }

    public let directory: String
    public let policy: Policy
    private var lastHash: [Connector: UInt64] = [:]
    private var frames: [Connector: Int] = [:]

    struct Connector: Hashable {
        let key: FrontendKey
        let index: Int
    }

    /// What ``show(_:for:connector:)`` did with a frame.
    public struct Shown: Hashable, Sendable {
        /// The frame's number on its connector.
        public let frame: Int
        /// The frame's ``FrameView/contentHash()`` (0 unless the policy is ``Policy/whenChanged``).
        public let hash: UInt64
        /// The file written, if any.
        public let path: String?
    }

    /// A sink writing into `directory`, created if missing.
    public init(directory: String, policy: Policy = .whenChanged) throws(XenGntError) {
        self.directory = directory
        self.policy = policy
        if policy != .never, mkdir(directory, 0o755) != 0, errno != EEXIST {
            throw XenGntError(.pngWriteFailed, .writePNG, path: directory, detail: "cannot create the directory")
        }
    }

    /// Shows `frame` on `connector` of `key`.
    public mutating func show(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError) -> Shown {
        let id = Connector(key: key, index: connector)
        let number = frames[id, default: 0]
        frames[id] = number + 1
        // Only the when-changed policy reads the whole frame for its hash.
        let hash = policy == .whenChanged ? frame.contentHash() : 0
        let write: Bool
        switch policy {
        case .whenChanged: write = lastHash[id] != hash
        case .every(let n): write = n > 0 && number % n == 0
        case .never: write = false
        }
        lastHash[id] = hash
        guard write else { return Shown(frame: number, hash: hash, path: nil) }
        let name = "dom\(key.domain)-vdispl\(key.device)-conn\(connector)-" + Self.padded(number) + ".png"
        let path = directory + "/" + name
        try PNGFile.write(frame, to: path)
        return Shown(frame: number, hash: hash, path: path)
    }

    static func padded(_ n: Int) -> String {
        let digits = String(n)
        return String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }
}
