import Dispatch
import Synchronization
import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// Waits, in `poll` through the seam, until a descriptor can be read — the one place where the
/// package blocks for device readiness. DRM events, event-channel notifications and XenStore
/// replies and watches are all read after a wait here, on the kernel and on the simulator alike
/// (simulated devices signal readiness through real eventfds).
///
/// The blocking `poll` runs on a dispatch queue of the waiter's own, never on a Swift
/// concurrency thread. Cancelling the waiting task writes the waiter's eventfd, which ends the
/// `poll` at once. One wait at a time per waiter: give each consumer its own.
package final class ReadinessWaiter: Sendable {
    let calls: any SystemCalls
    /// Written to wake a blocked `poll` (cancellation, ``wake()``).
    let wakeFD: Int32
    private let queue = DispatchQueue(label: "xengnt.readiness")
    /// Set by ``interrupt()``: the current (or next) wait returns early.
    private let interrupted = Atomic<Bool>(false)

    /// A waiter whose wake-up eventfd is made through `calls`.
    package init(calls: any SystemCalls) throws(XenGntError) {
        self.calls = calls
        do throws(Errno) {
            wakeFD = try calls.eventfd(initialValue: 0, flags: O_CLOEXEC | O_NONBLOCK)
        } catch {
            throw XenGntError(.kernel, .waitForEvents, call: Call.eventfd, errno: error)
        }
    }

    deinit { try? calls.close(wakeFD) }

    /// How a wait ended.
    package enum Outcome: Sendable, Equatable {
        /// The descriptor can be read (or has hung up or failed: a read will say which).
        case readable
        /// The timeout passed.
        case timedOut
    }

    /// Waits until `fd` is readable, `timeout` passes (`nil`: no limit), or the task is
    /// cancelled.
    ///
    /// - Throws: ``XenGntError/Code/cancelled`` when the task is cancelled (no errno), or the
    ///   `poll` failure.
    package func waitUntilReadable(_ fd: Int32, timeout: Duration? = nil) async throws(XenGntError) -> Outcome {
        let deadline = timeout.map { ContinuousClock.now.advanced(by: min($0, .seconds(86_400 * 365))) }
        while true {
            if Task.isCancelled { throw XenGntError(.cancelled, .waitForEvents) }
            var limit: Int32 = -1
            if let deadline {
                let left = deadline - ContinuousClock.now
                if left <= .zero { return .timedOut }
                limit = Int32(clamping: PendingRelease.milliseconds(left))
            }
            let milliseconds = limit
            let result = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<Result<PollResult, Errno>, Never>) in
                    // The block lets go of the seam (and so of what is behind it, a simulated
                    // host) before it resumes the task: once the task is done with the waiter,
                    // nothing of it lingers on the queue's thread.
                    let work = PollWork(calls: calls, fd: fd, wakeFD: wakeFD, milliseconds: milliseconds)
                    queue.async { continuation.resume(returning: work.run()) }
                }
            } onCancel: {
                self.wake()
            }
            switch result {
            case .success(.readable): return .readable
            case .success(.timedOut): if deadline == nil { continue }
            case .success(.woken):
                // Cancelled (checked at the top), interrupted, or a stale wake-up.
                if interrupted.exchange(false, ordering: .acquiringAndReleasing) { return .readable }
                continue
            case .failure(let errno): throw XenGntError(.kernel, .waitForEvents, call: Call.poll, errno: errno)
            }
        }
    }

    /// Ends the current wait, or the next one if none is in progress, as if the descriptor had
    /// become readable, so that the waiting reader looks at its source again (an event channel
    /// that was unbound while a task waited on it).
    package func interrupt() {
        interrupted.store(true, ordering: .releasing)
        wake()
    }

    /// Ends a blocked `poll` (the waiting task re-checks cancellation).
    package func wake() {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { try? calls.write(wakeFD, from: $0) }
    }

    private enum PollResult { case readable, timedOut, woken }

    /// One poll, run on the waiter's queue. It holds the seam only while it polls.
    private final class PollWork: @unchecked Sendable {
        private var calls: (any SystemCalls)?
        let fd: Int32
        let wakeFD: Int32
        let milliseconds: Int32

        init(calls: any SystemCalls, fd: Int32, wakeFD: Int32, milliseconds: Int32) {
            self.calls = calls
            self.fd = fd
            self.wakeFD = wakeFD
            self.milliseconds = milliseconds
        }

        func run() -> Result<PollResult, Errno> {
            guard let calls else { return .success(.woken) }
            self.calls = nil
            var descriptors = (
                pollfd(fd: fd, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            )
            return withUnsafeMutableBytes(of: &descriptors) { raw -> Result<PollResult, Errno> in
                let entries = raw.bindMemory(to: pollfd.self)
                do throws(Errno) {
                    let ready = try retryingOnInterrupt { () throws(Errno) in try calls.poll(entries, timeout: milliseconds) }
                    if entries[1].revents != 0 {
                        var counter: UInt64 = 0
                        _ = withUnsafeMutableBytes(of: &counter) { try? calls.read(wakeFD, into: $0) }
                        return .success(.woken)
                    }
                    return .success(ready > 0 && entries[0].revents != 0 ? .readable : .timedOut)
                } catch {
                    return .failure(error)
                }
            }
        }
    }
}
