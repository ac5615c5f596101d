public import XenGnt

/// The frontend's end of a PV device's handshake: for a frontend written in Swift (a test
/// device, or a frontend helper in tests), the steps Linux's `xenbus_frontend` takes.
///
/// ```swift
/// let device = try await FrontendDevice(type: "vxengnt", id: 0, store: store)
/// var ring = try FrontRing<Request, Response>(sharing: try allocator.share(pages: 1, with: device.backendID))
/// let channel = try EventChannel.bindUnbound(remote: device.backendID)
/// try await device.connect(publishing: ["ring-ref": "\(ring.refs[0].rawValue)", "event-channel": "\(channel.port)"])
/// ```
public struct FrontendDevice: Sendable, CustomStringConvertible {
    /// The device type.
    public let type: String
    /// The device id.
    public let deviceID: Int
    /// This frontend's directory (`/local/domain/<me>/device/<type>/<id>`).
    public let frontendPath: String
    /// The backend's directory, as the toolstack wrote it in the `backend` key.
    public let backendPath: String
    /// The backend's domain (the `backend-id` key).
    public let backendID: DomainID
    /// The connection used.
    public let store: XenStore

    /// The device `type`/`id` of this domain, as the toolstack described it.
    ///
    /// - Throws: `XenGntError/Code/noSuchNode` when the toolstack made no such device.
    public init(type: String, id: Int, store: XenStore) async throws(XenGntError) {
        let me = try await store.domainID()
        let path = "/local/domain/\(me.rawValue)/device/\(type)/\(id)"
        self.type = type
        deviceID = id
        frontendPath = path
        backendPath = try await store.read("\(path)/backend")
        backendID = DomainID(try await store.read("\(path)/backend-id", as: UInt16.self))
        self.store = store
    }

    public var description: String { "\(type)/\(deviceID) (backend \(backendID))" }

    /// This frontend's state.
    public func state() async throws(XenGntError) -> XenbusState {
        try await store.state(at: "\(frontendPath)/state")
    }

    /// The backend's state.
    public func backendState() async throws(XenGntError) -> XenbusState {
        try await store.state(at: "\(backendPath)/state")
    }

    /// Writes this frontend's state.
    public func setState(_ state: XenbusState) async throws(XenGntError) {
        try await store.write("\(frontendPath)/state", state.value)
    }

    /// Waits until the backend's state satisfies `accept`, and returns it.
    ///
    /// - Throws: `XenGntError/Code/peerNotReady` after `timeout`.
    public func waitForBackend(
        timeout: Duration? = nil,
        until accept: @escaping @Sendable (XenbusState) -> Bool
    ) async throws(XenGntError) -> XenbusState {
        let store = self.store
        let path = "\(backendPath)/state"
        return try await withDeadline(timeout, path: path, waitingFor: "ready") { () throws(XenGntError) in
            let watch = try await store.watch(path)
            for try await _ in watch {
                let state = try await store.state(at: path)
                if accept(state) {
                    try? await watch.cancel()
                    return state
                }
            }
            throw XenGntError(.connectionLost, .deviceLifecycle, path: path, detail: "the watch ended")
        }
    }

    /// The handshake: waits for the backend's InitWait (first going back to Initialising if
    /// the backend is anywhere else, say still connected to an earlier instance of this
    /// frontend), writes `entries` (ring references, ports; keys relative to the frontend's
    /// directory) and Initialised in one transaction, waits for the backend's Connected, and
    /// writes Connected.
    ///
    /// - Throws: `XenGntError/Code/peerClosed` when the backend closes instead of
    ///   connecting; `XenGntError/Code/peerNotReady` after `timeout` at either wait.
    public func connect(publishing entries: [String: String], timeout: Duration? = nil) async throws(XenGntError) {
        if try await backendState() != .initWait { try await setState(.initialising) }
        _ = try await waitForBackend(timeout: timeout) { $0 == .initWait }
        try await store.transaction { transaction throws(XenGntError) in
            for (key, value) in entries.sorted(by: { $0.key < $1.key }) {
                try await transaction.write("\(frontendPath)/\(key)", value)
            }
            try await transaction.write("\(frontendPath)/state", XenbusState.initialised.value)
        }
        let connected = try await waitForBackend(timeout: timeout) { $0 == .connected || $0.isClosing }
        if connected.isClosing { throw XenGntError(.peerClosed, .deviceLifecycle, path: backendPath, detail: "\(connected)") }
        try await setState(.connected)
    }

    /// Disconnects: Closing, then (once the backend has followed) Closed.
    public func close(timeout: Duration? = nil) async throws(XenGntError) {
        try await setState(.closing)
        _ = try await waitForBackend(timeout: timeout) { $0.isClosing || $0 == .unknown || $0 == .initWait }
        try await setState(.closed)
        _ = try await waitForBackend(timeout: timeout) { $0 == .closed || $0 == .unknown || $0 == .initWait }
    }

    /// Starts over after a close (the backend answers with InitWait).
    public func restart() async throws(XenGntError) {
        try await setState(.initialising)
    }
}

extension XenbusState {
    /// Closing or Closed.
    var isClosing: Bool { self == .closing || self == .closed }
}

/// Runs `body`, giving up with `XenGntError/Code/peerNotReady` after `timeout` (a deadline,
/// not a polling loop: `body` waits on its watch meanwhile).
func withDeadline<Value: Sendable>(
    _ timeout: Duration?,
    path: String,
    waitingFor what: String,
    _ body: @escaping @Sendable () async throws(XenGntError) -> Value
) async throws(XenGntError) -> Value {
    guard let timeout else { return try await body() }
    let outcome = await withTaskGroup(of: Result<Value, XenGntError>?.self) { group in
        group.addTask {
            do throws(XenGntError) { return .success(try await body()) } catch { return .failure(error) }
        }
        group.addTask {
            try? await Task.sleep(for: timeout)
            return nil
        }
        let first = await group.next() ?? nil
        group.cancelAll()
        return first
    }
    switch outcome {
    case .success(let value)?: return value
    case .failure(let error)?: throw error
    case nil: throw XenGntError(.peerNotReady, .deviceLifecycle, path: path, detail: what)
    }
}
