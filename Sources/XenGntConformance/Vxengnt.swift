import CXenBackend
import Synchronization
import XenGnt
import XenGntBackend

/// `vxengnt`, the lab's test device: no kernel driver claims it, so a Swift frontend in a DomU
/// and a Swift backend in Dom0 can talk over a one-page `ring.h` ring (`cxb_vxengnt_*` in the
/// shim: 64-byte requests, 32 slots) and one event channel. The frontend publishes `ring-ref`
/// and `event-channel`; each request carries a sequence number and up to 48 payload bytes,
/// and the response echoes the sequence with a checksum of the payload.
enum Vxengnt {
    typealias Request = cxb_vxengnt_request
    typealias Response = cxb_vxengnt_response

    /// Answer at once.
    static let echo: UInt32 = 1
    /// The backend waits (for the hostile test) before answering.
    static let hold: UInt32 = 2

    static func request(_ sequence: UInt64, operation: UInt32 = echo) -> Request {
        var request = Request()
        request.sequence = sequence
        request.operation = operation
        request.length = 48
        withUnsafeMutableBytes(of: &request.payload) { bytes in
            for i in 0..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: sequence &* 131 &+ UInt64(i) &* 7) }
        }
        return request
    }

    /// The checksum of a request's payload (its length is clamped: the copy is checked, never
    /// trusted).
    static func checksum(_ request: Request) -> UInt32 {
        var copy = request
        let length = Int(min(request.length, 48))
        return withUnsafeBytes(of: &copy.payload) { bytes in
            bytes.prefix(length).reduce(UInt32(truncatingIfNeeded: request.sequence)) { $0 &* 31 &+ UInt32($1) }
        }
    }

    static func response(to request: Request) -> Response {
        var response = Response()
        response.sequence = request.sequence
        response.status = request.operation == echo || request.operation == hold ? 0 : -22
        response.checksum = checksum(request)
        return response
    }

    /// What a backend counted.
    final class Counters: Sendable {
        private let values = Locked<[String: Int]>([:])
        func add(_ key: String, _ amount: Int = 1) { values.withLock { $0[key, default: 0] += amount } }
        subscript(_ key: String) -> Int { values.withLock { $0[key] ?? 0 } }
        var all: [String: Int] { values.withLock { $0 } }
    }

    /// The backend's side of one connection: maps the ring, binds the port, says Connected, and
    /// serves until cancelled. `hold` runs for a `hold` request after it was copied and before
    /// it is answered.
    static func serve(
        _ device: BackendDevice,
        on system: XenSystem,
        counters: Counters,
        hold: (@Sendable (Request) async throws -> Void)? = nil
    ) async throws {
        let ref = try await device.grantRef("ring-ref")
        let port = try await device.port("event-channel")
        let gntdev = try GrantDevice(on: system)
        var ring = try BackRing<Request, Response>(mapping: try gntdev.map([ref], from: device.frontendID))
        let channel = try EventChannel.bindInterdomain(remote: device.frontendID, port: port, on: system)
        try await device.setConnected()
        counters.add("connections")
        try await pass(&ring, channel, counters, hold)
        for try await _ in channel.notifications {
            counters.add("events")
            try await pass(&ring, channel, counters, hold)
        }
    }

    /// Takes every request, answers, publishes, and ends with the final check.
    private static func pass(
        _ ring: inout BackRing<Request, Response>,
        _ channel: borrowing EventChannel,
        _ counters: Counters,
        _ hold: (@Sendable (Request) async throws -> Void)?
    ) async throws {
        repeat {
            while let request = try ring.nextRequest() {
                if request.operation == Self.hold, let hold { try await hold(request) }
                try ring.respond(response(to: request))
                counters.add("requests")
            }
            if ring.publishResponses() {
                try channel.notify()
                counters.add("notifications")
            }
        } while try ring.finalCheckForRequests()
    }
}

/// A Swift frontend of `vxengnt`: its ring, its port, and the handshake.
struct VxengntFrontend: ~Copyable {
    let device: FrontendDevice
    var ring: FrontRing<Vxengnt.Request, Vxengnt.Response>
    let channel: EventChannel
    var events: EventChannelNotifications.Iterator
    var nextSequence: UInt64 = 0
    var expected: UInt64 = 0
    /// Notifications this frontend sent, and events it received.
    var notificationsSent = 0
    var eventsReceived = 0

    init(device: FrontendDevice, ring: consuming FrontRing<Vxengnt.Request, Vxengnt.Response>, channel: consuming EventChannel) {
        self.device = device
        self.events = channel.notifications.makeAsyncIterator()
        self.ring = ring
        self.channel = channel
    }

    /// Shares a ring page and a port with the backend and connects.
    static func connect(
        type: String,
        id: Int,
        store: XenStore,
        system: XenSystem,
        timeout: Duration = .seconds(60)
    ) async throws -> VxengntFrontend {
        let device = try await FrontendDevice(type: type, id: id, store: store)
        let ring = try FrontRing<Vxengnt.Request, Vxengnt.Response>(
            sharing: try GrantAllocator(on: system).share(pages: 1, with: device.backendID)
        )
        let channel = try EventChannel.bindUnbound(remote: device.backendID, on: system)
        let entries = ["ring-ref": "\(ring.refs[0].rawValue)", "event-channel": "\(channel.port)"]
        let frontend = VxengntFrontend(device: device, ring: ring, channel: channel)
        try await device.connect(publishing: entries, timeout: timeout)
        return frontend
    }

    /// Sends `count` requests with at most `window` unanswered at a time (the ring's size:
    /// as many per notification as it takes; 1: strictly one request, one response), and
    /// checks every response: in order, with the right checksum.
    mutating func exchange(_ count: Int, window: Int, operation: UInt32 = Vxengnt.echo, progress: Progress? = nil) async throws {
        let last = nextSequence + UInt64(count)
        while expected < last {
            while nextSequence < last, ring.freeSlots > 0, nextSequence - expected < UInt64(window) {
                try ring.enqueue(Vxengnt.request(nextSequence, operation: operation))
                nextSequence += 1
            }
            if ring.publishRequests() {
                try channel.notify()
                notificationsSent += 1
            }
            var taken = 0
            while let response = try ring.nextResponse() {
                try check(response.sequence == expected, "response \(response.sequence) where \(expected) was next")
                try check(
                    response.status == 0
                        && response.checksum == Vxengnt.checksum(Vxengnt.request(expected, operation: operation)),
                    "response \(expected): status \(response.status), checksum \(response.checksum)"
                )
                expected += 1
                taken += 1
                progress?.set(Int(expected))
            }
            if taken > 0 { continue }
            if try ring.finalCheckForResponses() { continue }
            guard try await events.next() != nil else { throw ConformanceFailure("the port was unbound") }
            eventsReceived += 1
        }
    }
}

extension VxengntFrontend {
    /// The ring's shared page, for a frontend that breaks the protocol on purpose.
    var sharedPage: UnsafeMutableRawPointer { ring.unsafeSharedMemory }

    /// The address of the slot of request number `index` (counted from 0 on this ring).
    func slot(_ index: UInt64) -> UnsafeMutableRawPointer {
        sharedPage + RingGeometry.headerSize + Int(index % UInt64(ring.slotCount)) * ring.geometry.slotSize
    }

    /// Puts one request on the ring, publishes it and notifies.
    mutating func send(_ request: Vxengnt.Request) throws {
        try ring.enqueue(request)
        nextSequence += 1
        _ = ring.publishRequests()
        try channel.notify()
        notificationsSent += 1
    }

    /// Waits for the next response (sleeping on the port after RING_FINAL_CHECK_FOR_RESPONSES).
    mutating func response() async throws -> Vxengnt.Response {
        while true {
            if let response = try ring.nextResponse() {
                expected += 1
                return response
            }
            if try ring.finalCheckForResponses() { continue }
            guard try await events.next() != nil else { throw ConformanceFailure("the port was unbound") }
            eventsReceived += 1
        }
    }
}
