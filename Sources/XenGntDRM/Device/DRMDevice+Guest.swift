import SystemPackage
import XenGnt

extension DRMDevice {
    /// Whether this runs in an x86 PV domain other than Dom0: `/sys/hypervisor` says a Xen PV
    /// guest and xenfs's `/proc/xen/capabilities` lacks `control_d`. `false` when either cannot
    /// be read (so a Dom0 without xenfs mounted is never mistaken for a DomU).
    var isPVDomU: Bool {
        let calls = system.calls
        guard let type = try? calls.readSmallFile("/sys/hypervisor/type"), type.trimmed == "xen",
            let guest = try? calls.readSmallFile("/sys/hypervisor/guest_type"), guest.trimmed == "PV",
            let capabilities = try? calls.readSmallFile("/proc/xen/capabilities")
        else { return false }
        return !capabilities.contains("control_d")
    }
}

extension String {
    var trimmed: String {
        var view = Substring(self)
        while let first = view.first, first.isWhitespace { view.removeFirst() }
        while let last = view.last, last.isWhitespace { view.removeLast() }
        return String(view)
    }
}
