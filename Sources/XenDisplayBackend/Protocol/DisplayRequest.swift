/// One request of a frontend, copied out of the shared ring once and decoded (`struct
/// xendispl_req`): the id the response must echo, the operation byte, and the operation's
/// fields. Decoding never fails: an unknown operation is ``Body/unknown``, and the values are
/// judged later (``DisplayBufferLayout``, the backend's cookie tables).
public struct DisplayRequest: Hashable, Sendable {
    /// `id`, echoed in the response.
    public var id: UInt16
    /// `operation`, echoed in the response.
    public var operation: DisplayOperation
    /// The operation's fields.
    public var body: Body

    /// `XENDISPL_OP_DBUF_CREATE`.
    public struct BufferCreate: Hashable, Sendable {
        public var bufferCookie: UInt64
        public var width: UInt32
        public var height: UInt32
        public var bitsPerPixel: UInt32
        public var bufferSize: UInt32
        public var flags: UInt32
        public var directoryRef: UInt32
        public var dataOffset: UInt32

        public init(
            bufferCookie: UInt64,
            width: UInt32,
            height: UInt32,
            bitsPerPixel: UInt32,
            bufferSize: UInt32,
            flags: UInt32 = 0,
            directoryRef: UInt32,
            dataOffset: UInt32 = 0
        ) {
            self.bufferCookie = bufferCookie
            self.width = width
            self.height = height
            self.bitsPerPixel = bitsPerPixel
            self.bufferSize = bufferSize
            self.flags = flags
            self.directoryRef = directoryRef
            self.dataOffset = dataOffset
        }

        /// Whether the frontend asks the backend to allocate the buffer (`be-alloc=1`).
        public var backendAllocates: Bool { flags & DisplayProtocol.flagRequestAllocation != 0 }
    }

    /// `XENDISPL_OP_FB_ATTACH`.
    public struct FramebufferAttach: Hashable, Sendable {
        public var bufferCookie: UInt64
        public var framebufferCookie: UInt64
        public var width: UInt32
        public var height: UInt32
        /// A DRM fourcc (`XRGB8888` is `0x34325258`).
        public var pixelFormat: UInt32

        public init(bufferCookie: UInt64, framebufferCookie: UInt64, width: UInt32, height: UInt32, pixelFormat: UInt32) {
            self.bufferCookie = bufferCookie
            self.framebufferCookie = framebufferCookie
            self.width = width
            self.height = height
            self.pixelFormat = pixelFormat
        }
    }

    /// `XENDISPL_OP_SET_CONFIG`: a framebuffer cookie of 0 (with everything else 0) turns the
    /// connector off.
    public struct Configuration: Hashable, Sendable {
        public var framebufferCookie: UInt64
        public var x: UInt32
        public var y: UInt32
        public var width: UInt32
        public var height: UInt32
        public var bitsPerPixel: UInt32

        public init(framebufferCookie: UInt64, x: UInt32 = 0, y: UInt32 = 0, width: UInt32, height: UInt32, bitsPerPixel: UInt32)
        {
            self.framebufferCookie = framebufferCookie
            self.x = x
            self.y = y
            self.width = width
            self.height = height
            self.bitsPerPixel = bitsPerPixel
        }

        /// Whether the request turns the connector off.
        public var disables: Bool { framebufferCookie == 0 }
    }

    /// `XENDISPL_OP_GET_EDID`.
    public struct EdidRequest: Hashable, Sendable {
        public var bufferSize: UInt32
        public var directoryRef: UInt32
        public init(bufferSize: UInt32, directoryRef: UInt32) {
            self.bufferSize = bufferSize
            self.directoryRef = directoryRef
        }
    }

    public enum Body: Hashable, Sendable {
        case bufferCreate(BufferCreate)
        case bufferDestroy(bufferCookie: UInt64)
        case framebufferAttach(FramebufferAttach)
        case framebufferDetach(framebufferCookie: UInt64)
        case setConfiguration(Configuration)
        case pageFlip(framebufferCookie: UInt64)
        case getEdid(EdidRequest)
        /// An operation this backend does not know; answered `-EOPNOTSUPP`.
        case unknown
    }

    public init(id: UInt16, _ body: Body, operation: DisplayOperation? = nil) {
        self.id = id
        self.body = body
        self.operation = operation ?? body.operation
    }

    /// Decodes a 64-byte slot (shorter input is zero-padded, longer input is cut).
    public init(decoding bytes: UnsafeRawBufferPointer) {
        self = SlotBytes.reading(bytes) { Self.decodeSlot($0) }
    }

    /// Decodes a 64-byte slot given as bytes.
    public init(decoding bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { DisplayRequest(decoding: $0) }
    }

    private static func decodeSlot(_ s: UnsafeRawBufferPointer) -> DisplayRequest {
        func u32(_ offset: Int) -> UInt32 { SlotBytes.load(s, offset, as: UInt32.self) }
        func u64(_ offset: Int) -> UInt64 { SlotBytes.load(s, offset, as: UInt64.self) }
        let id = SlotBytes.load(s, 0, as: UInt16.self)
        let operation = DisplayOperation(rawValue: s[2])
        let body: Body
        switch operation {
        case .dbufCreate:
            body = .bufferCreate(
                BufferCreate(
                    bufferCookie: u64(8),
                    width: u32(16),
                    height: u32(20),
                    bitsPerPixel: u32(24),
                    bufferSize: u32(28),
                    flags: u32(32),
                    directoryRef: u32(36),
                    dataOffset: u32(40)
                )
            )
        case .dbufDestroy: body = .bufferDestroy(bufferCookie: u64(8))
        case .fbAttach:
            body = .framebufferAttach(
                FramebufferAttach(
                    bufferCookie: u64(8),
                    framebufferCookie: u64(16),
                    width: u32(24),
                    height: u32(28),
                    pixelFormat: u32(32)
                )
            )
        case .fbDetach: body = .framebufferDetach(framebufferCookie: u64(8))
        case .setConfig:
            body = .setConfiguration(
                Configuration(
                    framebufferCookie: u64(8),
                    x: u32(16),
                    y: u32(20),
                    width: u32(24),
                    height: u32(28),
                    bitsPerPixel: u32(32)
                )
            )
        case .pageFlip: body = .pageFlip(framebufferCookie: u64(8))
        case .getEdid: body = .getEdid(EdidRequest(bufferSize: u32(8), directoryRef: u32(12)))
        default: body = .unknown
        }
        return DisplayRequest(id: id, body, operation: operation)
    }

    /// The 64-byte slot, as a frontend writes it (the simulated frontend and the tests use this).
    public var encoded: [UInt8] {
        var slot = [UInt8](repeating: 0, count: DisplayProtocol.slotSize)
        slot.withUnsafeMutableBytes { s in
            func u32(_ value: UInt32, _ offset: Int) { SlotBytes.store(value, s, offset) }
            func u64(_ value: UInt64, _ offset: Int) { SlotBytes.store(value, s, offset) }
            SlotBytes.store(id, s, 0)
            s[2] = operation.rawValue
            switch body {
            case .bufferCreate(let r):
                u64(r.bufferCookie, 8)
                u32(r.width, 16)
                u32(r.height, 20)
                u32(r.bitsPerPixel, 24)
                u32(r.bufferSize, 28)
                u32(r.flags, 32)
                u32(r.directoryRef, 36)
                u32(r.dataOffset, 40)
            case .bufferDestroy(let cookie): u64(cookie, 8)
            case .framebufferAttach(let r):
                u64(r.bufferCookie, 8)
                u64(r.framebufferCookie, 16)
                u32(r.width, 24)
                u32(r.height, 28)
                u32(r.pixelFormat, 32)
            case .framebufferDetach(let cookie): u64(cookie, 8)
            case .setConfiguration(let r):
                u64(r.framebufferCookie, 8)
                u32(r.x, 16)
                u32(r.y, 20)
                u32(r.width, 24)
                u32(r.height, 28)
                u32(r.bitsPerPixel, 32)
            case .pageFlip(let cookie): u64(cookie, 8)
            case .getEdid(let r):
                u32(r.bufferSize, 8)
                u32(r.directoryRef, 12)
            case .unknown: break
            }
        }
        return slot
    }
}

extension DisplayRequest.Body {
    /// The operation byte a frontend writes for this body (`.unknown` has none: 0xff).
    public var operation: DisplayOperation {
        switch self {
        case .bufferCreate: .dbufCreate
        case .bufferDestroy: .dbufDestroy
        case .framebufferAttach: .fbAttach
        case .framebufferDetach: .fbDetach
        case .setConfiguration: .setConfig
        case .pageFlip: .pageFlip
        case .getEdid: .getEdid
        case .unknown: DisplayOperation(rawValue: 0xff)
        }
    }
}

/// A response (`struct xendispl_resp`): the request's id and operation echoed, the status, and
/// for `GET_EDID` the size of the EDID written.
public struct DisplayResponse: Hashable, Sendable {
    public var id: UInt16
    public var operation: DisplayOperation
    public var status: DisplayStatus
    /// `op.get_edid.edid_sz` (0 for every other operation).
    public var edidSize: UInt32

    public init(id: UInt16, operation: DisplayOperation, status: DisplayStatus, edidSize: UInt32 = 0) {
        self.id = id
        self.operation = operation
        self.status = status
        self.edidSize = edidSize
    }

    /// The response to `request`.
    public init(answering request: DisplayRequest, _ status: DisplayStatus, edidSize: UInt32 = 0) {
        self.init(id: request.id, operation: request.operation, status: status, edidSize: edidSize)
    }

    public var encoded: [UInt8] { SlotBytes.array { encode(into: $0) } }

    /// Writes the slot into `destination` (a `struct xendispl_resp`), without allocating;
    /// bytes past the fields are zeroed, bytes past `destination` are not written.
    public func encode(into destination: UnsafeMutableRawBufferPointer) {
        SlotBytes.withSlot(into: destination) { s in
            SlotBytes.store(id, s, 0)
            s[2] = operation.rawValue
            SlotBytes.store(status.rawValue, s, 4)
            SlotBytes.store(edidSize, s, 8)
        }
    }

    public init(decoding bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { bytes in
            SlotBytes.reading(bytes) { s in
                DisplayResponse(
                    id: SlotBytes.load(s, 0, as: UInt16.self),
                    operation: DisplayOperation(rawValue: s[2]),
                    status: DisplayStatus(rawValue: SlotBytes.load(s, 4, as: Int32.self)),
                    edidSize: SlotBytes.load(s, 8, as: UInt32.self)
                )
            }
        }
    }
}

/// An event on a connector's event page (`struct xendispl_evt`); displif defines one,
/// `XENDISPL_EVT_PG_FLIP`, sent once a flipped framebuffer is on screen.
public struct DisplayEvent: Hashable, Sendable {
    /// Counts 0, 1, 2… per connector from each (re)connect; the driver drops any other.
    public var id: UInt16
    public var type: UInt8
    public var framebufferCookie: UInt64

    public init(id: UInt16, type: UInt8 = DisplayProtocol.eventPageFlip, framebufferCookie: UInt64) {
        self.id = id
        self.type = type
        self.framebufferCookie = framebufferCookie
    }

    public var encoded: [UInt8] { SlotBytes.array { encode(into: $0) } }

    /// Writes the slot into `destination` (a `struct xendispl_evt`), without allocating;
    /// bytes past the fields are zeroed, bytes past `destination` are not written.
    public func encode(into destination: UnsafeMutableRawBufferPointer) {
        SlotBytes.withSlot(into: destination) { s in
            SlotBytes.store(id, s, 0)
            s[2] = type
            SlotBytes.store(framebufferCookie, s, 8)
        }
    }

    public init(decoding bytes: [UInt8]) {
        self = bytes.withUnsafeBytes { bytes in
            SlotBytes.reading(bytes) { s in
                DisplayEvent(
                    id: SlotBytes.load(s, 0, as: UInt16.self),
                    type: s[2],
                    framebufferCookie: SlotBytes.load(s, 8, as: UInt64.self)
                )
            }
        }
    }
}
