internal import CXenBackend
public import XenGnt

/// The memory a ring or event page lives on, owned by it: pages the peer granted (mapped
/// through gntdev: the back end's side), pages this domain shares (gntalloc: the front end's
/// side), or memory the caller keeps alive.
enum SharedMemory: ~Copyable {
    case mapping(GrantMapping)
    case shared(SharedPages)
    case borrowed

    /// Releases what is owned, reporting errors.
    consuming func release() throws(XenGntError) {
        switch consume self {
        case .mapping(let mapping): try mapping.unmap()
        case .shared(let pages): try pages.unshare()
        case .borrowed: break
        }
    }
}

/// Accesses to memory another domain writes. Every load of a peer's index is a C11 atomic
/// load from the shim (the compiler may neither hoist it out of a loop nor repeat it), and the
/// barriers are where `ring.h` has `xen_mb()`, `xen_rmb()` and `xen_wmb()`.
enum Shared {
    /// The peer's index: an acquire load (what the peer wrote before publishing the index is
    /// seen after it).
    @inline(__always)
    static func loadAcquire(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UInt32 {
        cxb_load_acquire(base + offset)
    }

    @inline(__always)
    static func loadRelaxed(_ base: UnsafeMutableRawPointer, _ offset: Int) -> UInt32 {
        cxb_load_relaxed(base + offset)
    }

    /// Publishes an index: `xen_wmb()` then the store (a release store).
    @inline(__always)
    static func storeRelease(_ base: UnsafeMutableRawPointer, _ offset: Int, _ value: UInt32) {
        cxb_store_release(base + offset, value)
    }

    @inline(__always)
    static func storeRelaxed(_ base: UnsafeMutableRawPointer, _ offset: Int, _ value: UInt32) {
        cxb_store_relaxed(base + offset, value)
    }

    /// `xen_mb()`: a sequentially consistent fence.
    @inline(__always)
    static func fullBarrier() { cxb_mb() }

    /// Copies one entry out of shared memory, exactly once (`RING_COPY_REQUEST`).
    @inline(__always)
    static func copy<Entry>(_ type: Entry.Type, from address: UnsafeRawPointer) -> Entry {
        withUnsafeTemporaryAllocation(of: Entry.self, capacity: 1) { buffer in
            let raw = UnsafeMutableRawPointer(buffer.baseAddress!)
            cxb_copy_from_shared(raw, address, MemoryLayout<Entry>.size)
            return raw.load(as: Entry.self)
        }
    }

    /// Writes one entry into shared memory.
    @inline(__always)
    static func store<Entry>(_ entry: Entry, to address: UnsafeMutableRawPointer) {
        withUnsafeBytes(of: entry) { cxb_copy_to_shared(address, $0.baseAddress, $0.count) }
    }
}

/// The geometry of a `ring.h` ring: a 64-byte header (`req_prod`, `req_event`, `rsp_prod`,
/// `rsp_event`, private bytes, padding), then slots holding the union of a request and a
/// response, as many as fit, rounded down to a power of two (`__CONST_RING_SIZE`).
public struct RingGeometry: Sendable, Hashable {
    /// Bytes before the first slot (64).
    public static let headerSize = Int(CXB_RING_HEADER_SIZE)
    static let requestProducer = Int(CXB_RING_REQ_PROD)
    static let requestEvent = Int(CXB_RING_REQ_EVENT)
    static let responseProducer = Int(CXB_RING_RSP_PROD)
    static let responseEvent = Int(CXB_RING_RSP_EVENT)

    /// Bytes per slot: the size of the request/response union.
    public let slotSize: Int
    /// Slots in the ring, a power of two.
    public let slotCount: Int

    /// The ring of `Request`s and `Response`s over `byteCount` bytes.
    ///
    /// - Throws: `XenGntError/Code/ringTooSmall` when not one slot fits.
    public init<Request, Response>(
        _ request: Request.Type,
        _ response: Response.Type,
        byteCount: Int
    ) throws(XenGntError) {
        try Self.requirePlainData(Request.self)
        try Self.requirePlainData(Response.self)
        let alignment = max(MemoryLayout<Request>.alignment, MemoryLayout<Response>.alignment)
        let size = max(MemoryLayout<Request>.size, MemoryLayout<Response>.size, 1)
        slotSize = (size + alignment - 1) / alignment * alignment
        let fit = byteCount >= Self.headerSize ? (byteCount - Self.headerSize) / slotSize : 0
        guard fit >= 1 else {
            throw XenGntError(
                .ringTooSmall,
                .attachRing,
                length: byteCount,
                detail: "a \(Self.headerSize)-byte header and \(slotSize)-byte slots"
            )
        }
        var count = 1
        while count * 2 <= fit { count *= 2 }
        slotCount = count
    }
}

extension RingGeometry {
    /// Entries are copied as bytes to and from another domain's memory, so they must be plain
    /// data: a protocol's C structs (which Swift does not always see as `BitwiseCopyable`:
    /// displif's have anonymous unions), never a type with references.
    static func requirePlainData<Entry>(_ type: Entry.Type) throws(XenGntError) {
        guard _isPOD(type) else {
            throw XenGntError(
                .invalidArgument,
                .attachRing,
                detail:
                    "\(type) is not plain data; a ring holds a protocol's C structs (no references, no Swift strings or arrays)"
            )
        }
    }
}

extension XenGntError {
    /// A violation of the ring protocol by the peer.
    static func ring(_ code: Code, _ operation: Operation, slots: Int, _ detail: String) -> XenGntError {
        XenGntError(code, operation, limit: slots, detail: detail)
    }
}

extension FrontRing {
    /// The ring's shared memory, for tests that play a hostile frontend.
    package var unsafeSharedMemory: UnsafeMutableRawPointer { base }
}

extension BackRing {
    /// The ring's shared memory, for tests that play a hostile backend.
    package var unsafeSharedMemory: UnsafeMutableRawPointer { base }
}
