import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// Every suite of this target is nested in this one, so the tests run one at a time: the
/// leak tests compare the process's open descriptors before and after, which parallel tests
/// would disturb.
@Suite(.serialized) enum Simulated {}

/// A simulated host with the usual cast: a PVH frontend (dom1), a PVH backend (dom2) and a PV
/// Dom0.
struct Host {
    let xen: XenSimulation
    let frontend: SimulatedDomain
    let backend: SimulatedDomain
    let dom0: SimulatedDomain

    init(_ configure: (inout XenSimulation.Configuration) -> Void = { _ in }) throws {
        var configuration = XenSimulation.Configuration()
        configure(&configuration)
        xen = XenSimulation(configuration)
        dom0 = try xen.addDomain(0, type: .pv)
        frontend = try xen.addDomain(1, type: .pvh)
        backend = try xen.addDomain(2, type: .pvh)
    }

    /// The backend's gntdev.
    func gntdev() throws -> GrantDevice { try GrantDevice(on: backend.system) }
}

/// The descriptors this process has open.
func openDescriptors() -> Set<Int32> {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    var numbers = Set<Int32>()
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let number = Int32(name) { numbers.insert(number) }
    }
    numbers.remove(dirfd(directory))
    return numbers
}

/// Whether `fd` is open in this process.
func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

/// Runs `body` and returns the XenGntError it throws (recording an issue if it throws nothing).
@discardableResult
func expectFailure(
    _ body: () throws -> Void,
    sourceLocation: SourceLocation = #_sourceLocation
) -> XenGntError? {
    do {
        try body()
        Issue.record("expected a XenGntError", sourceLocation: sourceLocation)
        return nil
    } catch let error as XenGntError {
        return error
    } catch {
        Issue.record("expected a XenGntError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// A raw view of the simulated kernel for one domain: the request numbers and C structs go
/// straight to the simulator, so the library's own validation cannot hide a simulator gap.
struct Raw {
    let calls: any SystemCalls

    init(_ system: XenSystem) { calls = system.calls }

    func open(_ path: String) throws(Errno) -> Int32 {
        try calls.open(path, flags: O_RDWR | O_CLOEXEC, mode: 0)
    }

    func close(_ fd: Int32) { try? calls.close(fd) }

    /// Allocates a zeroed argument of `size` bytes, lets `fill` write it, issues the ioctl, and
    /// lets `read` look at the result.
    @discardableResult
    func ioctl<T>(
        _ fd: Int32, _ request: UInt, size: Int,
        fill: (UnsafeMutableRawPointer) -> Void = { _ in },
        read: (UnsafeMutableRawPointer) -> T
    ) -> Result<T, Errno> {
        let argument = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: 16)
        defer { argument.deallocate() }
        argument.initializeMemory(as: UInt8.self, repeating: 0, count: size)
        fill(argument)
        do {
            _ = try calls.ioctl(fd, request, argument)
            return .success(read(argument))
        } catch {
            return .failure(error)
        }
    }

    func errno<T>(_ result: Result<T, Errno>) -> Errno? {
        if case .failure(let error) = result { return error }
        return nil
    }

    // MARK: gntdev

    func mapGrantRef(_ fd: Int32, _ grants: [(domid: UInt32, ref: UInt32)], count: UInt32? = nil) -> Result<UInt64, Errno> {
        ioctl(fd, cxg_request_gntdev_map_grant_ref(), size: cxg_map_grant_ref_size(UInt32(max(grants.count, 1)))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self)
            op.pointee.count = count ?? UInt32(grants.count)
            let refs = cxg_map_grant_ref_refs(op)!
            for (i, grant) in grants.enumerated() { refs[i] = ioctl_gntdev_grant_ref(domid: grant.domid, ref: grant.ref) }
        } read: { $0.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self).pointee.index }
    }

    func unmapGrantRef(_ fd: Int32, index: UInt64, count: UInt32) -> Errno? {
        errno(ioctl(fd, cxg_request_gntdev_unmap_grant_ref(), size: MemoryLayout<ioctl_gntdev_unmap_grant_ref>.size) { raw in
            raw.storeBytes(of: ioctl_gntdev_unmap_grant_ref(index: index, count: count, pad: 0), as: ioctl_gntdev_unmap_grant_ref.self)
        } read: { _ in () })
    }

    func mmap(_ fd: Int32, pages: Int, offset: UInt64, writable: Bool = true, shared: Bool = true) -> Result<UnsafeMutableRawPointer, Errno> {
        do {
            return .success(try calls.mmap(length: pages * xenPageSize, protection: writable ? PROT_READ | PROT_WRITE : PROT_READ,
                                           flags: shared ? MAP_SHARED : MAP_PRIVATE, fd: fd, offset: Int64(offset)))
        } catch {
            return .failure(error)
        }
    }

    func munmap(_ address: UnsafeMutableRawPointer, pages: Int) {
        try? calls.munmap(address, length: pages * xenPageSize)
    }

    func notify(_ fd: Int32, request: UInt, index: UInt64, action: UInt32, port: UInt32 = 0) -> Errno? {
        errno(ioctl(fd, request, size: MemoryLayout<ioctl_gntdev_unmap_notify>.size) { raw in
            raw.storeBytes(of: ioctl_gntdev_unmap_notify(index: index, action: action, event_channel_port: port), as: ioctl_gntdev_unmap_notify.self)
        } read: { _ in () })
    }

    func export(_ fd: Int32, domid: UInt32, refs: [UInt32], flags: UInt32 = 0, count: UInt32? = nil) -> Result<Int32, Errno> {
        ioctl(fd, cxg_request_gntdev_dmabuf_exp_from_refs(), size: cxg_exp_from_refs_size(UInt32(max(refs.count, 1)))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self)
            op.pointee.flags = flags
            op.pointee.count = count ?? UInt32(refs.count)
            op.pointee.domid = domid
            let out = cxg_exp_from_refs_refs(op)!
            for (i, ref) in refs.enumerated() { out[i] = ref }
        } read: { Int32(bitPattern: $0.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self).pointee.fd) }
    }

    func waitReleased(_ fd: Int32, exported: Int32, milliseconds: UInt32) -> Errno? {
        errno(ioctl(fd, cxg_request_gntdev_dmabuf_exp_wait_released(), size: MemoryLayout<ioctl_gntdev_dmabuf_exp_wait_released>.size) { raw in
            raw.storeBytes(of: ioctl_gntdev_dmabuf_exp_wait_released(fd: UInt32(bitPattern: exported), wait_to_ms: milliseconds),
                           as: ioctl_gntdev_dmabuf_exp_wait_released.self)
        } read: { _ in () })
    }

    func importToRefs(_ fd: Int32, buffer: Int32, count: UInt32, domid: UInt32) -> Result<[UInt32], Errno> {
        ioctl(fd, cxg_request_gntdev_dmabuf_imp_to_refs(), size: cxg_imp_to_refs_size(max(count, 1))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
            op.pointee.fd = UInt32(bitPattern: buffer)
            op.pointee.count = count
            op.pointee.domid = domid
        } read: { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
            return Array(UnsafeBufferPointer(start: cxg_imp_to_refs_refs(op)!, count: Int(count)))
        }
    }

    func importRelease(_ fd: Int32, buffer: Int32) -> Errno? {
        errno(ioctl(fd, cxg_request_gntdev_dmabuf_imp_release(), size: MemoryLayout<ioctl_gntdev_dmabuf_imp_release>.size) { raw in
            raw.storeBytes(of: ioctl_gntdev_dmabuf_imp_release(fd: UInt32(bitPattern: buffer), reserved: 0), as: ioctl_gntdev_dmabuf_imp_release.self)
        } read: { _ in () })
    }

    // MARK: gntalloc

    func allocGref(_ fd: Int32, domid: UInt16, count: UInt32, writable: Bool = true) -> Result<(index: UInt64, refs: [UInt32]), Errno> {
        ioctl(fd, cxg_request_gntalloc_alloc_gref(), size: cxg_alloc_gref_size(max(count, 1))) { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            op.pointee.domid = domid
            op.pointee.flags = writable ? UInt16(GNTALLOC_FLAG_WRITABLE) : 0
            op.pointee.count = count
        } read: { raw in
            let op = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
            return (op.pointee.index, Array(UnsafeBufferPointer(start: cxg_alloc_gref_ids(op)!, count: Int(count))))
        }
    }

    func deallocGref(_ fd: Int32, index: UInt64, count: UInt32) -> Errno? {
        errno(ioctl(fd, cxg_request_gntalloc_dealloc_gref(), size: MemoryLayout<ioctl_gntalloc_dealloc_gref>.size) { raw in
            raw.storeBytes(of: ioctl_gntalloc_dealloc_gref(index: index, count: count), as: ioctl_gntalloc_dealloc_gref.self)
        } read: { _ in () })
    }

    /// A udmabuf of `pages` pages, as a raw descriptor.
    func udmabuf(pages: Int) throws -> Int32 {
        try DmaBuf.udmabuf(pages: pages, on: XenSystem(calls)).take().rawValue
    }
}
