internal import CXenGnt
import SystemPackage
import XenGnt

/// An unmap notification (`struct unmap_notify` of gntdev, `struct notify_info` of gntalloc):
/// clear a byte of the shared pages and/or send an event when the grant goes away. The two
/// drivers validate and fire it the same way.
struct UnmapNotify {
    static let clearByte = UInt32(UNMAP_NOTIFY_CLEAR_BYTE)
    static let sendEvent = UInt32(UNMAP_NOTIFY_SEND_EVENT)

    var flags: UInt32 = 0
    /// Byte offset from the start of the notification's pages.
    var offset = 0
    var port: UInt32 = 0

    /// The checks both drivers make: no undefined action bit, and a port this domain has bound
    /// (`evtchn_get` fails otherwise): `EINVAL` (lab `notify-send-event`).
    static func validate(action: UInt32, port: UInt32, in domain: XenDomain) throws(Errno) {
        if action & ~(clearByte | sendEvent) != 0 { throw .invalidArgument }
        if action & sendEvent != 0, domain.ports[port] == nil { throw .invalidArgument }
    }

    /// Clears the byte if it lies in `pages` (which start `firstPage` pages into the
    /// notification's range), once (`__unmap_grant_pages` clears the flag).
    mutating func clearByte(in pages: [Page], firstPage: Int = 0) {
        guard flags & Self.clearByte != 0 else { return }
        let page = offset / xenPageSize - firstPage
        guard page >= 0, page < pages.count else { return }
        pages[page].write([0], at: offset % xenPageSize)
        flags &= ~Self.clearByte
    }

    /// Sends the event, once.
    mutating func sendEvent(from domain: XenDomain, through hypervisor: Hypervisor) {
        guard flags & Self.sendEvent != 0 else { return }
        hypervisor.notify(port: port, of: domain)
        flags &= ~Self.sendEvent
    }

    /// Fires what is left of the notification: the grant is going away.
    mutating func fire(pages: [Page], from domain: XenDomain, through hypervisor: Hypervisor) {
        sendEvent(from: domain, through: hypervisor)
        clearByte(in: pages)
        flags = 0
    }
}
