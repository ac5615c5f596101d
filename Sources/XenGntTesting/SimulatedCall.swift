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
    /// The DRM ioctls of the simulated vgem, vkms and DMA-scanout devices (`DRM_IOCTL_*`).
    case drmVersion, drmGetCap, drmSetClientCap, drmSetMaster, drmDropMaster, drmGemClose, drmPrimeHandleToFD, drmPrimeFDToHandle
    case drmWaitVblank, drmModeGetResources, drmModeGetCRTC, drmModeSetCRTC, drmModeGetEncoder, drmModeGetConnector
    case drmModeGetProperty, drmModeGetPropertyBlob, drmModeRemoveFramebuffer, drmModePageFlip, drmModeCreateDumb
    case drmModeMapDumb, drmModeDestroyDumb, drmModeGetPlaneResources, drmModeGetPlane, drmModeAddFramebuffer2
    case drmModeObjectGetProperties, drmModeAtomic, drmModeCreatePropertyBlob, drmModeDestroyPropertyBlob

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
        case .drmVersion: DRMIoctl.version
        case .drmGetCap: DRMIoctl.getCap
        case .drmSetClientCap: DRMIoctl.setClientCap
        case .drmSetMaster: DRMIoctl.setMaster
        case .drmDropMaster: DRMIoctl.dropMaster
        case .drmGemClose: DRMIoctl.gemClose
        case .drmPrimeHandleToFD: DRMIoctl.primeHandleToFD
        case .drmPrimeFDToHandle: DRMIoctl.primeFDToHandle
        case .drmWaitVblank: DRMIoctl.waitVblank
        case .drmModeGetResources: DRMIoctl.getResources
        case .drmModeGetCRTC: DRMIoctl.getCRTC
        case .drmModeSetCRTC: DRMIoctl.setCRTC
        case .drmModeGetEncoder: DRMIoctl.getEncoder
        case .drmModeGetConnector: DRMIoctl.getConnector
        case .drmModeGetProperty: DRMIoctl.getProperty
        case .drmModeGetPropertyBlob: DRMIoctl.getPropertyBlob
        case .drmModeRemoveFramebuffer: DRMIoctl.removeFramebuffer
        case .drmModePageFlip: DRMIoctl.pageFlip
        case .drmModeCreateDumb: DRMIoctl.createDumb
        case .drmModeMapDumb: DRMIoctl.mapDumb
        case .drmModeDestroyDumb: DRMIoctl.destroyDumb
        case .drmModeGetPlaneResources: DRMIoctl.getPlaneResources
        case .drmModeGetPlane: DRMIoctl.getPlane
        case .drmModeAddFramebuffer2: DRMIoctl.addFramebuffer2
        case .drmModeObjectGetProperties: DRMIoctl.objectGetProperties
        case .drmModeAtomic: DRMIoctl.atomic
        case .drmModeCreatePropertyBlob: DRMIoctl.createPropertyBlob
        case .drmModeDestroyPropertyBlob: DRMIoctl.destroyPropertyBlob
        }
    }

    /// Whether this is a DRM ioctl.
    var isDRM: Bool { "\(self)".hasPrefix("drm") }
}
