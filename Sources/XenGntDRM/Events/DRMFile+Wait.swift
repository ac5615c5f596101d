import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension DRMFile {
    /// Waits until an event `matches` arrives, in poll through the seam (the package's one
    /// poll reader); events it reads past go to the mailbox for the device's event sequence.
    func waitForEvent(
        timeout: Duration?,
        _ operation: XenGntError.Operation,
        matches: (DRMEvent) -> Bool
    ) async throws(XenGntError) {
        let found = mailbox.withLock { mail -> Bool in
            guard let i = mail.firstIndex(where: matches) else { return false }
            mail.remove(at: i)
            return true
        }
        if found { return }
        let deadline = timeout.map { ContinuousClock.now.advanced(by: $0) }
        let waiter = try ReadinessWaiter(calls: calls)
        while true {
            var match = false
            for event in try readEvents() {
                if !match && matches(event) { match = true } else { mailbox.withLock { $0.append(event) } }
            }
            if match { return }
            var left: Duration?
            if let deadline {
                left = deadline - ContinuousClock.now
                if left! <= .zero { throw XenGntError(.displayTimedOut, operation, path: path, detail: "no \(operation) event") }
            }
            _ = try await waiter.waitUntilReadable(fd, timeout: left)
        }
    }
}

extension DRMFile {
    /// Like ``waitForEvent(timeout:_:matches:)``, but blocking the calling thread in `poll`
    /// through the seam: for a caller that must not return before the event (a synchronous
    /// display sink waiting one frame). Events read past go to the mailbox.
    func waitForEventBlocking(
        timeout: Duration,
        _ operation: XenGntError.Operation,
        matches: (DRMEvent) -> Bool
    ) throws(XenGntError) {
        let found = mailbox.withLock { mail -> Bool in
            guard let i = mail.firstIndex(where: matches) else { return false }
            mail.remove(at: i)
            return true
        }
        if found { return }
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while true {
            var match = false
            for event in try readEvents() {
                if !match && matches(event) { match = true } else { mailbox.withLock { $0.append(event) } }
            }
            if match { return }
            let left = deadline - ContinuousClock.now
            if left <= .zero { throw XenGntError(.displayTimedOut, operation, path: path, detail: "no \(operation) event") }
            let (seconds, attoseconds) = left.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            do throws(Errno) {
                _ = try withUnsafeMutablePointer(to: &entry) { (pointer) throws(Errno) -> Int in
                    try retryingOnInterrupt { () throws(Errno) in
                        try calls.poll(UnsafeMutableBufferPointer(start: pointer, count: 1), timeout: milliseconds)
                    }
                }
            } catch {
                throw XenGntError(.kernel, operation, call: "poll", errno: error, path: path)
            }
        }
    }
}
