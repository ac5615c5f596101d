public import XenGnt

/// A scripted vdispl frontend (Xen's `displif.h`, protocol 2) that behaves as Linux's
/// `xen-drm-front` does, in a simulated domain: it grants page directories and buffers
/// (`be-alloc=0`) or maps the backend's buffers (`be-alloc=1`), honours `data_ofs`, numbers its
/// requests per ring, modesets, flips, and accepts an `EVT_PG_FLIP` only with the next event id
/// of its connector (the driver drops any other, silently).
///
/// It writes and reads the 64-byte slots itself, from displif.h's layout, independently of the
/// backend's code. The slots travel through ``transport``: a function that delivers a request to
/// the backend and returns its response (a ring pair on the simulated Xen, or a direct call).
/// The backend's events come back through ``receiveEvent(_:connector:)``.
public final class SimulatedDisplayFrontend {
    /// Delivers a request slot on `connector`'s ring and returns the response slot.
    public typealias Transport = (_ request: [UInt8], _ connector: Int) async throws -> [UInt8]

    public let domain: SimulatedDomain
    public let backend: DomainID
    public let backendAllocates: Bool
    public var transport: Transport

    /// The next request id of each ring (`evt_next_id`).
    public private(set) var nextRequestID: [Int: UInt16] = [:]
    /// The next event id each connector accepts (`evt_id`).
    public private(set) var expectedEventID: [Int: UInt16] = [:]
    /// Events accepted, per connector: their framebuffer cookies in order.
    public private(set) var flipsCompleted: [Int: [UInt64]] = [:]
    /// Events dropped for an out-of-sequence id.
    public private(set) var eventsDropped = 0

    /// A buffer of the frontend's: its layout and where its pixels are.
    public struct Buffer {
        public let cookie: UInt64
        public let width: Int, height: Int, bitsPerPixel: Int
        public let pitch: Int
        public let dataOffset: Int
        public let size: Int
        public let directory: [GrantRef]
        /// `be-alloc=0`: the frontend's grants of the buffer pages.
        public let pages: [GrantRef]
        /// `be-alloc=1`: the backend's refs, read back from the directory.
        public var backendRefs: [GrantRef] = []
    }
    public internal(set) var buffers: [UInt64: Buffer] = [:]
    /// `be-alloc=1`: the frontend's mappings of the backend's buffers.
    var mappings: [UInt64: MappingBox] = [:]
    final class MappingBox {
        var mapping: GrantMapping?
        let bytes: UnsafeMutableRawBufferPointer
        init(_ m: consuming GrantMapping) {
            bytes = UnsafeMutableRawBufferPointer(start: m.baseAddress, count: m.byteCount)
            mapping = consume m
        }
    }
    var gntdev: GrantDevice?

    public init(
        domain: SimulatedDomain,
        backend: DomainID,
        backendAllocates: Bool,
        transport: @escaping Transport = { _, _ in [] }
    ) {
        self.domain = domain
        self.backend = backend
        self.backendAllocates = backendAllocates
        self.transport = transport
    }

    // MARK: Slots

    /// A request slot: `id`, `operation`, then little-endian fields at their displif offsets.
    public static func slot(id: UInt16, operation: UInt8, _ fields: [(offset: Int, value: UInt64, width: Int)]) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: 64)
        bytes[0] = UInt8(id & 0xff)
        bytes[1] = UInt8(id >> 8)
        bytes[2] = operation
        for field in fields {
            for i in 0..<field.width { bytes[field.offset + i] = UInt8(truncatingIfNeeded: field.value >> (8 * UInt64(i))) }
        }
        return bytes
    }

    static func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[offset + $1]) << (8 * UInt32($1)) }
    }
    static func u64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        (0..<8).reduce(0) { $0 | UInt64(bytes[offset + $1]) << (8 * UInt64($1)) }
    }

    /// A decoded response: the echoed id and operation, the status, `edid_sz`.
    public struct Response: Hashable, Sendable {
        public let id: UInt16
        public let operation: UInt8
        public let status: Int32
        public let edidSize: UInt32
    }

    /// Sends `operation` with `fields` on `connector`'s ring, as the driver does: the next id of
    /// that ring; a response whose id or operation differs is a protocol error.
    @discardableResult
    public func send(
        _ operation: UInt8,
        _ fields: [(offset: Int, value: UInt64, width: Int)],
        connector: Int = 0
    ) async throws -> Response {
        let id = nextRequestID[connector, default: 0]
        nextRequestID[connector] = id &+ 1
        let reply = try await transport(Self.slot(id: id, operation: operation, fields), connector)
        guard reply.count >= 12 else { throw SimulatedDisplayError("a \(reply.count)-byte response") }
        let response = Response(
            id: UInt16(reply[0]) | UInt16(reply[1]) << 8,
            operation: reply[2],
            status: Int32(bitPattern: Self.u32(reply, 4)),
            edidSize: Self.u32(reply, 8)
        )
        guard response.id == id, response.operation == operation else {
            throw SimulatedDisplayError("response id \(response.id) op \(response.operation) for request \(id) op \(operation)")
        }
        return response
    }

    /// An event slot from the backend's event page of `connector`: accepted only with the next id.
    public func receiveEvent(_ slot: [UInt8], connector: Int) {
        let id = UInt16(slot[0]) | UInt16(slot[1]) << 8
        let expected = expectedEventID[connector, default: 0]
        expectedEventID[connector] = expected &+ 1
        guard id == expected else {
            eventsDropped += 1
            return
        }
        if slot[2] == 0 { flipsCompleted[connector, default: []].append(Self.u64(slot, 8)) }
    }

    /// The frontend reconnected: ids start again at 0.
    public func resetSequence() {
        nextRequestID = [:]
        expectedEventID = [:]
    }
}

/// A protocol error the simulated frontend saw.
public struct SimulatedDisplayError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
