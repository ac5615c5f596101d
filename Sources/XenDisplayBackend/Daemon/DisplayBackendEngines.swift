public import Logging
public import XenGnt

extension XenGntError.Code {
    /// The backend cannot serve: what it needs is not in this build or on this system.
    public static var displayBackendUnavailable: XenGntError.Code {
        .init("displayBackendUnavailable") { "the display backend cannot start\($0.detail.map { ": \($0)" } ?? "")" }
    }
}

extension XenGntError.Operation {
    /// Starting the display backend.
    public static var startDisplayBackend: XenGntError.Operation { .init("startDisplayBackend") }
}

/// Builds the engine the daemon runs from its options.
public enum DisplayBackendEngines {
    public static func make(options: DisplayBackendOptions, logger: Logger) throws(XenGntError) -> any DisplayBackendEngine {
        // The engine that serves real frontends needs XenStore, event channels and rings
        // (XenGntBackend) and KMS (XenGntDRM); it is assembled here once both are in the package.
        throw XenGntError(.displayBackendUnavailable, .startDisplayBackend,
                          detail: "this build has no XenStore transport yet (XenGntBackend is not part of the package)")
    }
}
