internal import CDRM
public import SystemPackage
public import XenGnt

/// One owner of a GEM handle: a DRM device's name for a buffer object, from a PRIME import.
///
/// A handle does not own the buffer's memory, and an import does not own the dma-buf it came
/// from: the caller keeps (and later releases) the dma-buf. The kernel finds an imported buffer
/// by its dma-buf object, so importing the same buffer twice (a duplicate descriptor, or this
/// device's own export) yields the same handle; XenGntDRM counts the owners of each handle and
/// sends `DRM_IOCTL_GEM_CLOSE` once, when the last one goes.
///
/// A framebuffer made from the handle keeps it open until the framebuffer is removed, so
/// closing handles and removing framebuffers can happen in any order.
public struct GEMHandle: ~Copyable, Sendable {
    let file: DRMFile
    /// The handle, as the kernel numbers it on this device file.
    public let rawValue: UInt32
    /// The buffer's size in bytes, when known.
    public let byteCount: Int?
    private var isOwned = true

    init(file: DRMFile, rawValue: UInt32, byteCount: Int?) {
        self.file = file
        self.rawValue = rawValue
        self.byteCount = byteCount
    }

    /// How many owners this handle has on its device (framebuffers count as owners).
    public var ownerCount: Int { file.owners(of: rawValue) }

    /// Drops this owner; the last owner closes the handle, reporting errors.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_GEM_CLOSE`, for the last owner.
    public consuming func close() throws(XenGntError) {
        isOwned = false
        if let (errno, dumb) = file.release(rawValue) {
            throw file.failure(errno, .closeGEMHandle, request: dumb ? DRMRequest.destroyDumb : DRMRequest.gemClose)
        }
    }

    deinit {
        if isOwned { file.release(rawValue) }
    }
}

extension DRMDevice {
    /// Imports the dma-buf behind `fileDescriptor`, which stays the caller's: the handle does
    /// not own the buffer, and closing the descriptor later does not close the handle.
    ///
    /// - Throws: `XenGntError.Code.notADmaBuf` when the descriptor is not a dma-buf
    ///   (`EINVAL`), `XenGntError.Code.badFileDescriptor` when it is not open.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_PRIME_FD_TO_HANDLE`.
    public func importPrime(_ fileDescriptor: FileDescriptor, byteCount: Int? = nil) throws(XenGntError) -> GEMHandle {
        var argument = drm_prime_handle(handle: 0, flags: 0, fd: fileDescriptor.rawValue)
        try file.ioctl(DRMRequest.primeFDToHandle, &argument, .primeImport) { errno in
            switch errno {
            case .invalidArgument: .notADmaBuf
            case .badFileDescriptor: .badFileDescriptor
            case .noFunction: .primeUnsupported
            default: nil
            }
        }
        file.retain(argument.handle)
        return GEMHandle(file: file, rawValue: argument.handle, byteCount: byteCount)
    }

    /// Imports a frontend's buffer exported by gntdev. The export stays the caller's; release
    /// it only after every handle and framebuffer made from it is gone, or its wait-released
    /// stays pending.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_PRIME_FD_TO_HANDLE`.
    public func importPrime(_ buffer: borrowing ExportedDmaBuf) throws(XenGntError) -> GEMHandle {
        try importPrime(buffer.fileDescriptor, byteCount: buffer.byteCount)
    }

    /// Imports a dma-buf (udmabuf, a DMA heap, another device's export), which stays the
    /// caller's.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_PRIME_FD_TO_HANDLE`.
    public func importPrime(_ buffer: borrowing DmaBuf) throws(XenGntError) -> GEMHandle {
        try importPrime(buffer.fileDescriptor, byteCount: try? buffer.size())
    }

    /// Exports the buffer behind `handle` as a dma-buf (readable and writable, close-on-exec),
    /// for another device or for `GrantDevice.importDmaBuf(_:to:pageCount:)`.
    ///
    /// The corresponding ioctl is `DRM_IOCTL_PRIME_HANDLE_TO_FD`.
    public func exportPrime(_ handle: borrowing GEMHandle) throws(XenGntError) -> DmaBuf {
        try checkSameDevice(handle.file, .primeExport)
        return try exportPrime(handle: handle.rawValue, byteCount: handle.byteCount)
    }

    func exportPrime(handle: UInt32, byteCount: Int?) throws(XenGntError) -> DmaBuf {
        var argument = drm_prime_handle(handle: handle, flags: UInt32(CDRM_CLOEXEC | CDRM_RDWR), fd: -1)
        try file.ioctl(DRMRequest.primeHandleToFD, &argument, .primeExport) { errno in
            errno == .noFunction ? .primeUnsupported : nil
        }
        return DmaBuf(adopting: FileDescriptor(rawValue: argument.fd), byteCount: byteCount, on: system)
    }
}
