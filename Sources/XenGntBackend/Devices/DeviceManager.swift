import Synchronization
import XenGnt

/// Follows one device's XenbusState handshake for a ``Backend`` (see its discussion). Acts on
/// levels, not edges: on every message it reads the states again, so merged or reordered watch
/// events cannot confuse it.
struct DeviceManager: Sendable {
    let context: DeviceContext
    let key: DeviceKey
    let root: String
    let table: DeviceTable

    private var name: String { "\(context.type)/\(key.frontend.rawValue)/\(key.device)" }
    private var backendPath: String { "\(root)/\(key.frontend.rawValue)/\(key.device)" }

    /// The mutable part of a device's life.
    private final class Life: @unchecked Sendable {
        var session: Task<Void, Never>?
        var written: XenbusState = .unknown
        var frontendGone = false
        /// The device directory was removed.
        var gone = false
    }

    func run() async {
        let (inbox, continuation) = AsyncStream.makeStream(of: DeviceMessage.self)
        table.open(key, continuation)
        defer { table.close(key) }
        let device: BackendDevice
        do {
            device = try await describe()
        } catch {
            context.observe(.rejected(name, error))
            return
        }
        // The frontend's state, watched from here on (the first event comes at once).
        let pump = Task {
            do {
                let watch = try await context.store.watch("\(device.frontendPath)/state")
                for try await _ in watch { continuation.yield(.frontendChanged) }
            } catch {}
        }
        let life = Life()
        do {
            try await start(device, life)
            for await message in inbox {
                if try await handle(message, device, life) == .stop || life.gone { break }
            }
        } catch {
            context.observe(.rejected(name, error))
        }
        pump.cancel()
        await pump.value
        // Shutting down (cancelled) or done: tear down, then say so if the directory is there.
        await teardown(life, reason: Task.isCancelled ? "backend shutting down" : "device gone")
        if Task.isCancelled {
            await detached { () throws(XenGntError) in
                if try await write(.closing, device, life) { try await write(.closed, device, life) }
            }
        }
    }

    private enum Next { case goOn, stop }

    /// Reads the device's entries and checks them: the frontend must be the domain the
    /// directory names, and its directory where the toolstack puts frontends.
    private func describe() async throws(XenGntError) -> BackendDevice {
        let store = context.store
        let frontendPath = try await store.read("\(backendPath)/frontend")
        let frontendID = try await store.read("\(backendPath)/frontend-id", as: UInt16.self)
        let expected = "/local/domain/\(key.frontend.rawValue)/device/\(context.type)/\(key.device)"
        guard frontendID == key.frontend.rawValue, frontendPath == expected else {
            throw XenGntError(
                .invalidDevice,
                .deviceLifecycle,
                path: backendPath,
                detail:
                    "frontend-id \(frontendID) and frontend '\(frontendPath)' do not match the directory (expected \(expected))"
            )
        }
        return BackendDevice(
            type: context.type,
            frontendID: key.frontend,
            deviceID: key.device,
            backendPath: backendPath,
            frontendPath: frontendPath,
            store: store
        )
    }

    private func start(_ device: BackendDevice, _ life: Life) async throws(XenGntError) {
        do {
            try await context.prepare(device)
        } catch let error as XenGntError {
            throw error
        } catch {
            throw XenGntError(.invalidDevice, .deviceLifecycle, path: backendPath, detail: "prepare failed: \(error)")
        }
        try await write(.initWait, device, life)
        context.observe(.discovered(name))
    }

    private func handle(_ message: DeviceMessage, _ device: BackendDevice, _ life: Life) async throws(XenGntError) -> Next {
        let store = context.store
        switch message {
        case .backendChanged:
            guard try await store.exists("\(backendPath)/frontend") else {
                await teardown(life, reason: "backend directory removed")
                return .stop
            }
            // The toolstack re-created the directory: start over.
            if try await device.backendState() == .initialising, life.written != .initialising {
                await teardown(life, reason: "device re-created")
                life.frontendGone = false
                try await start(device, life)
            }
            return .goOn
        case .domainReleased:
            guard !life.frontendGone, try await !frontendAlive(device) else { return .goOn }
            life.frontendGone = true
            await teardown(life, reason: "frontend domain gone")
            try await write(.closed, device, life)
            return .goOn
        case .served(let error):
            life.session = nil
            context.observe(.served(name, error))
            try await write(.closing, device, life)
            return .goOn
        case .frontendChanged:
            guard !life.frontendGone else { return .goOn }
            guard try await store.exists("\(backendPath)/frontend") else {
                await teardown(life, reason: "backend directory removed")
                return .stop
            }
            return try await follow(try await device.frontendState(), device, life)
        }
    }

    /// Acts on the frontend's state.
    private func follow(_ state: XenbusState, _ device: BackendDevice, _ life: Life) async throws(XenGntError) -> Next {
        switch state {
        case .initialising, .initWait:
            // A frontend (back) at the start: InitWait again, even if it is what the key holds
            // (the write fires the frontend's watch, which is what it waits for).
            await teardown(life, reason: "frontend restarted")
            try await write(.initWait, device, life)
        case .initialised, .connected:
            if life.session == nil, life.written == .initWait { connect(device, life) }
        case .closing, .reconfiguring, .reconfigured:
            await teardown(life, reason: "frontend \(state)")
            if life.written != .closing, life.written != .closed { try await write(.closing, device, life) }
        case .closed:
            await teardown(life, reason: "frontend Closed")
            try await write(.closed, device, life)
            if try await context.store.readIfPresent("\(backendPath)/online") == "0" { return .stop }
        case .unknown:
            // The frontend's directory went: with its domain (then Closed, as for
            // @releaseDomain, whichever event comes first), or by itself.
            if try await !frontendAlive(device) {
                life.frontendGone = true
                await teardown(life, reason: "frontend domain gone")
                try await write(.closed, device, life)
            } else if life.session != nil {
                await teardown(life, reason: "frontend state unknown")
                try await write(.closing, device, life)
            }
        }
        return .goOn
    }

    private func connect(_ device: BackendDevice, _ life: Life) {
        context.observe(.connecting(name))
        let serve = context.serve
        let table = self.table
        let key = self.key
        life.session = Task {
            var failure: XenGntError?
            do {
                try await serve(device)
            } catch let error as XenGntError where error.code == .cancelled && Task.isCancelled {
            } catch let error as XenGntError {
                failure = error
            } catch is CancellationError where Task.isCancelled {
            } catch {
                failure = XenGntError(.peerClosed, .deviceLifecycle, path: device.backendPath, detail: "\(error)")
            }
            // Ended by itself (not by a teardown): the manager writes Closing.
            if !Task.isCancelled { table.post(.served(failure), to: key) }
        }
    }

    /// Cancels the serving task and waits until it has released what it held.
    private func teardown(_ life: Life, reason: String) async {
        guard let session = life.session else { return }
        life.session = nil
        session.cancel()
        await session.value
        context.observe(.tornDown(name, reason: reason))
    }

    /// Writes the backend's state, unless the toolstack removed the device directory (a write
    /// would create it again): then the device is gone and `false` says so.
    @discardableResult
    private func write(_ state: XenbusState, _ device: BackendDevice, _ life: Life) async throws(XenGntError) -> Bool {
        let path = backendPath
        let written = try await context.store.transaction { transaction throws(XenGntError) -> Bool in
            guard try await transaction.exists("\(path)/frontend") else { return false }
            try await transaction.write("\(path)/state", state.value)
            return true
        }
        if written {
            life.written = state
            context.observe(.wroteState(name, state))
        } else {
            life.gone = true
        }
        return written
    }

    /// Whether the frontend's domain still exists: xenstored's answer where this domain may
    /// ask (Dom0), else whether the frontend's directory (which the toolstack removes with the
    /// domain) is still there.
    private func frontendAlive(_ device: BackendDevice) async throws(XenGntError) -> Bool {
        do {
            return try await context.store.isDomainIntroduced(device.frontendID)
        } catch  where error.code == .accessDenied {
            return try await context.store.exists(device.frontendPath)
        }
    }

    /// Runs `body` in a task of its own, so that it is not cancelled with this one (writing
    /// the final states while shutting down).
    private func detached(_ body: @escaping @Sendable () async throws(XenGntError) -> Void) async {
        await Task { try? await body() }.value
    }
}
