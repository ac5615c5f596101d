public import Logging
public import ServiceLifecycle
import UnixSignals

/// What the daemon runs: serves frontends until cancelled, then tears down in order.
public protocol DisplayBackendEngine: Sendable {
    /// The counters every frontend updates.
    var counters: DisplayCounters { get }
    /// Serves every frontend until the task is cancelled (graceful shutdown cancels it).
    func serve(logger: Logger) async throws
    /// After ``serve(logger:)`` returned: tells every frontend Closing, then Closed, and
    /// releases its buffers in order (framebuffers, then buffers, then rings). Never throws:
    /// what fails is logged and counted.
    func shutdown(logger: Logger) async
}

/// The daemon as a swift-service-lifecycle service: on `SIGTERM` or `SIGINT` (graceful
/// shutdown) the engine stops serving and shuts down in order, and the counters' JSON line is
/// printed (and written to `countersFile`); the process then exits 0.
public struct DisplayBackendService: Service {
    public let engine: any DisplayBackendEngine
    public let logger: Logger
    /// Where the final counters go besides standard output.
    public let countersFile: String?
    /// Prints a line (standard output by default; tests capture it).
    let output: @Sendable (String) -> Void

    public init(
        engine: any DisplayBackendEngine,
        logger: Logger,
        countersFile: String? = nil,
        output: @escaping @Sendable (String) -> Void = { print($0) }
    ) {
        self.engine = engine
        self.logger = logger
        self.countersFile = countersFile
        self.output = output
    }

    public func run() async throws {
        var failure: (any Error)?
        do {
            try await cancelWhenGracefulShutdown { try await engine.serve(logger: logger) }
        } catch is CancellationError {
        } catch {
            failure = error
            logger.error("display backend stopped: \(error)")
        }
        logger.info("display backend shutting down")
        await engine.shutdown(logger: logger)
        let line = engine.counters.jsonLine()
        output(line)
        if let countersFile {
            do { try TextFile.write(line + "\n", to: countersFile) } catch {
                logger.warning("cannot write counters to \(countersFile): \(error)")
            }
        }
        if let failure { throw failure }
    }
}

/// Prints the counters' JSON line on every `SIGUSR1`, until graceful shutdown.
public struct CountersSignalService: Service {
    public let counters: DisplayCounters
    let output: @Sendable (String) -> Void

    public init(counters: DisplayCounters, output: @escaping @Sendable (String) -> Void = { print($0) }) {
        self.counters = counters
        self.output = output
    }

    public func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigusr1)
        await cancelWhenGracefulShutdown {
            for await _ in signals { output(counters.jsonLine()) }
        }
    }
}
