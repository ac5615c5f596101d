internal import CXenGnt

/// Where the kernel takes the pages that back an exported dma-buf
/// (`IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS`'s `flags`).
public enum DmaBufAllocation: Sendable, Hashable, CaseIterable {
    /// Pages from the balloon driver (flags 0): the usual choice; not physically contiguous.
    case balloon
    /// Contiguous DMA memory, write-combined (`GNTDEV_DMA_FLAG_WC`), for devices that need
    /// contiguous buffers (display controllers without an IOMMU).
    case contiguousWriteCombined
    /// Contiguous DMA memory, cache-coherent (`GNTDEV_DMA_FLAG_COHERENT`).
    case contiguousCoherent

    /// The `flags` value the ioctl takes.
    public var flags: UInt32 {
        switch self {
        case .balloon: 0
        case .contiguousWriteCombined: UInt32(GNTDEV_DMA_FLAG_WC)
        case .contiguousCoherent: UInt32(GNTDEV_DMA_FLAG_COHERENT)
        }
    }

    /// Interprets raw `flags`, rejecting what the kernel would reject (`WC | COHERENT`) and what
    /// it would silently ignore on PVH (undefined bits), so neither reaches the kernel.
    public init(flags: UInt32) throws(XenGntError) {
        let known = UInt32(GNTDEV_DMA_FLAG_WC | GNTDEV_DMA_FLAG_COHERENT)
        if flags & ~known != 0 {
            throw XenGntError(.unknownAllocationFlags, .exportDmaBuf, flags: flags)
        }
        switch flags {
        case 0: self = .balloon
        case UInt32(GNTDEV_DMA_FLAG_WC): self = .contiguousWriteCombined
        case UInt32(GNTDEV_DMA_FLAG_COHERENT): self = .contiguousCoherent
        default: throw XenGntError(.conflictingAllocationFlags, .exportDmaBuf, flags: flags)
        }
    }
}
