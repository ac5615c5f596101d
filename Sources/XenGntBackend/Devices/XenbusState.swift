internal import CXenBackend
public import XenGnt

/// The state of one end of a PV device (`enum xenbus_state`, `xen/io/xenbus.h`), which each end
/// writes to its directory's `state` key.
///
/// The handshake: the backend goes ``initWait`` once its features are published; the frontend,
/// from ``initialising``, publishes its rings and ports and goes ``initialised``; the backend
/// maps and binds them and goes ``connected``; the frontend goes ``connected``. Either end goes
/// ``closing`` then ``closed`` to disconnect.
public enum XenbusState: UInt32, Sendable, Hashable, CaseIterable, CustomStringConvertible {
    case unknown = 0
    case initialising = 1
    case initWait = 2
    case initialised = 3
    case connected = 4
    case closing = 5
    case closed = 6
    case reconfiguring = 7
    case reconfigured = 8

    /// The state a `state` key holds; ``unknown`` when it is missing or not a state (as the
    /// kernel's `xenbus_read_driver_state` does).
    public init(_ text: String?) {
        self = text.flatMap { UInt32($0) }.flatMap(XenbusState.init(rawValue:)) ?? .unknown
    }

    /// The value to write (`"4"`).
    public var value: String { String(rawValue) }

    public var description: String {
        switch self {
        case .unknown: "Unknown"
        case .initialising: "Initialising"
        case .initWait: "InitWait"
        case .initialised: "Initialised"
        case .connected: "Connected"
        case .closing: "Closing"
        case .closed: "Closed"
        case .reconfiguring: "Reconfiguring"
        case .reconfigured: "Reconfigured"
        }
    }

    /// The header's numbering, which the cases above must match.
    package static let headerValues: [UInt32] = [
        XenbusStateUnknown.rawValue, XenbusStateInitialising.rawValue, XenbusStateInitWait.rawValue,
        XenbusStateInitialised.rawValue, XenbusStateConnected.rawValue, XenbusStateClosing.rawValue,
        XenbusStateClosed.rawValue, XenbusStateReconfiguring.rawValue, XenbusStateReconfigured.rawValue,
    ]
}

extension XenStoreOperations {
    /// The state in a `state` key: ``XenbusState/unknown`` when it is missing, when this domain
    /// may not read it (xenstored answers `EACCES` for a missing node below one it may not
    /// read, which is what a removed device directory looks like to the other end), or when it
    /// holds something else.
    public func state(at path: String) async throws(XenGntError) -> XenbusState {
        do {
            return XenbusState(try await read(path))
        } catch  where error.code == .noSuchNode || error.code == .accessDenied {
            return .unknown
        }
    }
}
