internal import CXenGnt
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// A growable, reusable buffer for ioctl arguments. It only ever grows, so once it has held the
/// largest argument a program uses, building an argument allocates nothing.
struct ScratchBuffer: ~Copyable, @unchecked Sendable {
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        self.base = .allocate(byteCount: capacity, alignment: 16)
    }

    /// Room for `bytes` bytes, the first `zeroing` of them zeroed.
    mutating func reserve(_ bytes: Int, zeroing: Int) -> UnsafeMutableRawPointer {
        if bytes > capacity {
            base.deallocate()
            capacity = max(bytes, capacity * 2)
            base = .allocate(byteCount: capacity, alignment: 16)
        }
        base.initializeMemory(as: UInt8.self, repeating: 0, count: min(zeroing, bytes))
        return base
    }

    deinit { base.deallocate() }
}

/// An open device file: its descriptor, the seam it goes through, and a scratch buffer for
/// variable-length ioctl arguments. Devices and their owners share one handle; the descriptor is
/// closed when the last of them goes.
final class DeviceHandle: Sendable {
    let fd: Int32
    let calls: any SystemCalls
    let path: String
    private let scratch = Mutex(ScratchBuffer(capacity: 4096))
    /// A descriptor on /dev/null, opened on first use, that `dup3` copies over a descriptor
    /// number to keep the number reserved while the kernel still names an object by it.
    private let placeholder = Mutex<Int32>(-1)
    /// Placeholders whose buffer was not yet released when their owner went away. The kernel
    /// still records the buffer under that number, so the number is freed only once the kernel
    /// reports the buffer released (or this file closes, which ends every wait on it).
    private let lingering = Mutex<[Int32]>([])

    init(path: String, calls: any SystemCalls) throws(XenGntError) {
        self.path = path
        self.calls = calls
        do {
            fd = try retryingOnInterrupt { () throws(Errno) in
                try calls.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0)
            }
        } catch {
            throw XenGntError(.openDevice, errno: error, cause: Self.openCause(error, path: path))
        }
    }

    static func openCause(_ errno: Errno, path: String) -> XenGntError.Cause {
        switch errno {
        case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .operationNotSupportedByDevice:
            .deviceMissing(path: path)
        case .permissionDenied, .notPermitted:
            .permissionDenied(path: path)
        case .noMemory:
            .outOfMemory
        default:
            .kernel
        }
    }

    deinit {
        try? calls.close(fd)
        let spare = placeholder.withLock { $0 }
        if spare >= 0 { try? calls.close(spare) }
        for number in lingering.withLock({ $0 }) { try? calls.close(number) }
    }

    /// Whether the exported buffer recorded under `number` has been released: wait-released
    /// with a zero timeout (0 or ENOENT: released; ETIMEDOUT: still in use).
    func isReleased(_ number: Int32) throws(Errno) -> Bool {
        var argument = ioctl_gntdev_dmabuf_exp_wait_released(fd: UInt32(bitPattern: number), wait_to_ms: 0)
        do throws(Errno) {
            _ = try ioctl(Request.expWaitReleased, &argument)
            return true
        } catch .timedOut {
            return false
        } catch .noSuchFileOrDirectory {
            return true
        }
    }

    /// Frees a placeholder number now if its buffer is released, else once it is.
    func retire(placeholder number: Int32) {
        if (try? isReleased(number)) == false {
            lingering.withLock { $0.append(number) }
        } else {
            try? calls.close(number)
        }
    }

    /// Frees the lingering numbers whose buffers have been released since.
    func sweepLingering() {
        lingering.withLock { numbers in
            guard !numbers.isEmpty else { return }
            numbers.removeAll { number in
                guard (try? isReleased(number)) != false else { return false }
                try? calls.close(number)
                return true
            }
        }
    }

    /// Atomically replaces what `number` refers to with /dev/null: the object that was there
    /// loses this reference, but the number stays taken until the caller closes it.
    func reserveNumber(_ number: Int32) throws(Errno) {
        let source = try placeholder.withLock { (spare: inout Int32) throws(Errno) -> Int32 in
            if spare < 0 {
                spare = try retryingOnInterrupt { () throws(Errno) in
                    try calls.open(Paths.devNull, flags: O_RDWR | O_CLOEXEC, mode: 0)
                }
            }
            return spare
        }
        try retryingOnInterrupt { () throws(Errno) in try calls.dup3(source, number, flags: O_CLOEXEC) }
    }

    /// Issues `request` with a fixed-size argument, retrying `EINTR`.
    @inline(__always)
    func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, request, argument) }
    }

    /// Runs `body` with a zeroed argument buffer of `bytes` bytes: the shared scratch buffer when
    /// it is free (no allocation), or a temporary one when another thread holds it.
    func withArgument<R: ~Copyable>(
        bytes: Int,
        _ body: (UnsafeMutableRawPointer) throws(XenGntError) -> R
    ) throws(XenGntError) -> R {
        var outcome: Outcome<R> = .notRun
        scratch.withLockIfAvailable { buffer in
            let argument = buffer.reserve(bytes, zeroing: bytes)
            do throws(XenGntError) { outcome = .value(try body(argument)) } catch { outcome = .error(error) }
        }
        switch consume outcome {
        case .value(let value): return value
        case .error(let error): throw error
        case .notRun:
            let argument = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 16)
            defer { argument.deallocate() }
            argument.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
            return try body(argument)
        }
    }

    private enum Outcome<Value: ~Copyable>: ~Copyable {
        case notRun
        case value(Value)
        case error(XenGntError)
    }

    /// Unmaps `pageCount` pages at `address`, then issues `request` with a `{ index, count }`
    /// argument to release what was mapped (gntdev's unmap and gntalloc's dealloc share that
    /// layout). Both are attempted; the first failure is returned.
    func unmap(
        _ address: UnsafeMutableRawPointer,
        pageCount: Int,
        thenRelease request: UInt,
        index: UInt64,
        as operation: XenGntError.Operation,
        notFound: Errno
    ) -> XenGntError? {
        var failure: XenGntError?
        do throws(Errno) {
            try calls.munmap(address, length: pageCount * xenPageSize)
        } catch {
            failure = XenGntError(.unmapMemory, errno: error, cause: .kernel)
        }
        var argument = ioctl_gntdev_unmap_grant_ref(index: index, count: UInt32(pageCount), pad: 0)
        do throws(Errno) {
            _ = try ioctl(request, &argument)
        } catch {
            failure = failure ?? XenGntError(operation, errno: error, cause: error == notFound ? .notFound : .kernel)
        }
        return failure
    }

    /// Reads an integer module parameter, or `nil` when it is not readable.
    func readInteger(_ path: String) -> Int? {
        Self.readInteger(path, calls: calls)
    }

    static func readInteger(_ path: String, calls: any SystemCalls) -> Int? {
        guard let text = try? calls.readSmallFile(path) else { return nil }
        return Int(text.trimmingWhitespace())
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
