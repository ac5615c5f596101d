import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// The seams the reader is tried on: the running kernel and a simulated domain.
enum SeamKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case kernel, simulated
    var testDescription: String { rawValue }
}

/// An eventfd made through a seam, read as a stream of counter values.
final class Counter {
    let calls: any SystemCalls
    let fd: Int32
    /// Keeps a simulated host alive as long as the counter.
    let host: Host?

    init(_ kind: SeamKind) throws {
        let host: Host? = kind == .simulated ? try Host() : nil
        self.host = host
        let calls = host?.backend.system.calls ?? XenSystem.kernel.calls
        self.calls = calls
        fd = try calls.eventfd(initialValue: 0, flags: O_CLOEXEC | O_NONBLOCK)
    }

    func add(_ value: UInt64) throws {
        var value = value
        _ = try withUnsafeBytes(of: &value) { raw throws(Errno) in try calls.write(fd, from: raw) }
    }

    /// Each read of the counter (its value, which resets it), until a value of 0 ends it.
    var values: EventStream<UInt64> {
        let calls = calls
        return EventStream(fd: fd, calls: calls) { fd, values throws(XenGntError) in
            var value: UInt64 = 0
            do throws(Errno) {
                _ = try withUnsafeMutableBytes(of: &value) { raw throws(Errno) in try calls.read(fd, into: raw) }
            } catch .resourceTemporarilyUnavailable {
                return .more
            } catch {
                throw XenGntError(.kernel, .waitForEvents, call: "read", errno: error)
            }
            if value == 1_000 { return .end }
            values.append(value)
            return .more
        }
    }

    deinit { try? calls.close(fd) }
}

extension Simulated {
    @Suite
    struct EventReader {
        @Test(arguments: SeamKind.allCases)
        func aProducerWakesTheReaderThroughPollAndTheStreamEnds(on kind: SeamKind) async throws {
            let counter = try Counter(kind)
            let calls = counter.calls
            let fd = counter.fd
            let producer = Task {
                for value in [UInt64(3), 5, 7] {
                    try await Task.sleep(for: .milliseconds(20))
                    var v = value
                    _ = try withUnsafeBytes(of: &v) { raw throws(Errno) in try calls.write(fd, from: raw) }
                }
                try await Task.sleep(for: .milliseconds(20))
                var end: UInt64 = 1_000
                _ = try withUnsafeBytes(of: &end) { raw throws(Errno) in try calls.write(fd, from: raw) }
            }
            var seen: [UInt64] = []
            for try await value in counter.values { seen.append(value) }
            #expect(seen == [3, 5, 7])
            try await producer.value
        }

        @Test(arguments: SeamKind.allCases)
        func cancellingTheConsumerEndsItsWaitAtOnceWithoutAnErrno(on kind: SeamKind) async throws {
            let counter = try Counter(kind)
            let stream = counter.values
            let consumer = Task { () async throws(XenGntError) -> Int in
                var count = 0
                for try await _ in stream { count += 1 }
                return count
            }
            try await Task.sleep(for: .milliseconds(50))
            let started = ContinuousClock.now
            consumer.cancel()
            let result = await consumer.result
            #expect(ContinuousClock.now - started < .seconds(2))
            guard case .failure(let failure) = result, let error = failure as? XenGntError else {
                Issue.record("the consumer ended without a XenGntError: \(result)")
                return
            }
            #expect(error.code == .cancelled)
            #expect(error.errno == nil)
            #expect(error.operation == .waitForEvents)
        }

        @Test(arguments: SeamKind.allCases)
        func aWaitTimesOutAndThenSeesReadiness(on kind: SeamKind) async throws {
            let counter = try Counter(kind)
            let waiter = try ReadinessWaiter(calls: counter.calls)
            #expect(try await waiter.waitUntilReadable(counter.fd, timeout: .milliseconds(30)) == .timedOut)
            try counter.add(1)
            #expect(try await waiter.waitUntilReadable(counter.fd, timeout: .seconds(5)) == .readable)
            #expect(
                try await waiter.waitUntilReadable(counter.fd, timeout: .seconds(Int64.max)) == .readable,
                "any timeout is accepted"
            )
        }

        @Test func anInterruptedPollIsRetriedAndAFailedOneIsReported() async throws {
            let host = try Host()
            let calls = host.backend.system.calls
            let fd = try calls.eventfd(initialValue: 0, flags: O_CLOEXEC | O_NONBLOCK)
            defer { try? calls.close(fd) }
            let waiter = try ReadinessWaiter(calls: calls)
            host.xen.injectFault(.interrupted, on: .poll, times: 3)
            var one: UInt64 = 1
            _ = try withUnsafeBytes(of: &one) { raw throws(Errno) in try calls.write(fd, from: raw) }
            #expect(try await waiter.waitUntilReadable(fd, timeout: .seconds(5)) == .readable)
            host.xen.injectFault(.noMemory, on: .poll)
            let error = await #expect(throws: XenGntError.self) { _ = try await waiter.waitUntilReadable(fd) }
            #expect(error?.call == "poll" && error?.errno == .noMemory)
        }

        @Test func theReaderPollsOnlyWhenNothingIsReady() async throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let calls: any SystemCalls = recorder
            let fd = try calls.eventfd(initialValue: 0, flags: O_CLOEXEC | O_NONBLOCK)
            defer { try? calls.close(fd) }
            let stream = EventStream<UInt64>(fd: fd, calls: calls) { fd, values throws(XenGntError) in
                var value: UInt64 = 0
                do throws(Errno) {
                    _ = try withUnsafeMutableBytes(of: &value) { raw throws(Errno) in try calls.read(fd, into: raw) }
                } catch {
                    return .more
                }
                values.append(value)
                return .more
            }
            var iterator = stream.makeAsyncIterator()
            var two: UInt64 = 2
            _ = try withUnsafeBytes(of: &two) { raw throws(Errno) in try calls.write(fd, from: raw) }
            #expect(try await iterator.next() == 2)
            #expect(!recorder.calls.contains("poll"), "a ready descriptor is read without polling")
            let producer = Task {
                try await Task.sleep(for: .milliseconds(30))
                _ = try withUnsafeBytes(of: &two) { raw throws(Errno) in try calls.write(fd, from: raw) }
            }
            #expect(try await iterator.next() == 2)
            #expect(recorder.calls.filter { $0 == "poll" }.count == 1, "one poll per wait: \(recorder.calls)")
            try await producer.value
        }
    }
}
