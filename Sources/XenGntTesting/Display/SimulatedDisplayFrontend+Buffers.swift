import XenGnt

extension SimulatedDisplayFrontend {
    static let refsPerDirectoryPage = 1023

    /// Creates a `width`×`height` buffer of `bitsPerPixel` as the driver does for a dumb buffer
    /// (`pitch = ceil(width × bpp / 8)`, `buffer_sz = data_ofs + pitch × height`), granting its
    /// directory (and its pages when the frontend allocates), then sends `DBUF_CREATE`.
    /// `be-alloc=1`: reads the backend's refs back from the directory and maps them.
    ///
    /// - Returns: the response; the buffer is kept only if its status is 0.
    @discardableResult
    public func createBuffer(
        _ cookie: UInt64,
        width: Int,
        height: Int,
        bitsPerPixel: Int = 32,
        dataOffset: Int = 0,
        sizeOverride: Int? = nil
    ) async throws -> Response {
        let pitch = (width * bitsPerPixel + 7) / 8
        let size = sizeOverride ?? dataOffset + pitch * height
        let pageCount = max(1, (size + xenPageSize - 1) / xenPageSize)
        let directoryPages = (pageCount + Self.refsPerDirectoryPage - 1) / Self.refsPerDirectoryPage
        let directory = try domain.grantPages(directoryPages, to: backend, access: backendAllocates ? .readWrite : .readOnly)
        let pages = backendAllocates ? [] : try domain.grantPages(pageCount, to: backend)
        try writeDirectory(directory, refs: pages)
        let response = try await send(
            0x10,
            [
                (8, cookie, 8), (16, UInt64(width), 4), (20, UInt64(height), 4), (24, UInt64(bitsPerPixel), 4),
                (28, UInt64(size), 4), (32, backendAllocates ? 1 : 0, 4), (36, UInt64(directory[0].rawValue), 4),
                (40, UInt64(dataOffset), 4),
            ]
        )
        guard response.status == 0 else {
            domain.endAccess(directory + pages)
            return response
        }
        var buffer = Buffer(
            cookie: cookie,
            width: width,
            height: height,
            bitsPerPixel: bitsPerPixel,
            pitch: pitch,
            dataOffset: dataOffset,
            size: size,
            directory: directory,
            pages: pages
        )
        if backendAllocates {
            buffer.backendRefs = try readDirectory(directory, count: pageCount)
            let device = try gntdevice()
            mappings[cookie] = MappingBox(try device.map(buffer.backendRefs, from: backend))
        }
        buffers[cookie] = buffer
        return response
    }

    /// Writes the chain: each page's `gref_dir_next_page`, and `refs` (none for be-alloc).
    func writeDirectory(_ directory: [GrantRef], refs: [GrantRef]) throws {
        for (index, page) in directory.enumerated() {
            let next = index + 1 < directory.count ? directory[index + 1].rawValue : 0
            var words = [next]
            let first = index * Self.refsPerDirectoryPage
            if first < refs.count { words += refs[first..<min(refs.count, first + Self.refsPerDirectoryPage)].map(\.rawValue) }
            try domain.write(
                words.flatMap { w in (0..<4).map { UInt8(truncatingIfNeeded: w >> (8 * UInt32($0))) } },
                toGrant: page
            )
        }
    }

    func readDirectory(_ directory: [GrantRef], count: Int) throws -> [GrantRef] {
        var refs: [GrantRef] = []
        for page in directory where refs.count < count {
            let bytes = try domain.read(grant: page)
            let slots = min(Self.refsPerDirectoryPage, count - refs.count)
            refs += (0..<slots).map { GrantRef(rawValue: Self.u32(bytes, 4 + 4 * $0)) }
        }
        return refs
    }

    func gntdevice() throws -> GrantDevice {
        if let gntdev { return gntdev }
        let device = try GrantDevice(on: domain.system)
        gntdev = device
        return device
    }

    /// Draws `pixel(x, y)` (an XRGB8888 value) into buffer `cookie`, as the guest's renderer
    /// would: into its own pages, or into the backend's buffer it maps.
    public func draw(_ cookie: UInt64, _ pixel: (Int, Int) -> UInt32) throws {
        guard let buffer = buffers[cookie] else { throw SimulatedDisplayError("no buffer \(cookie)") }
        var bytes = [UInt8](repeating: 0, count: buffer.size)
        for y in 0..<buffer.height {
            for x in 0..<buffer.width {
                let value = pixel(x, y)
                let at = buffer.dataOffset + y * buffer.pitch + x * 4
                for b in 0..<4 { bytes[at + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
            }
        }
        if let box = mappings[cookie] {
            bytes.withUnsafeBytes { box.bytes.copyMemory(from: $0) }
            return
        }
        for (index, page) in buffer.pages.enumerated() {
            let start = index * xenPageSize
            try domain.write(Array(bytes[start..<min(bytes.count, start + xenPageSize)]), toGrant: page)
        }
    }

    /// `FB_ATTACH` of a whole buffer as XRGB8888.
    @discardableResult
    public func attachFramebuffer(
        _ cookie: UInt64,
        to buffer: UInt64,
        width: Int,
        height: Int,
        format: UInt32 = 0x3432_5258
    ) async throws -> Response {
        try await send(
            0x12,
            [(8, buffer, 8), (16, cookie, 8), (24, UInt64(width), 4), (28, UInt64(height), 4), (32, UInt64(format), 4)]
        )
    }

    /// `SET_CONFIG` on `connector`'s ring (framebuffer 0: off).
    @discardableResult
    public func setConfiguration(
        connector: Int,
        framebuffer: UInt64,
        width: Int,
        height: Int,
        bitsPerPixel: Int = 32
    ) async throws -> Response {
        try await send(
            0x14,
            [(8, framebuffer, 8), (24, UInt64(width), 4), (28, UInt64(height), 4), (32, UInt64(bitsPerPixel), 4)],
            connector: connector
        )
    }

    /// `PG_FLIP` on `connector`'s ring.
    @discardableResult
    public func pageFlip(connector: Int, framebuffer: UInt64) async throws -> Response {
        try await send(0x15, [(8, framebuffer, 8)], connector: connector)
    }

    /// `FB_DETACH`.
    @discardableResult
    public func detachFramebuffer(_ cookie: UInt64) async throws -> Response { try await send(0x13, [(8, cookie, 8)]) }

    /// `DBUF_DESTROY`, after unmapping a backend buffer (as the driver releases its refs first);
    /// the frontend's own grants end after the response.
    @discardableResult
    public func destroyBuffer(_ cookie: UInt64) async throws -> Response {
        if let box = mappings.removeValue(forKey: cookie), let mapping = box.mapping.take() { try mapping.unmap() }
        let response = try await send(0x11, [(8, cookie, 8)])
        if let buffer = buffers.removeValue(forKey: cookie) { domain.endAccess(buffer.directory + buffer.pages) }
        return response
    }

    /// `GET_EDID` with a buffer of `XENDISPL_EDID_MAX_SIZE` (or `size`) bytes; returns the
    /// response and the EDID bytes the backend wrote.
    public func getEdid(connector: Int = 0, size: Int = 32768) async throws -> (Response, [UInt8]) {
        let pageCount = max(1, (size + xenPageSize - 1) / xenPageSize)
        let directory = try domain.grantPages(1, to: backend, access: .readOnly)
        let pages = try domain.grantPages(pageCount, to: backend)
        defer { domain.endAccess(directory + pages) }
        try writeDirectory(directory, refs: pages)
        let response = try await send(0x16, [(8, UInt64(size), 4), (12, UInt64(directory[0].rawValue), 4)], connector: connector)
        let bytes = response.status == 0 ? try domain.read(grant: pages[0], count: Int(min(response.edidSize, 4096))) : []
        return (response, bytes)
    }

    /// Unmaps every backend buffer it still maps and ends every grant (a frontend closing).
    public func close() {
        for box in mappings.values { if let mapping = box.mapping.take() { try? mapping.unmap() } }
        mappings = [:]
        for buffer in buffers.values { domain.endAccess(buffer.directory + buffer.pages) }
        buffers = [:]
    }
}
