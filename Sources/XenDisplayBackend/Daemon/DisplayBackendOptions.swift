public import ArgumentParser
public import Logging

/// The daemon's options (`xengnt-display-backend`, and later `xengnt display`), parsed with
/// swift-argument-parser.
public struct DisplayBackendOptions: ParsableArguments, Sendable {
    @Option(
        name: .customLong("drm-device"),
        help: ArgumentHelp(
            "The KMS device whose CRTCs show frontends' connectors: a path (/dev/dri/card1), a driver name (vkms), or auto (the first device with a connected display; none: headless).",
            valueName: "path|driver|auto"
        )
    )
    public var drmDevice: String = "auto"

    @Flag(
        name: [.customLong("no-kms"), .customLong("headless")],
        help: "Use no KMS device: every connector goes to the headless sink."
    )
    public var headless = false

    @Option(
        name: .customLong("crtc"),
        parsing: .singleValue,
        help: ArgumentHelp(
            "Show a frontend's connector on a CRTC (repeatable); the other connectors go to the headless sink.",
            valueName: "crtc=domain:device:connector"
        )
    )
    public var crtcAssignments: [CrtcAssignment] = []

    @Option(
        name: .customLong("writeback-check"),
        help:
            "Every this many seconds, read each CRTC back through writeback and log which of modetest's frames it shows (0: never)."
    )
    public var writebackCheckSeconds: Double = 0

    @Option(name: .customLong("png-dir"), help: "Where the headless sink writes PNG files (none: no files).")
    public var pngDirectory: String?

    @Option(name: .customLong("png-every"), help: "Write every Nth frame of a connector; 0: each frame that changed.")
    public var pngEvery: Int = 0

    @Option(
        name: .customLong("frontend"),
        parsing: .singleValue,
        help: ArgumentHelp(
            "Serve only this domain (a domid or a name; repeatable). Default: every frontend that appears.",
            valueName: "domain"
        )
    )
    public var frontends: [String] = []

    @Option(
        name: .customLong("buffer-path"),
        help: "For frontend-allocated buffers: auto (export where the display takes it, else copy), export, or copy."
    )
    public var bufferPath: BufferPathChoice = .auto

    @Option(name: .customLong("max-buffer-mib"), help: "The largest display buffer a frontend may create.")
    public var maxBufferMiB: Int = 64

    @Option(name: .customLong("counters-file"), help: "Also write the counters' JSON line here at exit.")
    public var countersFile: String?

    @Option(name: .customLong("ready-file"), help: "Create this file once the backend serves (for scripts).")
    public var readyFile: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    public var logLevelName: String = "info"

    public init() {}

    /// The log level named by `--log-level`.
    public var logLevel: Logger.Level { Logger.Level(rawValue: logLevelName) ?? .info }

    /// The headless sink's file policy.
    public var pngPolicy: HeadlessSink.Policy {
        pngDirectory == nil ? .never : pngEvery > 0 ? .every(pngEvery) : .whenChanged
    }

    /// The buffer limits `--max-buffer-mib` sets.
    public var bufferLimits: DisplayBufferLayout.Limits {
        DisplayBufferLayout.Limits(maxPages: maxBufferMiB * (1 << 20) / DisplayProtocol.pageSize)
    }

    public mutating func validate() throws {
        guard Logger.Level(rawValue: logLevelName) != nil else {
            throw ValidationError("--log-level \(logLevelName): not one of trace, debug, info, notice, warning, error, critical")
        }
        guard writebackCheckSeconds >= 0 else { throw ValidationError("--writeback-check must be 0 or more seconds") }
        guard pngEvery >= 0 else { throw ValidationError("--png-every must be 0 or more") }
        guard (1...4096).contains(maxBufferMiB) else { throw ValidationError("--max-buffer-mib must be 1…4096") }
        if headless, !crtcAssignments.isEmpty {
            throw ValidationError("--crtc needs a KMS device; it cannot be used with --no-kms")
        }
        let crtcs = crtcAssignments.map(\.crtc)
        guard Set(crtcs).count == crtcs.count else { throw ValidationError("a CRTC is assigned twice") }
        let targets = crtcAssignments.map { "\($0.domain):\($0.device):\($0.connector)" }
        guard Set(targets).count == targets.count else { throw ValidationError("a connector is assigned to two CRTCs") }
    }
}

/// `--crtc 0=xengnt-display:0:0`: CRTC index 0 shows connector 0 of vdispl device 0 of the
/// domain `xengnt-display` (a name or a domid).
public struct CrtcAssignment: ExpressibleByArgument, Hashable, Sendable {
    public let crtc: Int
    public let domain: String
    public let device: Int
    public let connector: Int

    public init(crtc: Int, domain: String, device: Int = 0, connector: Int = 0) {
        self.crtc = crtc
        self.domain = domain
        self.device = device
        self.connector = connector
    }

    public init?(argument: String) {
        let sides = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
        guard sides.count == 2, let crtc = Int(sides[0]), crtc >= 0 else { return nil }
        let parts = sides[1].split(separator: ":", omittingEmptySubsequences: false)
        guard (1...3).contains(parts.count), !parts[0].isEmpty else { return nil }
        let numbers = parts.dropFirst().map { Int($0) }
        guard numbers.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
        self.init(
            crtc: crtc,
            domain: String(parts[0]),
            device: numbers.first.flatMap { $0 } ?? 0,
            connector: numbers.count > 1 ? numbers[1]! : 0
        )
    }

    /// Whether this assignment names `connector` of `device` of a domain with this id or name.
    public func matches(domainID: UInt16, name: String?, device: Int, connector: Int) -> Bool {
        (domain == String(domainID) || domain == name) && self.device == device && self.connector == connector
    }

    public var defaultValueDescription: String { "\(crtc)=\(domain):\(device):\(connector)" }
}

/// `--buffer-path`.
public enum BufferPathChoice: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// Export where the backend domain and the display allow it, else copy (logged once).
    case auto
    /// Always export (a frontend whose buffers cannot be exported gets errors).
    case export
    /// Always map and copy.
    case copy
}
