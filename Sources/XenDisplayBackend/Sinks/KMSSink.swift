public import Logging
public import XenGnt
import XenGntDRM

/// One frontend device's sink when the backend has a KMS display: each connector assigned to a
/// CRTC (`--crtc`) goes to the ``KMSDisplay``, every other connector to the headless sink.
///
/// A display failure for a connector (a mode set or flip refused, a flip event that never
/// comes) blanks its CRTC and sends that connector to the headless sink from then on: logged
/// once, counted (``FrontendCounters/kmsFallbacks``, ``FrontendCounters/errors``); the frame
/// is still shown, so the frontend's flip completes and the other frontends are not disturbed.
public struct KMSSink: DisplaySink {
    /// A connector shown on a CRTC, at the connector's resolution.
    public struct Route: Hashable, Sendable {
        public let crtc: Int
        public let width: Int
        public let height: Int
        public init(crtc: Int, width: Int, height: Int) {
            self.crtc = crtc
            self.width = width
            self.height = height
        }
    }

    public let display: KMSDisplay
    /// Connector index → its CRTC.
    public let routes: [Int: Route]
    public var headless: HeadlessSink
    let counters: DisplayCounters
    let logger: Logger
    /// Connectors that fell back to the headless sink.
    public internal(set) var fallenBack: Set<Int> = []
    /// Whether a connector's frames reached the screen (for the one log line per mode set).
    private var onScreen: Set<Int> = []
    /// The frontend device's connectors (an export needs every one of them on a CRTC).
    let connectorCount: Int
    /// Frontend framebuffers exported for scan-out, by cookie.
    private var exports: [UInt64: Exported] = [:]
    /// `be-alloc=1` buffers that are dumb buffers of the display, by buffer cookie.
    var sharedBuffers: [UInt64: Shared] = [:]

    final class Exported: @unchecked Sendable {
        var frame: FrontendFramebuffer?
        let info: FramebufferInfo
        init(_ frame: consuming FrontendFramebuffer) {
            info = frame.framebuffer
            self.frame = consume frame
        }
    }

    /// A sink for a frontend device with `connectorCount` connectors (default: those routed).
    public init(
        display: KMSDisplay,
        routes: [Int: Route],
        headless: HeadlessSink,
        counters: DisplayCounters,
        logger: Logger,
        connectorCount: Int? = nil
    ) {
        self.display = display
        self.routes = routes
        self.connectorCount = connectorCount ?? routes.count
        self.headless = headless
        self.counters = counters
        self.logger = logger
    }

    /// Whether to try exports: every connector of the device is on a CRTC (the headless sink
    /// reads memory) and none has fallen back. Whether the display really scans an export out
    /// shows only at the real commit (vkms passes `TEST_ONLY` and refuses it then):
    /// ``presentExport(_:for:connector:)`` throws, and the resources copy from then on.
    public var takesExports: Bool { !routes.isEmpty && routes.count == connectorCount && fallenBack.isEmpty }

    public mutating func attachExport(
        _ cookie: UInt64,
        refs: [GrantRef],
        from domain: DomainID,
        through gntdev: GrantDevice,
        layout: ExportLayout
    ) throws(XenGntError) {
        let frame = try FrontendFramebuffer(
            refs: refs,
            from: domain,
            through: gntdev,
            on: display.device,
            layout: FramebufferLayout(
                width: layout.width,
                height: layout.height,
                format: PixelFormat(rawValue: layout.format.rawValue),
                pitch: layout.pitch,
                offset: layout.offset
            )
        )
        exports[cookie] = Exported(frame)
    }

    public mutating func presentExport(_ cookie: UInt64, for key: FrontendKey, connector: Int) throws(XenGntError) {
        guard let route = routes[connector], !fallenBack.contains(connector), let exported = exports[cookie] else {
            throw XenGntError(
                .displayCannotReadBuffer,
                .pageFlip,
                path: display.device.path,
                detail: "framebuffer \(cookie) is not exported to a CRTC"
            )
        }
        try display.present(framebuffer: exported.info, crtc: route.crtc, width: route.width, height: route.height)
        counters.update(key) { $0.framesScannedOut += 1 }
        logOnScreen(key, connector: connector, route, how: "scanning out the frontend's pages")
    }

    /// One line per connector when its frames first reach the screen.
    mutating func logOnScreen(_ key: FrontendKey, connector: Int, _ route: Route, how: String) {
        guard onScreen.insert(connector).inserted else { return }
        logger.info(
            "\(key): connector \(connector) on CRTC \(route.crtc) of \(display.device.path) (\(display.device.driver.name)), \(route.width)x\(route.height), \(how)"
        )
    }

    /// Takes every CRTC showing framebuffer `id` off screen.
    mutating func blankWhereShown(_ id: UInt32) {
        for (connector, route) in routes where display.isShowing(id, crtc: route.crtc) {
            display.blank(crtc: route.crtc)
            onScreen.remove(connector)
        }
    }

    public mutating func releaseExport(_ cookie: UInt64, for key: FrontendKey) {
        guard let exported = exports.removeValue(forKey: cookie) else { return }
        blankWhereShown(exported.info.id)
        // Off screen: RMFB, GEM close, the export released (nothing else uses it now).
        if let frame = exported.frame.take() { _ = try? frame.release() }
    }

    public mutating func present(_ frame: FrameView, for key: FrontendKey, connector: Int) throws(XenGntError) {
        if let route = routes[connector], !fallenBack.contains(connector) {
            do throws(XenGntError) {
                try display.present(frame, crtc: route.crtc, width: route.width, height: route.height)
                counters.update(key) { $0.framesScannedOut += 1 }
                logOnScreen(key, connector: connector, route, how: "copied into its buffers")
                return
            } catch {
                fallenBack.insert(connector)
                counters.update(key) {
                    $0.kmsFallbacks += 1
                    $0.errors += 1
                }
                logger.warning(
                    "\(key): connector \(connector) falls back to the headless sink: CRTC \(route.crtc) failed: \(error)"
                )
            }
        }
        try headless.present(frame, for: key, connector: connector)
    }

    public mutating func blank(_ key: FrontendKey, connector: Int) {
        guard let route = routes[connector], !fallenBack.contains(connector) else { return }
        display.blank(crtc: route.crtc)
        onScreen.remove(connector)
    }

    /// The routes of `configuration`'s connectors for frontend `domain` (id and name) and
    /// `device`, from `--crtc` assignments.
    public static func routes(
        for configuration: FrontendConfiguration,
        domain: UInt16,
        name: String?,
        device: Int,
        assignments: [CrtcAssignment]
    ) -> [Int: Route] {
        var routes: [Int: Route] = [:]
        for connector in configuration.connectors {
            guard
                let assignment = assignments.first(where: {
                    $0.matches(domainID: domain, name: name, device: device, connector: connector.index)
                })
            else { continue }
            routes[connector.index] = Route(crtc: assignment.crtc, width: connector.width, height: connector.height)
        }
        return routes
    }
}
