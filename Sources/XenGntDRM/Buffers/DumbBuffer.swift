internal import CDRM
import SystemPackage
public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A dumb buffer: a linear buffer the display driver allocates, which the CPU can map
/// (``map()``), a framebuffer can show, and PRIME can export to be shared with a frontend.
///
/// Owns its GEM handle (shared, counted, with any import of the buffer's own export on this
/// device): `DRM_IOCTL_MODE_DESTROY_DUMB` is sent when the last owner goes.
public struct DumbBuffer: ~Copyable, Sendable {
    /// The device that made it.
    public let device: DRMDevice
    var file: DRMFile { device.file }
    /// The buffer's GEM handle.
    public let handle: UInt32
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// Bits per pixel asked for (32 for XR24).
    public let bitsPerPixel: Int
    /// Bytes per row, as the driver chose it (at least `width × bitsPerPixel / 8`).
    public let pitch: Int
    /// The buffer's size in bytes, as the driver allocated it.
    public let byteCount: Int
    private var isOwned = true

    init(device: DRMDevice, handle: UInt32, width: Int, height: Int, bitsPerPixel: Int, pitch: Int, byteCount: Int) {
        self.device = device
        self.handle = handle
        self.width = width
        self.height = height
        self.bitsPerPixel = bitsPerPixel
        self.pitch = pitch
        self.byteCount = byteCount
    }

    /// Maps the buffer for the CPU, readable and writable.
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/cpuAccessHangs`` for a vgem buffer in an x86 PV
    ///   DomU, before anything is mapped: there the first access through the mapping never
    ///   returns (measured in the lab; see Documentation/DisplayPath.md).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_MAP_DUMB`, followed by `mmap` of the device.
    public func map() throws(XenGntError) -> DumbBufferMapping {
        if device.driver.name == "vgem", device.isPVDomU {
            throw XenGntError(.cpuAccessHangs, .mapDumbBuffer, path: device.path, detail: device.driver.name)
        }
        return try mapIgnoringKnownHangs()
    }

    /// Maps the buffer without refusing the known hang (for the lab's hand-run case that
    /// shows it).
    package func mapIgnoringKnownHangs() throws(XenGntError) -> DumbBufferMapping {
        var argument = drm_mode_map_dumb(handle: handle, pad: 0, offset: 0)
        try file.ioctl(DRMRequest.mapDumb, &argument, .mapDumbBuffer)
        do throws(Errno) {
            let address = try retryingOnInterrupt { () throws(Errno) in
                try file.calls.mmap(
                    length: byteCount,
                    protection: PROT_READ | PROT_WRITE,
                    flags: MAP_SHARED,
                    fd: file.fd,
                    offset: Int64(bitPattern: argument.offset)
                )
            }
            return DumbBufferMapping(file: file, address: address, byteCount: byteCount, pitch: pitch)
        } catch {
            throw XenGntError(
                error == .noMemory ? .outOfMemory : .kernel,
                .mapDumbBuffer,
                call: "mmap",
                errno: error,
                path: file.path
            )
        }
    }

    /// Drops this owner of the buffer; the last owner destroys it, reporting errors.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_DESTROY_DUMB`, for the last owner.
    public consuming func destroy() throws(XenGntError) {
        isOwned = false
        if let (errno, dumb) = file.release(handle) {
            throw file.failure(errno, .destroyDumbBuffer, request: dumb ? DRMRequest.destroyDumb : DRMRequest.gemClose)
        }
    }

    deinit {
        if isOwned { file.release(handle) }
    }
}

/// A CPU mapping of a dumb buffer; unmapped when it goes away.
public struct DumbBufferMapping: ~Copyable, @unchecked Sendable {
    let file: DRMFile
    /// Start of the mapped memory.
    public let baseAddress: UnsafeMutableRawPointer
    /// Bytes mapped.
    public let byteCount: Int
    /// Bytes per row.
    public let pitch: Int
    private var isMapped = true

    init(file: DRMFile, address: UnsafeMutableRawPointer, byteCount: Int, pitch: Int) {
        self.file = file
        self.baseAddress = address
        self.byteCount = byteCount
        self.pitch = pitch
    }

    /// Calls `body` with the mapped bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Calls `body` with the mapped bytes, writable.
    public func withUnsafeMutableBytes<R, E: Error>(_ body: (UnsafeMutableRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeMutableRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Unmaps the memory, reporting errors.
    ///
    /// The corresponding C function is `munmap`.
    public consuming func unmap() throws(XenGntError) {
        isMapped = false
        if let errno = file.attempt(.munmap(baseAddress, length: byteCount)) {
            throw XenGntError(.kernel, .unmapDumbBuffer, call: "munmap", errno: errno)
        }
    }

    deinit {
        if isMapped { _ = file.attempt(.munmap(baseAddress, length: byteCount)) }
    }
}

extension DRMDevice {
    /// Creates a dumb buffer of `width × height` pixels of `bitsPerPixel` bits (32 for XR24).
    ///
    /// - Throws: ``XenGnt/XenGntError/Code/renderNode`` on a render node (`EACCES`);
    ///   `XenGntError.Code.invalidArgument` for a zero or overflowing size, before the
    ///   kernel is asked.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_MODE_CREATE_DUMB`.
    public func createDumbBuffer(width: Int, height: Int, bitsPerPixel: Int = 32) throws(XenGntError) -> DumbBuffer {
        guard width > 0, height > 0, bitsPerPixel > 0, width <= 16384, height <= 16384, bitsPerPixel <= 128 else {
            throw XenGntError(
                .invalidArgument,
                .createDumbBuffer,
                path: path,
                detail:
                    "a dumb buffer needs a width and height from 1 to 16384 and 1 to 128 bits per pixel; asked for \(width)×\(height) at \(bitsPerPixel) bpp."
            )
        }
        var argument = drm_mode_create_dumb(
            height: UInt32(height),
            width: UInt32(width),
            bpp: UInt32(bitsPerPixel),
            flags: 0,
            handle: 0,
            pitch: 0,
            size: 0
        )
        try file.ioctl(DRMRequest.createDumb, &argument, .createDumbBuffer) { errno in
            errno == .noFunction ? .noModesetting : nil
        }
        file.retain(argument.handle, dumb: true)
        return DumbBuffer(
            device: self,
            handle: argument.handle,
            width: width,
            height: height,
            bitsPerPixel: bitsPerPixel,
            pitch: Int(argument.pitch),
            byteCount: Int(argument.size)
        )
    }

    /// Exports a dumb buffer as a dma-buf, for `GrantDevice.importDmaBuf(_:to:pageCount:)`
    /// or another device. The dma-buf keeps the buffer alive after the dumb buffer is destroyed.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_PRIME_HANDLE_TO_FD`.
    public func exportPrime(_ buffer: borrowing DumbBuffer) throws(XenGntError) -> DmaBuf {
        try checkSameDevice(buffer.file, .primeExport)
        return try exportPrime(handle: buffer.handle, byteCount: buffer.byteCount)
    }
}
