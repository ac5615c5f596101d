internal import CXenGnt
import SystemPackage
import XenGnt

/// `/dev/xen/gntalloc` (Linux 6.1 `drivers/xen/gntalloc.c`): pages of this domain granted to
/// another, mmapped by the granting process. Its `limit` and page count are the kernel's own:
/// every gntalloc file of this domain counts, no other domain's does.
struct GntallocDevice: KernelDriver {
    var device: SimulatedKernel.Device? { .gntalloc }
    var nodes: [DeviceNode] { [DeviceNode(path: Paths.gntalloc, major: 10, minor: 123)] }

    func attributes(of kernel: DomainKernel) -> [String: String] {
        [Paths.gntallocLimit: "\(kernel.configuration.gntallocLimit)\n"]
    }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        GntallocFile(kernel: context.kernel, node: node)
    }
}

/// One gntalloc page (`struct gntalloc_gref`).
final class GntallocGref {
    let fileIndex: UInt64
    let entry: GrantEntry
    /// The file list's reference plus one per memory mapping.
    var users = 1
    var notify = UnmapNotify()
    var deleted = false

    init(fileIndex: UInt64, entry: GrantEntry) {
        self.fileIndex = fileIndex
        self.entry = entry
    }

    var page: Page { entry.page }
}

/// A run of gntalloc pages mapped by one mmap (`struct gntalloc_vma_private_data`).
final class GntallocArea {
    let grefs: [GntallocGref]
    init(_ grefs: [GntallocGref]) { self.grefs = grefs }
}

/// A gntalloc open file (`struct gntalloc_file_private_data`).
final class GntallocFile: DeviceFile {
    /// Grants in file order (`priv->list`).
    var grefs: [GntallocGref] = []
    var nextIndex: UInt64 = 0

    /// IOCTL_GNTALLOC_SET_UNMAP_NOTIFY has gntdev's SET_UNMAP_NOTIFY number: decoded here as
    /// gntalloc's, so a fault injected on it fires.
    override func decode(_ request: UInt) -> SimulatedIoctl? {
        switch request {
        case Request.allocGref: .allocGref
        case Request.deallocGref: .deallocGref
        case Request.gntallocSetUnmapNotify: .gntallocSetUnmapNotify
        default: nil
        }
    }

    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        switch request {
        case Request.allocGref: return .done(try allocGref(argument, context))
        case Request.deallocGref: return .done(try deallocGref(argument, context))
        case Request.gntallocSetUnmapNotify: return .done(try setUnmapNotify(argument))
        // Lab `dmabuf-ioctl-on-gntalloc`: any other request is ENOTTY.
        default: throw .inappropriateIOCTLForDevice
        }
    }

    private func allocGref(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntalloc_alloc_gref.self, from: argument)
        let count = Int(op.count)
        let limit = context.configuration.gntallocLimit
        // The limit counts every gntalloc file of this kernel (lab `gntalloc-limit`: ENOSPC; a
        // count of 0 is accepted and takes no index).
        if count > limit || kernel.gntallocPages > limit || count > limit - kernel.gntallocPages { throw .noSpace }
        // A full grant table fails the request (gnttab_grant_foreign_access: ENOSPC).
        guard domain.grantTable.available >= count else { throw .noSpace }
        let readOnly = op.flags & UInt16(GNTALLOC_FLAG_WRITABLE) == 0
        let index = nextIndex
        var grefs: [GntallocGref] = []
        grefs.reserveCapacity(count)
        for i in 0..<count {
            do throws(Errno) {
                let page = try domain.memory.allocatePage()
                let entry = try domain.grantTable.grant(page, to: op.domid, readOnly: readOnly, ownsPage: true)
                grefs.append(GntallocGref(fileIndex: index + UInt64(i * xenPageSize), entry: entry))
            } catch {
                for gref in grefs { context.hypervisor.endAccess(gref.entry.ref, of: domain) }
                throw error
            }
        }
        nextIndex += UInt64(count * xenPageSize)
        kernel.gntallocPages += count
        self.grefs.append(contentsOf: grefs)
        UserMemory.store(index, at: argument, offset: MemoryLayout<ioctl_gntalloc_alloc_gref>.offset(of: \.index)!)
        // copy_to_user of the ids comes last: if it faults the pages stay allocated in this
        // file (the kernel cannot take them back safely), and the caller gets EFAULT.
        let ids = try UserMemory.array(
            of: UInt32.self,
            at: argument!,
            offset: MemoryLayout<ioctl_gntalloc_alloc_gref>.offset(of: \.gref_ids)!,
            count: count
        )
        for (i, gref) in grefs.enumerated() { ids[i] = gref.entry.ref }
        return 0
    }

    /// `find_grefs`: `count` consecutive pages of the file starting at byte `index`.
    private func findGrefs(index: UInt64, count: Int) -> Range<Int>? {
        guard count > 0, let start = grefs.firstIndex(where: { $0.fileIndex == index }),
            count <= grefs.count - start
        else { return nil }
        for offset in 0..<count where grefs[start + offset].fileIndex != index &+ UInt64(offset * xenPageSize) {
            return nil
        }
        return start..<(start + count)
    }

    private func deallocGref(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntalloc_dealloc_gref.self, from: argument)
        guard let run = findGrefs(index: op.index, count: Int(op.count)) else { throw .invalidArgument }
        let removed = Array(grefs[run])
        grefs.removeSubrange(run)
        for gref in removed { unuse(gref, context.hypervisor) }
        return 0
    }

    private func setUnmapNotify(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntalloc_unmap_notify.self, from: argument)
        let page = op.index & ~UInt64(xenPageSize - 1)
        guard let run = findGrefs(index: page, count: 1) else { throw .noSuchFileOrDirectory }
        try UnmapNotify.validate(action: op.action, port: op.event_channel_port, in: domain)
        grefs[run.lowerBound].notify = UnmapNotify(flags: op.action, offset: Int(op.index - page), port: op.event_channel_port)
        return 0
    }

    /// Drops a user of `gref`; `__del_gref` at the last: the notification fires, access ends
    /// (deferred while mapped), the page leaves the kernel's count (lab `notify-clear-byte`,
    /// `gntalloc-limit`).
    private func unuse(_ gref: GntallocGref, _ hypervisor: Hypervisor) {
        gref.users -= 1
        guard gref.users == 0, !gref.deleted else { return }
        gref.deleted = true
        gref.notify.fire(pages: [gref.page], from: domain, through: hypervisor)
        hypervisor.endAccess(gref.entry.ref, of: domain)
        kernel.gntallocPages -= 1
    }

    // MARK: mmap

    /// gntalloc_mmap: must be shared; ENOENT when the range is not this file's pages. After a
    /// self-map in an x86 PVH/HVM domain, `vm_insert_page` dereferences NULL in
    /// `__get_locked_pte`: the kernel oopses (lab finding `pvh-self-map`, 2026-12-01, 3 boots
    /// of 3). Simulated: this mmap fails with EFAULT and every later call of the domain with
    /// EIO; the census reports the oops.
    override func mmap(_ request: MmapRequest, _ context: Context) throws(Errno) -> MappedArea {
        if !request.shared { throw .invalidArgument }
        let (byteOffset, overflow) = request.pageOffset.multipliedReportingOverflow(by: UInt64(xenPageSize))
        guard !overflow, let run = findGrefs(index: byteOffset, count: request.pages) else { throw .noSuchFileOrDirectory }
        if kernel.selfMapCorrupted {
            kernel.oops(
                "BUG: kernel NULL pointer dereference in __get_locked_pte (vm_insert_page from gntalloc_mmap) after a self-map (lab pvh-self-map)"
            )
            throw .badAddress
        }
        let mapped = Array(grefs[run])
        let address = try mapPages(mapped.map(\.page), protection: request.protection)
        for gref in mapped { gref.users += 1 }
        return MappedArea(address: address, length: request.length, data: GntallocArea(mapped))
    }

    override func close(_ area: VMArea, _ machine: Machine) {
        guard let mapped = area.data as? GntallocArea else { return }
        for gref in mapped.grefs { unuse(gref, machine.hypervisor) }
    }

    override func release(_ machine: Machine) {
        for gref in grefs { unuse(gref, machine.hypervisor) }
        grefs.removeAll()
    }
}
