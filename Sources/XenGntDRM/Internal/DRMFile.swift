internal import CDRM
import Synchronization
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// An open DRM device file: its descriptor, the seam it goes through, the GEM handles its owners
/// share, and the teardown steps the kernel refused. A ``DRMDevice`` and every owner it hands
/// out share one file; the descriptor is closed when the last of them goes (which makes the
/// kernel release whatever the file still holds: handles, framebuffers, blobs).
final class DRMFile: Sendable {
    let fd: Int32
    let calls: any SystemCalls
    let path: String
    /// Owners per GEM handle. The kernel returns the same handle for every import of one dma-buf
    /// (and for a re-import of this file's own export), so handles are counted here and closed
    /// once, when the last owner goes.
    private let handles = Mutex<[UInt32: HandleEntry]>([:])
    /// Property names by id (a property's name never changes).
    private let propertyNames = Mutex<[UInt32: String]>([:])
    /// Events read from the descriptor that their reader did not want (a flip waiter reads past
    /// other events); the next event sequence delivers them first.
    let mailbox = Mutex<[DRMEvent]>([])
    /// Teardown steps the kernel refused, retried at the next call and when the file closes.
    private let parked = Mutex<[Teardown]>([])
    private let parkedCount = Atomic<Int>(0)
    /// `DRM_CLIENT_CAP_ATOMIC` is set on this descriptor.
    let atomic = Atomic<Bool>(false)
    /// `DRM_CLIENT_CAP_WRITEBACK_CONNECTORS` is set on this descriptor.
    let writeback = Atomic<Bool>(false)

    struct HandleEntry {
        var owners: Int
        /// Created by `MODE_CREATE_DUMB`: destroyed with `MODE_DESTROY_DUMB`.
        var isDumb: Bool
    }

    /// One step of releasing a kernel object of this file.
    enum Teardown: @unchecked Sendable {
        case closeHandle(UInt32, dumb: Bool)
        case removeFramebuffer(UInt32)
        case destroyBlob(UInt32)
        case munmap(UnsafeMutableRawPointer, length: Int)
    }

    init(path: String, calls: any SystemCalls) throws(XenGntError) {
        self.path = path
        self.calls = calls
        do throws(Errno) {
            // Non-blocking, so that reading events never blocks: the event sequences wait in poll.
            fd = try retryingOnInterrupt { () throws(Errno) in
                try calls.open(path, flags: O_RDWR | O_CLOEXEC | O_NONBLOCK, mode: 0)
            }
        } catch {
            let code: XenGntError.Code =
                switch error {
                case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .noDevice: .deviceMissing
                case .permissionDenied, .notPermitted: .permissionDenied
                case .noMemory: .outOfMemory
                default: .kernel
                }
            throw XenGntError(code, .openDevice, call: "open", errno: error, path: path)
        }
    }

    deinit {
        retryParked()
        // Closing the file releases what the kernel still holds for it.
        try? calls.close(fd)
    }

    // MARK: Calls

    /// Issues `request`, retrying `EINTR`.
    @inline(__always)
    func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) {
        _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, request, argument) }
    }

    /// Issues `request` with `argument`, turning a failure into an explained error.
    @inline(__always)
    func ioctl<T>(
        _ request: UInt,
        _ argument: inout T,
        _ operation: XenGntError.Operation,
        explain: (Errno) -> XenGntError.Code? = { _ in nil }
    ) throws(XenGntError) {
        retryParked()
        do throws(Errno) {
            try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in try ioctl(request, raw.baseAddress) }
        } catch {
            throw failure(error, operation, request: request, code: explain(error))
        }
    }

    /// The error for `errno` from `request`: `code` if the caller knows better, else what a DRM
    /// ioctl's errno usually means.
    func failure(
        _ errno: Errno,
        _ operation: XenGntError.Operation,
        request: UInt,
        code: XenGntError.Code? = nil,
        detail: String? = nil,
        flags: UInt32? = nil,
        length: Int? = nil,
        limit: Int? = nil
    ) -> XenGntError {
        let inferred: XenGntError.Code =
            code
            ?? {
                switch errno {
                case .permissionDenied: return isRenderNode ? .renderNode : .notMaster
                case .notSupported: return .noModesetting
                case .badFileDescriptor: return .badFileDescriptor
                case .noMemory: return .outOfMemory
                case .noSuchFileOrDirectory: return .notFound
                default: return .kernel
                }
            }()
        return XenGntError(
            inferred,
            operation,
            call: DRMRequest.name(of: request),
            errno: errno,
            path: path,
            limit: limit,
            length: length,
            flags: flags,
            detail: detail ?? ([.noModesetting, .primeUnsupported].contains(inferred) ? driverName : nil)
        )
    }

    /// Whether this is a render node (minor 128–191), from `fstat`; `false` when unknown.
    var isRenderNode: Bool { (try? DRMNode.kind(of: fd, path: path, calls: calls)) == .render }

    /// The driver's name, for error messages (`nil` if unreadable).
    var driverName: String? { try? DRMVersion.read(self).name }

    // MARK: GEM handles

    /// Records one more owner of `handle`.
    func retain(_ handle: UInt32, dumb: Bool = false) {
        handles.withLock { table in
            table[handle, default: HandleEntry(owners: 0, isDumb: dumb)].owners += 1
        }
    }

    /// Drops an owner of `handle`; the last one closes it. Returns the kernel's refusal (the
    /// step is parked, and retried at the next call and when the file closes).
    @discardableResult
    func release(_ handle: UInt32) -> (Errno, dumb: Bool)? {
        let last: HandleEntry? = handles.withLock { table in
            guard var entry = table[handle] else { return nil }
            entry.owners -= 1
            if entry.owners > 0 {
                table[handle] = entry
                return nil
            }
            table[handle] = nil
            return entry
        }
        guard let last else { return nil }
        let step = Teardown.closeHandle(handle, dumb: last.isDumb)
        guard let errno = attempt(step) else { return nil }
        return (errno, last.isDumb)
    }

    /// How many owners `handle` has (0: not known to this file).
    func owners(of handle: UInt32) -> Int { handles.withLock { $0[handle]?.owners ?? 0 } }

    /// Every handle with owners, for the census in tests.
    var liveHandles: [UInt32: Int] { handles.withLock { $0.mapValues(\.owners) } }

    // MARK: Properties

    func cachedPropertyName(_ id: UInt32) -> String? { propertyNames.withLock { $0[id] } }
    func cachePropertyName(_ id: UInt32, _ name: String) { propertyNames.withLock { $0[id] = name } }

    // MARK: Teardown

    /// Runs `step`; a refusal is parked and returned.
    func attempt(_ step: Teardown) -> Errno? {
        guard let failure = run(step) else { return nil }
        parked.withLock { $0.append(step) }
        parkedCount.add(1, ordering: .releasing)
        return failure
    }

    @inline(__always)
    func retryParked() {
        if parkedCount.load(ordering: .acquiring) > 0 {
            parked.withLock { steps in
                steps.removeAll { run($0) == nil }
                parkedCount.store(steps.count, ordering: .releasing)
            }
        }
    }

    /// The step's failure, or `nil` when done (or when the kernel no longer has the object).
    private func run(_ step: Teardown) -> Errno? {
        do throws(Errno) {
            switch step {
            case .closeHandle(let handle, let dumb):
                if dumb {
                    var argument = drm_mode_destroy_dumb(handle: handle)
                    try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in
                        try ioctl(DRMRequest.destroyDumb, raw.baseAddress)
                    }
                } else {
                    var argument = drm_gem_close(handle: handle, pad: 0)
                    try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in
                        try ioctl(DRMRequest.gemClose, raw.baseAddress)
                    }
                }
            case .removeFramebuffer(let id):
                var argument = id
                try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in
                    try ioctl(DRMRequest.removeFramebuffer, raw.baseAddress)
                }
            case .destroyBlob(let id):
                var argument = drm_mode_destroy_blob(blob_id: id)
                try withUnsafeMutableBytes(of: &argument) { (raw) throws(Errno) in
                    try ioctl(DRMRequest.destroyPropertyBlob, raw.baseAddress)
                }
            case .munmap(let address, let length):
                try retryingOnInterrupt { () throws(Errno) in try calls.munmap(address, length: length) }
            }
            return nil
        } catch  where error == .noSuchFileOrDirectory || error == .invalidArgument && Self.isGone(step) {
            return nil  // the kernel no longer has it: what the step wanted
        } catch {
            return error
        }
    }

    /// GEM_CLOSE and DESTROY_DUMB answer EINVAL for a handle the file does not have.
    private static func isGone(_ step: Teardown) -> Bool {
        if case .closeHandle = step { return true }
        return false
    }
}
