internal import CXenBackend
public import Logging
import Synchronization
public import XenGnt
import XenGntBackend

/// The engine that serves real frontends: XenGntBackend's `Backend` follows every vdispl
/// device's XenbusState; for each connection this maps each connector's request ring and event
/// page, binds their event channels, says Connected and serves the rings through a
/// ``DisplayDeviceServer`` until the frontend leaves (or shutdown), then releases everything in
/// order. Every frontend domain is served independently, on its own task.
public final class XenDisplayEngine: DisplayBackendEngine {
    public let counters = DisplayCounters()
    let options: DisplayBackendOptions
    let system: XenSystem
    /// The KMS display and which frontend connector each CRTC shows.
    public let kms = KMSRouting()

    public init(options: DisplayBackendOptions, system: XenSystem = .kernel) {
        self.options = options
        self.system = system
    }

    public func serve(logger: Logger) async throws {
        let store = try XenStore(on: system)
        let backend = Backend(type: DisplayProtocol.deviceType, store: store)
        let gntdev = try GrantDevice(on: system)
        let guest = XenCapabilities.probe(on: system).guestType ?? .pv
        logger.info(
            "display backend serving vdispl devices (backend domain \(guest.rawValue), buffer path \(options.bufferPath.rawValue))"
        )
        kms.open(options: options, system: system, logger: logger)
        defer { kms.close() }
        let checker =
            options.writebackCheckSeconds > 0 && kms.display != nil
            ? Task { [kms, options] in
                await kms.checkWriteback(every: .milliseconds(Int(options.writebackCheckSeconds * 1000)), logger: logger)
            }
            : nil
        defer { checker?.cancel() }
        if let ready = options.readyFile { try TextFile.write("ready\n", to: ready) }
        try await backend.run(
            observe: { event in logger.debug("\(event)") },
            prepare: { device in
                try await device.writeBackend(DisplayProtocol.Field.backendVersions, DisplayProtocol.backendVersions)
            },
            serve: { [self] device in
                try await self.serve(device, gntdev: gntdev, guest: guest, logger: logger)
            }
        )
    }

    /// Backend.run's cancellation already told every frontend Closing, then Closed, and each
    /// connection released its buffers in order before its task ended.
    public func shutdown(logger: Logger) async {}

    /// The frontend's configuration, read from its directory.
    static func configuration(of device: BackendDevice) async throws -> FrontendConfiguration {
        var values: [String: String] = [:]
        for key in [DisplayProtocol.Field.frontendVersion, DisplayProtocol.Field.backendAllocation] {
            values[key] = try? await device.readFrontend(key)
        }
        for index in 0..<FrontendConfiguration.maxConnectors {
            guard let resolution = try? await device.readFrontend("\(index)/\(DisplayProtocol.Field.resolution)") else { break }
            values["\(index)/\(DisplayProtocol.Field.resolution)"] = resolution
            values["\(index)/\(DisplayProtocol.Field.uniqueID)"] = try? await device.readFrontend(
                "\(index)/\(DisplayProtocol.Field.uniqueID)"
            )
        }
        return try FrontendConfiguration.read { values[$0] }
    }

    func serve(_ device: BackendDevice, gntdev: GrantDevice, guest: GuestType, logger: Logger) async throws {
        let frontend = device.frontendID
        let name = try? await device.store.read("/local/domain/\(frontend.rawValue)/name")
        if !options.frontends.isEmpty, !options.frontends.contains(String(frontend.rawValue)),
            !options.frontends.contains(name ?? "")
        {
            logger.notice("\(device): not served (--frontend)")
            return
        }
        let key = FrontendKey(domain: frontend.rawValue, device: Int(device.deviceID) ?? 0)
        let config = try await Self.configuration(of: device)
        let connectors = ConnectorChannels()
        defer { connectors.release(logger: logger, key: key) }
        for connector in config.connectors {
            let i = connector.index
            let requestRing = try gntdev.map(
                [try await device.grantRef("\(i)/\(DisplayProtocol.Field.requestRingRef)")],
                from: frontend
            )
            let eventPage = try gntdev.map(
                [try await device.grantRef("\(i)/\(DisplayProtocol.Field.eventRingRef)")],
                from: frontend
            )
            let requestChannel = try EventChannel.bindInterdomain(
                remote: frontend,
                port: try await device.port("\(i)/\(DisplayProtocol.Field.requestChannel)"),
                on: system
            )
            let eventChannel = try EventChannel.bindInterdomain(
                remote: frontend,
                port: try await device.port("\(i)/\(DisplayProtocol.Field.eventChannel)"),
                on: system
            )
            try connectors.add(
                ring: BackRing<xendispl_req, xendispl_resp>(mapping: requestRing),
                events: EventPageWriter<xendispl_evt>(mapping: eventPage),
                requestChannel: requestChannel,
                eventChannel: eventChannel
            )
        }
        let headless = try HeadlessSink(directory: options.pngDirectory ?? "/tmp", policy: options.pngPolicy)
        if let display = kms.display {
            let claimed = kms.claim(key: key, name: name, configuration: config)
            defer { kms.unclaim(key) }
            let sink = KMSSink(
                display: display,
                routes: claimed,
                headless: headless,
                counters: counters,
                logger: logger,
                connectorCount: config.connectors.count
            )
            try await serve(
                device,
                key: key,
                config: config,
                connectors: connectors,
                sink: sink,
                gntdev: gntdev,
                guest: guest,
                logger: logger
            )
        } else {
            try await serve(
                device,
                key: key,
                config: config,
                connectors: connectors,
                sink: headless,
                gntdev: gntdev,
                guest: guest,
                logger: logger
            )
        }
    }

    func serve<Sink: DisplaySink>(
        _ device: BackendDevice,
        key: FrontendKey,
        config: FrontendConfiguration,
        connectors: ConnectorChannels,
        sink: Sink,
        gntdev: GrantDevice,
        guest: GuestType,
        logger: Logger
    ) async throws {
        let resources = GrantDisplayResources(
            gntdev: gntdev,
            frontend: device.frontendID,
            key: key,
            counters: counters,
            sink: sink,
            system: system,
            pathChoice: options.bufferPath,
            backendGuest: guest,
            logger: logger
        )
        var server = DisplayDeviceServer(
            session: DisplaySession(configuration: config, limits: options.bufferLimits),
            resources: resources,
            key: key,
            counters: counters,
            logger: logger
        )
        try await device.setConnected()
        var reason = "the frontend left"
        do {
            try await connectors.forEachNotification { (connector) throws(DisplayRefusal) in
                try connectors.serve(connector, with: &server)
            }
        } catch let refusal as DisplayRefusal {
            reason = "protocol error: \(refusal)"
            counters.update(key) { $0.errors += 1 }
        } catch is CancellationError {
            reason = "closed"
        } catch let error as XenGntError where error.code == .cancelled {
            reason = "closed"
        }
        server.disconnect(reason: reason)
    }
}
