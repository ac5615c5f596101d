import CXenTools
import XenGnt
import XenGntBackend

#if canImport(Glibc)
import Glibc
#endif

extension ConformanceSuite {
    static let interopCases: [ConformanceCase] = [
        ConformanceCase(
            "interop-libxenstore",
            "the Swift client and libxenstore on one XenStore: each reads the other's writes and transactions and sees the other's writes through its watches; across domains too",
            needsReferenceLibrary: true,
            parts: [
                .dom0: { peer in
                    try await libxenstoreInterop(peer)
                    let c = try CStore()
                    let path = try await peer.value(of: "path", from: .pvh)
                    try check(c.read("\(path)/swift") == "from-swift", "Dom0's libxenstore reads the DomU's Swift write")
                    try c.write("\(path)/c-dom0", "from-c")
                    try await peer.publish("written")
                },
                .pvh: { peer in
                    try await libxenstoreInterop(peer)
                    try await withXenStore(peer) { store in
                        let path = "/local/domain/\(peer.id.rawValue)/data/xengnt-interop"
                        try await store.write("\(path)/swift", "from-swift")
                        try await peer.publish("path", path)
                        try await peer.wait(for: "written", from: .dom0)
                        try check(
                            try await store.read("\(path)/c-dom0") == "from-c",
                            "the DomU's Swift client reads Dom0's libxenstore write"
                        )
                        try await store.remove(path)
                    }
                },
            ]
        ),

        ConformanceCase(
            "interop-libxenevtchn",
            "Swift event channels and libxenevtchn: a port bound by either side is connected by the other, and notifications cross both ways",
            needsReferenceLibrary: true,
            parts: [
                .dom0: { peer in
                    let c = try CEvents()
                    let pvh = peer.id(of: .pvh)
                    // A port the DomU bound with Swift, connected with libxenevtchn.
                    let local = try c.bindInterdomain(pvh, UInt32(try await peer.value(of: "swift-port", from: .pvh))!)
                    try check(try c.wait(for: local, timeout: .seconds(20)), "no bind-time event on the new port")
                    try await peer.publish("bound")
                    try c.notify(local)
                    try check(try c.wait(for: local, timeout: .seconds(20)), "libxenevtchn got no event from Swift")
                    // A port bound with libxenevtchn, connected by the DomU with Swift.
                    let unbound = try c.bindUnbound(pvh)
                    try await peer.publish("c-port", "\(unbound)")
                    try check(try c.wait(for: unbound, timeout: .seconds(20)), "libxenevtchn got no event on its own port")
                    try c.notify(unbound)
                    try await peer.wait(for: "done", from: .pvh)
                },
                .pvh: { peer in
                    let dom0 = peer.id(of: .dom0)
                    let channel = try EventChannel.bindUnbound(remote: dom0, on: peer.system)
                    try await peer.publish("swift-port", "\(channel.port)")
                    try await peer.wait(for: "bound", from: .dom0)
                    try await expectEvent(channel.notifications, "from libxenevtchn")
                    try channel.notify()
                    let port = UInt32(try await peer.value(of: "c-port", from: .dom0))!
                    let connected = try EventChannel.bindInterdomain(remote: dom0, port: port, on: peer.system)
                    try await expectEvent(connected.notifications, "at bind time")
                    try connected.notify()
                    try await expectEvent(connected.notifications, "from libxenevtchn on its port")
                    try await peer.publish("done")
                },
            ]
        ),
    ]

    /// In one domain: the Swift client and libxenstore see each other's writes, transactions
    /// and watch events.
    static func libxenstoreInterop(_ peer: Peer) async throws {
        try await withXenStore(peer) { store in
            let c = try CStore()
            let path = "/local/domain/\(peer.id.rawValue)/data/xengnt-interop-local"
            try await removeIfPresent(path, store)
            try await store.write("\(path)/swift", "s")
            try check(c.read("\(path)/swift") == "s", "libxenstore reads the Swift write")
            try c.write("\(path)/c", "c")
            try check(try await store.read("\(path)/c") == "c", "Swift reads the libxenstore write")
            try await store.transaction { transaction throws(XenGntError) in try await transaction.write("\(path)/swift-t", "st")
            }
            try check(c.read("\(path)/swift-t") == "st", "libxenstore reads a Swift transaction")
            try c.transaction { t in try c.write("\(path)/c-t", "ct", transaction: t) }
            try check(try await store.read("\(path)/c-t") == "ct", "Swift reads a libxenstore transaction")

            let watch = try await store.watch(path)
            var events = watch.makeAsyncIterator()
            try await expect(&events, path)
            try c.write("\(path)/c2", "c2")
            try await expect(&events, "\(path)/c2")
            try await watch.cancel()

            try c.watch(path, token: "interop")
            try check(try c.nextWatchEvent(timeout: .seconds(20)) == path, "libxenstore's first event")
            try await store.write("\(path)/swift2", "s2")
            try check(try c.nextWatchEvent(timeout: .seconds(20)) == "\(path)/swift2", "libxenstore sees the Swift write")
            c.unwatch(path, token: "interop")
            try await store.remove(path)
        }
    }

    /// Waits (20 s at most) for an event on a port.
    static func expectEvent(_ notifications: EventChannelNotifications, _ what: String) async throws {
        let got = try await withThrowingTaskGroup(of: Bool.self) { group in
            group.addTask {
                var iterator = notifications.makeAsyncIterator()
                return try await iterator.next() != nil
            }
            group.addTask {
                try await Task.sleep(for: .seconds(20))
                return false
            }
            defer { group.cancelAll() }
            return try await group.next() ?? false
        }
        try check(got, "no event \(what)")
    }
}

/// libxenstore, the C reference client.
final class CStore {
    let handle: OpaquePointer

    init() throws {
        guard let handle = xs_open(0) else { throw ConformanceFailure("xs_open: errno \(errno)") }
        self.handle = handle
    }

    deinit { xs_close(handle) }

    func read(_ path: String, transaction: UInt32 = cxt_xbt_null()) -> String? {
        var length: UInt32 = 0
        guard let value = xs_read(handle, transaction, path, &length) else { return nil }
        defer { free(value) }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: Int(length)), as: UTF8.self)
    }

    func write(_ path: String, _ value: String, transaction: UInt32 = cxt_xbt_null()) throws {
        let bytes = Array(value.utf8)
        guard xs_write(handle, transaction, path, bytes, UInt32(bytes.count)) else {
            throw ConformanceFailure("xs_write \(path): errno \(errno)")
        }
    }

    func transaction(_ body: (UInt32) throws -> Void) throws {
        while true {
            let t = xs_transaction_start(handle)
            guard t != cxt_xbt_null() else { throw ConformanceFailure("xs_transaction_start: errno \(errno)") }
            try body(t)
            if xs_transaction_end(handle, t, false) { return }
            guard errno == EAGAIN else { throw ConformanceFailure("xs_transaction_end: errno \(errno)") }
        }
    }

    func watch(_ path: String, token: String) throws {
        guard xs_watch(handle, path, token) else { throw ConformanceFailure("xs_watch: errno \(errno)") }
    }

    func unwatch(_ path: String, token: String) { _ = xs_unwatch(handle, path, token) }

    /// The path of the next watch event, waiting at most `timeout` on libxenstore's descriptor.
    func nextWatchEvent(timeout: Duration) throws -> String? {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if let vector = xs_check_watch(handle) {
                defer { free(vector) }
                return vector[0].map { String(cString: $0) }
            }
            guard errno == EAGAIN else { throw ConformanceFailure("xs_check_watch: errno \(errno)") }
            var entry = pollfd(fd: xs_fileno(handle), events: Int16(POLLIN), revents: 0)
            _ = poll(&entry, 1, 1000)
        }
        return nil
    }
}

/// libxenevtchn, the C reference API for event channels.
final class CEvents {
    let handle: OpaquePointer

    init() throws {
        guard let handle = xenevtchn_open(nil, 0) else { throw ConformanceFailure("xenevtchn_open: errno \(errno)") }
        self.handle = handle
    }

    deinit { xenevtchn_close(handle) }

    func bindInterdomain(_ domain: DomainID, _ port: UInt32) throws -> UInt32 {
        let local = xenevtchn_bind_interdomain(handle, UInt32(domain.rawValue), port)
        guard local >= 0 else { throw ConformanceFailure("xenevtchn_bind_interdomain: errno \(errno)") }
        return UInt32(local)
    }

    func bindUnbound(_ domain: DomainID) throws -> UInt32 {
        let port = xenevtchn_bind_unbound_port(handle, UInt32(domain.rawValue))
        guard port >= 0 else { throw ConformanceFailure("xenevtchn_bind_unbound_port: errno \(errno)") }
        return UInt32(port)
    }

    func notify(_ port: UInt32) throws {
        guard xenevtchn_notify(handle, port) == 0 else { throw ConformanceFailure("xenevtchn_notify: errno \(errno)") }
    }

    /// Whether an event arrives on `port` within `timeout` (taken and unmasked).
    func wait(for port: UInt32, timeout: Duration) throws -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            var entry = pollfd(fd: xenevtchn_fd(handle), events: Int16(POLLIN), revents: 0)
            guard poll(&entry, 1, 1000) > 0 else { continue }
            let fired = xenevtchn_pending(handle)
            guard fired >= 0 else { throw ConformanceFailure("xenevtchn_pending: errno \(errno)") }
            _ = xenevtchn_unmask(handle, UInt32(fired))
            if UInt32(fired) == port { return true }
        }
        return false
    }
}
