public import XenGnt

/// Where a connector's frames go: the headless sink, or (with XenGntDRM) a KMS CRTC.
public protocol DisplaySink {
    /// Shows `frame` on `connector` of `key`; returns when it is on screen (the caller then
    /// posts the flip event).
    mutating func present(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError)
    /// `connector` of `key` shows nothing any more.
    mutating func blank(_ key: FrontendKey, connector: Int)
    /// Whether the sink can scan out a buffer exported from the frontend's grants (a KMS
    /// device; not a sink that reads frames with the CPU).
    var takesExports: Bool { get }
}

extension DisplaySink {
    public var takesExports: Bool { false }
}

extension HeadlessSink: DisplaySink {
    public mutating func present(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError) {
        _ = try show(frame, for: key, connector: connector)
    }
    public mutating func blank(_ key: FrontendKey, connector: Int) {}
}
