public import Logging
public import XenGnt

/// The display resources of one frontend device over XenGnt's grant devices, in the backend
/// domain:
///
/// - **be-alloc=0** (the frontend's pages): each buffer is mapped once at `DBUF_CREATE` and
///   each flip copies the frame into the connector's display buffer (the copy path, counted);
///   with a KMS sink that takes an export, the pages are exported at `FB_ATTACH` and scanned
///   out (XenGntDRM), still mapped for the copy a refusing display (vkms) falls back to.
/// - **be-alloc=1** (`XENDISPL_DBUF_FLG_REQ_ALLOC`): a buffer of the backend's own (a dumb
///   buffer of the KMS sink's device, else a udmabuf, else a system DMA-heap buffer) with
///   exactly the frontend's layout, imported to refs for the frontend, which draws straight
///   into it: the sink reads it where it is, zero-copy even in a PV backend domain.
///
/// Directory pages are mapped one at a time, copied once and unmapped at once.
public struct GrantDisplayResources<Sink: DisplaySink>: DisplayResources {
    public let gntdev: GrantDevice
    public let frontend: DomainID
    public let key: FrontendKey
    public let counters: DisplayCounters
    public var sink: Sink
    /// Export or copy, for frontend-allocated buffers.
    public internal(set) var pathPolicy: BufferPathPolicy
    let system: XenSystem
    let logger: Logger

    final class Buffer {
        let layout: DisplayBufferLayout
        var frontendPages: GrantMapping?
        /// The frontend's refs (for an export at `FB_ATTACH`).
        var refs: [UInt32] = []
        var local: DmaBufImport?
        var localMapping: DmaBufMapping?
        /// The pixels: the frontend's mapped pages or the local buffer's mapping, whichever
        /// this buffer owns (valid while it does).
        var bytes = UnsafeRawBufferPointer(start: nil, count: 0)
        /// A buffer of the sink's own (a dumb buffer of the KMS device), which the sink releases.
        var sinkShared = false
        init(layout: DisplayBufferLayout) { self.layout = layout }
        var backendAllocated: Bool { local != nil || sinkShared }
    }
    struct Framebuffer {
        let buffer: UInt64
        let width: Int, height: Int
        let format: DisplayPixelFormat
        /// Whether the sink holds it as an export of the frontend's pages.
        var exported = false
    }
    var buffers: [UInt64: Buffer] = [:]
    var framebuffers: [UInt64: Framebuffer] = [:]
    /// Each connector's display buffer on the copy path: the frame as last shown.
    var displayBuffers: [Int: [UInt8]] = [:]
    var loggedPath = false
    var patternsSeen: Set<String> = []
    var localSource: LocalBufferSource?

    public init(
        gntdev: GrantDevice,
        frontend: DomainID,
        key: FrontendKey,
        counters: DisplayCounters,
        sink: Sink,
        system: XenSystem = .kernel,
        pathChoice: BufferPathChoice = .auto,
        backendGuest: GuestType = .pv,
        logger: Logger
    ) {
        pathPolicy = BufferPathPolicy(choice: pathChoice, backendGuest: backendGuest, sinkTakesExports: sink.takesExports)
        self.gntdev = gntdev
        self.frontend = frontend
        self.key = key
        self.counters = counters
        self.sink = sink
        self.system = system
        self.logger = logger
    }

    /// A refusal for a failed XenGnt call: bad grants are the frontend's fault (`-EFAULT`),
    /// out of memory `-ENOMEM`, anything else `-EIO`.
    static func refusal(_ error: XenGntError, _ what: String) -> DisplayRefusal {
        let status: DisplayStatus =
            switch error.code {
            case .badGrants, .reservedDomain: .fault
            case .outOfMemory, .gntallocLimit, .udmabufLimit, .grantTableFull: .noMemory
            case .tooManyPages: .tooBig
            default: .io
            }
        return DisplayRefusal(status, "\(what): \(error)")
    }

    // MARK: Directory pages

    public mutating func readDirectoryPage(_ ref: UInt32) throws(DisplayRefusal) -> [UInt8] {
        do {
            let page = try gntdev.map([GrantRef(rawValue: ref)], from: frontend, access: .readOnly)
            let bytes = page.withUnsafeBytes { Array($0.prefix(DisplayProtocol.pageSize)) }
            try page.unmap()
            return bytes
        } catch {
            throw Self.refusal(error, "directory page \(ref)")
        }
    }

    public mutating func writeDirectoryPage(_ ref: UInt32, refs: ArraySlice<UInt32>) throws(DisplayRefusal) -> UInt32 {
        do {
            let page = try gntdev.map([GrantRef(rawValue: ref)], from: frontend, access: .readWrite)
            let next = try page.withUnsafeMutableBytes { bytes throws(XenGntError) -> UInt32 in
                for (slot, value) in refs.enumerated() { SlotBytes.store(value, bytes, 4 + 4 * slot) }
                return SlotBytes.load(UnsafeRawBufferPointer(bytes), 0, as: UInt32.self)
            }
            try page.unmap()
            return next
        } catch {
            throw Self.refusal(error, "directory page \(ref)")
        }
    }

    public mutating func writeFrontendPages(_ refs: [UInt32], bytes: [UInt8]) throws(DisplayRefusal) {
        let needed = (bytes.count + DisplayProtocol.pageSize - 1) / DisplayProtocol.pageSize
        do {
            let pages = try gntdev.map(
                refs.prefix(max(1, needed)).map { GrantRef(rawValue: $0) },
                from: frontend,
                access: .readWrite
            )
            try pages.withUnsafeMutableBytes { target throws(XenGntError) in
                bytes.withUnsafeBytes { target.copyMemory(from: $0) }
            }
            try pages.unmap()
        } catch {
            throw Self.refusal(error, "EDID buffer")
        }
    }

    // MARK: Buffers

    public mutating func attachFrontendBuffer(
        _ cookie: UInt64,
        refs: [UInt32],
        layout: DisplayBufferLayout
    ) throws(DisplayRefusal) {
        if pathPolicy.exportImpossible || (pathPolicy.choice == .export && !sink.takesExports) {
            throw DisplayRefusal(.notSupported, "--buffer-path export, but this backend domain or display cannot take an export")
        }
        let buffer = Buffer(layout: layout)
        do {
            let pages = try gntdev.map(refs.map { GrantRef(rawValue: $0) }, from: frontend, access: .readOnly)
            buffer.bytes = UnsafeRawBufferPointer(start: pages.baseAddress, count: pages.byteCount)
            buffer.frontendPages = consume pages
        } catch {
            throw Self.refusal(error, "buffer \(cookie) of \(refs.count) pages")
        }
        buffer.refs = refs
        buffers[cookie] = buffer
        counters.update(key) {
            $0.buffersCreated += 1
            $0.buffersLive += 1
        }
        switch pathPolicy.decision {
        case .copy(let reason):
            choosePath(.copied, reason: "frontend buffers are mapped once and copied at each flip: " + reason)
        case .export:
            // Mapped as well: a display that refuses the export at its first real commit
            // (vkms) is then fed by copying, without asking the frontend again.
            choosePath(.exported, reason: "frontend buffers are exported and scanned out by the display (zero-copy)")
        }
    }

    public mutating func allocateBackendBuffer(_ cookie: UInt64, layout: DisplayBufferLayout) throws(DisplayRefusal) -> [UInt32] {
        let buffer = Buffer(layout: layout)
        if layout.bitsPerPixel == 32, layout.dataOffset == 0 {
            do {
                if let shared = try sink.allocateShared(
                    cookie,
                    pageCount: layout.pageCount,
                    width: layout.width,
                    pitch: layout.pitch,
                    for: frontend,
                    through: gntdev
                ) {
                    buffer.bytes = shared.bytes
                    buffer.sinkShared = true
                    buffers[cookie] = buffer
                    counters.update(key) {
                        $0.buffersCreated += 1
                        $0.buffersLive += 1
                    }
                    choosePath(
                        .backendAllocated,
                        reason: "the frontend draws into the display's own buffers, which it scans out (zero-copy)"
                    )
                    return shared.refs
                }
            } catch {
                if !loggedPath {
                    logger.notice("\(key): the display could not share a buffer (\(error)); backend buffers are local")
                }
            }
        }
        let refs: [UInt32]
        do {
            refs = try shareLocalBuffer(layout.pageCount, into: buffer)
        } catch {
            if let mapping = buffer.localMapping.take() { try? mapping.unmap() }
            throw Self.refusal(error, "backend buffer \(cookie) of \(layout.pageCount) pages")
        }
        buffers[cookie] = buffer
        counters.update(key) {
            $0.buffersCreated += 1
            $0.buffersLive += 1
        }
        choosePath(.backendAllocated, reason: "the frontend draws into the backend's buffers (zero-copy)")
        return refs
    }

    /// A local buffer of `pages` pages, mapped for the sink and imported to refs for the
    /// frontend: a udmabuf (order-0 pages, which an x86 PV domain's xen-swiotlb maps one by
    /// one), else a system DMA-heap buffer (whose 1 MiB chunks a PV domain's swiotlb cannot
    /// bounce: "swiotlb buffer is full", IMP_TO_REFS EIO, seen in the lab's PV Dom0).
    /// The buffer keeps the import and the mapping; returns the refs.
    mutating func shareLocalBuffer(_ pages: Int, into buffer: Buffer) throws(XenGntError) -> [UInt32] {
        var failure: XenGntError?
        for source in LocalBufferSource.allCases {
            do throws(XenGntError) {
                let local =
                    try source == .udmabuf
                    ? DmaBuf.udmabuf(pages: pages, on: system)
                    : DmaBuf.allocate(fromHeap: "system", pages: pages, on: system)
                // The mapping outlives the descriptor, which the import takes.
                let mapping = try local.map(.readOnly)
                let shared: DmaBufImport
                do { shared = try gntdev.importDmaBuf(local, to: frontend, pageCount: pages) } catch {
                    try? mapping.unmap()
                    throw error
                }
                buffer.bytes = UnsafeRawBufferPointer(start: mapping.baseAddress, count: mapping.byteCount)
                buffer.localMapping = consume mapping
                if localSource != source {
                    localSource = source
                    logger.info("\(key): backend buffers are \(source.rawValue) buffers\(failure.map { " (\($0.code))" } ?? "")")
                }
                let refs = shared.refs.map(\.rawValue)
                buffer.local = consume shared
                return refs
            } catch {
                failure = error
            }
        }
        throw failure!
    }

    enum LocalBufferSource: String, CaseIterable {
        case udmabuf
        case heap = "system DMA-heap"
    }

    public mutating func releaseBuffer(_ cookie: UInt64) {
        guard let buffer = buffers.removeValue(forKey: cookie) else { return }
        buffer.bytes = UnsafeRawBufferPointer(start: nil, count: 0)
        if buffer.sinkShared { sink.releaseShared(cookie, for: key) }
        if let mapping = buffer.frontendPages.take() {
            do { try mapping.unmap() } catch { logger.warning("\(key): unmapping buffer \(cookie): \(error)") }
        }
        if let mapping = buffer.localMapping.take() {
            do { try mapping.unmap() } catch { logger.warning("\(key): unmapping buffer \(cookie): \(error)") }
        }
        if let shared = buffer.local.take() {
            // The frontend may still map the pages (until its DRM file closes): Xen defers the
            // end of access, and the release succeeds.
            do { try shared.release() } catch { logger.warning("\(key): releasing buffer \(cookie): \(error)") }
        }
        counters.update(key) { $0.buffersLive -= 1 }
    }

    mutating func choosePath(_ path: BufferPath, reason: String) {
        counters.update(key) { $0.path = path }
        guard !loggedPath else { return }
        loggedPath = true
        logger.info("\(key): \(path.rawValue): \(reason)")
    }
}
