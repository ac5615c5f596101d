internal import CXenGnt
public import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An owned dma-buf file descriptor from any source: a DRM PRIME export, udmabuf, a DMA heap,
/// or a buffer another process passed over a socket. Closing it (or letting it go) drops this
/// process's reference; the buffer lives on while any other user holds it.
///
/// Use ``fileDescriptor`` to lend the descriptor to another API without giving it away, and
/// ``take()`` to hand ownership over. A descriptor taken out is the caller's to close.
public struct DmaBuf: ~Copyable, Sendable {
    let calls: any SystemCalls
    /// The descriptor; lend it, do not close it.
    public let fileDescriptor: FileDescriptor
    /// The size in bytes when XenGnt knows it without asking the kernel (it allocated the
    /// buffer, or was told), so an import needs no `lseek`.
    let knownSize: Int?
    private var isOwned = true

    /// Takes ownership of `fileDescriptor`, a dma-buf opened on `system`.
    ///
    /// - Parameters:
    ///   - fileDescriptor: the dma-buf; XenGnt closes it when this value goes away.
    ///   - byteCount: the buffer's size, if known (a DRM dumb buffer's `size`); otherwise XenGnt
    ///     asks the kernel when it needs it.
    ///   - system: where the descriptor was opened (the kernel, or a simulated domain).
    public init(adopting fileDescriptor: FileDescriptor, byteCount: Int? = nil, on system: XenSystem = .kernel) {
        self.calls = system.calls
        self.fileDescriptor = fileDescriptor
        self.knownSize = byteCount
    }

    init(fd: Int32, calls: any SystemCalls, size: Int? = nil) {
        self.calls = calls
        self.fileDescriptor = FileDescriptor(rawValue: fd)
        self.knownSize = size
    }

    /// A view of a descriptor another owner keeps: going away does not close it.
    init(viewing fd: Int32, calls: any SystemCalls, size: Int?) {
        self.init(fd: fd, calls: calls, size: size)
        isOwned = false
    }

    var fd: Int32 { fileDescriptor.rawValue }

    /// The buffer's size in bytes: known for buffers XenGnt allocated, else asked of the kernel
    /// (`lseek(fd, 0, SEEK_END)`, which every dma-buf supports).
    ///
    /// The corresponding C function is `lseek`.
    public func size() throws(XenGntError) -> Int {
        if let knownSize { return knownSize }
        return try Self.size(of: fd, calls: calls, operation: .dmaBufSize)
    }

    static func size(of fd: Int32, calls: any SystemCalls, operation: XenGntError.Operation) throws(XenGntError) -> Int {
        do throws(Errno) {
            return Int(try retryingOnInterrupt { () throws(Errno) in try calls.lseek(fd, offset: 0, whence: SEEK_END) })
        } catch {
            let code: XenGntError.Code =
                switch error {
                case .badFileDescriptor: .badFileDescriptor
                case .illegalSeek, .invalidArgument: .notADmaBuf
                default: .kernel
                }
            throw XenGntError(code, operation, call: Call.lseek, errno: error)
        }
    }

    /// Brackets CPU access to the buffer's memory, so caches are kept coherent with devices.
    ///
    /// Call with ``CPUAccessPhase/start`` before reading or writing a CPU mapping and with
    /// ``CPUAccessPhase/end`` after; ``withCPUAccess(_:_:)`` does both.
    ///
    /// The corresponding ioctl is `DMA_BUF_IOCTL_SYNC`.
    public func sync(_ phase: CPUAccessPhase, _ access: Access) throws(XenGntError) {
        var flags = UInt64(access == .readOnly ? DMA_BUF_SYNC_READ : DMA_BUF_SYNC_RW)
        if phase == .end { flags |= UInt64(DMA_BUF_SYNC_END) }
        var argument = dma_buf_sync(flags: flags)
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, Request.dmaBufSync, &argument) }
        } catch {
            throw XenGntError(Self.code(of: error), .dmaBufSync, call: Call.dmaBufSync, errno: error)
        }
    }

    /// Runs `body` between a start and an end of CPU access.
    ///
    /// The corresponding ioctl is `DMA_BUF_IOCTL_SYNC`.
    public func withCPUAccess<R>(_ access: Access, _ body: () throws(XenGntError) -> R) throws(XenGntError) -> R {
        try sync(.start, access)
        let result: R
        do throws(XenGntError) {
            result = try body()
        } catch {
            try? sync(.end, access)
            throw error
        }
        try sync(.end, access)
        return result
    }

    /// Names the buffer (shown in `/proc/<pid>/fdinfo` and debugfs); at most 31 bytes of UTF-8.
    ///
    /// The corresponding ioctl is `DMA_BUF_SET_NAME`.
    public func setName(_ name: String) throws(XenGntError) {
        let utf8 = Array(name.utf8)
        guard utf8.count < Int(CXG_DMA_BUF_NAME_LEN), !utf8.contains(0) else {
            throw XenGntError.invalid(
                .dmaBufSetName,
                "a dma-buf name is at most \(Int(CXG_DMA_BUF_NAME_LEN) - 1) bytes of UTF-8 without NUL; \"\(name)\" is \(utf8.count)."
            )
        }
        // The ioctl reads a NUL-terminated string of at most DMA_BUF_NAME_LEN bytes.
        var storage: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let outcome = withUnsafeMutableBytes(of: &storage) { raw in
            raw.copyBytes(from: utf8)
            return Result { () throws(Errno) in
                try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, Request.dmaBufSetName, raw.baseAddress) }
            }
        }
        if case .failure(let error) = outcome {
            throw XenGntError(Self.code(of: error), .dmaBufSetName, call: Call.dmaBufSetName, errno: error)
        }
    }

    /// A second owned descriptor for the same buffer (both must be closed for this process to
    /// let go of it).
    ///
    /// The corresponding C function is `dup`.
    public func duplicate() throws(XenGntError) -> DmaBuf {
        do throws(Errno) {
            return DmaBuf(fd: try calls.dup(fd), calls: calls, size: knownSize)
        } catch {
            throw XenGntError(
                error == .badFileDescriptor ? .badFileDescriptor : .kernel,
                .duplicate,
                call: Call.dup,
                errno: error
            )
        }
    }

    /// Maps the buffer into this process.
    ///
    /// - Throws: ``XenGntError/Code/notMappable`` for buffers whose exporter has no mmap
    ///   (gntdev exports).
    ///
    /// The corresponding C function is `mmap`.
    public func map(_ access: Access = .readWrite) throws(XenGntError) -> DmaBufMapping {
        let length: Int
        if let knownSize { length = knownSize } else { length = try Self.size(of: fd, calls: calls, operation: .mapDmaBuf) }
        guard length > 0 else { throw XenGntError(.emptyRequest, .mapDmaBuf) }
        let protection = access == .readWrite ? PROT_READ | PROT_WRITE : PROT_READ
        do throws(Errno) {
            let address = try retryingOnInterrupt { () throws(Errno) in
                try calls.mmap(length: length, protection: protection, flags: MAP_SHARED, fd: fd, offset: 0)
            }
            return DmaBufMapping(calls: calls, address: address, byteCount: length, access: access)
        } catch {
            let code: XenGntError.Code = error == .invalidArgument || error == .noDevice ? .notMappable : Self.code(of: error)
            throw XenGntError(code, .mapDmaBuf, call: Call.mmap, errno: error)
        }
    }

    /// Gives up ownership: the descriptor is returned and no longer closed by XenGnt.
    public consuming func take() -> FileDescriptor {
        isOwned = false
        return fileDescriptor
    }

    /// Closes the descriptor, reporting errors.
    ///
    /// The corresponding C function is `close`.
    public consuming func close() throws(XenGntError) {
        isOwned = false
        do throws(Errno) {
            try calls.close(fd)
        } catch {
            throw XenGntError(error == .badFileDescriptor ? .badFileDescriptor : .kernel, .close, call: Call.close, errno: error)
        }
    }

    deinit {
        if isOwned { try? calls.close(fd) }
    }

    static func code(of errno: Errno) -> XenGntError.Code {
        switch errno {
        case .badFileDescriptor: .badFileDescriptor
        case .inappropriateIOCTLForDevice: .notADmaBuf
        case .noMemory: .outOfMemory
        default: .kernel
        }
    }
}

/// The two halves of a CPU access bracket (`DMA_BUF_SYNC_START`, `DMA_BUF_SYNC_END`).
public enum CPUAccessPhase: Sendable, Hashable {
    /// Before the CPU reads or writes (`DMA_BUF_SYNC_START`).
    case start
    /// After the CPU is done (`DMA_BUF_SYNC_END`).
    case end
}

/// A dma-buf mapped into this process. Unmapped when it goes away.
public struct DmaBufMapping: ~Copyable, @unchecked Sendable {
    let calls: any SystemCalls
    /// Start of the mapped memory.
    public let baseAddress: UnsafeMutableRawPointer
    /// Bytes mapped.
    public let byteCount: Int
    /// Whether the memory is writable.
    public let access: Access
    private var isMapped = true

    init(calls: any SystemCalls, address: UnsafeMutableRawPointer, byteCount: Int, access: Access) {
        self.calls = calls
        self.baseAddress = address
        self.byteCount = byteCount
        self.access = access
    }

    /// Calls `body` with the mapped bytes.
    public func withUnsafeBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Calls `body` with the mapped bytes, writable.
    ///
    /// - Throws: ``XenGntError/Code/readOnlyMapping`` for a read-only mapping.
    public func withUnsafeMutableBytes<R>(
        _ body: (UnsafeMutableRawBufferPointer) throws(XenGntError) -> R
    ) throws(XenGntError) -> R {
        guard access == .readWrite else { throw XenGntError(.readOnlyMapping, .writeMapping) }
        return try body(UnsafeMutableRawBufferPointer(start: baseAddress, count: byteCount))
    }

    /// Unmaps the memory, reporting errors.
    ///
    /// The corresponding C function is `munmap`.
    public consuming func unmap() throws(XenGntError) {
        isMapped = false
        do throws(Errno) {
            try calls.munmap(baseAddress, length: byteCount)
        } catch {
            throw XenGntError(.kernel, .unmapDmaBuf, call: Call.munmap, errno: error)
        }
    }

    deinit {
        if isMapped { try? calls.munmap(baseAddress, length: byteCount) }
    }
}
