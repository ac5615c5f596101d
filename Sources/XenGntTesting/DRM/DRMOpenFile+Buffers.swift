internal import CDRM
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// The core, GEM, PRIME and dumb-buffer ioctls (Linux 6.1 `drm_ioctl.c`, `drm_gem.c`,
/// `drm_prime.c`, `drm_dumb_buffers.c`, `drm_gem_shmem_helper.c`).
extension DRMOpenFile {
    /// DRM_IOCTL_VERSION: the driver's numbers, and as much of each string as the caller made
    /// room for (the lengths are set to the full lengths).
    func version(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_version.self, from: argument)
        let v = device.kind.version
        op.version_major = v.major
        op.version_minor = v.minor
        op.version_patchlevel = v.patch
        func copy(_ text: String, _ pointer: UnsafeMutablePointer<CChar>?, _ room: UInt) throws(Errno) -> UInt {
            let bytes = Array(text.utf8)
            let n = min(Int(room), bytes.count)
            if n > 0 {
                let target = try UserMemory.check(UnsafeMutableRawPointer(pointer), bytes: n)
                bytes.withUnsafeBytes { target.copyMemory(from: $0.baseAddress!, byteCount: n) }
            }
            return UInt(bytes.count)
        }
        op.name_len = try copy(v.name, op.name, op.name_len)
        op.date_len = try copy(v.date, op.date, op.date_len)
        op.desc_len = try copy(v.description, op.desc, op.desc_len)
        argument!.storeBytes(of: op, as: drm_version.self)
        return 0
    }

    /// drm_getcap: PRIME, timestamps and syncobj for any driver; every other capability is
    /// EOPNOTSUPP without modesetting (vgem's `DRM_CAP_DUMB_BUFFER` too: lab `drm-nodes`).
    func getCap(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_get_cap.self, from: argument)
        switch op.capability {
        case UInt64(DRM_CAP_TIMESTAMP_MONOTONIC): op.value = 1
        case UInt64(DRM_CAP_PRIME): op.value = UInt64(CDRM_PRIME_CAP_IMPORT | CDRM_PRIME_CAP_EXPORT)
        case UInt64(DRM_CAP_SYNCOBJ), UInt64(DRM_CAP_SYNCOBJ_TIMELINE): op.value = 0
        default:
            guard device.kind.hasModesetting else { throw .notSupported }
            switch op.capability {
            case UInt64(DRM_CAP_DUMB_BUFFER), UInt64(DRM_CAP_VBLANK_HIGH_CRTC), UInt64(DRM_CAP_CRTC_IN_VBLANK_EVENT),
                UInt64(DRM_CAP_ADDFB2_MODIFIERS):
                op.value = 1
            case UInt64(DRM_CAP_DUMB_PREFERRED_DEPTH): op.value = 24
            case UInt64(DRM_CAP_DUMB_PREFER_SHADOW), UInt64(DRM_CAP_ASYNC_PAGE_FLIP), UInt64(DRM_CAP_PAGE_FLIP_TARGET):
                op.value = 0
            case UInt64(DRM_CAP_CURSOR_WIDTH), UInt64(DRM_CAP_CURSOR_HEIGHT): op.value = 64
            default: throw .invalidArgument
            }
        }
        argument!.storeBytes(of: op, as: drm_get_cap.self)
        return 0
    }

    /// drm_setclientcap: EOPNOTSUPP without modesetting; writeback connectors need atomic
    /// first (EINVAL, lab `drm-nodes`); values above the cap's range are EINVAL.
    func setClientCap(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let op = try UserMemory.load(drm_set_client_cap.self, from: argument)
        guard device.kind.hasModesetting else { throw .notSupported }
        switch op.capability {
        case UInt64(DRM_CLIENT_CAP_STEREO_3D), UInt64(DRM_CLIENT_CAP_ASPECT_RATIO):
            if op.value > 1 { throw .invalidArgument }
        case UInt64(DRM_CLIENT_CAP_UNIVERSAL_PLANES):
            if op.value > 1 { throw .invalidArgument }
            universalPlanes = op.value == 1
        case UInt64(DRM_CLIENT_CAP_ATOMIC):
            if op.value > 2 { throw .invalidArgument }
            atomic = op.value != 0
            universalPlanes = op.value != 0
        case UInt64(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS):
            if !atomic || op.value > 1 { throw .invalidArgument }
            writebackConnectors = op.value == 1
        default:
            throw .invalidArgument
        }
        return 0
    }

    /// drm_setmaster_ioctl: already master is success; another master is EBUSY (lab
    /// `drm-nodes`). The simulated processes run as root, so any descriptor may take a free
    /// master.
    func setMaster() throws(Errno) -> Int32 {
        if isMaster { return 0 }
        if device.master != nil { throw .resourceBusy }
        device.master = self
        return 0
    }

    /// drm_dropmaster_ioctl: EINVAL when this descriptor is not the master (lab `drm-nodes`).
    func dropMaster() throws(Errno) -> Int32 {
        guard isMaster else { throw .invalidArgument }
        device.master = nil
        return 0
    }

    /// drm_gem_close_ioctl: EINVAL for a handle this file does not have.
    func gemClose(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(drm_gem_close.self, from: argument)
        try deleteHandle(op.handle, context.machine)
        return 0
    }

    func deleteHandle(_ handle: UInt32, _ machine: Machine) throws(Errno) {
        guard let object = handles.removeValue(forKey: handle) else { throw .invalidArgument }
        for (key, entry) in prime where entry.handle == handle {
            prime[key] = nil
            entry.buffer.drop(machine)
        }
        object.put(machine)
    }

    /// drm_gem_prime_handle_to_fd: flags other than `DRM_CLOEXEC | DRM_RDWR` are EINVAL, an
    /// unknown handle ENOENT. The object keeps one dma-buf while it exists; each export is a
    /// new descriptor of it.
    func primeHandleToFD(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_prime_handle.self, from: argument)
        if op.flags & ~UInt32(CDRM_CLOEXEC | CDRM_RDWR) != 0 { throw .invalidArgument }
        guard let object = handles[op.handle] else { throw .noSuchFileOrDirectory }
        let buffer: DmaBufFile
        if case .imported(let imported) = object.source {
            buffer = imported  // an import exports the dma-buf it came from
        } else if let existing = object.exported {
            buffer = existing
        } else {
            buffer = DmaBufFile(kernel: kernel, pages: object.pages, exporter: .gem(object))
            object.exported = buffer
            object.get()  // the dma-buf holds the object until it is released
        }
        let fd = try context.machine.newDescriptor(size: buffer.size)
        context.install(fd, buffer)
        remember(buffer, as: op.handle)
        op.fd = fd
        argument!.storeBytes(of: op, as: drm_prime_handle.self)
        return 0
    }

    /// drm_gem_prime_fd_to_handle: EBADF for a closed descriptor, EINVAL for one that is not a
    /// dma-buf; a dma-buf this file already has a handle for gives that handle again; one this
    /// device exported gives its object back (lab `drm-nodes`). An import holds the dma-buf, so
    /// gntdev's wait-released stays pending until the object is freed (lab
    /// `drm-export-to-display`).
    func primeFDToHandle(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_prime_handle.self, from: argument)
        let buffer: DmaBufFile
        switch context.lookup(op.fd) {
        case .file(let file as DmaBufFile): buffer = file
        case .file: throw .invalidArgument
        case .foreign: throw .badFileDescriptor
        case .host: throw HostCalls.isOpen(op.fd) ? .invalidArgument : .badFileDescriptor
        }
        if let entry = prime[ObjectIdentifier(buffer)], handles[entry.handle] != nil {
            op.handle = entry.handle
        } else {
            let object: GEMObject
            if case .gem(let own) = buffer.exporter, own.device === device {
                object = own
            } else {
                buffer.hold()
                object = GEMObject(device: device, pages: buffer.pages, source: .imported(buffer))
            }
            op.handle = handles.first { $0.value === object }?.key ?? newHandle(for: object)
            remember(buffer, as: op.handle)
        }
        argument!.storeBytes(of: op, as: drm_prime_handle.self)
        return 0
    }

    /// Records `buffer` in the PRIME cache (which holds it) under `handle`.
    private func remember(_ buffer: DmaBufFile, as handle: UInt32) {
        guard prime[ObjectIdentifier(buffer)] == nil else { return }
        buffer.hold()
        prime[ObjectIdentifier(buffer)] = (handle, buffer)
    }

    /// drm_mode_create_dumb, then drm_gem_shmem_dumb_create: a zero or overflowing size is
    /// EINVAL; the pitch is `width × ceil(bpp / 8)`, the size that times the height, page
    /// aligned. vgem makes dumb buffers too (lab `drm-nodes`).
    func createDumb(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_create_dumb.self, from: argument)
        guard op.width > 0, op.height > 0, op.bpp > 0, op.bpp <= UInt32.max - 8 else { throw .invalidArgument }
        let cpp = UInt64((op.bpp + 7) / 8)
        let pitch = cpp * UInt64(op.width)
        let bytes = pitch * UInt64(op.height)
        guard pitch <= UInt64(UInt32.max), bytes <= UInt64(UInt32.max) - UInt64(xenPageSize) else { throw .invalidArgument }
        let size = (Int(bytes) + xenPageSize - 1) & ~(xenPageSize - 1)
        guard size <= XenDomain.ramBytes else { throw .noMemory }
        let memory = try MemoryObject.create(name: "xengnt-sim-gem", bytes: size)
        let object = GEMObject(
            device: device,
            pages: (0..<(size / xenPageSize)).map { Page(memory: memory, index: $0) },
            source: .shmem(memory)
        )
        op.handle = newHandle(for: object)
        op.pitch = UInt32(pitch)
        op.size = UInt64(size)
        argument!.storeBytes(of: op, as: drm_mode_create_dumb.self)
        return 0
    }

    /// drm_mode_mmap_dumb_ioctl: the fake offset to mmap the object at; ENOENT for an unknown
    /// handle.
    func mapDumb(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        var op = try UserMemory.load(drm_mode_map_dumb.self, from: argument)
        guard let object = handles[op.handle] else { throw .noSuchFileOrDirectory }
        if object.mapOffset == nil {
            object.mapOffset = device.lastMapPage << 12
            device.lastMapPage += UInt64(object.pages.count)
        }
        op.offset = object.mapOffset!
        argument!.storeBytes(of: op, as: drm_mode_map_dumb.self)
        return 0
    }

    /// drm_mode_destroy_dumb_ioctl: deletes the handle (EINVAL when unknown).
    func destroyDumb(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(drm_mode_destroy_dumb.self, from: argument)
        try deleteHandle(op.handle, context.machine)
        return 0
    }
}
