internal import CXenBackend
import Synchronization
import SystemPackage
public import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A bound event channel port: Xen's doorbell between two domains. Owns the binding: when it
/// goes away (or ``unbind()`` is called) the port is closed, and the peer's end becomes
/// unbound.
///
/// ```swift
/// // Backend: connect to the port the frontend published.
/// let channel = try EventChannel.bindInterdomain(remote: frontend, port: published)
/// for try await _ in channel.notifications {   // unmasked before each element is returned
///     try serveRing()                            // so check the ring after every element
/// }
/// ```
///
/// Each channel has its own `/dev/xen/evtchn` file, so a read returns only its own port: the
/// kernel queues the number of every port bound on a file when an event arrives and masks the
/// port until the number is written back. ``notifications`` takes an event, writes the number
/// back (the unmask), and only then returns the element, so an event raised while the
/// consumer checks its ring raises a new element instead of being lost.
public struct EventChannel: ~Copyable, Sendable {
    /// The local port.
    public let port: UInt32
    /// The domain at the other end.
    public let remoteDomain: DomainID
    /// The remote port this one was connected to, or `nil` for a port allocated for the remote
    /// domain to connect to (``bindUnbound(remote:on:)``).
    public let remotePort: UInt32?
    let file: EventChannelFile

    init(port: UInt32, remoteDomain: DomainID, remotePort: UInt32?, file: EventChannelFile) {
        self.port = port
        self.remoteDomain = remoteDomain
        self.remotePort = remotePort
        self.file = file
    }

    /// Allocates a port that `remote` may connect to (a frontend publishes its number in
    /// XenStore; the backend binds it with ``bindInterdomain(remote:port:on:)``).
    ///
    /// The corresponding ioctl is `IOCTL_EVTCHN_BIND_UNBOUND_PORT`.
    public static func bindUnbound(remote: DomainID, on system: XenSystem = .kernel) throws(XenGntError) -> EventChannel {
        let file = try EventChannelFile(system: system)
        let port = try file.bind(
            EventChannelRequest.bindUnboundPort,
            "IOCTL_EVTCHN_BIND_UNBOUND_PORT",
            remote: remote,
            remotePort: nil
        )
        return EventChannel(port: port, remoteDomain: remote, remotePort: nil, file: file)
    }

    /// Connects a new local port to `port`, which `remote` allocated for this domain.
    ///
    /// - Throws: `XenGntError/Code/eventChannelRefused` when `port` is not an unbound port
    ///   of `remote` meant for this domain (`EINVAL`), or `remote` does not exist (`ESRCH`).
    ///
    /// The corresponding ioctl is `IOCTL_EVTCHN_BIND_INTERDOMAIN`.
    public static func bindInterdomain(
        remote: DomainID,
        port: UInt32,
        on system: XenSystem = .kernel
    ) throws(XenGntError) -> EventChannel {
        let file = try EventChannelFile(system: system)
        let local = try file.bind(
            EventChannelRequest.bindInterdomain,
            "IOCTL_EVTCHN_BIND_INTERDOMAIN",
            remote: remote,
            remotePort: port
        )
        return EventChannel(port: local, remoteDomain: remote, remotePort: port, file: file)
    }

    /// Signals the peer.
    ///
    /// The corresponding ioctl is `IOCTL_EVTCHN_NOTIFY`.
    public func notify() throws(XenGntError) {
        try file.notify()
    }

    /// The events that arrive on this port, unmasked as they are taken (see the type's
    /// discussion). The sequence ends when the port is unbound; cancelling the iterating task
    /// ends a wait with `XenGntError/Code/cancelled`. If the kernel's queue overflows
    /// (`EFBIG`), it is reset, the port unmasked, and the next element has
    /// ``EventChannelNotification/followsOverflow`` set.
    public var notifications: EventChannelNotifications { EventChannelNotifications(file: file) }

    /// How many times this port's queue overflowed and was reset.
    public var overflowCount: Int { file.overflows }

    /// Closes the port, reporting errors. Waiting iterations end.
    ///
    /// The corresponding ioctl is `IOCTL_EVTCHN_UNBIND`.
    public consuming func unbind() throws(XenGntError) {
        try file.unbind()
    }

    deinit {
        try? file.unbind()
    }
}

/// An event taken from a port.
public struct EventChannelNotification: Sendable, Hashable {
    /// The local port.
    public let port: UInt32
    /// The kernel's queue overflowed before this event and was reset: events may have been
    /// merged into this one.
    public let followsOverflow: Bool
}

/// The request numbers of `/dev/xen/evtchn`, from the header.
enum EventChannelRequest {
    static let bindInterdomain = cxb_request_evtchn_bind_interdomain()
    static let bindUnboundPort = cxb_request_evtchn_bind_unbound_port()
    static let unbind = cxb_request_evtchn_unbind()
    static let notify = cxb_request_evtchn_notify()
    static let reset = cxb_request_evtchn_reset()
}

/// One open `/dev/xen/evtchn` with one port bound on it.
final class EventChannelFile: Sendable {
    static let path = "/dev/xen/evtchn"

    let fd: Int32
    let calls: any SystemCalls
    private struct State {
        var port: UInt32?
        var bound = false
        var overflows = 0
        var waiters: [ObjectIdentifier: ReadinessWaiter] = [:]
    }
    private let state = Locked(State())

    init(system: XenSystem) throws(XenGntError) {
        calls = system.calls
        do throws(Errno) {
            fd = try retryingOnInterrupt { () throws(Errno) in
                try system.calls.open(Self.path, flags: O_RDWR | O_CLOEXEC | O_NONBLOCK, mode: 0)
            }
        } catch {
            let code: XenGntError.Code =
                switch error {
                case .noSuchFileOrDirectory, .noSuchAddressOrDevice, .operationNotSupportedByDevice: .deviceMissing
                case .permissionDenied, .notPermitted: .permissionDenied
                default: .kernel
                }
            throw XenGntError(code, .bindEventChannel, call: "open", errno: error, path: Self.path)
        }
    }

    deinit { try? calls.close(fd) }

    var port: UInt32 { state.withLock { $0.port ?? 0 } }
    var isBound: Bool { state.withLock { $0.bound } }
    var overflows: Int { state.withLock { $0.overflows } }

    func bind(_ request: UInt, _ call: String, remote: DomainID, remotePort: UInt32?) throws(XenGntError) -> UInt32 {
        var interdomain = ioctl_evtchn_bind_interdomain(remote_domain: UInt32(remote.rawValue), remote_port: remotePort ?? 0)
        var unbound = ioctl_evtchn_bind_unbound_port(remote_domain: UInt32(remote.rawValue))
        let result: Int32
        do throws(Errno) {
            result = try retryingOnInterrupt { () throws(Errno) in
                remotePort == nil ? try calls.ioctl(fd, request, &unbound) : try calls.ioctl(fd, request, &interdomain)
            }
        } catch {
            let code: XenGntError.Code = error == .noMemory ? .outOfMemory : .eventChannelRefused
            throw XenGntError(code, .bindEventChannel, call: call, errno: error, domain: remote, port: remotePort)
        }
        let port = UInt32(bitPattern: result)
        state.withLock {
            $0.port = port
            $0.bound = true
        }
        return port
    }

    func notify() throws(XenGntError) {
        let port = self.port
        var argument = ioctl_evtchn_notify(port: port)
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, EventChannelRequest.notify, &argument) }
        } catch {
            let code: XenGntError.Code = error == .socketNotConnected ? .eventChannelNotBound : .kernel
            throw XenGntError(code, .notifyEventChannel, call: "IOCTL_EVTCHN_NOTIFY", errno: error, port: port)
        }
    }

    func unbind() throws(XenGntError) {
        let (port, waiters): (UInt32?, [ReadinessWaiter]) = state.withLock { state in
            guard state.bound else { return (nil, []) }
            state.bound = false
            return (state.port, Array(state.waiters.values))
        }
        guard let port else { return }
        defer { for waiter in waiters { waiter.interrupt() } }
        var argument = ioctl_evtchn_unbind(port: port)
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, EventChannelRequest.unbind, &argument) }
        } catch {
            throw XenGntError(
                error == .socketNotConnected ? .eventChannelNotBound : .kernel,
                .unbindEventChannel,
                call: "IOCTL_EVTCHN_UNBIND",
                errno: error,
                port: port
            )
        }
    }

    /// Takes the pending event, if any, and unmasks the port; resets the queue on `EFBIG`.
    func take() throws(XenGntError) -> EventChannelNotification? {
        var entries: (UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0, 0, 0, 0, 0)
        let port = self.port
        let count: Int
        do throws(Errno) {
            count = try withUnsafeMutableBytes(of: &entries) { raw in
                Result { () throws(Errno) in try retryingOnInterrupt { () throws(Errno) in try calls.read(fd, into: raw) } }
            }.get()
        } catch .resourceTemporarilyUnavailable {
            return nil
        } catch .fileTooLarge {
            try recoverFromOverflow(port)
            return EventChannelNotification(port: port, followsOverflow: true)
        } catch {
            throw XenGntError(.kernel, .receiveEvent, call: "read", errno: error, path: Self.path, port: port)
        }
        let ports = withUnsafeBytes(of: &entries) { Array($0.bindMemory(to: UInt32.self).prefix(count / 4)) }
        guard ports.contains(port) else { return nil }
        try unmask(port)
        return EventChannelNotification(port: port, followsOverflow: false)
    }

    /// `EFBIG`: the kernel dropped events and masks the ports whose events it dropped until
    /// they are written back. Reset the queue, then unmask (re-arm) the port.
    private func recoverFromOverflow(_ port: UInt32) throws(XenGntError) {
        state.withLock { $0.overflows += 1 }
        do throws(Errno) {
            _ = try retryingOnInterrupt { () throws(Errno) in try calls.ioctl(fd, EventChannelRequest.reset, nil) }
        } catch {
            throw XenGntError(.eventQueueOverflow, .receiveEvent, call: "IOCTL_EVTCHN_RESET", errno: error, port: port)
        }
        try unmask(port)
    }

    /// Writes the port number back: the kernel unmasks it (and raises a pending event again).
    private func unmask(_ port: UInt32) throws(XenGntError) {
        var number = port
        do throws(Errno) {
            _ = try withUnsafeBytes(of: &number) { raw in
                Result { () throws(Errno) in try retryingOnInterrupt { () throws(Errno) in try calls.write(fd, from: raw) } }
            }.get()
        } catch {
            throw XenGntError(.kernel, .receiveEvent, call: "write", errno: error, path: Self.path, port: port)
        }
    }

    func register(_ waiter: ReadinessWaiter) -> Bool {
        state.withLock { state in
            guard state.bound else { return false }
            state.waiters[ObjectIdentifier(waiter)] = waiter
            return true
        }
    }

    func unregister(_ waiter: ReadinessWaiter) {
        state.withLock { _ = $0.waiters.removeValue(forKey: ObjectIdentifier(waiter)) }
    }
}
