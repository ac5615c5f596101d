public import XenGnt
public import XenGntBackend

/// A PV frontend played by a test, so that a backend can be unit tested without Xen: it shares a
/// ring page and an event channel port with the backend, publishes them, drives its XenbusState
/// through the handshake, sends requests and takes responses.
///
/// ```swift
/// let xen = XenSimulation()
/// try xen.addDomain(0, type: .pv)
/// try xen.addDomain(3, type: .pvh)
/// try await xen.addDevice(XenDevice(type: "vdispl", frontend: 3, backend: 0, id: 0))
/// // ... start the backend under test in Dom0 (Backend(type: "vdispl", ...).run) ...
/// var frontend = try await SimulatedFrontend<xendispl_req, xendispl_resp>.connect(
///     type: "vdispl", on: xen.system(of: 3), ringKey: "0/req-ring-ref", portKey: "0/req-event-channel")
/// try frontend.send([request])
/// let response = try await frontend.response()
/// try await frontend.close()
/// ```
public struct SimulatedFrontend<Request, Response>: ~Copyable {
    /// The device's handshake.
    public let device: FrontendDevice
    /// The ring shared with the backend.
    public var ring: FrontRing<Request, Response>
    /// The port allocated for the backend.
    public let channel: EventChannel
    private var events: EventChannelNotifications.Iterator
    /// Notifications sent to the backend, and events received from it.
    public private(set) var notificationsSent = 0
    public private(set) var eventsReceived = 0

    private init(device: FrontendDevice, ring: consuming FrontRing<Request, Response>, channel: consuming EventChannel) {
        self.device = device
        events = channel.notifications.makeAsyncIterator()
        self.ring = ring
        self.channel = channel
    }

    /// Connects device `id` of `type` of the domain `system` runs in, as the toolstack
    /// described it: shares a ring of `pages` pages and an unbound port with the backend,
    /// publishes their numbers under `ringKey` and `portKey` together with `entries`, and
    /// completes the handshake (InitWait, Initialised, Connected).
    public static func connect(
        type: String,
        id: Int = 0,
        on system: XenSystem,
        pages: Int = 1,
        ringKey: String = "ring-ref",
        portKey: String = "event-channel",
        entries: [String: String] = [:],
        timeout: Duration = .seconds(30)
    ) async throws(XenGntError) -> SimulatedFrontend {
        let store = try XenStore(on: system)
        let device = try await FrontendDevice(type: type, id: id, store: store)
        let ring = try FrontRing<Request, Response>(
            sharing: try GrantAllocator(on: system).share(pages: pages, with: device.backendID)
        )
        let channel = try EventChannel.bindUnbound(remote: device.backendID, on: system)
        var published = entries
        if pages == 1 {
            published[ringKey] = "\(ring.refs[0].rawValue)"
        } else {
            for (index, ref) in ring.refs.enumerated() { published["\(ringKey)\(index)"] = "\(ref.rawValue)" }
        }
        published[portKey] = "\(channel.port)"
        let frontend = SimulatedFrontend(device: device, ring: ring, channel: channel)
        do {
            try await device.connect(publishing: published, timeout: timeout)
        } catch {
            await store.close()
            throw error
        }
        return frontend
    }

    /// Puts `requests` on the ring, publishes them, and notifies the backend if it asked to be.
    public mutating func send(_ requests: [Request]) throws(XenGntError) {
        for request in requests { try ring.enqueue(request) }
        if ring.publishRequests() {
            try channel.notify()
            notificationsSent += 1
        }
    }

    /// The next response, waiting on the port (after `RING_FINAL_CHECK_FOR_RESPONSES`) until
    /// the backend sends one.
    public mutating func response() async throws(XenGntError) -> Response {
        while true {
            if let response = try ring.nextResponse() { return response }
            if try ring.finalCheckForResponses() { continue }
            guard try await events.next() != nil else {
                throw XenGntError(.eventChannelClosed, .receiveEvent, port: channel.port)
            }
            eventsReceived += 1
        }
    }

    /// Disconnects (Closing, then Closed once the backend has followed), then withdraws the
    /// ring's grants, unbinds the port and closes the XenStore connection.
    public consuming func close(timeout: Duration = .seconds(30)) async throws(XenGntError) {
        let device = self.device
        do {
            try await device.close(timeout: timeout)
        } catch {
            await device.store.close()
            throw error
        }
        await device.store.close()
    }
}
