internal import XenGnt

/// A call of the seam, for fault injection (`XenSimulation.injectFault(_:on:times:domain:)`).
public enum SimulatedCall: Sendable, Hashable {
    case open, close, mmap, munmap, lseek
    /// `dup` and `dup3`.
    case dup
    /// An ioctl, decoded by the driver of the file it is sent to; `nil` matches every request.
    case ioctl(SimulatedIoctl?)
    case read, write, poll
    /// Connecting to a Unix socket.
    case connect
    case listDirectory
    case eventfd
    /// `memfd_create`.
    case memfd
    case ftruncate, fcntl, fstat
    /// Reading a small sysfs or procfs file.
    case readFile

    func matches(_ actual: SimulatedCall) -> Bool {
        if case .ioctl(nil) = self, case .ioctl = actual { return true }
        return self == actual
    }
}

/// The ioctls the simulated drivers serve.
public enum SimulatedIoctl: Sendable, Hashable, CaseIterable {
    case mapGrantRef, unmapGrantRef, getOffsetForVaddr, setMaxGrants, gntdevSetUnmapNotify, grantCopy
    case exportFromRefs, waitReleased, importToRefs, importRelease
    /// gntalloc's; `gntallocSetUnmapNotify` has the request number of gntdev's
    /// `gntdevSetUnmapNotify`: which one a request is depends on the file it is sent to.
    case allocGref, deallocGref, gntallocSetUnmapNotify
    case dmaBufSync, dmaBufSetName, udmabufCreate, udmabufCreateList, dmaHeapAlloc

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
        }
    }
}
