internal import CXenGnt
import SystemPackage
import XenGnt

/// `/dev/xen/gntdev` (Linux 6.1 `drivers/xen/gntdev.c`): grant maps, their mmap and unmap
/// notifications, grant copy (`Gntdev+Copy.swift`) and the dma-buf ioctls
/// (`Gntdev+DmaBuf.swift`).
struct GntdevDevice: KernelDriver {
    var device: SimulatedKernel.Device? { .gntdev }
    var nodes: [DeviceNode] { [DeviceNode(path: Paths.gntdev, major: 10, minor: 124)] }

    func attributes(of kernel: DomainKernel) -> [String: String] {
        [Paths.gntdevLimit: "\(kernel.configuration.gntdevLimit)\n"]
    }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        GntdevFile(kernel: context.kernel, node: node)
    }
}

/// A gntdev grant map (`struct gntdev_grant_map`).
final class GntdevMap {
    /// First page index in the file.
    let index: UInt64
    let grants: [(domid: UInt32, ref: UInt32)]
    var inList = true
    /// Set on the first mmap and never cleared (Linux 6.1's `in_use`).
    var inUse = false
    var vmaLive = false
    var readOnly: Bool?
    /// What Xen mapped, while mapped.
    var mapped: [MaptrackEntry]?
    var notify = UnmapNotify()

    init(index: UInt64, grants: [(domid: UInt32, ref: UInt32)]) {
        self.index = index
        self.grants = grants
    }

    var count: Int { grants.count }
}

/// A gntdev open file (`struct gntdev_priv`).
final class GntdevFile: DeviceFile {
    var maps: [GntdevMap] = []
    /// Exported buffers, newest first (the kernel's `list_add`), found by descriptor number.
    var exports: [ExportRecord] = []
    /// Imports, newest first, found by descriptor number.
    var imports: [ImportRecord] = []

    override func decode(_ request: UInt) -> SimulatedIoctl? {
        switch request {
        case Request.mapGrantRef: .mapGrantRef
        case Request.unmapGrantRef: .unmapGrantRef
        case Request.getOffsetForVaddr: .getOffsetForVaddr
        case Request.setMaxGrants: .setMaxGrants
        case Request.gntdevSetUnmapNotify: .gntdevSetUnmapNotify
        case Request.grantCopy: .grantCopy
        case Request.expFromRefs: .exportFromRefs
        case Request.expWaitReleased: .waitReleased
        case Request.impToRefs: .importToRefs
        case Request.impRelease: .importRelease
        default: nil
        }
    }

    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        switch request {
        case Request.mapGrantRef: return .done(try mapGrantRef(argument, context))
        case Request.unmapGrantRef: return .done(try unmapGrantRef(argument, context))
        case Request.getOffsetForVaddr: return .done(try offsetForVaddr(argument, context))
        case Request.gntdevSetUnmapNotify: return .done(try setUnmapNotify(argument, context))
        case Request.grantCopy: return .done(try grantCopy(argument, context))
        case Request.expFromRefs, Request.expWaitReleased, Request.impToRefs, Request.impRelease:
            // Measured on Debian's stock 6.1 (no CONFIG_XEN_GNTDEV_DMABUF): ENOTTY
            // (Documentation/Lab.md).
            guard context.configuration.dmaBufIoctls else { throw .inappropriateIOCTLForDevice }
            switch request {
            case Request.expFromRefs: return .done(try exportFromRefs(argument, context))
            case Request.expWaitReleased: return try waitReleased(argument)
            case Request.impToRefs: return .done(try importToRefs(argument, context))
            default: return .done(try importRelease(argument, context))
            }
        default:
            // IOCTL_GNTDEV_SET_MAX_GRANTS is gone since Linux 5.5 (lab case `set-max-grants`):
            // the driver's default case, ENOIOCTLCMD, reaches user space as ENOTTY.
            throw .inappropriateIOCTLForDevice
        }
    }

    /// gntdev_test_page_count: `!count || count > limit` (lab cases `map-bad-refs`,
    /// `export-bad-input`, `import-bad-input`).
    func checkCount(_ count: UInt32, _ context: Context) throws(Errno) {
        if count == 0 || Int(count) > context.configuration.gntdevLimit { throw .invalidArgument }
    }

    private func mapGrantRef(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_map_grant_ref.self, from: argument)
        try checkCount(op.count, context)
        let refs = try UserMemory.array(
            of: ioctl_gntdev_grant_ref.self,
            at: argument!,
            offset: MemoryLayout<ioctl_gntdev_map_grant_ref>.offset(of: \.refs)!,
            count: Int(op.count)
        )
        let grants = refs.map { (domid: $0.domid, ref: $0.ref) }
        // gntdev_add_map: the first gap that fits (strictly) in index order.
        var index: UInt64 = 0
        var position = maps.count
        for (i, map) in maps.enumerated() {
            if index + UInt64(op.count) < map.index {
                position = i
                break
            }
            index = map.index + UInt64(map.count)
        }
        maps.insert(GntdevMap(index: index, grants: grants), at: position)
        UserMemory.store(index << 12, at: argument, offset: MemoryLayout<ioctl_gntdev_map_grant_ref>.offset(of: \.index)!)
        return 0
    }

    private func unmapGrantRef(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_unmap_grant_ref.self, from: argument)
        let index = op.index >> 12
        let count = Int(op.count)
        // gntdev_find_map_index: the index must match; a count of 0 matches any map there
        // (lab `map-bad-refs`).
        guard let map = maps.first(where: { $0.index == index && (count == 0 || $0.count == count) }) else {
            throw .noSuchFileOrDirectory
        }
        map.inList = false
        maps.removeAll { $0 === map }
        put(map, context.hypervisor)
        return 0
    }

    /// The gntdev map behind an address of the calling process, EINVAL for any other (lab
    /// `map-mmap-twice`).
    private func offsetForVaddr(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_get_offset_for_vaddr.self, from: argument)
        let address = UInt(op.vaddr)
        for key in context.process.areas {
            guard let area = context.machine.areas[key], area.overlaps(address, 1) else { continue }
            guard area.file is GntdevFile, let map = area.data as? GntdevMap else { break }
            var answer = op
            answer.offset = map.index << 12
            answer.count = UInt32(map.count)
            argument!.storeBytes(of: answer, as: ioctl_gntdev_get_offset_for_vaddr.self)
            return 0
        }
        throw .invalidArgument
    }

    private func setUnmapNotify(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_unmap_notify.self, from: argument)
        try UnmapNotify.validate(action: op.action, port: op.event_channel_port, in: domain)
        guard let map = maps.first(where: { op.index >= $0.index << 12 && op.index < ($0.index + UInt64($0.count)) << 12 }) else {
            throw .noSuchFileOrDirectory
        }
        if op.action & UnmapNotify.clearByte != 0, map.readOnly == true { throw .invalidArgument }
        map.notify = UnmapNotify(flags: op.action, offset: Int(op.index - (map.index << 12)), port: op.event_channel_port)
        return 0
    }

    // MARK: mmap

    /// gntdev_mmap: writable maps must be shared; offset and length must name one map exactly;
    /// each map is mmapped once (lab `map-mmap-twice`); Xen checks the grants here, so a bad
    /// ref fails the mmap, not the ioctl (lab `map-bad-refs`).
    override func mmap(_ request: MmapRequest, _ context: Context) throws(Errno) -> MappedArea {
        if request.writable && !request.shared { throw .invalidArgument }
        // `int index = vma->vm_pgoff; int count = vma_pages(vma);`
        let index = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: request.pageOffset)))
        let count = Int(Int32(truncatingIfNeeded: request.pages))
        guard let map = maps.first(where: { $0.index == index && $0.count == count }), !map.inUse else {
            throw .invalidArgument
        }
        map.inUse = true
        if let readOnly = map.readOnly {
            if request.writable && readOnly { throw .invalidArgument }
        } else {
            map.readOnly = !request.writable
        }
        guard let mapped = context.hypervisor.map(map.grants, by: domain, writable: request.writable) else {
            throw .invalidArgument
        }
        let address: UnsafeMutableRawPointer
        do throws(Errno) {
            address = try mapPages(try shownPages(of: mapped), protection: request.protection)
        } catch {
            context.hypervisor.unmap(mapped)
            throw error
        }
        map.mapped = mapped
        map.vmaLive = true
        return MappedArea(address: address, length: request.length, data: map)
    }

    /// The pages a mapping shows. An x86 PVH/HVM domain that maps a grant it issued to itself
    /// gets a page that is not the granted one (a fresh zero page), and its kernel's page tables
    /// are left corrupt: the next gntalloc mmap oopses (lab finding `pvh-self-map`, 2026-12-01,
    /// 3 boots of 3). PV and Arm domains map their own grants correctly.
    private func shownPages(of mapped: [MaptrackEntry]) throws(Errno) -> [Page] {
        let selfMapped = domain.isX86AutoTranslated ? mapped.indices.filter { mapped[$0].owner === domain } : []
        guard !selfMapped.isEmpty else { return mapped.map(\.page) }
        kernel.selfMapCorrupted = true
        let stray = try MemoryObject.create(name: "xengnt-sim-self-map", bytes: selfMapped.count * xenPageSize)
        var pages = mapped.map(\.page)
        for (slot, index) in selfMapped.enumerated() { pages[index] = Page(memory: stray, index: slot) }
        return pages
    }

    override func close(_ area: VMArea, _ machine: Machine) {
        guard let map = area.data as? GntdevMap else { return }
        map.vmaLive = false
        if domain.type == .pv, let mapped = map.mapped {
            // PV (use_ptemod): the grants are unmapped with the page tables, at munmap.
            map.notify.clearByte(in: mapped.map(\.page))
            machine.hypervisor.unmap(mapped)
            map.mapped = nil
        }
        put(map, machine.hypervisor)
    }

    /// Drops the grant map when neither the file's list nor a memory mapping holds it
    /// (`gntdev_put_map`): the notification fires and the grants are unmapped (lab
    /// `notify-clear-byte`, `notify-send-event`).
    func put(_ map: GntdevMap, _ hypervisor: Hypervisor) {
        guard !map.inList, !map.vmaLive else { return }
        map.notify.fire(pages: map.mapped?.map(\.page) ?? [], from: domain, through: hypervisor)
        if let mapped = map.mapped {
            hypervisor.unmap(mapped)
            map.mapped = nil
        }
        maps.removeAll { $0 === map }
    }

    override func release(_ machine: Machine) {
        for map in maps where map.inList {
            map.inList = false
            put(map, machine.hypervisor)
        }
        maps.removeAll()
        for record in imports { endImport(record, machine) }
        imports.removeAll()
    }
}
