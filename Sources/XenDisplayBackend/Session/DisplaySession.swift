/// The protocol state of one vdispl device: which buffers and framebuffers exist (cookies
/// belong to the device, whichever ring a request came on), what each connector shows, which
/// flip is pending and the next event id. ``handle(_:connector:resources:)`` answers each
/// request; a request that breaks a rule gets an error status and changes nothing.
///
/// It holds no resource itself (``DisplayResources`` does), so a frontend that vanishes is
/// cleaned up by ``tearDown(resources:)`` in order: connectors off, framebuffers, buffers.
public struct DisplaySession {
    public let configuration: FrontendConfiguration
    public let limits: DisplayBufferLayout.Limits

    struct Buffer {
        let layout: DisplayBufferLayout
        let backendAllocated: Bool
        var framebuffers: Set<UInt64> = []
    }
    struct Framebuffer {
        let buffer: UInt64
        let width: Int, height: Int
        let format: DisplayPixelFormat
    }
    /// What a connector does now.
    public struct ConnectorState: Hashable, Sendable {
        /// The framebuffer SET_CONFIG chose (nil: off).
        public var configured: UInt64?
        /// A PG_FLIP accepted whose event is not posted yet.
        public var pendingFlip: UInt64?
        /// The id of the next EVT_PG_FLIP (0, 1, 2… from each connect).
        public var nextEventID: UInt16 = 0
    }

    var buffers: [UInt64: Buffer] = [:]
    var bufferOrder: [UInt64] = []
    var framebuffers: [UInt64: Framebuffer] = [:]
    var framebufferOrder: [UInt64] = []
    public internal(set) var connectors: [ConnectorState]

    public init(configuration: FrontendConfiguration, limits: DisplayBufferLayout.Limits = .standard) {
        self.configuration = configuration
        self.limits = limits
        connectors = Array(repeating: ConnectorState(), count: configuration.connectors.count)
    }

    /// Buffers and framebuffers alive, in creation order.
    public var liveBuffers: [UInt64] { bufferOrder }
    public var liveFramebuffers: [UInt64] { framebufferOrder }
    /// The layout of buffer `cookie`.
    public func layout(ofBuffer cookie: UInt64) -> DisplayBufferLayout? { buffers[cookie]?.layout }
    /// The buffer under framebuffer `cookie`.
    public func buffer(ofFramebuffer cookie: UInt64) -> UInt64? { framebuffers[cookie]?.buffer }

    /// What answering a request did besides the response.
    public enum Outcome: Hashable, Sendable {
        /// Nothing more.
        case none
        /// An EVT_PG_FLIP to post on `connector`'s event page now.
        case flipEvent(connector: Int, DisplayEvent)
    }

    /// Answers `request`, which arrived on `connector`'s ring.
    public mutating func handle<R: DisplayResources>(
        _ request: DisplayRequest,
        connector: Int,
        resources: inout R
    )
        -> (response: DisplayResponse, outcome: Outcome)
    {
        do {
            let (edidSize, outcome) = try apply(request, connector: connector, resources: &resources)
            return (DisplayResponse(answering: request, .ok, edidSize: edidSize), outcome)
        } catch {
            return (DisplayResponse(answering: request, error.status), .none)
        }
    }

    /// The refusal `handle` answered with, for logging: `handle` keeps the status only.
    public mutating func check<R: DisplayResources>(
        _ request: DisplayRequest,
        connector: Int,
        resources: inout R
    )
        throws(DisplayRefusal) -> (response: DisplayResponse, outcome: Outcome)
    {
        let (edidSize, outcome) = try apply(request, connector: connector, resources: &resources)
        return (DisplayResponse(answering: request, .ok, edidSize: edidSize), outcome)
    }

    /// The pending flip of `connector` is on screen: the event to post, or nil if none was
    /// pending (a late report after a reconfiguration).
    public mutating func flipCompleted(connector: Int) -> DisplayEvent? {
        guard connectors.indices.contains(connector), let cookie = connectors[connector].pendingFlip else { return nil }
        connectors[connector].pendingFlip = nil
        return nextEvent(connector, cookie)
    }

    /// Releases everything in order: connectors off, framebuffers (newest first), buffers
    /// (newest first). The session is empty afterwards; event ids start again at 0.
    public mutating func tearDown<R: DisplayResources>(resources: inout R) {
        for index in connectors.indices where connectors[index].configured != nil {
            _ = try? resources.configure(connector: index, framebuffer: nil, width: 0, height: 0)
        }
        connectors = Array(repeating: ConnectorState(), count: connectors.count)
        for cookie in framebufferOrder.reversed() { resources.releaseFramebuffer(cookie) }
        for cookie in bufferOrder.reversed() { resources.releaseBuffer(cookie) }
        framebuffers = [:]
        framebufferOrder = []
        buffers = [:]
        bufferOrder = []
    }

    private mutating func nextEvent(_ connector: Int, _ cookie: UInt64) -> DisplayEvent {
        let id = connectors[connector].nextEventID
        connectors[connector].nextEventID = id &+ 1
        return DisplayEvent(id: id, framebufferCookie: cookie)
    }

    // MARK: The rules

    private mutating func apply<R: DisplayResources>(
        _ request: DisplayRequest,
        connector: Int,
        resources: inout R
    )
        throws(DisplayRefusal) -> (UInt32, Outcome)
    {
        guard connectors.indices.contains(connector) else {
            throw DisplayRefusal(.invalid, "request on ring \(connector) of \(connectors.count)")
        }
        switch request.body {
        case .bufferCreate(let create):
            try createBuffer(create, resources: &resources)
        case .bufferDestroy(let cookie):
            guard let buffer = buffers[cookie] else {
                throw DisplayRefusal(.notFound, "DBUF_DESTROY of unknown buffer \(cookie)")
            }
            guard buffer.framebuffers.isEmpty else {
                throw DisplayRefusal(
                    .busy,
                    "DBUF_DESTROY of buffer \(cookie) with \(buffer.framebuffers.count) framebuffer(s) attached"
                )
            }
            resources.releaseBuffer(cookie)
            buffers[cookie] = nil
            bufferOrder.removeAll { $0 == cookie }
        case .framebufferAttach(let attach):
            try attachFramebuffer(attach, resources: &resources)
        case .framebufferDetach(let cookie):
            guard let framebuffer = framebuffers[cookie] else {
                throw DisplayRefusal(.notFound, "FB_DETACH of unknown framebuffer \(cookie)")
            }
            for index in connectors.indices {
                if connectors[index].configured == cookie {
                    // The connector showing it goes blank (a KMS CRTC is taken off screen).
                    connectors[index].configured = nil
                    try? resources.configure(connector: index, framebuffer: nil, width: 0, height: 0)
                }
                if connectors[index].pendingFlip == cookie { connectors[index].pendingFlip = nil }
            }
            resources.releaseFramebuffer(cookie)
            framebuffers[cookie] = nil
            framebufferOrder.removeAll { $0 == cookie }
            buffers[framebuffer.buffer]?.framebuffers.remove(cookie)
        case .setConfiguration(let config):
            return (0, try setConfiguration(config, connector: connector, resources: &resources))
        case .pageFlip(let cookie):
            return (0, try pageFlip(cookie, connector: connector, resources: &resources))
        case .getEdid(let edid):
            return (try getEdid(edid, connector: connector, resources: &resources), .none)
        case .unknown:
            throw DisplayRefusal(.notSupported, "unknown \(request.operation)")
        }
        return (0, .none)
    }
}
