/// The constants of Xen's PV display protocol (`xen/io/displif.h`, protocol version 2) that the
/// backend and the simulated frontend share. Every request, response and event is a 64-byte
/// slot; every integer in it is little-endian (x86 and Arm, the only hosts of the protocol).
public enum DisplayProtocol {
    /// The device type in XenStore paths (`backend/vdispl/...`, `device/vdispl/...`).
    public static let deviceType = "vdispl"
    /// What the backend publishes as `versions`.
    public static let backendVersions = "1,2"
    /// The newest version this backend speaks.
    public static let newestVersion = 2
    /// Bytes of one request, response or event.
    public static let slotSize = 64
    /// Bytes of a grant page.
    public static let pageSize = 4096
    /// `struct xendispl_page_directory`: a next-page ref, then as many refs as fit.
    public static let refsPerDirectoryPage = (pageSize - 4) / 4
    /// `GRANT_INVALID_REF`: the end of a page directory chain, never a buffer page.
    public static let invalidRef: UInt32 = 0
    /// `XENDISPL_DBUF_FLG_REQ_ALLOC`: the backend allocates the buffer (`be-alloc=1`).
    public static let flagRequestAllocation: UInt32 = 1 << 0
    /// `XENDISPL_EDID_BLOCK_SIZE`.
    public static let edidBlockSize = 128
    /// `XENDISPL_EDID_MAX_SIZE`: the least an EDID buffer of `GET_EDID` may hold.
    public static let edidMaxSize = 128 * 256
    /// `XENDISPL_EVT_PG_FLIP`.
    public static let eventPageFlip: UInt8 = 0x00
    /// `struct xendispl_event_page`: `in_cons`, `in_prod`, reserved; events follow.
    public static let eventPageHeaderSize = 64
    /// `XENDISPL_IN_RING_LEN`: events an event page holds (63, not a power of two).
    public static let eventPageCapacity = (pageSize - eventPageHeaderSize) / slotSize

    /// XenStore field names (`XENDISPL_FIELD_*`).
    public enum Field {
        public static let backendVersions = "versions"
        public static let frontendVersion = "version"
        public static let requestRingRef = "req-ring-ref"
        public static let requestChannel = "req-event-channel"
        public static let eventRingRef = "evt-ring-ref"
        public static let eventChannel = "evt-event-channel"
        public static let resolution = "resolution"
        public static let backendAllocation = "be-alloc"
        public static let uniqueID = "unique-id"
    }
}

/// A request's `operation` byte (`XENDISPL_OP_*`). Unknown values are kept, so the backend can
/// answer them with `-EOPNOTSUPP` and echo the byte.
public struct DisplayOperation: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let dbufCreate = DisplayOperation(rawValue: 0x10)
    public static let dbufDestroy = DisplayOperation(rawValue: 0x11)
    public static let fbAttach = DisplayOperation(rawValue: 0x12)
    public static let fbDetach = DisplayOperation(rawValue: 0x13)
    public static let setConfig = DisplayOperation(rawValue: 0x14)
    public static let pageFlip = DisplayOperation(rawValue: 0x15)
    /// Protocol version 2 and later.
    public static let getEdid = DisplayOperation(rawValue: 0x16)

    public var description: String {
        switch self {
        case .dbufCreate: "DBUF_CREATE"
        case .dbufDestroy: "DBUF_DESTROY"
        case .fbAttach: "FB_ATTACH"
        case .fbDetach: "FB_DETACH"
        case .setConfig: "SET_CONFIG"
        case .pageFlip: "PG_FLIP"
        case .getEdid: "GET_EDID"
        default: "operation 0x" + String(rawValue, radix: 16)
        }
    }
}

/// A response's `status`: 0, or a negative Xen errno (`xen/include/public/errno.h`, whose
/// values for these errors equal Linux's).
public struct DisplayStatus: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let ok = DisplayStatus(rawValue: 0)
    public static let permission = DisplayStatus(rawValue: -1)  // EPERM
    public static let notFound = DisplayStatus(rawValue: -2)  // ENOENT
    public static let io = DisplayStatus(rawValue: -5)  // EIO
    public static let tooBig = DisplayStatus(rawValue: -7)  // E2BIG
    public static let noMemory = DisplayStatus(rawValue: -12)  // ENOMEM
    public static let fault = DisplayStatus(rawValue: -14)  // EFAULT
    public static let busy = DisplayStatus(rawValue: -16)  // EBUSY
    public static let exists = DisplayStatus(rawValue: -17)  // EEXIST
    public static let noDevice = DisplayStatus(rawValue: -19)  // ENODEV
    public static let invalid = DisplayStatus(rawValue: -22)  // EINVAL
    public static let notSupported = DisplayStatus(rawValue: -95)  // EOPNOTSUPP

    public var description: String {
        switch self {
        case .ok: "0"
        case .permission: "-EPERM"
        case .notFound: "-ENOENT"
        case .io: "-EIO"
        case .tooBig: "-E2BIG"
        case .noMemory: "-ENOMEM"
        case .fault: "-EFAULT"
        case .busy: "-EBUSY"
        case .exists: "-EEXIST"
        case .noDevice: "-ENODEV"
        case .invalid: "-EINVAL"
        case .notSupported: "-EOPNOTSUPP"
        default: String(rawValue)
        }
    }
}

/// Why a request is refused: the status the frontend gets, and a sentence for the log.
public struct DisplayRefusal: Error, Hashable, Sendable, CustomStringConvertible {
    public let status: DisplayStatus
    public let reason: String
    public init(_ status: DisplayStatus, _ reason: String) {
        self.status = status
        self.reason = reason
    }
    public var description: String { "\(status): \(reason)" }
}

/// Little-endian loads and stores on a 64-byte slot, by offset. Loads never trap: a slot is
/// always 64 bytes, and every field lies inside it.
enum SlotBytes {
    static func load<T: FixedWidthInteger>(_ bytes: UnsafeRawBufferPointer, _ offset: Int, as: T.Type) -> T {
        T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    static func store<T: FixedWidthInteger>(_ value: T, _ bytes: UnsafeMutableRawBufferPointer, _ offset: Int) {
        bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
    /// Fills a zeroed 64-byte slot on the stack with `body`, then copies as much of it as
    /// `destination` holds: no allocation, and no store past `destination`.
    static func withSlot(into destination: UnsafeMutableRawBufferPointer, _ body: (UnsafeMutableRawBufferPointer) -> Void) {
        var slot = zeroSlot
        withUnsafeMutableBytes(of: &slot) { s in
            body(s)
            destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(s).prefix(destination.count)))
        }
    }
    /// Calls `body` with `bytes` as a 64-byte slot: read in place when it holds a whole slot
    /// (longer input is cut), else zero-padded on the stack. No allocation either way.
    static func reading<T>(_ bytes: UnsafeRawBufferPointer, _ body: (UnsafeRawBufferPointer) -> T) -> T {
        if bytes.count >= DisplayProtocol.slotSize {
            return body(UnsafeRawBufferPointer(rebasing: bytes.prefix(DisplayProtocol.slotSize)))
        }
        var slot = zeroSlot
        withUnsafeMutableBytes(of: &slot) { $0.copyMemory(from: bytes) }
        return withUnsafeBytes(of: slot) { body($0) }
    }
    /// A slot as a new array, written by `encode` (for the frontend's side and the tests).
    static func array(_ encode: (UnsafeMutableRawBufferPointer) -> Void) -> [UInt8] {
        var slot = [UInt8](repeating: 0, count: DisplayProtocol.slotSize)
        slot.withUnsafeMutableBytes { encode($0) }
        return slot
    }
    /// 64 zeroed bytes on the stack.
    private typealias Slot = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
    private static var zeroSlot: Slot { (0, 0, 0, 0, 0, 0, 0, 0) }
}
