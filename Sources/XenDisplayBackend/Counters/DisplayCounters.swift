import Synchronization

/// Which frontend device a figure belongs to: the frontend's domain and the device id under
/// `device/vdispl/`.
public struct FrontendKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let domain: UInt16
    public let device: Int
    public init(domain: UInt16, device: Int) {
        self.domain = domain
        self.device = device
    }
    public static func < (a: FrontendKey, b: FrontendKey) -> Bool { (a.domain, a.device) < (b.domain, b.device) }
    public var description: String { "dom\(domain)/vdispl/\(device)" }
}

/// How a frontend's frames reach the display.
public enum BufferPath: String, Sendable, Hashable {
    /// Not decided yet (no buffer shown).
    case none
    /// The frontend's pages, exported as a dma-buf and scanned out (be-alloc=0, zero-copy).
    case exported
    /// The frontend's pages mapped, each flip copied into a display buffer (be-alloc=0).
    case copied
    /// The backend's display buffers, granted to the frontend (be-alloc=1, zero-copy).
    case backendAllocated = "backend-allocated"
}

/// One frontend's figures.
public struct FrontendCounters: Hashable, Sendable {
    /// Requests answered (every operation).
    public var requests = 0
    /// Requests answered with an error status, and protocol violations that ended a connection.
    public var errors = 0
    /// `PG_FLIP` requests accepted.
    public var pageFlips = 0
    /// `EVT_PG_FLIP` events posted.
    public var flipEvents = 0
    /// Frames a sink showed (a KMS commit completed, or the headless sink took the frame).
    public var framesShown = 0
    /// Frames copied from the frontend's pages into a display buffer (the copy path).
    public var framesCopied = 0
    /// Bytes those copies moved.
    public var bytesCopied = 0
    /// Display buffers created, and live now.
    public var buffersCreated = 0
    public var buffersLive = 0
    /// Connections (each time the frontend reached Connected).
    public var connects = 0
    /// How frames reach the display now.
    public var path: BufferPath = .none
    /// Of the frames shown, those a KMS CRTC put on screen (its flip event arrived).
    public var framesScannedOut = 0
    /// Connectors that were to be shown on a KMS CRTC but fell back to the headless sink when
    /// the display failed.
    public var kmsFallbacks = 0

    public init() {}
}

/// The backend's counters, per frontend: updated by the serving tasks, read by ``snapshot()``
/// and as one JSON line (``jsonLine()``, what the daemon prints on `SIGUSR1` and at exit).
public final class DisplayCounters: Sendable {
    private let state = Mutex<[FrontendKey: FrontendCounters]>([:])

    public init() {}

    /// Changes `key`'s counters.
    public func update(_ key: FrontendKey, _ change: (inout FrontendCounters) -> Void) {
        state.withLock { table in change(&table[key, default: FrontendCounters()]) }
    }

    /// Every frontend's counters now.
    public func snapshot() -> [FrontendKey: FrontendCounters] { state.withLock { $0 } }

    /// The sum over every frontend (its `path` is the last frontend's).
    public func total() -> FrontendCounters {
        snapshot().sorted { $0.key < $1.key }.reduce(into: FrontendCounters()) { sum, entry in
            let c = entry.value
            sum.requests += c.requests
            sum.errors += c.errors
            sum.pageFlips += c.pageFlips
            sum.flipEvents += c.flipEvents
            sum.framesShown += c.framesShown
            sum.framesCopied += c.framesCopied
            sum.bytesCopied += c.bytesCopied
            sum.buffersCreated += c.buffersCreated
            sum.buffersLive += c.buffersLive
            sum.connects += c.connects
            sum.path = c.path
            sum.framesScannedOut += c.framesScannedOut
            sum.kmsFallbacks += c.kmsFallbacks
        }
    }

    /// One line of JSON, keys in a fixed order:
    /// `{"frontends":[{"domain":1,"device":0,"path":"copied","frames_shown":42,...}],"total":{...}}`
    public func jsonLine() -> String {
        let entries = snapshot().sorted { $0.key < $1.key }.map { key, counters in
            "{\"domain\":\(key.domain),\"device\":\(key.device)," + Self.fields(counters) + "}"
        }
        return "{\"frontends\":[" + entries.joined(separator: ",") + "],\"total\":{" + Self.fields(total(), withPath: false)
            + "}}"
    }

    static func fields(_ c: FrontendCounters, withPath: Bool = true) -> String {
        var pairs: [(String, String)] = []
        if withPath { pairs.append(("path", "\"\(c.path.rawValue)\"")) }
        pairs += [
            ("frames_shown", "\(c.framesShown)"), ("frames_copied", "\(c.framesCopied)"),
            ("bytes_copied", "\(c.bytesCopied)"), ("page_flips", "\(c.pageFlips)"),
            ("flip_events", "\(c.flipEvents)"), ("requests", "\(c.requests)"), ("errors", "\(c.errors)"),
            ("buffers_created", "\(c.buffersCreated)"), ("buffers_live", "\(c.buffersLive)"),
            ("connects", "\(c.connects)"), ("frames_scanned_out", "\(c.framesScannedOut)"),
            ("kms_fallbacks", "\(c.kmsFallbacks)"),
        ]
        return pairs.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",")
    }
}
