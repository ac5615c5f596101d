internal import CXenGnt
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An open device file: its descriptor, the seam it goes through, a scratch buffer for
/// variable-length ioctl arguments, and the teardown steps the kernel refused. Devices and their
/// owners share one handle; the descriptor is closed when the last of them goes.
final class DeviceHandle: Sendable {
    let fd: Int32
    let calls: any SystemCalls
    let path: String
    private let scratch = Locked(ScratchBuffer(capacity: 4096))
    /// A descriptor on /dev/null, opened on first use, that `dup3` copies over a descriptor
    /// number to keep the number reserved while the kernel still names an object by it.
    private let placeholder = Locked<Int32>(-1)
    /// Placeholders whose buffer was not yet released when their owner went away. The kernel
    /// still records the buffer under that number, so the number is freed only once the kernel
    /// reports the buffer released (or this file closes, which ends every wait on it).
    private let lingering = Locked<[Int32]>([])
    /// Teardown steps of consumed owners that the kernel refused, retried at the device's next
    /// call and when it closes, so a failed release never leaves its resource unreachable.
    private let parked = Locked<[Teardown]>([])
    /// How many steps are parked; read without the lock on every call.
    private let parkedCount = Atomic<Int>(0)

    init(path: String, calls: any SystemCalls, operation: XenGntError.Operation = .openDevice) throws(XenGntError) {
        self.path = path
        self.calls = calls
        fd = try Self.open(path, calls: calls, flags: O_RDWR | O_CLOEXEC, operation: operation)
    }

    /// Opens `path` through `calls`, explaining a failure by the path.
    static func open(
        _ path: String,
        calls: any SystemCalls,
        flags: Int32,
        operation: XenGntError.Operation
    ) throws(XenGntError) -> Int32 {
        do throws(Errno) {
            return try retryingOnInterrupt { () throws(Errno) in try calls.open(path, flags: flags, mode: 0) }
        } catch {
            let code: XenGntError.Code =
                switch error {
                case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .noDevice: .deviceMissing
                case .permissionDenied, .notPermitted: .permissionDenied
                case .noMemory: .outOfMemory
                default: .kernel
                }
            throw XenGntError(code, operation, call: Call.open, errno: error, path: path)
        }
    }

    deinit {
        retryParked()
        try? calls.close(fd)
        let spare = placeholder.withLock { $0 }
        if spare >= 0 { try? calls.close(spare) }
        for number in lingering.withLock({ $0 }) { try? calls.close(number) }
        // What the kernel still refused is released with the file (maps, imports); a parked
        // import keeps its dma-buf descriptor until now.
        for step in parked.withLock({ $0 }) {
            if case .importRelease(let number) = step { try? calls.close(number) }
        }
    }

    // MARK: Exported-buffer numbers

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

    /// Frees a placeholder number: at once when its buffer is known to be released, else once
    /// the kernel says it is.
    func retire(placeholder number: Int32, knownReleased: Bool) {
        if SeededBugs.skipPlaceholderClose.load(ordering: .relaxed) { return }
        if !knownReleased, (try? isReleased(number)) == false {
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
    func reserveNumber(_ number: Int32) throws(XenGntError) {
        let source = try placeholder.withLock { (spare: inout Int32) throws(XenGntError) -> Int32 in
            if spare < 0 {
                spare = try Self.open(Paths.devNull, calls: calls, flags: O_RDWR | O_CLOEXEC, operation: .releaseExport)
            }
            return spare
        }
        do throws(Errno) {
            try retryingOnInterrupt { () throws(Errno) in try calls.dup3(source, number, flags: O_CLOEXEC) }
        } catch {
            throw XenGntError(
                error == .badFileDescriptor ? .badFileDescriptor : .kernel,
                .releaseExport,
                call: Call.dup3,
                errno: error
            )
        }
    }

    // MARK: Calls

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

    /// Reads an integer module parameter, or `nil` when it is not readable.
    func readInteger(_ path: String) -> Int? {
        Self.readInteger(path, calls: calls)
    }

    static func readInteger(_ path: String, calls: any SystemCalls) -> Int? {
        guard let text = try? calls.readSmallFile(path) else { return nil }
        return Int(text.trimmingWhitespace())
    }

    // MARK: Teardown

    /// One step of releasing a kernel resource.
    enum Teardown: @unchecked Sendable {
        /// Unmap memory of this process.
        case munmap(UnsafeMutableRawPointer, length: Int)
        /// `IOCTL_GNTDEV_UNMAP_GRANT_REF` or `IOCTL_GNTALLOC_DEALLOC_GREF` (same layout).
        case release(request: UInt, index: UInt64, count: UInt32)
        /// `IOCTL_GNTDEV_DMABUF_IMP_RELEASE` of the import named by `number`, then close it.
        case importRelease(number: Int32)
    }

    /// Runs `step`; if the kernel refuses it, parks it to be retried at the device's next call
    /// and when the device closes. Returns the kernel's answer, `nil` on success (or when the
    /// kernel no longer knows the object, which is what the step wanted).
    func attempt(_ step: Teardown) -> Errno? {
        guard let failure = run(step) else { return nil }
        park(step)
        return failure
    }

    /// Parks `step` without running it (its first attempt already failed).
    func park(_ step: Teardown) {
        parked.withLock { $0.append(step) }
        parkedCount.add(1, ordering: .releasing)
    }

    /// Retries parked steps; cheap (one atomic load) when there are none.
    @inline(__always)
    func retryParked() {
        if parkedCount.load(ordering: .acquiring) > 0 { drainParked() }
    }

    private func drainParked() {
        parked.withLock { steps in
            steps.removeAll { run($0) == nil }
            parkedCount.store(steps.count, ordering: .releasing)
        }
    }

    /// The step's failure, or `nil` when it is done.
    private func run(_ step: Teardown) -> Errno? {
        do throws(Errno) {
            switch step {
            case .munmap(let address, let length):
                try retryingOnInterrupt { () throws(Errno) in try calls.munmap(address, length: length) }
            case .release(let request, let index, let count):
                var argument = ioctl_gntdev_unmap_grant_ref(index: index, count: count, pad: 0)
                do throws(Errno) {
                    _ = try ioctl(request, &argument)
                } catch  where error == .noSuchFileOrDirectory || (request == Request.deallocGref && error == .invalidArgument) {
                    // The kernel no longer has the object (gntdev: ENOENT, gntalloc: EINVAL).
                }
            case .importRelease(let number):
                var argument = ioctl_gntdev_dmabuf_imp_release(fd: UInt32(bitPattern: number), reserved: 0)
                do throws(Errno) {
                    _ = try ioctl(Request.impRelease, &argument)
                } catch .noSuchFileOrDirectory {
                }
                try? calls.close(number)
            }
            return nil
        } catch {
            return error
        }
    }

    /// Unmaps `pageCount` pages at `address`, then releases the kernel's object with `request`
    /// (gntdev's unmap and gntalloc's dealloc share the `{ index, count }` layout). Both steps
    /// are attempted; a refused one is parked. Returns the first failure.
    func unmap(
        _ address: UnsafeMutableRawPointer,
        pageCount: Int,
        thenRelease request: UInt,
        index: UInt64,
        as operation: XenGntError.Operation,
        call: String
    ) -> XenGntError? {
        retryParked()
        var failure: XenGntError?
        if let errno = attempt(.munmap(address, length: pageCount * xenPageSize)) {
            failure = XenGntError(.kernel, operation, call: Call.munmap, errno: errno)
        }
        if let errno = attempt(.release(request: request, index: index, count: UInt32(pageCount))) {
            failure = failure ?? XenGntError(errno == .noMemory ? .outOfMemory : .kernel, operation, call: call, errno: errno)
        }
        return failure
    }
}

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

extension String {
    func trimmingWhitespace() -> String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
