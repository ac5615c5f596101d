import ArgumentParser
import Logging
import ServiceLifecycle
import ServiceLifecycleTestKit
import Synchronization
import Testing
import XenDisplayBackend

/// The daemon's options and its shutdown through swift-service-lifecycle.
@Suite struct DaemonTests {
    @Test func parsesTheOptions() throws {
        let options = try DisplayBackendOptions.parse([
            "--crtc", "0=xengnt-display:0:0", "--crtc", "1=7", "--png-dir", "/tmp/frames", "--png-every", "30",
            "--frontend", "7", "--buffer-path", "copy", "--max-buffer-mib", "16", "--log-level", "debug",
        ])
        #expect(
            options.crtcAssignments == [CrtcAssignment(crtc: 0, domain: "xengnt-display"), CrtcAssignment(crtc: 1, domain: "7")]
        )
        #expect(options.crtcAssignments[1].matches(domainID: 7, name: nil, device: 0, connector: 0))
        #expect(!options.crtcAssignments[1].matches(domainID: 7, name: nil, device: 0, connector: 1))
        #expect(options.pngPolicy == .every(30))
        #expect(options.bufferPath == .copy)
        #expect(options.bufferLimits.maxPages == 4096)
        #expect(options.logLevel == .debug)
        let defaults = try DisplayBackendOptions.parse([])
        #expect(defaults.drmDevice == "auto")
        #expect(!defaults.headless)
        #expect(try DisplayBackendOptions.parse(["--no-kms"]).headless)
        #expect(defaults.pngPolicy == .never)
        #expect(defaults.bufferPath == .auto)
    }

    @Test(arguments: [
        ["--crtc", "x=1"], ["--crtc", "0=1:a"], ["--crtc", "0="], ["--crtc", "0=1", "--crtc", "0=2"],
        ["--crtc", "0=1", "--crtc", "1=1"], ["--headless", "--crtc", "0=1"], ["--no-kms", "--crtc", "0=1"],
        ["--png-every", "-1"],
        ["--max-buffer-mib", "0"], ["--log-level", "loud"], ["--buffer-path", "zero"],
    ])
    func refusesBadOptions(_ arguments: [String]) {
        #expect(throws: (any Error).self) { try DisplayBackendOptions.parse(arguments) }
    }

    /// An engine that serves until cancelled and records the order of the teardown.
    final class RecordingEngine: DisplayBackendEngine {
        let counters = DisplayCounters()
        let events = Mutex<[String]>([])
        func serve(logger: Logger) async throws {
            events.withLock { $0.append("serving") }
            counters.update(FrontendKey(domain: 1, device: 0)) { $0.framesShown = 5 }
            try await Task.sleep(for: .seconds(3600))
        }
        func shutdown(logger: Logger) async {
            events.withLock { $0.append("shutdown") }
        }
    }

    @Test func gracefulShutdownTearsDownAndPrintsTheCounters() async throws {
        let engine = RecordingEngine()
        let lines = Mutex<[String]>([])
        let service = DisplayBackendService(
            engine: engine,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            output: { line in lines.withLock { $0.append(line) } }
        )
        try await testGracefulShutdown { trigger in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await service.run() }
                while engine.events.withLock({ $0.isEmpty }) { try await Task.sleep(for: .milliseconds(5)) }
                trigger.triggerGracefulShutdown()
                try await group.waitForAll()
            }
        }
        #expect(engine.events.withLock { $0 } == ["serving", "shutdown"])
        let printed = lines.withLock { $0 }
        #expect(printed.count == 1)
        #expect(printed.first?.contains("\"frames_shown\":5") == true)
    }

    @Test func theEngineServesXen() throws {
        let engine = try DisplayBackendEngines.make(
            options: DisplayBackendOptions(),
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        #expect(engine is XenDisplayEngine)
    }
}
