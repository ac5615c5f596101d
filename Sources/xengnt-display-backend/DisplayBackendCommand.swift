import ArgumentParser
import Logging
import ServiceLifecycle
import XenDisplayBackend

/// `xengnt-display-backend`: serves Xen PV display frontends (`vdispl`, displif.h) from Dom0 or
/// a driver domain. See Documentation/DisplayBackend.md.
@main
struct DisplayBackendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "xengnt-display-backend",
        abstract: "A Xen PV display backend (vdispl, displif.h protocol 2) for Linux's xen-drm-front.",
        discussion: """
            Serves every vdispl frontend that appears (or those named by --frontend), showing each \
            connector on a KMS CRTC (--crtc) or in the headless sink (PNG files in --png-dir). \
            SIGTERM or SIGINT: frontends are told Closing then Closed, buffers are released, the \
            counters are printed as one JSON line, exit 0. SIGUSR1: the counters' JSON line.
            """
    )

    @OptionGroup var options: DisplayBackendOptions

    @Option(
        name: .customLong("demo"),
        help: ArgumentHelp(
            "Serve a scripted frontend on the simulated Xen in this process instead (0: frontend buffers, 1: backend buffers).",
            valueName: "be-alloc"
        )
    )
    var demo: Int?

    func run() async throws {
        let level = options.logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "xengnt.display")
        let engine: any DisplayBackendEngine
        if let demo {
            engine = DemoEngine(options: options, backendAllocates: demo != 0)
        } else {
            engine = try DisplayBackendEngines.make(options: options, logger: logger)
        }
        let backend = DisplayBackendService(engine: engine, logger: logger, countersFile: options.countersFile)
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: backend, successTerminationBehavior: .gracefullyShutdownGroup),
                    .init(service: CountersSignalService(counters: engine.counters)),
                ],
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            )
        )
        try await group.run()
    }
}
