import XenGnt
public import XenGntBackend

/// One 64-byte displif slot (a request, a response or an event), as the rings carry it.
public struct DisplaySlot: BitwiseCopyable, Sendable {
    public var words: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0, 0, 0, 0, 0)
    public init() {}
    public init(_ bytes: [UInt8]) {
        withUnsafeMutableBytes(of: &words) { $0.copyBytes(from: bytes.prefix(64)) }
    }
    public var bytes: [UInt8] { withUnsafeBytes(of: words) { Array($0) } }
}

extension SimulatedDisplayFrontend {
    /// The frontend's side of the connection on the simulated Xen, as `xen-drm-front` makes it:
    /// per connector a one-page request ring and event page shared with the backend and two
    /// unbound ports, published under `N/req-ring-ref`, `N/req-event-channel`, `N/evt-ring-ref`
    /// and `N/evt-event-channel`; then the XenbusState handshake.
    public final class Connection: @unchecked Sendable {
        public let device: FrontendDevice
        final class Connector {
            var ring: FrontRing<DisplaySlot, DisplaySlot>?
            var events: EventPageReader<DisplaySlot>?
            var requestChannel: EventChannel?
            var eventChannel: EventChannel?
            var responses: EventChannelNotifications.Iterator
            init(
                ring: consuming FrontRing<DisplaySlot, DisplaySlot>,
                events: consuming EventPageReader<DisplaySlot>,
                requestChannel: consuming EventChannel,
                eventChannel: consuming EventChannel
            ) {
                responses = requestChannel.notifications.makeAsyncIterator()
                self.ring = consume ring
                self.events = consume events
                self.requestChannel = consume requestChannel
                self.eventChannel = consume eventChannel
            }
        }
        var connectors: [Connector] = []

        init(device: FrontendDevice) { self.device = device }

        /// Sends a request slot on `connector`'s ring and waits for its response; the events the
        /// backend posted meanwhile go to `events`.
        func exchange(_ slot: [UInt8], connector index: Int, events: ([UInt8], Int) -> Void) async throws -> [UInt8] {
            guard connectors.indices.contains(index) else { throw SimulatedDisplayError("no connector \(index)") }
            let connector = connectors[index]
            guard connector.ring != nil else { throw SimulatedDisplayError("ring \(index) closed") }
            try connector.ring!.enqueue(DisplaySlot(slot))
            if connector.ring!.publishRequests() { try connector.requestChannel?.notify() }
            while true {
                if let response = try connector.ring!.nextResponse() {
                    drainEvents(events)
                    return response.bytes
                }
                if try connector.ring!.finalCheckForResponses() { continue }
                guard try await connector.responses.next() != nil else { throw SimulatedDisplayError("channel \(index) closed") }
            }
        }

        func drainEvents(_ deliver: ([UInt8], Int) -> Void) {
            for (index, connector) in connectors.enumerated() {
                guard connector.events != nil else { continue }
                while let event = try? connector.events!.next() { deliver(event.bytes, index) }
            }
        }

        /// Closes the device (Closing, then Closed once the backend followed), then withdraws
        /// the pages and ports.
        public func close(timeout: Duration = .seconds(30)) async throws {
            defer {
                for connector in connectors {
                    if let channel = connector.eventChannel.take() { try? channel.unbind() }
                    if let channel = connector.requestChannel.take() { try? channel.unbind() }
                    if let page = connector.events.take() { try? page.detach() }
                    if let ring = connector.ring.take() { try? ring.detach() }
                }
                connectors = []
            }
            do { try await device.close(timeout: timeout) } catch {
                await device.store.close()
                throw error
            }
            await device.store.close()
        }
    }

    /// A frontend of device `id` in `domain` that reaches the backend through XenStore, rings and
    /// event channels on the simulated Xen (the device must exist: `XenSimulation.addDevice`,
    /// with `be-alloc` and `N/resolution` among its frontend entries, as libxl writes them).
    public static func connect(
        domain: SimulatedDomain,
        backendAllocates: Bool,
        connectors: Int = 1,
        id: Int = 0,
        timeout: Duration = .seconds(30)
    ) async throws -> (SimulatedDisplayFrontend, Connection) {
        let system = domain.system
        let store = try XenStore(on: system)
        let device = try await FrontendDevice(type: "vdispl", id: id, store: store)
        let connection = Connection(device: device)
        var published: [String: String] = [:]
        let allocator = try GrantAllocator(on: system)
        for index in 0..<connectors {
            let ring = try FrontRing<DisplaySlot, DisplaySlot>(sharing: try allocator.share(pages: 1, with: device.backendID))
            let events = try EventPageReader<DisplaySlot>(sharing: try allocator.share(pages: 1, with: device.backendID))
            let requestChannel = try EventChannel.bindUnbound(remote: device.backendID, on: system)
            let eventChannel = try EventChannel.bindUnbound(remote: device.backendID, on: system)
            published["\(index)/req-ring-ref"] = "\(ring.refs[0].rawValue)"
            published["\(index)/evt-ring-ref"] = "\(events.refs[0].rawValue)"
            published["\(index)/req-event-channel"] = "\(requestChannel.port)"
            published["\(index)/evt-event-channel"] = "\(eventChannel.port)"
            connection.connectors.append(
                .init(ring: ring, events: events, requestChannel: requestChannel, eventChannel: eventChannel)
            )
        }
        do {
            try await device.connect(publishing: published, timeout: timeout)
        } catch {
            try? await connection.close(timeout: .milliseconds(10))
            throw error
        }
        let frontend = SimulatedDisplayFrontend(domain: domain, backend: device.backendID, backendAllocates: backendAllocates)
        frontend.transport = { [weak frontend] slot, index in
            try await connection.exchange(slot, connector: index) { event, c in frontend?.receiveEvent(event, connector: c) }
        }
        return (frontend, connection)
    }
}
