internal import CDRM
import SystemPackage
public import XenGnt

/// An event a DRM device reports on its descriptor: a page flip completed, or a vblank that was
/// asked for happened.
public struct DRMEvent: Sendable, Hashable {
    /// What happened.
    public enum Kind: Sendable, Hashable {
        /// A vblank asked for with ``DRMDevice/requestVblankEvent(crtcIndex:userData:)``
        /// (`DRM_EVENT_VBLANK`).
        case vblank
        /// A page flip or atomic commit asked for with an event has reached the screen
        /// (`DRM_EVENT_FLIP_COMPLETE`).
        case flipComplete
        /// `DRM_EVENT_CRTC_SEQUENCE`.
        case crtcSequence
        /// A type XenGntDRM does not decode.
        case other(UInt32)
    }

    public let kind: Kind
    /// The value given when the event was asked for.
    public let userData: UInt64
    /// The CRTC it concerns (0 when the kernel does not say).
    public let crtcID: UInt32
    /// The vblank counter when it happened.
    public let sequence: UInt64
    /// When it happened, on the monotonic clock.
    public let timestamp: Duration

    public init(kind: Kind, userData: UInt64, crtcID: UInt32, sequence: UInt64, timestamp: Duration) {
        self.kind = kind
        self.userData = userData
        self.crtcID = crtcID
        self.sequence = sequence
        self.timestamp = timestamp
    }

    /// Decodes the events in `bytes` (what one `read` of a DRM descriptor returned: whole
    /// events, each a `struct drm_event` header and its body).
    static func decode(_ bytes: UnsafeRawBufferPointer) -> [DRMEvent] {
        var events: [DRMEvent] = []
        var offset = 0
        while offset + 8 <= bytes.count {
            let type = bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self))
            guard length >= 8, offset + length <= bytes.count else { break }
            let body = UnsafeRawBufferPointer(rebasing: bytes[(offset + 8)..<(offset + length)])
            events.append(decode(type: type, body: body))
            offset += length
        }
        return events
    }

    private static func decode(type: UInt32, body: UnsafeRawBufferPointer) -> DRMEvent {
        func u32(_ at: Int) -> UInt32 { at + 4 <= body.count ? body.loadUnaligned(fromByteOffset: at, as: UInt32.self) : 0 }
        func u64(_ at: Int) -> UInt64 { at + 8 <= body.count ? body.loadUnaligned(fromByteOffset: at, as: UInt64.self) : 0 }
        switch type {
        case UInt32(DRM_EVENT_VBLANK), UInt32(DRM_EVENT_FLIP_COMPLETE):
            // struct drm_event_vblank: user_data u64, tv_sec u32, tv_usec u32, sequence u32, crtc_id u32.
            return DRMEvent(
                kind: type == UInt32(DRM_EVENT_VBLANK) ? .vblank : .flipComplete,
                userData: u64(0),
                crtcID: u32(20),
                sequence: UInt64(u32(16)),
                timestamp: .seconds(Int64(u32(8))) + .microseconds(Int64(u32(12)))
            )
        case UInt32(DRM_EVENT_CRTC_SEQUENCE):
            // struct drm_event_crtc_sequence: user_data u64, time_ns s64, sequence u64.
            return DRMEvent(
                kind: .crtcSequence,
                userData: u64(0),
                crtcID: 0,
                sequence: u64(16),
                timestamp: .nanoseconds(Int64(bitPattern: u64(8)))
            )
        default:
            return DRMEvent(kind: .other(type), userData: body.count >= 8 ? u64(0) : 0, crtcID: 0, sequence: 0, timestamp: .zero)
        }
    }
}

/// The events of a DRM device, as they arrive: read after a wait in `poll` through XenGnt's
/// seam (its one poll reader), never by sleeping. Cancelling the consuming task ends the wait
/// with `XenGntError.Code.cancelled`.
///
/// The kernel gives each event to whoever reads the descriptor first: read a device's events
/// from one place at a time. Events a ``Scanout`` read past while waiting for its flip are
/// delivered here first.
public struct DRMEvents: AsyncSequence, Sendable {
    public typealias Element = DRMEvent
    public typealias Failure = XenGntError

    let stream: EventStream<DRMEvent>

    public func makeAsyncIterator() -> Iterator { Iterator(inner: stream.makeAsyncIterator()) }

    public struct Iterator: AsyncIteratorProtocol {
        var inner: EventStream<DRMEvent>.Iterator

        public mutating func next() async throws(XenGntError) -> DRMEvent? {
            try await inner.next(isolation: nil)
        }

        public mutating func next(isolation actor: isolated (any Actor)?) async throws(XenGntError) -> DRMEvent? {
            try await inner.next(isolation: actor)
        }
    }
}

extension DRMDevice {
    /// The device's events (page flips completed, vblanks asked for).
    public func events() -> DRMEvents {
        let file = self.file
        return DRMEvents(
            stream: EventStream(fd: file.fd, calls: file.calls) { _, into throws(XenGntError) in
                let waiting = file.mailbox.withLock { mail in
                    defer { mail.removeAll() }
                    return mail
                }
                if !waiting.isEmpty {
                    into.append(contentsOf: waiting)
                    return .more
                }
                into.append(contentsOf: try file.readEvents())
                return .more
            }
        )
    }

    /// Asks for a ``DRMEvent/Kind/vblank`` event at the next vblank of the CRTC at
    /// `crtcIndex` (its position in ``DisplayResources/crtcs``).
    ///
    /// The corresponding ioctl is `DRM_IOCTL_WAIT_VBLANK` (relative, with an event).
    public func requestVblankEvent(crtcIndex: Int, userData: UInt64 = 0) throws(XenGntError) {
        var argument = drm_wait_vblank()
        let high = (UInt32(crtcIndex) << UInt32(CDRM_VBLANK_HIGH_CRTC_SHIFT)) & UInt32(CDRM_VBLANK_HIGH_CRTC_MASK)
        argument.request.type = drm_vblank_seq_type(rawValue: UInt32(CDRM_VBLANK_RELATIVE) | UInt32(CDRM_VBLANK_EVENT) | high)
        argument.request.sequence = 1
        argument.request.signal = UInt(truncatingIfNeeded: userData)
        try file.ioctl(DRMRequest.waitVblank, &argument, .requestVblank)
    }
}

extension DRMFile {
    /// Reads what events are ready, without blocking (the descriptor is non-blocking).
    func readEvents() throws(XenGntError) -> [DRMEvent] {
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { storage.deallocate() }
        let count: Int
        do throws(Errno) {
            count = try retryingOnInterrupt { () throws(Errno) -> Int in try calls.read(fd, into: storage) }
        } catch  where error == .resourceTemporarilyUnavailable {
            return []
        } catch {
            throw XenGntError(.kernel, .readEvents, call: "read", errno: error, path: path)
        }
        return DRMEvent.decode(UnsafeRawBufferPointer(rebasing: storage[..<count]))
    }
}
