import Synchronization
public import XenGnt

/// The events of one ``EventChannel``, on XenGnt's poll reader: each element is an event the
/// kernel queued for the port, taken and unmasked before it is returned. Consecutive events
/// the consumer has not taken yet are merged (the port stays masked until then), so an element
/// means "look at the shared ring", not "one message".
public struct EventChannelNotifications: AsyncSequence, Sendable {
    public typealias Element = EventChannelNotification
    public typealias Failure = XenGntError

    let file: EventChannelFile

    public func makeAsyncIterator() -> Iterator { Iterator(receiver: Receiver(file: file)) }

    public struct Iterator: AsyncIteratorProtocol {
        let receiver: Receiver

        public mutating func next() async throws(XenGntError) -> EventChannelNotification? {
            try await receiver.next()
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(XenGntError) -> EventChannelNotification? {
            try await receiver.next()
        }
    }

    /// One iteration's poll waiter, known to the file so that unbinding wakes it.
    final class Receiver: Sendable {
        let file: EventChannelFile
        private let waiter: ReadinessWaiterBox

        init(file: EventChannelFile) {
            self.file = file
            waiter = ReadinessWaiterBox()
        }

        deinit {
            if let waiter = waiter.existing { file.unregister(waiter) }
        }

        func next() async throws(XenGntError) -> EventChannelNotification? {
            while true {
                guard file.isBound else { return nil }
                if let event = try file.take() { return event }
                let waiter = try self.waiter.get(calls: file.calls)
                guard file.register(waiter) else { return nil }
                _ = try await waiter.waitUntilReadable(file.fd)
            }
        }
    }
}

/// A poll waiter made on first use (its eventfd costs a descriptor).
final class ReadinessWaiterBox: Sendable {
    private let waiter = Locked<ReadinessWaiter?>(nil)

    var existing: ReadinessWaiter? { waiter.withLock { $0 } }

    func get(calls: any SystemCalls) throws(XenGntError) -> ReadinessWaiter {
        try waiter.withLock { (waiter: inout ReadinessWaiter?) throws(XenGntError) -> ReadinessWaiter in
            if let waiter { return waiter }
            let made = try ReadinessWaiter(calls: calls)
            waiter = made
            return made
        }
    }
}
