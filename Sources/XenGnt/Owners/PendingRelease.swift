internal import CXenGnt
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// An exported dma-buf this process has let go of, waiting for its other users.
///
/// It keeps the buffer's descriptor number reserved (by a /dev/null placeholder) so the wait
/// names the right buffer. The number is freed when this goes away and the buffer is released;
/// if users remain then, the device frees it once they have let go.
///
/// "Released" means every user has let go. The kernel may still be unmapping the grants from
/// Xen for a moment after; that is harmless for the frontend, which may end access at once
/// (Xen defers the end of access until the unmap is done).
public struct PendingRelease: ~Copyable, Sendable {
    let handle: DeviceHandle
    let fd: Int32
    /// Set once the kernel said "released", so going away asks it no more.
    private let released = Atomic<Bool>(false)

    init(handle: DeviceHandle, fd: Int32) {
        self.handle = handle
        self.fd = fd
    }

    /// Blocks until the buffer is released or `timeout` passes. Any timeout is honoured, from
    /// `.zero` (ask once) to `.seconds(Int64.max)` (wait as long as it takes); the kernel takes at
    /// most about 24 days per call, so longer waits are made of several calls.
    ///
    /// - Returns: `true` when released, `false` when users remain after `timeout`.
    /// - Throws: ``XenGntError/Code/invalidArgument`` for a negative timeout.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func wait(timeout: Duration) throws(XenGntError) -> Bool {
        if released.load(ordering: .acquiring) { return true }
        guard timeout >= .zero else {
            throw XenGntError.invalid(.waitReleased, "a timeout cannot be negative (\(timeout)).")
        }
        var remaining = Self.milliseconds(timeout)
        repeat {
            let chunk = UInt32(min(remaining, UInt64(Int32.max)))
            remaining -= UInt64(chunk)
            if try ask(waiting: chunk) {
                released.store(true, ordering: .releasing)
                return true
            }
        } while remaining > 0
        return false
    }

    /// Whole milliseconds in `duration` (rounded up, so a sub-millisecond wait still waits),
    /// saturating instead of overflowing.
    static func milliseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        let perMillisecond: Int64 = 1_000_000_000_000_000
        let fraction = UInt64((attoseconds + perMillisecond - 1) / perMillisecond)
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        if overflow { return .max }
        let (total, carry) = whole.addingReportingOverflow(fraction)
        return carry ? .max : total
    }

    /// One wait-released call: `true` when released.
    private func ask(waiting milliseconds: UInt32) throws(XenGntError) -> Bool {
        var argument = ioctl_gntdev_dmabuf_exp_wait_released(fd: UInt32(bitPattern: fd), wait_to_ms: milliseconds)
        do throws(Errno) {
            _ = try handle.ioctl(Request.expWaitReleased, &argument)
            return true
        } catch .timedOut {
            return false
        } catch .noSuchFileOrDirectory {
            // The kernel forgets a buffer once it is released; the number is still ours, so this
            // can only mean "already released".
            return true
        } catch {
            throw XenGntError(
                error == .inappropriateIOCTLForDevice ? .dmaBufUnsupported : .kernel,
                .waitReleased,
                call: Call.expWaitReleased,
                errno: error
            )
        }
    }

    /// Waits until the buffer is released without blocking a thread: it asks the kernel with a
    /// zero timeout, then sleeps `pollInterval`, and honours cancellation. (The kernel offers no
    /// descriptor to poll for this.)
    ///
    /// - Throws: ``XenGntError/Code/cancelled`` when the task is cancelled (its ``XenGntError/errno``
    ///   is `nil`).
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func waitUntilReleased(pollInterval: Duration = .milliseconds(2)) async throws(XenGntError) {
        _ = try await waitUntilReleased(timeout: nil, pollInterval: pollInterval)
    }

    /// Waits as ``waitUntilReleased(pollInterval:)`` does, for at most `timeout`.
    ///
    /// - Returns: `true` when released, `false` when users remain after `timeout`.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func waitUntilReleased(timeout: Duration, pollInterval: Duration = .milliseconds(2)) async throws(XenGntError) -> Bool
    {
        try await waitUntilReleased(timeout: Optional(timeout), pollInterval: pollInterval)
    }

    private func waitUntilReleased(timeout: Duration?, pollInterval: Duration) async throws(XenGntError) -> Bool {
        guard pollInterval >= .zero, (timeout ?? .zero) >= .zero else {
            throw XenGntError.invalid(.waitReleased, "a timeout or poll interval cannot be negative.")
        }
        let start = ContinuousClock.now
        while try !wait(timeout: .zero) {
            if let timeout, ContinuousClock.now - start >= timeout { return false }
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                throw XenGntError(.cancelled, .waitReleased)
            }
        }
        return true
    }

    /// Stops waiting. The reserved number is freed at once if the buffer is known to be
    /// released, else as soon as it is (while the kernel still records the buffer under the
    /// number, freeing it would let a new export take it and confuse later waits).
    deinit {
        handle.retire(placeholder: fd, knownReleased: released.load(ordering: .acquiring))
    }
}
