public import Logging
import Synchronization
public import XenGnt
import XenGntDRM

/// The daemon's KMS display and which frontend connector each of its CRTCs shows: the
/// `--crtc` assignments, or without any, CRTC 0 for connector 0 of the first frontend that
/// connects (until it disconnects). Every other connector goes to the headless sink.
public final class KMSRouting: Sendable {
    struct State {
        var display: KMSDisplay?
        var assignments: [CrtcAssignment] = []
        /// Frontends holding CRTCs (the automatic assignment only).
        var claims: [FrontendKey: Int] = [:]
        /// "CRTC pattern" for each of modetest's frames a writeback capture found on screen.
        var writebackSeen: Set<String> = []
        var captures = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// The display, if one was opened.
    public var display: KMSDisplay? { state.withLock { $0.display } }

    /// Uses `display` with `assignments` (none: CRTC 0 goes to the first frontend's connector 0).
    public func use(_ display: KMSDisplay, assignments: [CrtcAssignment]) {
        state.withLock {
            $0.display = display
            $0.assignments = assignments
        }
    }

    /// Opens the KMS device the options name (`--drm-device`, unless `--no-kms`), for the
    /// assigned CRTCs. A display that is missing or unusable is logged once: every connector
    /// then goes to the headless sink.
    public func open(options: DisplayBackendOptions, system: XenSystem, logger: Logger) {
        guard !options.headless else {
            logger.info("no KMS display (--no-kms): every connector goes to the headless sink")
            return
        }
        let spec = options.drmDevice
        do {
            guard let device = try KMSDisplay.open(spec, on: system) else {
                logger.notice("no KMS device with a connected display: every connector goes to the headless sink")
                return
            }
            let assignments = options.crtcAssignments
            let display = try KMSDisplay(device: device, crtcs: assignments.isEmpty ? [0] : assignments.map(\.crtc))
            use(display, assignments: assignments)
            let routing =
                assignments.isEmpty
                ? "CRTC 0 shows connector 0 of the first frontend"
                : assignments.map(\.defaultValueDescription).joined(separator: ", ")
            logger.info(
                "KMS display \(device.path) (\(device.driver.name)): \(routing); other connectors go to the headless sink"
            )
        } catch {
            logger.warning("KMS display \(spec) unusable, every connector goes to the headless sink: \(error)")
        }
    }

    /// The CRTC routes of a frontend device's connectors.
    public func claim(key: FrontendKey, name: String?, configuration: FrontendConfiguration) -> [Int: KMSSink.Route] {
        state.withLock { state in
            guard state.display != nil else { return [:] }
            if !state.assignments.isEmpty {
                return KMSSink.routes(
                    for: configuration,
                    domain: key.domain,
                    name: name,
                    device: key.device,
                    assignments: state.assignments
                )
            }
            guard state.claims.isEmpty, let first = configuration.connectors.first(where: { $0.index == 0 }) else { return [:] }
            state.claims[key] = 0
            return [0: KMSSink.Route(crtc: 0, width: first.width, height: first.height)]
        }
    }

    /// The frontend device is gone: an automatic claim ends.
    public func unclaim(_ key: FrontendKey) {
        state.withLock { _ = $0.claims.removeValue(forKey: key) }
    }

    /// Which of modetest's frames the writeback checks found on which CRTC ("0 smpte").
    public var writebackSeen: Set<String> { state.withLock { $0.writebackSeen } }
    /// Writeback captures made by the checks.
    public var writebackCaptures: Int { state.withLock { $0.captures } }

    /// `--writeback-check`: until cancelled, every `interval` reads each assigned CRTC that is
    /// on back through the display's writeback connector (vkms has one) and logs, once per CRTC
    /// and frame, when it shows one of modetest's two frames: what is on screen, not what the
    /// backend meant to put there. A capture waits for the flip in progress and costs two
    /// mode sets on vkms (the CRTC moves to the writeback connector and back), so a CRTC on
    /// which both frames were seen is not captured again.
    public func checkWriteback(every interval: Duration, logger: Logger) async {
        while !Task.isCancelled {
            do { try await Task.sleep(for: interval) } catch { return }
            guard let display else { return }
            let seen = writebackSeen
            for crtc in display.outputs.keys.sorted() where display.mode(crtc: crtc) != nil {
                // Both of modetest's frames seen: the CRTC is proven, and spared the captures.
                if TestPattern.allCases.allSatisfy({ seen.contains("\(crtc) \($0.rawValue)") }) { continue }
                let shot: Screenshot
                do throws(XenGntError) { shot = try await display.captureScreen(crtc: crtc) } catch {
                    if error.code != .noDisplay { logger.warning("writeback check of CRTC \(crtc): \(error)") }
                    continue
                }
                let pattern = Self.classify(shot)
                let new = state.withLock { state -> Bool in
                    state.captures += 1
                    guard let pattern else { return false }
                    return state.writebackSeen.insert("\(crtc) \(pattern.rawValue)").inserted
                }
                if new, let pattern {
                    logger.info(
                        "CRTC \(crtc) writeback shows modetest's \(pattern.rawValue) frame (\(shot.width)x\(shot.height))"
                    )
                }
            }
        }
    }

    /// Which of modetest's frames a capture shows, if any.
    static func classify(_ shot: Screenshot) -> TestPattern? {
        let bytes = shot.pixels.withUnsafeBytes { Array($0) }
        return bytes.withUnsafeBytes { raw in
            FrameView(bytes: raw, width: shot.width, height: shot.height, pitch: shot.width * 4, format: .xrgb8888)
                .flatMap { TestPattern.classify($0) }
        }
    }

    /// At shutdown: every CRTC off, its buffers released.
    public func close() {
        display?.blankAll()
    }
}
