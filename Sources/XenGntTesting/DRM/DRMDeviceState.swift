import SystemPackage
import XenGnt

/// One DRM device of a simulated kernel (`struct drm_device`): its master, the ids of its mode
/// objects, framebuffers and blobs, its GEM objects, and (for a KMS driver) its display.
final class SimDRMDevice {
    let kind: DRMDriverKind
    unowned let kernel: DomainKernel
    /// The descriptor that is DRM master (`dev->master`), if any.
    weak var master: DRMOpenFile?
    /// Mode objects, framebuffers, blobs and properties share one id space (`drm_mode_object_add`).
    private var lastID: UInt32 = 0
    /// Framebuffers by id.
    var framebuffers: [UInt32: SimFramebuffer] = [:]
    /// Property blobs by id.
    var blobs: [UInt32: [UInt8]] = [:]
    /// GEM objects not yet freed.
    var gemObjects = 0
    /// The last fake mmap offset given by `MODE_MAP_DUMB` (the vma offset manager's), in pages.
    var lastMapPage: UInt64 = 0x10_0000
    /// The display of a KMS driver.
    private(set) lazy var kms: KMS? = kind.hasModesetting ? KMS(device: self) : nil

    init(kind: DRMDriverKind, kernel: DomainKernel) {
        self.kind = kind
        self.kernel = kernel
    }

    func newID() -> UInt32 {
        lastID += 1
        return lastID
    }
}

/// A GEM buffer object: a dumb buffer's own pages, or an imported dma-buf's.
final class GEMObject {
    enum Source {
        /// Allocated by the driver (`drm_gem_shmem`): dumb buffers, vgem's and vkms's.
        case shmem(MemoryObject)
        /// PRIME-imported: the object holds the dma-buf (`dma_buf_attach`).
        case imported(DmaBufFile)
    }

    unowned let device: SimDRMDevice
    let pages: [Page]
    let source: Source
    /// The dma-buf this object was exported as, while it exists (`obj->dma_buf`): exporting
    /// again gives it again, and importing it on this device gives this object back.
    weak var exported: DmaBufFile?
    /// The fake offset `MODE_MAP_DUMB` gave it, once asked.
    var mapOffset: UInt64?
    /// Handles, framebuffers and the exported dma-buf that hold it.
    private(set) var references = 0

    init(device: SimDRMDevice, pages: [Page], source: Source) {
        self.device = device
        self.pages = pages
        self.source = source
        device.gemObjects += 1
    }

    var size: Int { pages.count * xenPageSize }

    /// Whether the kernel can vmap it (what a CPU-composing display needs): shmem objects can;
    /// an import can when its exporter has `vmap` (not gntdev's, not 6.1's udmabuf).
    var canVmap: Bool {
        switch source {
        case .shmem: true
        case .imported(let buffer): buffer.canVmap
        }
    }

    func get() { references += 1 }

    /// Drops a reference; the last frees the object (an import lets go of its dma-buf).
    func put(_ machine: Machine) {
        references -= 1
        guard references == 0 else { return }
        device.gemObjects -= 1
        if case .imported(let buffer) = source { buffer.drop(machine) }
    }
}

extension DmaBufFile {
    /// Whether the exporter has `vmap`: gntdev's exporter has only attach, detach, map, unmap
    /// and release; Linux 6.1's udmabuf has no `vmap` either; the system heap and GEM exports do
    /// (lab `drm-vkms-scanout`, `drm-export-to-display`).
    var canVmap: Bool {
        switch exporter {
        case .gntdev, .udmabuf: false
        case .heap, .gem: true
        }
    }
}

/// A framebuffer (`struct drm_framebuffer`): GEM objects described as pixels.
final class SimFramebuffer {
    unowned let device: SimDRMDevice
    let id: UInt32
    let width: Int
    let height: Int
    let format: PixelFormatCode
    let objects: [GEMObject]
    let pitches: [Int]
    let offsets: [Int]
    /// The descriptor that added it, until `RMFB` or its close.
    weak var owner: DRMOpenFile?
    private var references = 0

    init(
        device: SimDRMDevice,
        id: UInt32,
        width: Int,
        height: Int,
        format: PixelFormatCode,
        objects: [GEMObject],
        pitches: [Int],
        offsets: [Int]
    ) {
        self.device = device
        self.id = id
        self.width = width
        self.height = height
        self.format = format
        self.objects = objects
        self.pitches = pitches
        self.offsets = offsets
        for object in objects { object.get() }
    }

    func get() { references += 1 }

    func put(_ machine: Machine) {
        references -= 1
        guard references == 0 else { return }
        device.framebuffers[id] = nil
        for object in objects { object.put(machine) }
    }

    /// The pixel at (`x`, `y`) as XRGB8888 (what the display composes), from its first plane.
    func pixels(x: Int, y: Int, width count: Int) -> [UInt32] {
        guard let object = objects.first else { return [UInt32](repeating: 0, count: count) }
        let bytes = format.bytesPerPixel
        let start = offsets[0] + y * pitches[0] + x * bytes
        let raw = object.read(at: start, count: count * bytes)
        return (0..<count).map { format.xrgb(raw, at: $0 * bytes) }
    }

    /// Writes XRGB8888 pixels (X forced to 0xff, as vkms's writeback does) at row `y`.
    func write(row y: Int, _ pixels: [UInt32]) {
        guard let object = objects.first else { return }
        var bytes = [UInt8](repeating: 0, count: pixels.count * 4)
        for (i, pixel) in pixels.enumerated() {
            let value = pixel | 0xFF00_0000
            for b in 0..<4 { bytes[i * 4 + b] = UInt8(truncatingIfNeeded: value >> (8 * b)) }
        }
        object.write(bytes, at: offsets[0] + y * pitches[0])
    }
}

extension GEMObject {
    /// Bytes of the object, page by page.
    func read(at offset: Int, count: Int) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        var position = offset
        while result.count < count, position / xenPageSize < pages.count {
            let inPage = position % xenPageSize
            let take = min(xenPageSize - inPage, count - result.count)
            result += pages[position / xenPageSize].read(at: inPage, count: take)
            position += take
        }
        if result.count < count { result += [UInt8](repeating: 0, count: count - result.count) }
        return result
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        var written = 0
        var position = offset
        while written < bytes.count, position / xenPageSize < pages.count {
            let inPage = position % xenPageSize
            let take = min(xenPageSize - inPage, bytes.count - written)
            pages[position / xenPageSize].write(Array(bytes[written..<(written + take)]), at: inPage)
            written += take
            position += take
        }
    }
}

/// A fourcc the simulated displays know, with its pixel size and conversion to XRGB8888.
struct PixelFormatCode: RawRepresentable, Hashable {
    let rawValue: UInt32

    static func fourcc(_ code: String) -> PixelFormatCode {
        let b = Array(code.utf8)
        return PixelFormatCode(rawValue: UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
    }

    static let xrgb8888 = fourcc("XR24"), argb8888 = fourcc("AR24"), xbgr8888 = fourcc("XB24")
    static let xrgb16161616 = fourcc("XR48"), argb16161616 = fourcc("AR48"), rgb565 = fourcc("RG16")

    /// Formats `drm_format_info` knows (so `ADDFB2` takes them), with their bytes per pixel.
    static let known: [PixelFormatCode: Int] = [
        .xrgb8888: 4, .argb8888: 4, .xbgr8888: 4, fourcc("AB24"): 4, fourcc("RX24"): 4, fourcc("BX24"): 4,
        .xrgb16161616: 8, .argb16161616: 8, .rgb565: 2, fourcc("BG16"): 2, fourcc("RG24"): 3, fourcc("BG24"): 3,
    ]

    var bytesPerPixel: Int { Self.known[self] ?? 4 }

    /// The pixel at byte `offset` of `raw`, as XRGB8888.
    func xrgb(_ raw: [UInt8], at offset: Int) -> UInt32 {
        func byte(_ i: Int) -> UInt32 { UInt32(raw[offset + i]) }
        switch self {
        case .xbgr8888: return byte(2) | byte(1) << 8 | byte(0) << 16
        case .xrgb16161616, .argb16161616: return byte(1) | byte(3) << 8 | byte(5) << 16
        case .rgb565:
            let v = byte(0) | byte(1) << 8
            let r = (v >> 11) & 0x1F
            let g = (v >> 5) & 0x3F
            let b = v & 0x1F
            return (r << 3 | r >> 2) << 16 | (g << 2 | g >> 4) << 8 | (b << 3 | b >> 2)
        default: return (byte(0) | byte(1) << 8 | byte(2) << 16)
        }
    }
}
