internal import XenGnt

/// A call of the seam, for fault injection (`XenSimulation.injectFault(_:on:times:domain:)`).
public enum SimulatedCall: Sendable, Hashable {
    /// Opening a device node or file.
    case open
    /// Closing a descriptor.
    case close
    /// Mapping memory.
    case mmap
    /// Unmapping memory.
    case munmap
    /// `lseek`.
    case lseek
    /// `dup` and `dup3`.
    case dup
    /// An ioctl, decoded by the driver of the file it is sent to; `nil` matches every request.
    case ioctl(SimulatedIoctl?)
    /// `read`.
    case read
    /// `write`.
    case write
    /// `poll`.
    case poll
    /// Connecting to a Unix socket.
    case connect
    /// Listing a directory.
    case listDirectory
    /// Creating an eventfd.
    case eventfd
    /// `memfd_create`.
    case memfd
    /// `ftruncate`.
    case ftruncate
    /// `fcntl` (sealing, flags; `F_DUPFD` too).
    case fcntl
    /// `fstat`.
    case fstat
    /// Reading a small sysfs or procfs file.
    case readFile

    func matches(_ actual: SimulatedCall) -> Bool {
        if case .ioctl(nil) = self, case .ioctl = actual { return true }
        return self == actual
    }
}

/// The ioctls the simulated drivers serve.
public enum SimulatedIoctl: Sendable, Hashable, CaseIterable {
    /// gntdev's grant-map ioctls (`IOCTL_GNTDEV_MAP_GRANT_REF` ... `IOCTL_GNTDEV_GRANT_COPY`).
    case mapGrantRef, unmapGrantRef, getOffsetForVaddr, setMaxGrants, gntdevSetUnmapNotify, grantCopy
    /// gntdev's dma-buf ioctls (`IOCTL_GNTDEV_DMABUF_*`).
    case exportFromRefs, waitReleased, importToRefs, importRelease
    /// gntalloc's; `gntallocSetUnmapNotify` has the request number of gntdev's
    /// `gntdevSetUnmapNotify`: which one a request is depends on the file it is sent to.
    case allocGref, deallocGref, gntallocSetUnmapNotify
    /// A dma-buf's `DMA_BUF_IOCTL_SYNC` and `DMA_BUF_SET_NAME`, udmabuf's `UDMABUF_CREATE` and
    /// `UDMABUF_CREATE_LIST`, a DMA heap's `DMA_HEAP_IOCTL_ALLOC`.
    case dmaBufSync, dmaBufSetName, udmabufCreate, udmabufCreateList, dmaHeapAlloc
    /// `/dev/xen/evtchn`'s (`IOCTL_EVTCHN_*`).
    case evtchnBindInterdomain, evtchnBindUnboundPort, evtchnUnbind, evtchnNotify, evtchnReset

    /// The request number.
    public var request: UInt {
        switch self {
        case .mapGrantRef: Request.mapGrantRef
        case .unmapGrantRef: Request.unmapGrantRef
        case .getOffsetForVaddr: Request.getOffsetForVaddr
        case .setMaxGrants: Request.setMaxGrants
        case .gntdevSetUnmapNotify: Request.gntdevSetUnmapNotify
        case .grantCopy: Request.grantCopy
        case .exportFromRefs: Request.expFromRefs
        case .waitReleased: Request.expWaitReleased
        case .importToRefs: Request.impToRefs
        case .importRelease: Request.impRelease
        case .allocGref: Request.allocGref
        case .deallocGref: Request.deallocGref
        case .gntallocSetUnmapNotify: Request.gntallocSetUnmapNotify
        case .dmaBufSync: Request.dmaBufSync
        case .dmaBufSetName: Request.dmaBufSetName
        case .udmabufCreate: Request.udmabufCreate
        case .udmabufCreateList: UdmabufFile.createList
        case .dmaHeapAlloc: Request.dmaHeapAlloc
        case .evtchnBindInterdomain: EvtchnRequest.bindInterdomain
        case .evtchnBindUnboundPort: EvtchnRequest.bindUnboundPort
        case .evtchnUnbind: EvtchnRequest.unbind
        case .evtchnNotify: EvtchnRequest.notify
        case .evtchnReset: EvtchnRequest.reset
        }
    }
}
