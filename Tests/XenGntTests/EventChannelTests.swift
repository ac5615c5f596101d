import CXenBackend
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntBackend

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    /// Event channels on the simulated `/dev/xen/evtchn`: the masking, merging, overflow and
    /// unbinding that the lab cannot provoke at will.
    @Suite(.noDescriptorLeaks) struct EventChannels {
        /// A connected pair: `local` allocated in the frontend for the backend, `remote` bound by
        /// the backend (whose bind-time event is taken).
        struct Pair: ~Copyable {
            let local: EventChannel
            let remote: EventChannel
        }

        func pair(_ host: Host) async throws -> Pair {
            let local = try EventChannel.bindUnbound(remote: host.backend.id, on: host.frontend.system)
            let remote = try EventChannel.bindInterdomain(remote: host.frontend.id, port: local.port, on: host.backend.system)
            var iterator = remote.notifications.makeAsyncIterator()
            #expect(try await iterator.next()?.port == remote.port, "a newly connected port has an event")
            return Pair(local: local, remote: remote)
        }

        /// The port is masked from the moment its event is queued until the consumer takes it:
        /// what arrives meanwhile stays pending in Xen and comes as one more element after the
        /// unmask, however many notifications it was.
        @Test func eventsSentWhileMaskedMergeIntoOne() async throws {
            let host = try Host()
            let channels = try await pair(host)
            let local = channels.local
            let remote = channels.remote
            var events = local.notifications.makeAsyncIterator()
            for _ in 0..<5 { try remote.notify() }
            #expect(try await events.next() == EventChannelNotification(port: local.port, followsOverflow: false))
            #expect(try await events.next() == EventChannelNotification(port: local.port, followsOverflow: false))
            var queued = [UInt8](repeating: 0, count: 4)
            #expect(throws: Errno.resourceTemporarilyUnavailable) {
                _ = try queued.withUnsafeMutableBytes { try host.frontend.system.calls.read(local.file.fd, into: $0) }
            }
            try remote.notify()
            #expect(try await events.next() != nil)
            #expect(host.frontend.receivedEvents(port: local.port) == 6)
        }

        /// A process that unmasks a port without reading it lets events pile up: after 64 the
        /// queue overflows, reads are EFBIG, and the channel resets and re-arms itself.
        @Test func anOverflowedQueueIsResetAndTheNextElementSaysSo() async throws {
            let host = try Host()
            let channels = try await pair(host)
            let local = channels.local
            let remote = channels.remote
            let calls = host.frontend.system.calls
            var number = local.port
            for _ in 0..<65 {
                try remote.notify()
                _ = try withUnsafeBytes(of: &number) { try calls.write(local.file.fd, from: $0) }
            }
            var buffer = [UInt8](repeating: 0, count: 4)
            #expect(throws: Errno.fileTooLarge) {
                _ = try buffer.withUnsafeMutableBytes { try calls.read(local.file.fd, into: $0) }
            }
            var events = local.notifications.makeAsyncIterator()
            #expect(try await events.next() == EventChannelNotification(port: local.port, followsOverflow: true))
            #expect(local.overflowCount == 1)
            try remote.notify()
            #expect(try await events.next() == EventChannelNotification(port: local.port, followsOverflow: false))
        }

        @Test func unbindingEndsAWaitingIterationAndLeavesThePeerUnbound() async throws {
            let host = try Host()
            let channels = try await pair(host)
            let local = channels.local
            let remote = channels.remote
            let notifications = local.notifications
            let waiting = Task {
                var iterator = notifications.makeAsyncIterator()
                return try await iterator.next()
            }
            try await Task.sleep(for: .milliseconds(20))
            try local.unbind()
            #expect(try await waiting.value == nil)
            // The peer's notifications are dropped now; it may still send them.
            try remote.notify()
            try remote.unbind()
        }

        @Test func xenRefusesWhatItCannotBind() async throws {
            let host = try Host()
            let channels = try await pair(host)
            let local = channels.local
            let taken = #expect(throws: XenGntError.self) {
                _ = try EventChannel.bindInterdomain(remote: host.frontend.id, port: local.port, on: host.dom0.system)
            }
            #expect(taken?.code == .eventChannelRefused && taken?.errno == .invalidArgument && taken?.port == local.port)
            let missing = #expect(throws: XenGntError.self) {
                _ = try EventChannel.bindInterdomain(remote: 77, port: 1, on: host.dom0.system)
            }
            #expect(missing?.errno == .noSuchProcess && missing?.domain == 77)
            // A port bound on another file cannot be notified through this one.
            let calls = host.frontend.system.calls
            let other = try calls.open("/dev/xen/evtchn", flags: O_RDWR | O_CLOEXEC, mode: 0)
            defer { try? calls.close(other) }
            var notify = ioctl_evtchn_notify(port: local.port)
            #expect(throws: Errno.socketNotConnected) { _ = try calls.ioctl(other, cxb_request_evtchn_notify(), &notify) }
        }

        @Test func aDestroyedPeerLeavesThePortQuiet() async throws {
            let host = try Host()
            let channels = try await pair(host)
            let remote = channels.remote
            host.xen.destroyDomain(host.frontend.id)
            try remote.notify()
            try remote.unbind()
        }
    }
}
