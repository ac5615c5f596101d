internal import CXenBackend
import Logging
import Synchronization
import XenGnt
import XenGntBackend

/// One device's rings, event pages and event channels, per connector (noncopyable owners in
/// boxes, since an array cannot hold them), and the adapters the server sees.
final class ConnectorChannels: @unchecked Sendable {
    final class Connector {
        var ring: BackRing<xendispl_req, xendispl_resp>?
        var events: EventPageWriter<xendispl_evt>?
        var requestChannel: EventChannel?
        var eventChannel: EventChannel?
        let notifications: EventChannelNotifications
        init(
            ring: consuming BackRing<xendispl_req, xendispl_resp>,
            events: consuming EventPageWriter<xendispl_evt>,
            requestChannel: consuming EventChannel,
            eventChannel: consuming EventChannel
        ) {
            notifications = requestChannel.notifications
            self.ring = consume ring
            self.events = consume events
            self.requestChannel = consume requestChannel
            self.eventChannel = consume eventChannel
        }
    }
    private(set) var connectors: [Connector] = []

    func add(
        ring: consuming BackRing<xendispl_req, xendispl_resp>,
        events: consuming EventPageWriter<xendispl_evt>,
        requestChannel: consuming EventChannel,
        eventChannel: consuming EventChannel
    ) throws {
        connectors.append(Connector(ring: ring, events: events, requestChannel: requestChannel, eventChannel: eventChannel))
    }

    /// Serves connector `index`'s ring once, then notifies the frontend as the rings ask.
    func serve<R: DisplayResources>(_ index: Int, with server: inout DisplayDeviceServer<R>) throws(DisplayRefusal) {
        let connector = connectors[index]
        guard var ring = connector.ring.take() else { throw DisplayRefusal(.io, "ring \(index) released") }
        var pages = EventPages(channels: self)
        var adapter = RingAdapter(ring: ring)
        let pass: DisplayDeviceServer<R>.Pass
        do throws(DisplayRefusal) {
            pass = try server.serve(connector: index, ring: &adapter, events: &pages)
        } catch {
            ring = adapter.take()
            connector.ring = consume ring
            throw error
        }
        ring = adapter.take()
        connector.ring = consume ring
        if pass.notifyRequests { try? connector.requestChannel?.notify() }  // borrow
        for c in pass.notifyEvents where connectors.indices.contains(c) { try? connectors[c].eventChannel?.notify() }
    }

    /// Calls `body` with the connector index of each request notification (and once for each
    /// connector at the start: requests may wait already), until a notification stream ends
    /// (the channel was unbound) or the task is cancelled.
    func forEachNotification(_ body: @escaping (Int) throws(DisplayRefusal) -> Void) async throws {
        let (stream, continuation) = AsyncStream<Int>.makeStream()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, connector) in connectors.enumerated() {
                let notifications = connector.notifications
                group.addTask {
                    for try await _ in notifications { continuation.yield(index) }
                    continuation.finish()
                }
                continuation.yield(index)
            }
            for await index in stream {
                try Task.checkCancellation()
                try body(index)
            }
            group.cancelAll()
        }
    }

    func release(logger: Logger, key: FrontendKey) {
        for connector in connectors.reversed() {
            if let channel = connector.eventChannel.take() { try? channel.unbind() }
            if let channel = connector.requestChannel.take() { try? channel.unbind() }
            if let events = connector.events.take() { try? events.detach() }
            if let ring = connector.ring.take() { try? ring.detach() }
        }
        connectors = []
    }

    struct EventPages: DisplayEventPages {
        let channels: ConnectorChannels
        mutating func post(_ event: DisplayEvent, connector: Int) throws(DisplayRefusal) -> Bool {
            guard channels.connectors.indices.contains(connector) else { return false }
            var slot = xendispl_evt()
            withUnsafeMutableBytes(of: &slot) { event.encode(into: $0) }
            do { return try channels.connectors[connector].post(slot) } catch {
                throw DisplayRefusal(.io, "event page \(connector): \(error)")
            }
        }
    }
}

extension ConnectorChannels.Connector {
    /// Posts `event` on the page; true once it is there (then notify the frontend).
    func post(_ event: xendispl_evt) throws(XenGntError) -> Bool {
        guard var page = events.take() else { return false }
        let result = Result { () throws(XenGntError) -> Bool in try page.post(event) }
        events = consume page
        let posted = try result.get()
        if !posted { throw XenGntError(.ringOverflow, .produceRing, detail: "the event page is full") }
        return true
    }
}

/// `BackRing` as the server's request ring: each request copied out once, the final check done
/// before reporting the ring empty.
struct RingAdapter: DisplayRequestRing, ~Copyable {
    var ring: BackRing<xendispl_req, xendispl_resp>?
    init(ring: consuming BackRing<xendispl_req, xendispl_resp>) { self.ring = consume ring }
    consuming func take() -> BackRing<xendispl_req, xendispl_resp> { ring.take()! }

    mutating func nextRequest() throws(DisplayRefusal) -> DisplayRequest? {
        do {
            while true {
                if let request = try ring!.nextRequest() { return withUnsafeBytes(of: request) { DisplayRequest(decoding: $0) } }
                guard try ring!.finalCheckForRequests() else { return nil }
            }
        } catch {
            throw DisplayRefusal(.io, "request ring: \(error)")
        }
    }
    mutating func respond(_ response: DisplayResponse) throws(DisplayRefusal) {
        var slot = xendispl_resp()
        withUnsafeMutableBytes(of: &slot) { response.encode(into: $0) }
        do { try ring!.respond(slot) } catch { throw DisplayRefusal(.io, "request ring: \(error)") }
    }
    mutating func publishResponses() -> Bool { ring!.publishResponses() }
}
