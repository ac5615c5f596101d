internal import CDRM
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// Vblanks: what changes the screen, sends the events and completes writeback captures.
extension KMS {
    /// One vblank of the CRTC: a pending commit reaches the screen (its flip-complete event is
    /// sent, its writeback capture composed), and the vblank events asked for are sent.
    func vblank(_ machine: Machine) {
        sequence += 1
        time += frameDuration
        if let pending { finish(pending, machine) }
        let due = vblankRequests.filter { $0.sequence <= sequence }
        vblankRequests.removeAll { $0.sequence <= sequence || $0.file.value == nil }
        for request in due {
            request.file.value?.queue(event(type: UInt32(DRM_EVENT_VBLANK), userData: request.userData))
        }
    }

    /// The screen becomes the committed state; the commit's capture and event complete.
    func finish(_ commit: PendingCommit, _ machine: Machine) {
        replace(&scanout, with: committed, machine)
        if let job = commit.writeback {
            let screen = compose()
            for (y, row) in screen.enumerated() where y < job.framebuffer.height {
                job.framebuffer.write(row: y, Array(row.prefix(job.framebuffer.width)))
            }
            job.fence?.signal()
            job.framebuffer.put(machine)
        }
        if let event = commit.event, let file = event.file.value {
            file.queue(self.event(type: UInt32(DRM_EVENT_FLIP_COMPLETE), userData: event.userData))
        }
        if pending != nil { pending = nil }
    }

    /// What the CRTC shows: its mode's rows, XRGB8888, from the primary plane (black where no
    /// plane is). The cursor plane is not composed.
    func compose() -> [[UInt32]] {
        guard let mode = scanout.mode, scanout.active else { return [] }
        let width = Int(mode.hdisplay)
        let height = Int(mode.vdisplay)
        let plane = scanout.primary
        guard let framebuffer = plane.framebuffer else {
            return Array(repeating: Array(repeating: 0, count: width), count: height)
        }
        let x = Int(plane.srcX >> 16)
        let y = Int(plane.srcY >> 16)
        return (0..<height).map { row in framebuffer.pixels(x: x, y: y + row, width: width) }
    }

    /// A `struct drm_event_vblank` (`DRM_EVENT_VBLANK` or `DRM_EVENT_FLIP_COMPLETE`).
    func event(type: UInt32, userData: UInt64) -> [UInt8] {
        var bytes: [UInt8] = []
        func append<T>(_ value: T) { withUnsafeBytes(of: value) { bytes += $0 } }
        let (seconds, attoseconds) = time.components
        append(type)
        append(UInt32(MemoryLayout<drm_event_vblank>.size))
        append(userData)
        append(UInt32(truncatingIfNeeded: seconds))
        append(UInt32(attoseconds / 1_000_000_000_000))
        append(UInt32(truncatingIfNeeded: sequence))
        append(ids.crtc)
        return bytes
    }

    /// The mode's frame time (60 Hz without a mode).
    var frameDuration: Duration {
        guard let mode = committed.mode, mode.clock > 0 else { return .microseconds(16_667) }
        return .nanoseconds(Int64(mode.htotal) * Int64(mode.vtotal) * 1_000_000 / Int64(mode.clock))
    }

    /// drm_wait_vblank_ioctl: the CRTC index (high bits) must be 0, the CRTC on (EINVAL); with
    /// `_DRM_VBLANK_EVENT` the event is queued for the target vblank, else the call waits for it.
    func waitVblank(_ argument: UnsafeMutableRawPointer?, _ file: DRMOpenFile, _ context: Context) throws(Errno) -> IoctlOutcome {
        let op = try UserMemory.load(drm_wait_vblank.self, from: argument)
        let type = op.request.type.rawValue
        let index = (type & UInt32(CDRM_VBLANK_HIGH_CRTC_MASK)) >> UInt32(CDRM_VBLANK_HIGH_CRTC_SHIFT)
        guard index == 0, type & 0x2000_0000 == 0 else { throw .invalidArgument }  // no secondary CRTC
        guard committed.active else { throw .invalidArgument }
        let relative = type & UInt32(CDRM_VBLANK_RELATIVE) != 0
        let target = relative ? sequence + UInt64(op.request.sequence) : UInt64(op.request.sequence)
        let reply = { [self] (target: UInt64) in
            var answer = drm_wait_vblank()
            answer.reply.type = op.request.type
            answer.reply.sequence = UInt32(truncatingIfNeeded: target)
            answer.reply.tval_sec = Int(time.components.seconds)
            answer.reply.tval_usec = Int(time.components.attoseconds / 1_000_000_000_000)
            argument!.storeBytes(of: answer, as: drm_wait_vblank.self)
        }
        if type & UInt32(CDRM_VBLANK_EVENT) != 0 {
            vblankRequests.append((Weak(file), UInt64(op.request.signal), target))
            reply(target)
            return .done(0)
        }
        if sequence >= target {
            reply(sequence)
            return .done(0)
        }
        let kernel = context.kernel
        return .block(
            BlockedCall(
                isReady: { [self] machine in
                    if sequence < target, clock(of: kernel) == .automatic { vblank(machine) }
                    return sequence >= target
                },
                finish: { [self] _ in
                    reply(sequence)
                    return 0
                }
            )
        )
    }
}

/// A writeback fence (`sync_file`): readable once the capture is done.
final class SyncFileSim: OpenFile {
    private unowned let kms: KMS
    private(set) var isSignaled = false

    init(kernel: DomainKernel, kms: KMS) {
        self.kms = kms
        super.init(kernel: kernel)
    }

    func signal() {
        isSignaled = true
        setReadable(true)
    }

    override var poll: PollAnswer { .host(events: Int16(POLLIN)) }

    /// With the automatic display clock, waiting for the fence lets its vblank happen.
    override func willPoll(_ machine: Machine) {
        if !isSignaled, kms.pending != nil, kms.clock(of: kernel) == .automatic { kms.vblank(machine) }
    }
}

/// An ioctl that waits, without the simulator's lock, until `isReady` holds, then finishes
/// with `finish`; both run under the lock. (A blocking atomic commit waits for the pending one,
/// `WAIT_VBLANK` for its vblank.)
final class BlockedCall {
    let isReady: (Machine) -> Bool
    let finish: (Machine) throws(Errno) -> Int32

    init(isReady: @escaping (Machine) -> Bool, finish: @escaping (Machine) throws(Errno) -> Int32) {
        self.isReady = isReady
        self.finish = finish
    }
}

/// How a domain's simulated displays reach their vblanks.
public enum SimulatedDisplayClock: Sendable, Hashable {
    /// A vblank happens whenever something waits for one: a blocking commit behind a pending
    /// flip, a wait for a flip's event or a writeback fence, `WAIT_VBLANK`. Tests that do not
    /// care about timing need nothing more.
    case automatic
    /// A vblank happens only when the test calls ``SimulatedDomain/vblank()``: flips stay
    /// pending, and their events unsent, until then.
    case manual
}
