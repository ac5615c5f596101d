/// The layout of a display buffer as `DBUF_CREATE` describes it, checked: the pixels start at
/// `data_ofs`, rows are `pitch = ceil(width × bpp / 8)` bytes apart (what `xen-drm-front`'s
/// dumb buffers use), and `data_ofs + height × pitch ≤ buffer_sz`, computed without overflow
/// whatever the frontend sends.
public struct DisplayBufferLayout: Hashable, Sendable {
    public let width: Int
    public let height: Int
    public let bitsPerPixel: Int
    /// Bytes per row.
    public let pitch: Int
    /// Where the first row starts in the buffer.
    public let dataOffset: Int
    /// `buffer_sz`.
    public let bufferSize: Int
    /// Pages the buffer spans: `ceil(buffer_sz / 4096)`.
    public let pageCount: Int
    /// Pages of its page directory.
    public var directoryPageCount: Int { PageDirectory.directoryPages(forBufferPages: pageCount) }
    /// Bytes of pixel data: `height × pitch`.
    public var imageBytes: Int { height * pitch }

    /// What the backend accepts, whatever the frontend asks.
    public struct Limits: Hashable, Sendable {
        /// The widest and tallest buffer (DRM's own limit in `xen-drm-front` is 4095).
        public var maxDimension: Int
        /// The most pages one buffer may span (the default, 16384, is 64 MiB).
        public var maxPages: Int
        /// The depths `xen-drm-front`'s formats use.
        public var bitsPerPixel: Set<Int>

        public init(maxDimension: Int = 8192, maxPages: Int = 16384, bitsPerPixel: Set<Int> = [8, 16, 24, 32]) {
            self.maxDimension = maxDimension
            self.maxPages = maxPages
            self.bitsPerPixel = bitsPerPixel
        }
        public static let standard = Limits()
    }

    /// Checks a `DBUF_CREATE`.
    public init(_ request: DisplayRequest.BufferCreate, limits: Limits = .standard) throws(DisplayRefusal) {
        let width = UInt64(request.width)
        let height = UInt64(request.height)
        guard width > 0, height > 0 else {
            throw DisplayRefusal(.invalid, "buffer of \(width)x\(height): empty")
        }
        guard width <= limits.maxDimension, height <= limits.maxDimension else {
            throw DisplayRefusal(.invalid, "buffer of \(width)x\(height): larger than \(limits.maxDimension) on a side")
        }
        guard limits.bitsPerPixel.contains(Int(request.bitsPerPixel)) else {
            throw DisplayRefusal(.invalid, "\(request.bitsPerPixel) bits per pixel: not one of \(limits.bitsPerPixel.sorted())")
        }
        let size = UInt64(request.bufferSize)
        let offset = UInt64(request.dataOffset)
        guard size > 0 else { throw DisplayRefusal(.invalid, "buffer_sz 0") }
        let pages = (size + UInt64(DisplayProtocol.pageSize) - 1) / UInt64(DisplayProtocol.pageSize)
        guard pages <= limits.maxPages else {
            throw DisplayRefusal(.tooBig, "buffer_sz \(size): \(pages) pages, more than \(limits.maxPages)")
        }
        // width ≤ 2^32 and bpp ≤ 32: the product fits; height × pitch may not.
        let pitch = (width * UInt64(request.bitsPerPixel) + 7) / 8
        let (image, overflow) = height.multipliedReportingOverflow(by: pitch)
        let (end, overflow2) = image.addingReportingOverflow(offset)
        guard !overflow, !overflow2, end <= size else {
            throw DisplayRefusal(.invalid, "data_ofs \(offset) + height \(height) × pitch \(pitch) exceeds buffer_sz \(size)")
        }
        self.width = Int(width)
        self.height = Int(height)
        self.bitsPerPixel = Int(request.bitsPerPixel)
        self.pitch = Int(pitch)
        self.dataOffset = Int(offset)
        self.bufferSize = Int(size)
        self.pageCount = Int(pages)
    }

    /// Whether a framebuffer of `width`×`height` fits in this buffer.
    public func fits(width: UInt32, height: UInt32) -> Bool {
        width > 0 && height > 0 && Int(width) <= self.width && Int(height) <= self.height
    }
}

/// `struct xendispl_page_directory` chains: page `k` holds `gref_dir_next_page` and up to 1023
/// refs of the buffer. The frontend writes the links in both modes; the refs are the
/// frontend's (`be-alloc=0`, read by the backend) or the backend's (`be-alloc=1`, written by the
/// backend into the frontend's pages).
///
/// A hostile frontend controls every word: the walk is bounded by the buffer's page count,
/// refuses a link that is invalid or repeats a page (a cycle), and a reference of 0. Each
/// directory page is read through `page` exactly once.
public enum PageDirectory {
    /// Directory pages a buffer of `pages` pages needs.
    public static func directoryPages(forBufferPages pages: Int) -> Int {
        pages <= 0 ? 1 : (pages + DisplayProtocol.refsPerDirectoryPage - 1) / DisplayProtocol.refsPerDirectoryPage
    }

    /// The buffer's `pageCount` refs, read from the chain starting at `start`.
    ///
    /// - Parameters:
    ///   - start: the first directory page's ref (`gref_directory` of `DBUF_CREATE`).
    ///   - pageCount: the buffer's pages, so the refs to read.
    ///   - page: returns a copy of the directory page `ref` (4096 bytes), or throws (a ref the
    ///     frontend did not grant).
    /// - Returns: the buffer's refs, and the directory pages visited, in order.
    public static func readRefs(
        start: UInt32,
        pageCount: Int,
        page: (UInt32) throws(DisplayRefusal) -> [UInt8]
    ) throws(DisplayRefusal) -> (refs: [UInt32], directory: [UInt32]) {
        var refs: [UInt32] = []
        refs.reserveCapacity(pageCount)
        let directory = try walk(start: start, pageCount: pageCount) { (ref, range) throws(DisplayRefusal) -> UInt32 in
            let bytes = try page(ref)
            guard bytes.count >= DisplayProtocol.pageSize else {
                throw DisplayRefusal(.fault, "directory page \(ref): \(bytes.count) bytes")
            }
            let (words, next) = bytes.withUnsafeBytes { raw in
                (
                    (0..<range.count).map { SlotBytes.load(raw, 4 + 4 * $0, as: UInt32.self) },
                    SlotBytes.load(raw, 0, as: UInt32.self)
                )
            }
            if let zero = words.firstIndex(of: DisplayProtocol.invalidRef) {
                throw DisplayRefusal(.invalid, "buffer page \(range.lowerBound + zero): grant reference 0")
            }
            refs += words
            return next
        }
        return (refs, directory)
    }

    /// Writes `refs` (the backend's grants of its own buffer) into the `gref[]` slots of the
    /// frontend's chain, leaving the links the frontend wrote.
    ///
    /// - Parameters:
    ///   - refs: the backend's grants, in buffer order.
    ///   - start: the first directory page's ref.
    ///   - page: writes `refs` into directory page `ref` from slot 0 on (mapped writable) and
    ///     returns its `gref_dir_next_page`, read once.
    /// - Returns: the directory pages visited, in order.
    @discardableResult
    public static func writeRefs(
        _ refs: [UInt32],
        start: UInt32,
        page: (UInt32, ArraySlice<UInt32>) throws(DisplayRefusal) -> UInt32
    ) throws(DisplayRefusal) -> [UInt32] {
        try walk(start: start, pageCount: refs.count) { (ref, range) throws(DisplayRefusal) -> UInt32 in
            try page(ref, refs[(refs.startIndex + range.lowerBound)..<(refs.startIndex + range.upperBound)])
        }
    }

    /// Visits each directory page: `visit(ref, pages)` handles the buffer pages `pages` (their
    /// indices in the whole buffer; the page's slots are `0..<pages.count`) and returns the
    /// page's link.
    private static func walk(
        start: UInt32,
        pageCount: Int,
        visit: (UInt32, Range<Int>) throws(DisplayRefusal) -> UInt32
    ) throws(DisplayRefusal) -> [UInt32] {
        guard pageCount > 0 else { throw DisplayRefusal(.invalid, "a buffer of no pages") }
        let pages = directoryPages(forBufferPages: pageCount)
        var visited: [UInt32] = []
        var seen: Set<UInt32> = []
        var ref = start
        for index in 0..<pages {
            guard ref != DisplayProtocol.invalidRef else {
                throw DisplayRefusal(
                    .invalid,
                    index == 0
                        ? "page directory ref 0"
                        : "page directory ends after \(index) of \(pages) pages"
                )
            }
            guard seen.insert(ref).inserted else {
                throw DisplayRefusal(.invalid, "page directory is cyclic: page \(index) is ref \(ref) again")
            }
            visited.append(ref)
            let first = index * DisplayProtocol.refsPerDirectoryPage
            let slots = min(DisplayProtocol.refsPerDirectoryPage, pageCount - first)
            ref = try visit(ref, first..<(first + slots))
        }
        return visited
    }
}
