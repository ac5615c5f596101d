/// How the domain this code runs in is virtualised. It decides what the grant devices can do:
/// an x86 PV domain cannot export dma-bufs, for instance.
public enum GuestType: String, Sendable, Hashable, CaseIterable {
    /// x86 paravirtualised (Dom0 is usually PV). Not auto-translated: dma-buf export is refused.
    case pv = "PV"
    /// x86 PVH: auto-translated, no emulated devices.
    case pvh = "PVH"
    /// x86 HVM: auto-translated, fully virtualised.
    case hvm = "HVM"
    /// Arm (every Arm guest is auto-translated).
    case arm = "ARM"

    /// Whether the guest's physical memory is translated by Xen (every type but x86 PV).
    public var isAutoTranslated: Bool { self != .pv }
}
