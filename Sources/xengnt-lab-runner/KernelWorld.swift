import CXenTools
import Synchronization
import XenGnt
import XenGntConformance

#if canImport(Glibc)
import Glibc
#endif

/// The conformance world on a real Xen: devices through the kernel, the peers reached through
/// xenstore (`/xengnt/run/...`, which Dom0 makes writable for the DomUs), event channels through
/// /dev/xen/evtchn (libxenevtchn).
final class KernelWorld: ConformanceWorld, @unchecked Sendable {
    let role: LabRole
    /// The permanent domains' ids; the victim's is read when a case first needs it.
    private let ids: Mutex<[LabRole: DomainID]>
    private let store: OpaquePointer
    private let events: OpaquePointer
    /// Events that arrived for other ports while waiting for one.
    private let pending = Mutex<[UInt32: Int]>([:])
    private let lock = Mutex(())

    init(role: LabRole, store: OpaquePointer, ids: [LabRole: DomainID]) throws {
        self.role = role
        self.store = store
        self.ids = Mutex(ids)
        guard let events = xenevtchn_open(nil, 0) else { throw RunnerError("xenevtchn_open: errno \(errno)") }
        self.events = events
    }

    deinit {
        xenevtchn_close(events)
    }

    func system(for role: LabRole) -> XenSystem { .kernel }
    func domainID(of role: LabRole) -> DomainID {
        if let id = ids.withLock({ $0[role] }) { return id }
        // Dom0 publishes the victim's id when `xl create` returns, before any case needs it;
        // "none" (not created) or nothing within 120 s gives an id no domain has, and the case
        // fails on its first rendezvous (the victim's done key says why).
        let deadline = ContinuousClock.now.advanced(by: .seconds(120))
        var id = DomainID(0x7FEF)
        while ContinuousClock.now < deadline {
            if let text = Self.read(store, "/xengnt/domains/\(role)") {
                id = UInt16(text).map { DomainID($0) } ?? id
                break
            }
            usleep(100_000)
        }
        ids.withLock { $0[role] = id }
        return id
    }

    func write(_ key: String, _ value: String, as role: LabRole) async throws {
        try Self.write(store, "/xengnt/run/\(key)", value)
    }

    func read(_ key: String, as role: LabRole) async throws -> String? {
        Self.read(store, "/xengnt/run/\(key)")
    }

    func bindUnboundPort(as role: LabRole, remote: DomainID) async throws -> UInt32 {
        let port = xenevtchn_bind_unbound_port(events, UInt32(remote.rawValue))
        guard port >= 0 else { throw RunnerError("xenevtchn_bind_unbound_port: errno \(errno)") }
        return UInt32(port)
    }

    func bindInterdomain(as role: LabRole, remote: DomainID, remotePort: UInt32) async throws -> UInt32 {
        let port = xenevtchn_bind_interdomain(events, UInt32(remote.rawValue), remotePort)
        guard port >= 0 else { throw RunnerError("xenevtchn_bind_interdomain: errno \(errno)") }
        return UInt32(port)
    }

    func waitForEvent(as role: LabRole, port: UInt32, timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if pending.withLock({ $0.removeValue(forKey: port) }) != nil { return true }
            var descriptor = pollfd(fd: xenevtchn_fd(events), events: Int16(POLLIN), revents: 0)
            if poll(&descriptor, 1, 50) > 0 {
                let fired = xenevtchn_pending(events)
                guard fired >= 0 else { throw RunnerError("xenevtchn_pending: errno \(errno)") }
                _ = xenevtchn_unmask(events, UInt32(fired))
                if UInt32(fired) == port { return true }
                pending.withLock { $0[UInt32(fired), default: 0] += 1 }
            }
            await Task.yield()
        }
        return false
    }

    /// A DomU's runner writes /xengnt/done/<role> when it finishes (its /init does if the
    /// runner cannot); Dom0's /init writes it when the domain disappears.
    func hasStopped(_ role: LabRole) async throws -> String? {
        Self.read(store, "/xengnt/done/\(role)")
    }

    let hasReferenceLibrary = true
    let rendezvousTimeout: Duration = .seconds(180)
    let pollInterval: Duration = .milliseconds(20)

    // MARK: xenstore

    static func read(_ store: OpaquePointer, _ path: String) -> String? {
        var length: UInt32 = 0
        guard let value = xs_read(store, cxt_xbt_null(), path, &length) else { return nil }
        defer { free(value) }
        return String(decoding: UnsafeRawBufferPointer(start: value, count: Int(length)), as: UTF8.self)
    }

    static func write(_ store: OpaquePointer, _ path: String, _ value: String) throws {
        let bytes = Array(value.utf8)
        guard xs_write(store, cxt_xbt_null(), path, bytes, UInt32(bytes.count)) else {
            throw RunnerError("xenstore write \(path): errno \(errno)")
        }
    }
}

struct RunnerError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
