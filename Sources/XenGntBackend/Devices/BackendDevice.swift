public import XenGnt

/// One frontend's device, as a ``Backend`` hands it to the code that serves it: where its two
/// XenStore directories are, and the means to read what the frontend published and to say the
/// backend is connected.
public struct BackendDevice: Sendable, CustomStringConvertible {
    /// The device type (`vdispl`).
    public let type: String
    /// The frontend's domain.
    public let frontendID: DomainID
    /// The device id (the last component of both directories).
    public let deviceID: String
    /// This backend's directory (`/local/domain/<backend>/backend/<type>/<frontend>/<id>`).
    public let backendPath: String
    /// The frontend's directory, as the toolstack wrote it in ``backendPath``'s `frontend` key.
    public let frontendPath: String
    /// The connection the backend uses.
    public let store: XenStore

    public var description: String { "\(type)/\(frontendID.rawValue)/\(deviceID)" }

    /// A value the frontend published (`req-ring-ref`, `0/evt-event-channel`).
    public func readFrontend(_ key: String) async throws(XenGntError) -> String {
        try await store.read("\(frontendPath)/\(key)")
    }

    /// A number the frontend published (a grant reference, a port, a page order).
    ///
    /// - Throws: `XenGntError/Code/malformedValue` when it is not one.
    public func readFrontend<Value: FixedWidthInteger>(_ key: String, as type: Value.Type) async throws(XenGntError) -> Value {
        try await store.read("\(frontendPath)/\(key)", as: type)
    }

    /// A grant reference the frontend published under `key`.
    public func grantRef(_ key: String) async throws(XenGntError) -> GrantRef {
        GrantRef(try await readFrontend(key, as: UInt32.self))
    }

    /// An event channel port the frontend published under `key`.
    public func port(_ key: String) async throws(XenGntError) -> UInt32 {
        try await readFrontend(key, as: UInt32.self)
    }

    /// The children of the frontend's directory, or of `key` below it (displif's connectors).
    public func frontendDirectory(_ key: String? = nil) async throws(XenGntError) -> [String] {
        try await store.directory(key.map { "\(frontendPath)/\($0)" } ?? frontendPath)
    }

    /// Writes a value in the backend's directory (a feature the frontend reads).
    public func writeBackend(_ key: String, _ value: String) async throws(XenGntError) {
        try await store.write("\(backendPath)/\(key)", value)
    }

    /// The frontend's state.
    public func frontendState() async throws(XenGntError) -> XenbusState {
        try await store.state(at: "\(frontendPath)/state")
    }

    /// The backend's state.
    public func backendState() async throws(XenGntError) -> XenbusState {
        try await store.state(at: "\(backendPath)/state")
    }

    /// Says the backend is connected (state ``XenbusState/connected``): call it once the rings
    /// are mapped and the ports bound, then serve.
    public func setConnected() async throws(XenGntError) {
        try await setState(.connected)
    }

    func setState(_ state: XenbusState) async throws(XenGntError) {
        try await store.write("\(backendPath)/state", state.value)
    }
}

/// What a ``Backend`` did, for logs and tests.
public enum BackendEvent: Sendable, CustomStringConvertible {
    /// A device directory appeared and the backend wrote InitWait.
    case discovered(String)
    /// The frontend reached Initialised (or Connected) and the serving code started.
    case connecting(String)
    /// The serving code ended: normally, cancelled by a teardown, or with an error (the
    /// backend wrote Closing).
    case served(String, XenGntError?)
    /// The connection was torn down, and why (the frontend's state, the directory's removal,
    /// the frontend's domain going away, the backend shutting down).
    case tornDown(String, reason: String)
    /// A device directory the backend cannot use (its entries are wrong).
    case rejected(String, XenGntError)
    /// The backend wrote a state.
    case wroteState(String, XenbusState)

    public var description: String {
        switch self {
        case .discovered(let device): "\(device): discovered"
        case .connecting(let device): "\(device): frontend published, connecting"
        case .served(let device, nil): "\(device): served"
        case .served(let device, let error?): "\(device): serving failed: \(error)"
        case .tornDown(let device, let reason): "\(device): torn down (\(reason))"
        case .rejected(let device, let error): "\(device): rejected: \(error)"
        case .wroteState(let device, let state): "\(device): backend state \(state)"
        }
    }
}
