internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// One grant side of a copy, resolved.
enum CopySide {
    case page(Page)
    case failed(GrantStatus)
}

/// What an ioctl asks of the caller once the kernel lock is dropped.
enum IoctlOutcome {
    case done(Int32)
    /// `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED` on a live buffer: wait (without the lock).
    case waitForRelease(DmaBufFile, milliseconds: UInt32)
}

extension SimKernel {
    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?, in domain: SimDomain) throws(Errno) -> IoctlOutcome {
        guard let file = file(fd, in: domain) else {
            // Not a simulated file: a real descriptor (memfd, socket) has no such ioctl.
            if HostCalls.isOpen(fd) { throw .inappropriateIOCTLForDevice }
            throw .badFileDescriptor
        }
        switch file {
        case let gntdev as GntdevFile:
            return try gntdevIoctl(gntdev, request, argument)
        case let gntalloc as GntallocFile:
            return .done(try gntallocIoctl(gntalloc, request, argument))
        case let buffer as DmaBufFile:
            return .done(try dmaBufIoctl(buffer, request, argument))
        case let plain as PlainFile:
            switch (plain.kind, request) {
            case (.udmabufDevice, Request.udmabufCreate):
                return .done(try udmabufCreate(plain.domain, try argument.orFault()))
            case (.dmaHeap, Request.dmaHeapAlloc):
                return .done(try dmaHeapAlloc(plain.domain, try argument.orFault()))
            default:
                throw .inappropriateIOCTLForDevice
            }
        default:
            throw .inappropriateIOCTLForDevice
        }
    }

    // MARK: gntdev

    private func gntdevIoctl(_ file: GntdevFile, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> IoctlOutcome {
        switch request {
        case Request.mapGrantRef: return .done(try mapGrantRef(file, try argument.orFault()))
        case Request.unmapGrantRef: return .done(try unmapGrantRef(file, try argument.orFault()))
        case Request.getOffsetForVaddr: return .done(try offsetForVaddr(try argument.orFault()))
        case Request.gntdevSetUnmapNotify: return .done(try gntdevNotify(file, try argument.orFault()))
        case Request.grantCopy: return .done(try grantCopy(file, try argument.orFault()))
        case Request.expFromRefs, Request.expWaitReleased, Request.impToRefs, Request.impRelease:
            // DESIGN.md §3, measured on Debian's stock 6.1 (no CONFIG_XEN_GNTDEV_DMABUF): ENOTTY.
            guard configuration.dmaBufIoctls else { throw .inappropriateIOCTLForDevice }
            let argument = try argument.orFault()
            switch request {
            case Request.expFromRefs: return .done(try exportFromRefs(file, argument))
            case Request.expWaitReleased: return try waitReleased(file, argument)
            case Request.impToRefs: return .done(try importToRefs(file, argument))
            default: return .done(try importRelease(file, argument))
            }
        default:
            // IOCTL_GNTDEV_SET_MAX_GRANTS is gone since Linux 5.5 (lab case `set-max-grants`):
            // the driver's default case, ENOIOCTLCMD, reaches user space as ENOTTY.
            throw .inappropriateIOCTLForDevice
        }
    }

    private func checkCount(_ count: UInt32) throws(Errno) {
        // gntdev_test_page_count: `!count || count > limit` (lab cases `map-bad-refs`,
        // `export-bad-input`, `import-bad-input`).
        if count == 0 || Int(count) > configuration.gntdevLimit { throw .invalidArgument }
    }

    private func mapGrantRef(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self)
        let count = op.pointee.count
        try checkCount(count)
        let refs = (raw + MemoryLayout<ioctl_gntdev_map_grant_ref>.offset(of: \.refs)!).assumingMemoryBound(to: ioctl_gntdev_grant_ref.self)
        let grants = (0..<Int(count)).map { (domid: refs[$0].domid, ref: refs[$0].ref) }
        // gntdev_add_map: the first gap that fits (strictly) in index order.
        var index: UInt64 = 0
        var position = file.maps.count
        for (i, map) in file.maps.enumerated() {
            if index + UInt64(count) < map.index {
                position = i
                break
            }
            index = map.index + UInt64(map.count)
        }
        file.maps.insert(GntdevMap(index: index, grants: grants), at: position)
        op.pointee.index = index << 12
        return 0
    }

    private func unmapGrantRef(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_unmap_grant_ref.self)
        let index = op.pointee.index >> 12
        let count = Int(op.pointee.count)
        // gntdev_find_map_index: the index must match; a count of 0 matches any map there
        // (lab `map-bad-refs`).
        guard let map = file.maps.first(where: { $0.index == index && (count == 0 || $0.count == count) }) else {
            throw .noSuchFileOrDirectory
        }
        map.inList = false
        file.maps.removeAll { $0 === map }
        put(map, in: file)
        return 0
    }

    /// The gntdev map behind an address, EINVAL for any other (lab `map-mmap-twice`).
    private func offsetForVaddr(_ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_get_offset_for_vaddr.self)
        let address = UInt(op.pointee.vaddr)
        for (start, region) in regions where address >= start && address < start + UInt(region.length) {
            guard case .gntdev(let map) = region.kind else { break }
            op.pointee.offset = map.index << 12
            op.pointee.count = UInt32(map.count)
            return 0
        }
        throw .invalidArgument
    }

    private func gntdevNotify(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_unmap_notify.self).pointee
        let known = UInt32(UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT)
        if op.action & ~known != 0 { throw .invalidArgument }
        // evtchn_get fails for a port this domain has not bound: EINVAL (lab `notify-send-event`).
        if op.action & UInt32(UNMAP_NOTIFY_SEND_EVENT) != 0, file.domain.ports[op.event_channel_port] == nil {
            throw .invalidArgument
        }
        guard let map = file.maps.first(where: { op.index >= $0.index << 12 && op.index < ($0.index + UInt64($0.count)) << 12 }) else {
            throw .noSuchFileOrDirectory
        }
        if op.action & UInt32(UNMAP_NOTIFY_CLEAR_BYTE) != 0, map.readOnly == true { throw .invalidArgument }
        map.notifyFlags = op.action
        map.notifyOffset = Int(op.index - (map.index << 12))
        map.notifyPort = op.event_channel_port
        return 0
    }

    private func grantCopy(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_grant_copy.self).pointee
        guard op.count > 0 else { return 0 }
        guard let segments = op.segments else { throw .badAddress }
        let source = UInt16(CXG_GNTCOPY_SOURCE_GREF)
        let destination = UInt16(CXG_GNTCOPY_DEST_GREF)
        for i in 0..<Int(op.count) {
            let segment = segments[i]
            // Local to local is refused; a grant side may not cross its page.
            if segment.flags & (source | destination) == 0 { throw .invalidArgument }
            if segment.flags & source != 0, Int(segment.source.foreign.offset) + Int(segment.len) > xenPageSize { throw .invalidArgument }
            if segment.flags & destination != 0, Int(segment.dest.foreign.offset) + Int(segment.len) > xenPageSize { throw .invalidArgument }
        }
        for i in 0..<Int(op.count) {
            let segment = segments[i]
            var status = GrantStatus.okay
            let length = Int(segment.len)
            var from: (Page, Int)?
            var to: (Page, Int)?
            if segment.flags & source != 0 {
                switch resolveForCopy(segment.source.foreign.domid, segment.source.foreign.ref, by: file.domain, writing: false) {
                case .page(let page): from = (page, Int(segment.source.foreign.offset))
                case .failed(let failure): status = failure
                }
            }
            if status.isOkay, segment.flags & destination != 0 {
                switch resolveForCopy(segment.dest.foreign.domid, segment.dest.foreign.ref, by: file.domain, writing: true) {
                case .page(let page): to = (page, Int(segment.dest.foreign.offset))
                case .failed(let failure): status = failure
                }
            }
            if status.isOkay, length > 0 {
                var bytes = [UInt8](repeating: 0, count: length)
                if let (page, offset) = from {
                    bytes = page.read(at: offset, count: length)
                } else if let virt = segment.source.virt {
                    // pin_user_pages of an unmapped address: EFAULT for the whole ioctl.
                    guard HostCalls.isAccessible(virt, count: length) else { throw .badAddress }
                    bytes = Array(UnsafeRawBufferPointer(start: virt, count: length))
                } else {
                    throw .badAddress
                }
                if let (page, offset) = to {
                    page.write(bytes, at: offset)
                } else if let virt = segment.dest.virt, HostCalls.isAccessible(virt, count: length) {
                    virt.copyMemory(from: bytes, byteCount: length)
                } else {
                    throw .badAddress
                }
            }
            segments[i].status = status.rawValue
        }
        return 0
    }

    /// Xen's checks for one grant side of a copy (lab `grant-copy`): an unknown domain is `GNTST_bad_domain`, a ref
    /// past the table `GNTST_bad_gntref`, an unused or foreign entry or a write to a read-only
    /// grant `GNTST_general_error` ("Bad flags or dom", "write-pin a r/o grant entry").
    private func resolveForCopy(_ domid: UInt16, _ ref: UInt32, by mapper: SimDomain, writing: Bool) -> CopySide {
        guard let owner = domains[domid], owner.alive else { return .failed(.badDomain) }
        guard Int(ref) < configuration.grantTableSize else { return .failed(.badGrantRef) }
        guard let entry = owner.grants[ref], !entry.endRequested, entry.grantee == mapper.id,
              !(writing && entry.readOnly)
        else { return .failed(.generalError) }
        return .page(entry.page)
    }

    // MARK: gntdev dma-buf

    private func exportFromRefs(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        // Lab case `export-refused-pv`: a PV domain (use_ptemod) refuses every export.
        if file.domain.type == .pv { throw .invalidArgument }
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self)
        let count = op.pointee.count
        try checkCount(count)
        // Lab case `export-bad-input`: both DMA flags are refused; an undefined bit is silently
        // ignored.
        let wc = UInt32(GNTDEV_DMA_FLAG_WC), coherent = UInt32(GNTDEV_DMA_FLAG_COHERENT)
        if op.pointee.flags & wc != 0, op.pointee.flags & coherent != 0 { throw .invalidArgument }
        // An x86 PVH/HVM kernel without the lab's patch maps exports with GNTMAP_device_map,
        // which Xen refuses for auto-translated guests: every export fails (DESIGN.md §5).
        if file.domain.type != .arm, !configuration.x86ExportFix { throw .invalidArgument }
        let domid = op.pointee.domid
        let refs = (raw + MemoryLayout<ioctl_gntdev_dmabuf_exp_from_refs>.offset(of: \.refs)!).assumingMemoryBound(to: UInt32.self)
        let grants = (0..<Int(count)).map { (domid: domid, ref: refs[$0]) }
        // Export always maps writable (lab `export-read-only-grant`).
        guard let mapped = mapGrants(grants, by: file.domain, writable: true) else { throw .invalidArgument }
        let buffer = DmaBufFile(domain: file.domain, pages: mapped.map(\.entry.page), origin: .gntdevExport(exporter: file, mapped: mapped))
        let fd: Int32
        do throws(Errno) {
            fd = try newDescriptor(size: buffer.size)
        } catch {
            unmap(mapped)
            throw error
        }
        register(fd, buffer)
        file.references += 1
        file.exports.insert(ExportedBuffer(fdNumber: fd, buffer: buffer), at: 0)
        op.pointee.fd = UInt32(bitPattern: fd)
        return 0
    }

    private func waitReleased(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> IoctlOutcome {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_wait_released.self).pointee
        // The kernel searches this file's exports by the number recorded at export, newest
        // first; a released buffer has left the list (lab `wait-released-enoent`: ENOENT
        // after release, for an unknown number, or on another gntdev file).
        guard let export = file.exports.first(where: { $0.fdNumber == Int32(bitPattern: op.fd) }) else {
            throw .noSuchFileOrDirectory
        }
        return .waitForRelease(export.buffer, milliseconds: op.wait_to_ms)
    }

    private func importToRefs(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
        let count = op.pointee.count
        try checkCount(count)
        let fd = Int32(bitPattern: op.pointee.fd)
        // dma_buf_get: EBADF for a closed descriptor, EINVAL for one that is not a dma-buf
        // (lab `import-bad-input`).
        guard let buffer = files[fd] as? DmaBufFile, buffer.domain === file.domain else {
            if files[fd] != nil || HostCalls.isOpen(fd) { throw .invalidArgument }
            throw .badFileDescriptor
        }
        // Lab `import-bad-input`: the count must match the buffer.
        if buffer.size != Int(count) * xenPageSize { throw .invalidArgument }
        // The domid is not checked (lab `import-bad-input`); gnttab takes a domid_t.
        let grantee = UInt16(truncatingIfNeeded: op.pointee.domid)
        var refs: [UInt32] = []
        refs.reserveCapacity(Int(count))
        for page in buffer.pages {
            do throws(Errno) {
                refs.append(try file.domain.grant(page, to: grantee, readOnly: false, ownsPage: false, tableSize: configuration.grantTableSize))
            } catch {
                for ref in refs { file.domain.endAccess(ref) }
                throw error
            }
        }
        let out = (raw + MemoryLayout<ioctl_gntdev_dmabuf_imp_to_refs>.offset(of: \.refs)!).assumingMemoryBound(to: UInt32.self)
        for (i, ref) in refs.enumerated() { out[i] = ref }
        buffer.references += 1
        file.imports.insert(ImportRecord(fdNumber: fd, buffer: buffer, refs: refs), at: 0)
        return 0
    }

    private func importRelease(_ file: GntdevFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_release.self).pointee
        // Lab `import-bad-input`: ENOENT once it is gone. Release while the peer maps the
        // pages succeeds; the end of access is deferred (lab `import-release-while-mapped`).
        guard let position = file.imports.firstIndex(where: { $0.fdNumber == Int32(bitPattern: op.fd) }) else {
            throw .noSuchFileOrDirectory
        }
        let record = file.imports.remove(at: position)
        endImport(record, in: file)
        return 0
    }

    // MARK: gntalloc

    private func gntallocIoctl(_ file: GntallocFile, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        switch request {
        case Request.allocGref: return try allocGref(file, try argument.orFault())
        case Request.deallocGref: return try deallocGref(file, try argument.orFault())
        case Request.gntallocSetUnmapNotify: return try gntallocNotify(file, try argument.orFault())
        // Lab `dmabuf-ioctl-on-gntalloc`: any other request is ENOTTY.
        default: throw .inappropriateIOCTLForDevice
        }
    }

    private func allocGref(_ file: GntallocFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntalloc_alloc_gref.self)
        let count = Int(op.pointee.count)
        // The global limit counts every file's pages (lab `gntalloc-limit`: ENOSPC; a count
        // of 0 is accepted and takes no index).
        if count > configuration.gntallocLimit || gntallocPages + count > configuration.gntallocLimit { throw .noSpace }
        let readOnly = op.pointee.flags & UInt16(GNTALLOC_FLAG_WRITABLE) == 0
        let index = file.nextIndex
        var grefs: [GntallocGref] = []
        for i in 0..<count {
            do throws(Errno) {
                let page = try file.domain.allocatePage()
                let ref = try file.domain.grant(page, to: op.pointee.domid, readOnly: readOnly, ownsPage: true, tableSize: configuration.grantTableSize)
                grefs.append(GntallocGref(fileIndex: index + UInt64(i * xenPageSize), ref: ref, page: page))
            } catch {
                for gref in grefs { file.domain.endAccess(gref.ref) }
                throw error
            }
        }
        file.nextIndex += UInt64(count * xenPageSize)
        gntallocPages += count
        file.grefs.append(contentsOf: grefs)
        op.pointee.index = index
        let ids = (raw + MemoryLayout<ioctl_gntalloc_alloc_gref>.offset(of: \.gref_ids)!).assumingMemoryBound(to: UInt32.self)
        for (i, gref) in grefs.enumerated() { ids[i] = gref.ref }
        return 0
    }

    /// `find_grefs`: `count` consecutive pages of the file starting at byte `index`.
    func findGrefs(_ file: GntallocFile, index: UInt64, count: Int) -> ArraySlice<GntallocGref>? {
        guard count > 0, let start = file.grefs.firstIndex(where: { $0.fileIndex == index }),
              start + count <= file.grefs.count
        else { return nil }
        let run = file.grefs[start..<(start + count)]
        for (offset, gref) in run.enumerated() where gref.fileIndex != index + UInt64(offset * xenPageSize) {
            return nil
        }
        return run
    }

    private func deallocGref(_ file: GntallocFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntalloc_dealloc_gref.self).pointee
        guard let run = findGrefs(file, index: op.index, count: Int(op.count)) else { throw .invalidArgument }
        let grefs = Array(run)
        file.grefs.removeSubrange(run.indices)
        for gref in grefs {
            gref.users -= 1
            if gref.users == 0 { delete(gref, of: file.domain) }
        }
        return 0
    }

    private func gntallocNotify(_ file: GntallocFile, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: ioctl_gntalloc_unmap_notify.self).pointee
        let page = op.index & ~UInt64(xenPageSize - 1)
        guard let gref = findGrefs(file, index: page, count: 1)?.first else { throw .noSuchFileOrDirectory }
        let known = UInt32(UNMAP_NOTIFY_CLEAR_BYTE | UNMAP_NOTIFY_SEND_EVENT)
        if op.action & ~known != 0 { throw .invalidArgument }
        if op.action & UInt32(UNMAP_NOTIFY_SEND_EVENT) != 0, file.domain.ports[op.event_channel_port] == nil {
            throw .invalidArgument
        }
        gref.notifyFlags = op.action
        gref.notifyOffset = Int(op.index - page)
        gref.notifyPort = op.event_channel_port
        return 0
    }

    // MARK: dma-buf

    /// `DMA_BUF_IOCTL_SYNC` (a direction is required, undefined bits are EINVAL) and
    /// `DMA_BUF_SET_NAME` (EINVAL without a NUL in 32 bytes): lab `dmabuf-sync-name`.
    private func dmaBufIoctl(_ buffer: DmaBufFile, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        switch request {
        case Request.dmaBufSync:
            let flags = try argument.orFault().load(as: UInt64.self)
            let valid = UInt64(DMA_BUF_SYNC_RW | DMA_BUF_SYNC_END)
            if flags & ~valid != 0 || flags & UInt64(DMA_BUF_SYNC_RW) == 0 { throw .invalidArgument }
            return 0
        case Request.dmaBufSetName:
            let name = try argument.orFault().assumingMemoryBound(to: UInt8.self)
            // strndup_user(buf, DMA_BUF_NAME_LEN): EINVAL when no NUL within the limit.
            var length = 0
            while length < Int(CXG_DMA_BUF_NAME_LEN), name[length] != 0 { length += 1 }
            if length == Int(CXG_DMA_BUF_NAME_LEN) { throw .invalidArgument }
            buffer.name = String(decoding: UnsafeBufferPointer(start: name, count: length), as: UTF8.self)
            return 0
        default:
            throw .inappropriateIOCTLForDevice
        }
    }

    private func udmabufCreate(_ domain: SimDomain, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: udmabuf_create.self).pointee
        if op.flags & ~UInt32(UDMABUF_FLAGS_CLOEXEC) != 0 { throw .invalidArgument }
        let memfd = Int32(bitPattern: op.memfd)
        // udmabuf wants a memfd sealed against shrinking and not against writing (lab
        // `dmabuf-sync-name` shows an unsealed one refused; `import-udmabuf` uses XenGnt's).
        guard let seals = try? HostCalls.fcntl(memfd, command: Int32(CXG_F_GET_SEALS), argument: 0) else { throw .badFileDescriptor }
        if seals & Int32(CXG_F_SEAL_SHRINK) == 0 || seals & Int32(CXG_F_SEAL_WRITE) != 0 { throw .invalidArgument }
        let size = Int(op.size), offset = Int(op.offset)
        if size == 0 || size % xenPageSize != 0 || offset % xenPageSize != 0 { throw .invalidArgument }
        guard let info = try? HostCalls.fstat(memfd), offset + size <= Int(info.st_size) else { throw .invalidArgument }
        // A new open file description of the same memfd: the dma-buf's descriptor and the pages
        // it exports alias the caller's memfd, in and out of the seam.
        let backing = try HostCalls.reopen(memfd)
        let memory = MemoryObject(fd: backing)
        let pages = (0..<(size / xenPageSize)).map { Page(memory: memory, index: offset / xenPageSize + $0) }
        let buffer = DmaBufFile(domain: domain, pages: pages, origin: .udmabuf)
        let fd = try newDescriptor(size: size)
        register(fd, buffer)
        return fd
    }

    private func dmaHeapAlloc(_ domain: SimDomain, _ raw: UnsafeMutableRawPointer) throws(Errno) -> Int32 {
        let op = raw.assumingMemoryBound(to: dma_heap_allocation_data.self)
        let validFD = UInt32(O_CLOEXEC | O_ACCMODE)
        // No heap flags are defined (lab `dmabuf-sync-name`).
        if op.pointee.fd_flags & ~validFD != 0 || op.pointee.heap_flags != 0 { throw .invalidArgument }
        let size = (Int(op.pointee.len) + xenPageSize - 1) / xenPageSize * xenPageSize
        if size == 0 { throw .invalidArgument }
        let memory = try MemoryObject.create(name: "xengnt-sim-heap", bytes: size)
        let pages = (0..<(size / xenPageSize)).map { Page(memory: memory, index: $0) }
        let buffer = DmaBufFile(domain: domain, pages: pages, origin: .heap)
        let fd = try newDescriptor(size: size)
        register(fd, buffer)
        op.pointee.fd = UInt32(bitPattern: fd)
        return 0
    }
}

extension Optional where Wrapped == UnsafeMutableRawPointer {
    /// The argument, or `EFAULT` for a null pointer (copy_from_user of address 0).
    func orFault() throws(Errno) -> UnsafeMutableRawPointer {
        guard let self else { throw .badAddress }
        return self
    }
}
