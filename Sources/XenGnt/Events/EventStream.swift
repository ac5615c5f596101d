import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

/// What a source read from its descriptor when it was readable.
package enum ReadOutcome: Sendable, Equatable {
    /// Elements were appended (or nothing was ready yet: wait again).
    case more
    /// The source has ended (end of file, hang-up): no element will follow.
    case end
}

/// The one reader under every event sequence of the package: it asks `source` for what is
/// ready, and when nothing is, waits in `poll` through the seam (``ReadinessWaiter``) — never
/// in a sleep loop. Pull-based: nothing is read before the consumer asks, so a device that
/// needs acknowledging after each event (an event channel's unmask) keeps its back pressure.
///
/// `source` reads without blocking (the descriptor is non-blocking, or read only after a
/// readable poll) and appends what it decoded; it returns ``ReadOutcome/end`` at the end of the
/// stream. Cancelling the consuming task ends a wait with ``XenGntError/Code/cancelled``.
package struct EventStream<Element: Sendable>: AsyncSequence, Sendable {
    package typealias Failure = XenGntError
    package typealias Source = @Sendable (_ fd: Int32, _ into: inout [Element]) throws(XenGntError) -> ReadOutcome

    let fd: Int32
    let calls: any SystemCalls
    let source: Source

    /// Events read from `fd` through `calls` by `source`.
    package init(fd: Int32, calls: any SystemCalls, source: @escaping Source) {
        self.fd = fd
        self.calls = calls
        self.source = source
    }

    package func makeAsyncIterator() -> Iterator {
        Iterator(stream: self)
    }

    package struct Iterator: AsyncIteratorProtocol {
        let stream: EventStream
        private var waiter: ReadinessWaiter?
        private var buffer: [Element] = []
        private var position = 0
        private var ended = false

        init(stream: EventStream) { self.stream = stream }

        package mutating func next() async throws(XenGntError) -> Element? {
            try await next(isolation: nil)
        }

        package mutating func next(isolation actor: isolated (any Actor)?) async throws(XenGntError) -> Element? {
            while true {
                if position < buffer.count {
                    let element = buffer[position]
                    position += 1
                    return element
                }
                if ended { return nil }
                buffer.removeAll(keepingCapacity: true)
                position = 0
                if try stream.source(stream.fd, &buffer) == .end {
                    ended = true
                    continue
                }
                if !buffer.isEmpty { continue }
                if waiter == nil { waiter = try ReadinessWaiter(calls: stream.calls) }
                _ = try await waiter!.waitUntilReadable(stream.fd)
            }
        }
    }
}
