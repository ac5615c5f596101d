internal import CDRM
import SystemPackage
public import XenGnt

/// How a single-plane framebuffer lies in its buffer.
public struct FramebufferLayout: Sendable, Hashable {
    /// Pixels per row.
    public var width: Int
    /// Rows.
    public var height: Int
    /// The pixel format.
    public var format: PixelFormat
    /// Bytes per row.
    public var pitch: Int
    /// Byte offset of the first pixel in the buffer.
    public var offset: Int
    /// A format modifier, for drivers that take them (`DRM_CAP_ADDFB2_MODIFIERS`); `nil` for
    /// none (linear, implicitly).
    public var modifier: FormatModifier?

    /// A layout of `width × height` pixels of `format`, rows `pitch` bytes apart (default:
    /// packed, `width × bytes per pixel`).
    public init(
        width: Int,
        height: Int,
        format: PixelFormat = .xrgb8888,
        pitch: Int? = nil,
        offset: Int = 0,
        modifier: FormatModifier? = nil
    ) {
        self.width = width
        self.height = height
        self.format = format
        self.pitch = pitch ?? width * (format.bytesPerPixel ?? 4)
        self.offset = offset
        self.modifier = modifier
    }

    /// The bytes a buffer needs for this layout: `offset + (height − 1) × pitch + one row`, when
    /// the format's pixel size is known.
    public var requiredByteCount: Int? {
        format.bytesPerPixel.map { offset + (height - 1) * pitch + width * $0 }
    }
}

/// One plane of a framebuffer: a GEM handle of this device (kept open by the framebuffer),
/// and where the plane lies in it.
public struct FramebufferPlane: Sendable, Hashable {
    /// A handle owned on the same device (by a ``GEMHandle`` or a ``DumbBuffer``).
    public var handle: UInt32
    public var pitch: Int
    public var offset: Int

    public init(handle: UInt32, pitch: Int, offset: Int = 0) {
        self.handle = handle
        self.pitch = pitch
        self.offset = offset
    }
}

/// What a scanout needs to know of a framebuffer.
public struct FramebufferInfo: Sendable, Hashable {
    /// The framebuffer's id (`fb_id`).
    public let id: UInt32
    public let width: Int
    public let height: Int
    public let format: PixelFormat
    /// The device file it belongs to.
    let device: ObjectIdentifier
}

/// A framebuffer (`DRM_IOCTL_MODE_ADDFB2`): a buffer described as pixels a plane can show.
///
/// It keeps the GEM handles it was made from open until it is removed, so the handles and the
/// framebuffer can be let go in any order; a scanout holds the framebuffer it shows, so a
/// framebuffer cannot be removed while on screen.
public struct Framebuffer: ~Copyable, Sendable {
    let file: DRMFile
    /// Id, size and format.
    public let info: FramebufferInfo
    let handles: [UInt32]
    private var isAdded = true

    init(file: DRMFile, info: FramebufferInfo, handles: [UInt32]) {
        self.file = file
        self.info = info
        self.handles = handles
    }

    /// The framebuffer's id.
    public var id: UInt32 { info.id }

    /// Removes the framebuffer, then lets go of its handles, reporting the first error. Both
    /// steps are attempted; a refused one is retried at the device's next call and when it
    /// closes.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_RMFB`.
    public consuming func remove() throws(XenGntError) {
        isAdded = false
        if let error = Self.remove(file: file, id: info.id, handles: handles) { throw error }
    }

    static func remove(file: DRMFile, id: UInt32, handles: [UInt32]) -> XenGntError? {
        var failure: XenGntError?
        if let errno = file.attempt(.removeFramebuffer(id)) {
            failure = file.failure(errno, .removeFramebuffer, request: DRMRequest.removeFramebuffer)
        }
        for handle in handles {
            if let (errno, dumb) = file.release(handle), failure == nil {
                failure = file.failure(errno, .closeGEMHandle, request: dumb ? DRMRequest.destroyDumb : DRMRequest.gemClose)
            }
        }
        return failure
    }

    deinit {
        if isAdded { _ = Self.remove(file: file, id: info.id, handles: handles) }
    }
}

extension DRMDevice {
    /// Makes a framebuffer of `handle`'s buffer laid out as `layout`.
    ///
    /// - Throws: before the kernel is asked, ``XenGnt/XenGntError/Code/pitchTooSmall`` and
    ///   ``XenGnt/XenGntError/Code/bufferTooSmall`` when the layout does not fit the buffer;
    ///   ``XenGnt/XenGntError/Code/noModesetting`` on a driver without KMS (vgem:
    ///   `EOPNOTSUPP`); ``XenGnt/XenGntError/Code/renderNode`` on a render node.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ADDFB2`.
    public func addFramebuffer(_ handle: borrowing GEMHandle, layout: FramebufferLayout) throws(XenGntError) -> Framebuffer {
        try checkSameDevice(handle.file, .addFramebuffer)
        return try addFramebuffer(layout: layout, handle: handle.rawValue, byteCount: handle.byteCount)
    }

    /// Makes a framebuffer of a dumb buffer: its size and pitch, in `format` (XR24 by default).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ADDFB2`.
    public func addFramebuffer(_ buffer: borrowing DumbBuffer, format: PixelFormat = .xrgb8888) throws(XenGntError) -> Framebuffer
    {
        try checkSameDevice(buffer.file, .addFramebuffer)
        let layout = FramebufferLayout(width: buffer.width, height: buffer.height, format: format, pitch: buffer.pitch)
        return try addFramebuffer(layout: layout, handle: buffer.handle, byteCount: buffer.byteCount)
    }

    func addFramebuffer(layout: FramebufferLayout, handle: UInt32, byteCount: Int?) throws(XenGntError) -> Framebuffer {
        if let bytes = layout.format.bytesPerPixel, layout.pitch < layout.width * bytes {
            throw XenGntError(.pitchTooSmall, .addFramebuffer, path: path, limit: layout.width * bytes, length: layout.pitch)
        }
        if let needed = layout.requiredByteCount, let byteCount, needed > byteCount {
            throw XenGntError(.bufferTooSmall, .addFramebuffer, path: path, limit: needed, length: byteCount)
        }
        return try addFramebuffer(
            width: layout.width,
            height: layout.height,
            format: layout.format,
            planes: [FramebufferPlane(handle: handle, pitch: layout.pitch, offset: layout.offset)],
            modifier: layout.modifier,
            byteCount: byteCount
        )
    }

    /// Makes a framebuffer of up to four planes (multi-planar formats), each in a handle this
    /// device owns. The framebuffer keeps each handle open until it is removed.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_ADDFB2`.
    public func addFramebuffer(
        width: Int,
        height: Int,
        format: PixelFormat,
        planes: [FramebufferPlane],
        modifier: FormatModifier? = nil
    ) throws(XenGntError) -> Framebuffer {
        try addFramebuffer(width: width, height: height, format: format, planes: planes, modifier: modifier, byteCount: nil)
    }

    private func addFramebuffer(
        width: Int,
        height: Int,
        format: PixelFormat,
        planes: [FramebufferPlane],
        modifier: FormatModifier?,
        byteCount: Int?
    ) throws(XenGntError) -> Framebuffer {
        guard (1...4).contains(planes.count), width > 0, height > 0, width <= Int(UInt32.max), height <= Int(UInt32.max),
            planes.allSatisfy({ $0.pitch >= 0 && $0.pitch <= Int(UInt32.max) && $0.offset >= 0 && $0.offset <= Int(UInt32.max) })
        else {
            throw XenGntError(
                .invalidArgument,
                .addFramebuffer,
                path: path,
                detail:
                    "a framebuffer has 1 to 4 planes, a non-zero size and 32-bit pitches and offsets; asked for \(width)×\(height) with \(planes.count) planes."
            )
        }
        for plane in planes where file.owners(of: plane.handle) == 0 {
            throw XenGntError(
                .notFound,
                .addFramebuffer,
                path: path,
                detail: "handle \(plane.handle) has no owner on this device"
            )
        }
        var argument = drm_mode_fb_cmd2()
        argument.width = UInt32(width)
        argument.height = UInt32(height)
        argument.pixel_format = format.rawValue
        if let modifier {
            argument.flags = UInt32(CDRM_MODE_FB_MODIFIERS)
            _ = modifier
        }
        withUnsafeMutableBytes(of: &argument.handles) { raw in
            for (i, plane) in planes.enumerated() { raw.storeBytes(of: plane.handle, toByteOffset: i * 4, as: UInt32.self) }
        }
        withUnsafeMutableBytes(of: &argument.pitches) { raw in
            for (i, plane) in planes.enumerated() {
                raw.storeBytes(of: UInt32(plane.pitch), toByteOffset: i * 4, as: UInt32.self)
            }
        }
        withUnsafeMutableBytes(of: &argument.offsets) { raw in
            for (i, plane) in planes.enumerated() {
                raw.storeBytes(of: UInt32(plane.offset), toByteOffset: i * 4, as: UInt32.self)
            }
        }
        if let modifier {
            withUnsafeMutableBytes(of: &argument.modifier) { raw in
                for i in planes.indices { raw.storeBytes(of: modifier.rawValue, toByteOffset: i * 8, as: UInt64.self) }
            }
        }
        do throws(XenGntError) {
            try file.ioctl(DRMRequest.addFramebuffer2, &argument, .addFramebuffer)
        } catch  where error.errno == .invalidArgument {
            throw XenGntError(
                .invalidArgument,
                .addFramebuffer,
                call: error.call,
                errno: error.errno,
                path: path,
                detail:
                    "the kernel rejected the \(width)×\(height) \(format) framebuffer: a format it does not know, a pitch, offset or size that does not fit the buffer\(byteCount.map { " (\($0) bytes)" } ?? ""), a modifier the driver does not take, or a size outside the driver's limits."
            )
        }
        for plane in planes { file.retain(plane.handle) }
        let info = FramebufferInfo(
            id: argument.fb_id,
            width: width,
            height: height,
            format: format,
            device: ObjectIdentifier(file)
        )
        return Framebuffer(file: file, info: info, handles: planes.map(\.handle))
    }

    /// Refuses an owner made on another device (handles are numbered per device file).
    func checkSameDevice(_ other: DRMFile, _ operation: XenGntError.Operation) throws(XenGntError) {
        guard other === file else {
            throw XenGntError(
                .invalidArgument,
                operation,
                path: path,
                detail:
                    "the buffer belongs to \(other.path) opened separately; GEM handles are numbered per device file, so import its dma-buf into this device first."
            )
        }
    }
}
