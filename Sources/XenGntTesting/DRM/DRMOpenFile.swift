internal import CDRM
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// An open DRM node (`struct drm_file`): its client capabilities, GEM handles, PRIME cache,
/// framebuffers, blobs and event queue. Linux 6.1 `drivers/gpu/drm/drm_file.c`, `drm_ioctl.c`.
final class DRMOpenFile: DeviceFile {
    let device: SimDRMDevice
    /// A render node (`renderD128`): only `DRM_RENDER_ALLOW` ioctls.
    let isRender: Bool
    var atomic = false
    var universalPlanes = false
    var writebackConnectors = false
    var handles: [UInt32: GEMObject] = [:]
    private var lastHandle: UInt32 = 0
    /// `file_priv->prime`: the handle each imported or exported dma-buf has in this file; the
    /// cache holds the dma-buf until the handle is closed.
    var prime: [ObjectIdentifier: (handle: UInt32, buffer: DmaBufFile)] = [:]
    /// Framebuffers this file added (`file_priv->fbs`).
    var framebuffers: [UInt32] = []
    /// Blobs this file created.
    var blobs: Set<UInt32> = []
    /// Events waiting to be read, whole.
    private var events: [[UInt8]] = []

    init(kernel: DomainKernel, node: DeviceNode, device: SimDRMDevice, render: Bool) {
        self.device = device
        self.isRender = render
        super.init(kernel: kernel, node: node)
    }

    var isMaster: Bool { device.master === self }

    func newHandle(for object: GEMObject) -> UInt32 {
        lastHandle += 1
        handles[lastHandle] = object
        object.get()
        return lastHandle
    }

    // MARK: Ioctls

    /// The `drm_ioctls` flags of each request the simulation serves: `DRM_RENDER_ALLOW`
    /// (allowed on a render node) and `DRM_MASTER` (master only).
    private static let permissions: [UInt: (render: Bool, master: Bool)] = [
        DRMIoctl.version: (true, false), DRMIoctl.getCap: (true, false), DRMIoctl.setClientCap: (false, false),
        DRMIoctl.setMaster: (false, false), DRMIoctl.dropMaster: (false, false), DRMIoctl.gemClose: (true, false),
        DRMIoctl.primeHandleToFD: (true, false), DRMIoctl.primeFDToHandle: (true, false), DRMIoctl.waitVblank: (false, false),
        DRMIoctl.getResources: (false, false), DRMIoctl.getCRTC: (false, false), DRMIoctl.setCRTC: (false, true),
        DRMIoctl.getEncoder: (false, false), DRMIoctl.getConnector: (false, false), DRMIoctl.getProperty: (false, false),
        DRMIoctl.getPropertyBlob: (false, false), DRMIoctl.removeFramebuffer: (false, false), DRMIoctl.pageFlip: (false, true),
        DRMIoctl.createDumb: (false, false), DRMIoctl.mapDumb: (false, false), DRMIoctl.destroyDumb: (false, false),
        DRMIoctl.getPlaneResources: (false, false), DRMIoctl.getPlane: (false, false), DRMIoctl.addFramebuffer2: (false, false),
        DRMIoctl.objectGetProperties: (false, false), DRMIoctl.atomic: (false, true), DRMIoctl.createPropertyBlob: (false, false),
        DRMIoctl.destroyPropertyBlob: (false, false),
    ]

    override func decode(_ request: UInt) -> SimulatedIoctl? { SimulatedIoctl.drm(request) }

    /// drm_ioctl: an ioctl the table does not have is EINVAL; `drm_ioctl_permit` refuses a
    /// master-only ioctl to a descriptor that is not master, and any ioctl without
    /// `DRM_RENDER_ALLOW` on a render node, with EACCES (lab `drm-nodes`, `drm-vkms-scanout`).
    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        guard let permission = Self.permissions[request] else { throw .invalidArgument }
        if permission.master && !isMaster { throw .permissionDenied }
        if isRender && !permission.render { throw .permissionDenied }
        switch request {
        case DRMIoctl.version: return .done(try version(argument))
        case DRMIoctl.getCap: return .done(try getCap(argument))
        case DRMIoctl.setClientCap: return .done(try setClientCap(argument))
        case DRMIoctl.setMaster: return .done(try setMaster())
        case DRMIoctl.dropMaster: return .done(try dropMaster())
        case DRMIoctl.gemClose: return .done(try gemClose(argument, context))
        case DRMIoctl.primeHandleToFD: return .done(try primeHandleToFD(argument, context))
        case DRMIoctl.primeFDToHandle: return .done(try primeFDToHandle(argument, context))
        case DRMIoctl.createDumb: return .done(try createDumb(argument))
        case DRMIoctl.mapDumb: return .done(try mapDumb(argument))
        case DRMIoctl.destroyDumb: return .done(try destroyDumb(argument, context))
        default: break
        }
        // Everything else is KMS: EOPNOTSUPP on a driver without modesetting (vgem, lab `drm-nodes`).
        guard let kms = device.kms else { throw .notSupported }
        return try kms.ioctl(request, argument, self, context)
    }

    // MARK: Events

    /// Queues an event for `read` and makes the descriptor readable.
    func queue(_ event: [UInt8]) {
        events.append(event)
        setReadable(true)
    }

    /// drm_read: whole events only, as many as fit; none queued: wait (or `EAGAIN`).
    override func read(into buffer: UnsafeMutableRawBufferPointer, _ context: Context) throws(Errno) -> ReadOutcome {
        if events.isEmpty {
            // A blocking read waits for the vblank (the automatic clock lets it happen); a
            // non-blocking one is EAGAIN, and its poll lets it happen (`willPoll`).
            if let kms = device.kms, kms.clock(of: context.kernel) == .automatic, kms.hasPendingWork, let fd = numbers.first,
                let flags = try? HostCalls.fcntl(fd, command: F_GETFL, argument: 0), flags & O_NONBLOCK == 0
            {
                kms.vblank(context.machine)
            }
            if events.isEmpty { return .wouldBlock }
        }
        var count = 0
        while let event = events.first, count + event.count <= buffer.count {
            _ = try UserMemory.check(buffer.baseAddress.map { $0 + count }, bytes: event.count)
            event.withUnsafeBytes { (buffer.baseAddress! + count).copyMemory(from: $0.baseAddress!, byteCount: event.count) }
            count += event.count
            events.removeFirst()
        }
        setReadable(!events.isEmpty)
        return .bytes(count)
    }

    override var poll: PollAnswer { .host(events: Int16(POLLIN | POLLRDNORM)) }

    /// With the automatic display clock, a wait for this descriptor's events lets the next
    /// vblank happen.
    override func willPoll(_ machine: Machine) {
        guard events.isEmpty, let kms = device.kms, kms.clock(of: kernel) == .automatic, kms.hasPendingWork else { return }
        kms.vblank(machine)
    }

    // MARK: Mappings

    /// drm_gem_mmap: the offset names a GEM object by its fake offset; this file must have a
    /// handle to it (EACCES otherwise); the mapping must be shared to be useful, and lie inside
    /// the object (EINVAL).
    override func mmap(_ request: MmapRequest, _ context: Context) throws(Errno) -> MappedArea {
        let offset = request.pageOffset << 12
        guard let object = device.mapped(at: offset) else { throw .invalidArgument }
        guard handles.values.contains(where: { $0 === object }) else { throw .permissionDenied }
        guard request.pages <= object.pages.count else { throw .invalidArgument }
        let address = try mapPages(Array(object.pages.prefix(request.pages)), protection: request.protection)
        return MappedArea(address: address, length: request.length)
    }

    // MARK: Release

    /// drm_file_free: the master lets go; the file's framebuffers are removed (taking what
    /// shows them off screen), its blobs destroyed, its handles closed.
    override func release(_ machine: Machine) {
        if isMaster { device.master = nil }
        if let kms = device.kms {
            for id in framebuffers { kms.removeFramebuffer(id, machine) }
            kms.forget(self)
        }
        framebuffers.removeAll()
        for id in blobs { device.blobs[id] = nil }
        blobs.removeAll()
        for object in handles.values { object.put(machine) }
        handles.removeAll()
        for entry in prime.values { entry.buffer.drop(machine) }
        prime.removeAll()
        events.removeAll()
    }
}

extension SimDRMDevice {
    /// The object `MODE_MAP_DUMB` gave `offset` to.
    func mapped(at offset: UInt64) -> GEMObject? {
        for file in kernel.liveFiles.values {
            guard let file = file as? DRMOpenFile, file.device === self else { continue }
            if let object = file.handles.values.first(where: { $0.mapOffset == offset }) { return object }
        }
        return nil
    }
}
