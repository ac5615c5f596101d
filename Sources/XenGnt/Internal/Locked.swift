import Synchronization

/// A `Mutex` that ThreadSanitizer understands.
///
/// On Linux, `Synchronization.Mutex` waits with futexes that ThreadSanitizer does not model, so
/// it reports every access made under the lock as a race. Each critical section here also reads
/// an atomic with acquire ordering when it begins and increments it with release ordering when
/// it ends: the sections are mutually exclusive, so each one's load reads the previous one's
/// store, which gives ThreadSanitizer the happens-before edge the mutex really provides. The cost
/// is two uncontended atomic operations per section.
package struct Locked<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    private let mutex: Mutex<Value>
    private let order = Atomic<UInt>(0)

    package init(_ value: consuming sending Value) {
        mutex = Mutex(value)
    }

    /// Runs `body` with the value, under the lock.
    package borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try mutex.withLock { (value: inout sending Value) throws(E) -> sending Result in
            _ = order.load(ordering: .acquiring)
            defer { order.add(1, ordering: .releasing) }
            return try body(&value)
        }
    }

    /// Runs `body` with the value if the lock is free now; `nil` when another thread holds it.
    package borrowing func withLockIfAvailable<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result? {
        try mutex.withLockIfAvailable { (value: inout sending Value) throws(E) -> sending Result in
            _ = order.load(ordering: .acquiring)
            defer { order.add(1, ordering: .releasing) }
            return try body(&value)
        }
    }
}
