internal import CXenGnt
import SystemPackage

/// What the kernel does when a mapping or a shared page goes away, so the peer learns of it even
/// if this process dies: clear a byte in the shared page, signal an event channel, or both.
///
/// For a ``GrantMapping`` the byte is cleared in the granting domain's page when this domain
/// unmaps it; for ``SharedPages`` it is cleared in the local page when the share is released
/// (the peer sees it if it still maps the page).
public struct UnmapNotification: Sendable, Hashable {
    /// Byte offset, from the start of the mapping or share, of the byte to set to zero.
    public var clearByteAt: Int?
    /// Event channel port to notify. It must be bound in this process (through
    /// `/dev/xen/evtchn`); the kernel takes a reference on it until the notification fires.
    public var eventChannelPort: UInt32?

    /// Clear the byte at `clearByteAt` and/or notify `eventChannelPort`.
    public init(clearByteAt: Int? = nil, eventChannelPort: UInt32? = nil) {
        self.clearByteAt = clearByteAt
        self.eventChannelPort = eventChannelPort
    }

    /// Clear the byte at `offset`.
    public static func clearByte(at offset: Int) -> UnmapNotification {
        UnmapNotification(clearByteAt: offset)
    }

    /// Notify the event channel `port`.
    public static func sendEvent(port: UInt32) -> UnmapNotification {
        UnmapNotification(eventChannelPort: port)
    }

    /// No notification (removes one set before).
    public static let none = UnmapNotification()

    /// The `action` bits of the ioctl.
    var action: UInt32 {
        (clearByteAt != nil ? UInt32(UNMAP_NOTIFY_CLEAR_BYTE) : 0)
            | (eventChannelPort != nil ? UInt32(UNMAP_NOTIFY_SEND_EVENT) : 0)
    }

    /// Validates the notification for an object of `length` bytes, then issues `request` on
    /// `handle` with the object's `index` (gntdev and gntalloc share the struct layout).
    func apply(
        request: UInt,
        call: String,
        handle: DeviceHandle,
        index: UInt64,
        length: Int,
        writable: Bool
    ) throws(XenGntError) {
        if let offset = clearByteAt {
            guard offset >= 0, offset < length else {
                throw XenGntError(.outOfRange, .setUnmapNotification, offset: offset, length: length)
            }
            guard writable else { throw XenGntError(.notifyNeedsWritableMapping, .setUnmapNotification) }
        }
        handle.retryParked()
        var argument = ioctl_gntdev_unmap_notify(
            index: index + UInt64(clearByteAt ?? 0),
            action: action,
            event_channel_port: eventChannelPort ?? 0
        )
        do throws(Errno) {
            _ = try handle.ioctl(request, &argument)
        } catch {
            let code: XenGntError.Code =
                switch error {
                case .invalidArgument where eventChannelPort != nil: .eventChannelNotBound
                case .noSuchFileOrDirectory: .notFound
                default: .kernel
                }
            throw XenGntError(code, .setUnmapNotification, call: call, errno: error, port: eventChannelPort)
        }
    }
}
