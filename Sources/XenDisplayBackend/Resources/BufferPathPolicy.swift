public import XenGnt

/// How a device's frontend-allocated buffers (`be-alloc=0`) reach the display: exported and
/// scanned out (zero-copy) where the backend domain can export grants and the display takes the
/// export, else mapped and copied at each flip. Decided at the first buffer, revised once if the
/// display refuses the export at its first real commit (vkms's refusal shows only then:
/// `TEST_ONLY` succeeds), and logged once per device by the caller.
public struct BufferPathPolicy: Sendable, Hashable {
    public enum Decision: Sendable, Hashable {
        case export
        case copy(reason: String)
    }

    public let choice: BufferPathChoice
    /// Whether the backend domain can export grants as dma-bufs (not in an x86 PV domain).
    public let backendCanExport: Bool
    /// Whether the sink can show an exported buffer (a KMS device; not the headless sink,
    /// which reads memory, nor a display that refused one).
    public private(set) var sinkTakesExports: Bool
    /// The decision in force.
    public private(set) var decision: Decision

    public init(choice: BufferPathChoice, backendGuest: GuestType, sinkTakesExports: Bool) {
        self.choice = choice
        backendCanExport = backendGuest != .pv
        self.sinkTakesExports = sinkTakesExports
        decision = .copy(reason: "")
        decision = decide()
    }

    private func decide() -> Decision {
        switch choice {
        case .copy: return .copy(reason: "--buffer-path copy")
        case .export, .auto:
            if !backendCanExport { return .copy(reason: "an x86 PV backend domain cannot export grants") }
            if !sinkTakesExports { return .copy(reason: "the display reads frames with the CPU, which an export does not allow") }
            return .export
        }
    }

    /// The display refused an exported buffer at a commit: with `auto`, copy from now on (the
    /// new decision); with `export`, the refusal stands (`nil`: report the error).
    public mutating func exportRefused(_ error: XenGntError) -> Decision? {
        guard choice == .auto else { return nil }
        sinkTakesExports = false
        decision = .copy(reason: "the display refused an exported buffer (\(error.code))")
        return decision
    }

    /// Whether `--buffer-path export` cannot be honoured at all (refuse the device's buffers).
    public var exportImpossible: Bool { choice == .export && decide() != .export }
}
