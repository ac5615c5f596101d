internal import CDRM

/// How a connector is attached.
public enum ConnectionStatus: Sendable, Hashable {
    case connected, disconnected, unknown
}

/// A connector: where a display is (or could be) attached, or a writeback connector that
/// captures what a CRTC composes.
public struct Connector: Sendable, Hashable, Identifiable {
    public let id: UInt32
    /// `DRM_MODE_CONNECTOR_*` (`Virtual` is 15, `Writeback` 18).
    public let type: UInt32
    /// The connector's number among those of its type (the `1` of `Virtual-1`).
    public let typeIndex: UInt32
    public let status: ConnectionStatus
    /// The modes the display offers (none for a disconnected connector); the preferred mode
    /// is marked.
    public let modes: [DisplayMode]
    /// Encoders that can drive it.
    public let encoderIDs: [UInt32]
    /// The encoder driving it now (0: none).
    public let currentEncoderID: UInt32

    /// Whether this is a writeback connector (listed only after
    /// ``DRMDevice/enableWritebackConnectors()``).
    public var isWriteback: Bool { type == UInt32(DRM_MODE_CONNECTOR_WRITEBACK) }

    /// The mode the display prefers, or the first.
    public var preferredMode: DisplayMode? { modes.first(where: \.isPreferred) ?? modes.first }

    /// `Virtual-1`, `HDMI-A-1`, `Writeback-1`.
    public var name: String { "\(Self.typeNames[Int(type)] ?? "Unknown")-\(typeIndex)" }

    static let typeNames: [Int: String] = [
        0: "Unknown", 1: "VGA", 2: "DVI-I", 3: "DVI-D", 4: "DVI-A", 5: "Composite", 6: "SVIDEO", 7: "LVDS",
        8: "Component", 9: "DIN", 10: "DP", 11: "HDMI-A", 12: "HDMI-B", 13: "TV", 14: "eDP", 15: "Virtual",
        16: "DSI", 17: "DPI", 18: "Writeback", 19: "SPI", 20: "USB",
    ]
}

/// An encoder: between a CRTC and a connector.
public struct Encoder: Sendable, Hashable, Identifiable {
    public let id: UInt32
    public let type: UInt32
    /// The CRTC driving it now (0: none).
    public let crtcID: UInt32
    /// Bit `i` set: the CRTC at index `i` of ``DisplayResources/crtcs`` can drive it.
    public let possibleCRTCs: UInt32
}

/// A CRTC: the scanout engine that composes planes into one picture for its connectors.
public struct CRTC: Sendable, Hashable, Identifiable {
    public let id: UInt32
    /// Its position in ``DisplayResources/crtcs`` (what `possible_crtcs` bits and vblank
    /// requests name).
    public let index: Int
    /// The framebuffer shown now by its primary plane (0: none).
    public let framebufferID: UInt32
    /// The mode it runs, if any.
    public let mode: DisplayMode?
}

/// What a plane is for.
public enum PlaneKind: Sendable, Hashable {
    case primary, cursor, overlay
}

/// A plane: one layer a CRTC composes, reading a framebuffer.
public struct Plane: Sendable, Hashable, Identifiable {
    public let id: UInt32
    public let kind: PlaneKind
    /// The CRTC it feeds now (0: none).
    public let crtcID: UInt32
    /// The framebuffer it shows now (0: none).
    public let framebufferID: UInt32
    /// Bit `i` set: it can feed the CRTC at index `i`.
    public let possibleCRTCs: UInt32
    /// The pixel formats it reads.
    public let formats: [PixelFormat]

    /// Whether it can feed `crtc`.
    public func canFeed(_ crtc: CRTC) -> Bool { possibleCRTCs & (1 << UInt32(crtc.index)) != 0 }
}

/// A device's mode-setting objects (`DRM_IOCTL_MODE_GETRESOURCES` and the calls that describe
/// each object).
public struct DisplayResources: Sendable, Hashable {
    public let connectors: [Connector]
    public let encoders: [Encoder]
    public let crtcs: [CRTC]
    public let planes: [Plane]
    /// Framebuffers this descriptor added.
    public let framebufferIDs: [UInt32]
    /// The framebuffer sizes the driver takes.
    public let minWidth: Int, maxWidth: Int, minHeight: Int, maxHeight: Int

    /// The CRTCs that can drive `connector` (through any of its encoders).
    public func crtcs(for connector: Connector) -> [CRTC] {
        let mask = encoders.filter { connector.encoderIDs.contains($0.id) }.reduce(UInt32(0)) { $0 | $1.possibleCRTCs }
        return crtcs.filter { mask & (1 << UInt32($0.index)) != 0 }
    }

    /// The primary plane that feeds `crtc`.
    public func primaryPlane(for crtc: CRTC) -> Plane? {
        planes.first { $0.kind == .primary && $0.canFeed(crtc) }
    }

    /// The writeback connectors that can capture `crtc`.
    public func writebackConnectors(for crtc: CRTC) -> [Connector] {
        connectors.filter { $0.isWriteback && crtcs(for: $0).contains(crtc) }
    }

    /// The first connected connector that is not a writeback one.
    public var firstConnectedDisplay: Connector? {
        connectors.first { !$0.isWriteback && $0.status == .connected && !$0.modes.isEmpty }
    }
}
