public import XenGnt
import XenGntDRM

/// Where a connector's frames go: the headless sink, or (with XenGntDRM) a KMS CRTC.
public protocol DisplaySink {
    /// Shows `frame` on `connector` of `key`; returns when it is on screen (the caller then
    /// posts the flip event).
    mutating func present(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError)
    /// `connector` of `key` shows nothing any more.
    mutating func blank(_ key: FrontendKey, connector: Int)
    /// Whether the sink can scan out a buffer exported from the frontend's grants (a KMS
    /// device; not a sink that reads frames with the CPU). A display may still refuse an
    /// export at its first real commit (vkms): then ``presentExport(_:for:connector:)`` throws
    /// and the caller copies from then on.
    var takesExports: Bool { get }

    /// The export path: makes framebuffer `cookie` of the frontend's pages `refs` (exported
    /// through `gntdev`, PRIME-imported, `ADDFB2` as `layout`) for scan-out.
    mutating func attachExport(
        _ cookie: UInt64,
        refs: [GrantRef],
        from domain: DomainID,
        through gntdev: GrantDevice,
        layout: ExportLayout
    ) throws(XenGntError)
    /// Shows exported framebuffer `cookie` on `connector` of `key`; returns when it is on screen.
    mutating func presentExport(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError)
    /// Releases exported framebuffer `cookie`, taking a connector that shows it off screen first.
    mutating func releaseExport(_ cookie: UInt64, for key: FrontendKey)

    /// `be-alloc=1`: allocates buffer `cookie` as a buffer of the display itself, of exactly
    /// `pageCount` pages and rows `pitch` bytes apart, granted to `domain`; returns its refs and
    /// its mapped bytes, or `nil` when this sink has no such buffers.
    mutating func allocateShared(
        _ cookie: UInt64,
        pageCount: Int,
        width: Int,
        pitch: Int,
        for domain: DomainID,
        through gntdev: GrantDevice
    ) throws(XenGntError) -> (refs: [UInt32], bytes: UnsafeRawBufferPointer)?
    /// Shows shared buffer `cookie` as it is (XRGB8888 from its start, its width) on `connector`.
    mutating func presentShared(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError)
    /// Releases shared buffer `cookie`: off screen, then its framebuffer, the frontend's access,
    /// the buffer.
    mutating func releaseShared(_ cookie: UInt64, for key: FrontendKey)
}

/// How a frontend's framebuffer lies in its pages (`FB_ATTACH` over `DBUF_CREATE`).
public struct ExportLayout: Sendable, Hashable {
    public let width: Int
    public let height: Int
    public let format: DisplayPixelFormat
    public let pitch: Int
    /// `data_ofs`.
    public let offset: Int
    public init(width: Int, height: Int, format: DisplayPixelFormat, pitch: Int, offset: Int) {
        self.width = width
        self.height = height
        self.format = format
        self.pitch = pitch
        self.offset = offset
    }
}

extension DisplaySink {
    public var takesExports: Bool { false }

    public mutating func attachExport(
        _ cookie: UInt64,
        refs: [GrantRef],
        from domain: DomainID,
        through gntdev: GrantDevice,
        layout: ExportLayout
    ) throws(XenGntError) {
        throw XenGntError(.displayCannotReadBuffer, .addFramebuffer, detail: "this sink reads frames with the CPU")
    }

    public mutating func presentExport(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError) {
        throw XenGntError(.displayCannotReadBuffer, .pageFlip, detail: "this sink reads frames with the CPU")
    }

    public mutating func releaseExport(_ cookie: UInt64, for key: FrontendKey) {}

    public mutating func allocateShared(
        _ cookie: UInt64,
        pageCount: Int,
        width: Int,
        pitch: Int,
        for domain: DomainID,
        through gntdev: GrantDevice
    ) throws(XenGntError) -> (refs: [UInt32], bytes: UnsafeRawBufferPointer)? {
        nil
    }

    public mutating func presentShared(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError) {
        throw XenGntError(.displayCannotReadBuffer, .pageFlip, detail: "this sink has no buffers of its own")
    }

    public mutating func releaseShared(_ cookie: UInt64, for key: FrontendKey) {}
}

extension HeadlessSink: DisplaySink {
    public mutating func present(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError) {
        _ = try show(frame, for: key, connector: connector)
    }
    public mutating func blank(_ key: FrontendKey, connector: Int) {}
}
