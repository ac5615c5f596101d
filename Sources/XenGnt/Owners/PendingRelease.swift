internal import CXenGnt
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

    init(handle: DeviceHandle, fd: Int32) {
        self.handle = handle
        self.fd = fd
    }

    /// Blocks until the buffer is released or `timeout` passes.
    ///
    /// - Returns: `true` when released, `false` when users remain after `timeout`.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func wait(timeout: Duration) throws(XenGntError) -> Bool {
        let milliseconds = timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000
        var argument = ioctl_gntdev_dmabuf_exp_wait_released(
            fd: UInt32(bitPattern: fd),
            wait_to_ms: UInt32(clamping: max(0, min(milliseconds, Int64(Int32.max)))))
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
            let cause: XenGntError.Cause = error == .inappropriateIOCTLForDevice ? .dmaBufUnsupported : .kernel
            throw XenGntError(.waitReleased, errno: error, cause: cause)
        }
    }

    /// Waits until the buffer is released without blocking a thread: it asks the kernel with a
    /// zero timeout, then sleeps `pollInterval`, and honours cancellation.
    ///
    /// - Throws: ``XenGntError/Cause/cancelled`` when the task is cancelled.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func waitUntilReleased(pollInterval: Duration = .milliseconds(2)) async throws(XenGntError) {
        while try !wait(timeout: .zero) {
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                throw XenGntError(.waitReleased, errno: .canceled, cause: .cancelled)
            }
        }
    }

    /// Waits as ``waitUntilReleased(pollInterval:)`` does, for at most `timeout`.
    ///
    /// - Returns: `true` when released, `false` when users remain after `timeout`.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED`.
    public func waitUntilReleased(timeout: Duration, pollInterval: Duration = .milliseconds(2)) async throws(XenGntError) -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while try !wait(timeout: .zero) {
            if ContinuousClock.now >= deadline { return false }
            do {
                try await Task.sleep(for: pollInterval)
            } catch {
                throw XenGntError(.waitReleased, errno: .canceled, cause: .cancelled)
            }
        }
        return true
    }

    /// Stops waiting. The reserved number is freed at once if the buffer is released, or else
    /// as soon as it is (while the kernel still records the buffer under the number, freeing it
    /// would let a new export take it and confuse later waits).
    deinit {
        handle.retire(placeholder: fd)
    }
}
