/// A vdispl device's configuration as libxl writes it for
/// `vdispl = [ "backend=0,be-alloc=0,connectors=id0:1920x1080;id1:800x600" ]`: `be-alloc` and
/// each connector's `resolution` and `unique-id` live in the **frontend's** directory
/// (`/local/domain/<fe>/device/vdispl/<devid>/`, read-only for the frontend), and so does the
/// `version` the frontend chose (Linux 6.1 writes none: version 1).
public struct FrontendConfiguration: Hashable, Sendable {
    public struct Connector: Hashable, Sendable {
        /// The connector's index: its subdirectory, and its ring pair.
        public let index: Int
        public let width: Int
        public let height: Int
        /// `unique-id` (`id0` above), or empty.
        public let uniqueID: String
        public init(index: Int, width: Int, height: Int, uniqueID: String = "") {
            self.index = index
            self.width = width
            self.height = height
            self.uniqueID = uniqueID
        }
    }

    /// Whether the backend allocates the display buffers (`be-alloc=1`).
    public let backendAllocates: Bool
    public let connectors: [Connector]
    /// The protocol version in force: the frontend's `version`, 1 when it wrote none.
    public let version: Int

    /// The most connectors read (Linux's frontend drives at most 4).
    public static let maxConnectors = 16
    /// The largest side of a connector's resolution.
    public static let maxDimension = 16384

    public init(backendAllocates: Bool, connectors: [Connector], version: Int = 1) {
        self.backendAllocates = backendAllocates
        self.connectors = connectors
        self.version = version
    }

    /// Reads the configuration through `read`, which returns the value of a key relative to
    /// the frontend's device directory (`"be-alloc"`, `"0/resolution"`), or `nil`.
    ///
    /// Connectors are `0/`, `1/`, … up to the first without a valid `resolution` (as the
    /// frontend reads them); none at all is an error, and so is a `version` the backend does not
    /// speak.
    public static func read(_ read: (String) -> String?) throws(DisplayRefusal) -> FrontendConfiguration {
        let version = try negotiatedVersion(frontend: read(DisplayProtocol.Field.frontendVersion))
        let allocation = read(DisplayProtocol.Field.backendAllocation).map(trimmed) ?? "0"
        guard let allocates = UInt32(allocation) else {
            throw DisplayRefusal(.invalid, "be-alloc \"\(allocation)\" is not a number")
        }
        var connectors: [Connector] = []
        for index in 0..<maxConnectors {
            guard let text = read("\(index)/\(DisplayProtocol.Field.resolution)"),
                let (width, height) = parseResolution(text)
            else { break }
            let unique = read("\(index)/\(DisplayProtocol.Field.uniqueID)").map(trimmed) ?? ""
            connectors.append(Connector(index: index, width: width, height: height, uniqueID: unique))
        }
        guard !connectors.isEmpty else {
            throw DisplayRefusal(.invalid, "no connector: 0/resolution missing or not WIDTHxHEIGHT")
        }
        return FrontendConfiguration(backendAllocates: allocates != 0, connectors: connectors, version: version)
    }

    /// `"1920x1080"` as (1920, 1080); `nil` unless both sides are in 1…``maxDimension``.
    public static func parseResolution(_ text: String) -> (Int, Int)? {
        let parts = trimmed(text).split(separator: "x", omittingEmptySubsequences: false)
        guard parts.count == 2, let width = Int(parts[0]), let height = Int(parts[1]),
            (1...maxDimension).contains(width), (1...maxDimension).contains(height)
        else { return nil }
        return (width, height)
    }

    /// The version in force for a frontend that wrote `frontend` (nil: none, so 1).
    public static func negotiatedVersion(frontend: String?) throws(DisplayRefusal) -> Int {
        guard let frontend else { return 1 }
        let text = trimmed(frontend)
        if text.isEmpty { return 1 }
        let offered = DisplayProtocol.backendVersions.split(separator: ",").compactMap { Int($0) }
        guard let version = Int(text), offered.contains(version) else {
            throw DisplayRefusal(.notSupported, "frontend version \"\(text)\" is not one of \(DisplayProtocol.backendVersions)")
        }
        return version
    }

    static func trimmed(_ text: String) -> String {
        String(
            text.drop { $0 == " " || $0 == "\n" || $0 == "\0" }.reversed().drop { $0 == " " || $0 == "\n" || $0 == "\0" }
                .reversed()
        )
    }
}
