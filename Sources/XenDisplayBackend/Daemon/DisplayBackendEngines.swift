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

/// Builds the engine the daemon runs from its options: ``XenDisplayEngine`` (XenStore, event
/// channels and rings through XenGntBackend).
public enum DisplayBackendEngines {
    public static func make(
        options: DisplayBackendOptions,
        logger: Logger,
        system: XenSystem = .kernel
    ) throws(XenGntError) -> any DisplayBackendEngine {
        XenDisplayEngine(options: options, system: system)
    }
}
