import SystemPackage
import XenGnt

extension DRMFile {
    /// Waits until an event `matches` arrives, in poll through the seam (the package's one
    /// poll reader); events it reads past go to the mailbox for the device's event sequence.
    func waitForEvent(timeout: Duration?, _ operation: XenGntError.Operation,
                      matches: (DRMEvent) -> Bool) async throws(XenGntError) {
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
