import Synchronization
public import XenGnt

/// A PV backend: finds the devices the toolstack gives this domain to serve
/// (`backend/<type>/<frontend-domid>/<devid>`) and follows each one's XenbusState handshake,
/// running your code for each connection.
///
/// ```swift
/// let backend = Backend(type: "vdispl", store: try XenStore())
/// try await backend.run { device in                 // one call per connection, concurrently
///     let ref = try await device.grantRef("0/req-ring-ref")
///     var ring = try BackRing<xendispl_req, xendispl_resp>(mapping: try gntdev.map([ref], from: device.frontendID))
///     let channel = try EventChannel.bindInterdomain(remote: device.frontendID, port: try await device.port("0/req-event-channel"))
///     try await device.setConnected()
///     for try await _ in channel.notifications {    // ends when the device is torn down
///         if try ring.serve(handle).notify { try channel.notify() }
///     }
/// }                                                 // the ring and channel are released here
/// ```
///
/// For each device: the backend writes InitWait (after `prepare`, where it publishes features);
/// when the frontend is Initialised (its rings and ports published) it runs `serve`, which
/// maps and binds them, calls ``BackendDevice/setConnected()`` and serves until cancelled.
/// The connection is torn down — `serve`'s task cancelled and awaited, so everything it owns is
/// released — when the frontend goes Closing, Closed or Reconfiguring, when the backend
/// directory is removed, or when the frontend's domain dies (`@releaseDomain`); the backend
/// then writes Closing or Closed. When the frontend is back at Initialising the backend writes
/// InitWait again and accepts the reconnection. If `serve` fails, the backend writes Closing and
/// waits for the frontend to close. Each device has its own task: one that fails or disconnects
/// does not disturb the others.
///
/// Cancelling ``run(observe:prepare:serve:)`` shuts down: every connection is torn down and
/// every device goes Closing, then Closed.
public struct Backend: Sendable {
    /// The device type served (`vdispl`).
    public let type: String
    /// The connection used.
    public let store: XenStore

    public init(type: String, store: XenStore) {
        self.type = type
        self.store = store
    }

    public typealias Serve = @Sendable (BackendDevice) async throws -> Void

    /// Serves every device of this type until cancelled.
    ///
    /// - Parameters:
    ///   - observe: told what happens to each device.
    ///   - prepare: run for each new device before it goes InitWait.
    ///   - serve: run for each connection (see the type's discussion).
    /// - Throws: when XenStore fails for the backend as a whole (its watches cannot be set);
    ///   a failing device only ends that device's connection.
    public func run(
        observe: @escaping @Sendable (BackendEvent) -> Void = { _ in },
        prepare: @escaping Serve = { _ in },
        serve: @escaping Serve
    ) async throws(XenGntError) {
        let me = try await store.domainID()
        let root = "/local/domain/\(me.rawValue)/backend/\(type)"
        let discovery = try await store.watch(root)
        let release = try await store.watch("@releaseDomain")
        let devices = DeviceTable()
        let context = DeviceContext(type: type, store: store, observe: observe, prepare: prepare, serve: serve)
        let failure: XenGntError? = await withTaskGroup(of: Void.self) { group -> XenGntError? in
            group.addTask {
                do {
                    for try await _ in release { devices.post(.domainReleased, toAll: ()) }
                } catch {}
            }
            defer { group.cancelAll() }
            do throws(XenGntError) {
                for try await event in discovery {
                    for key in try await scan(root, event: event.path, known: devices) where devices.add(key) {
                        group.addTask { await DeviceManager(context: context, key: key, root: root, table: devices).run() }
                    }
                    devices.route(event.path, under: root)
                }
                return nil
            } catch  where error.code == .cancelled {
                return nil
            } catch {
                return error
            }
        }
        if let failure { throw failure }
    }

    /// The devices below `root` that the event at `path` may have added: all of them for the
    /// watch's first event, a frontend's for its directory, the one device for anything inside
    /// it (a toolstack that writes `.../<devid>/state` directly creates the directory without an
    /// event of its own). Devices already managed are not looked up again.
    private func scan(_ root: String, event path: String, known devices: DeviceTable) async throws(XenGntError) -> [DeviceKey] {
        let relative = path.hasPrefix(root + "/") ? path.dropFirst(root.count + 1).split(separator: "/").map(String.init) : []
        if relative.count >= 2 {
            guard let id = UInt16(relative[0]) else { return [] }
            let key = DeviceKey(frontend: DomainID(id), device: relative[1])
            guard !devices.isManaged(key) else { return [] }
            return try await store.exists("\(root)/\(relative[0])/\(relative[1])") ? [key] : []
        }
        let frontends: [String]
        if let first = relative.first {
            frontends = [first]
        } else {
            do {
                frontends = try await store.directory(root)
            } catch  where error.code == .noSuchNode {
                return []
            }
        }
        var keys: [DeviceKey] = []
        for frontend in frontends {
            guard let id = UInt16(frontend) else { continue }
            do {
                for device in try await store.directory("\(root)/\(frontend)") {
                    keys.append(DeviceKey(frontend: DomainID(id), device: device))
                }
            } catch  where error.code == .noSuchNode {
                continue
            }
        }
        return keys
    }
}

/// A device below a backend's root: the frontend's domain and the device id.
struct DeviceKey: Hashable, Sendable {
    let frontend: DomainID
    let device: String
}

/// What a device's manager learns.
enum DeviceMessage: Sendable {
    /// The frontend's `state` key was written (or its watch fired first).
    case frontendChanged
    /// Something below the device's backend directory changed (or the directory went away).
    case backendChanged
    /// A domain died.
    case domainReleased
    /// The serving code ended by itself.
    case served(XenGntError?)
}

/// The devices being managed, and their inboxes.
final class DeviceTable: Sendable {
    private let inboxes = Locked<[DeviceKey: AsyncStream<DeviceMessage>.Continuation]>([:])
    private let managed = Locked<Set<DeviceKey>>([])

    func isManaged(_ key: DeviceKey) -> Bool {
        managed.withLock { $0.contains(key) }
    }

    /// Records `key`; `false` when it is managed already.
    func add(_ key: DeviceKey) -> Bool {
        managed.withLock { $0.insert(key).inserted }
    }

    func open(_ key: DeviceKey, _ continuation: AsyncStream<DeviceMessage>.Continuation) {
        inboxes.withLock { $0[key] = continuation }
    }

    func close(_ key: DeviceKey) {
        inboxes.withLock { $0.removeValue(forKey: key) }?.finish()
        managed.withLock { _ = $0.remove(key) }
    }

    func post(_ message: DeviceMessage, toAll: Void) {
        for inbox in inboxes.withLock({ Array($0.values) }) { inbox.yield(message) }
    }

    func post(_ message: DeviceMessage, to key: DeviceKey) {
        inboxes.withLock { $0[key] }?.yield(message)
    }

    /// Tells the devices at or below `path` that their backend directory changed.
    func route(_ path: String, under root: String) {
        let parts = path.hasPrefix(root + "/") ? path.dropFirst(root.count + 1).split(separator: "/").map(String.init) : []
        let targets = inboxes.withLock { inboxes in
            inboxes.filter { key, _ in
                parts.isEmpty || (parts[0] == "\(key.frontend.rawValue)" && (parts.count == 1 || parts[1] == key.device))
            }.map(\.value)
        }
        for inbox in targets { inbox.yield(.backendChanged) }
    }
}

/// What every device manager of one backend shares.
struct DeviceContext: Sendable {
    let type: String
    let store: XenStore
    let observe: @Sendable (BackendEvent) -> Void
    let prepare: Backend.Serve
    let serve: Backend.Serve
}
