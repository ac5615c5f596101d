internal import CXenGnt
import SystemPackage
import XenGnt

/// An exported dma-buf as its gntdev file lists it: by the descriptor number it was first
/// given (the kernel's wait-released looks it up by number).
struct ExportRecord {
    let fdNumber: Int32
    /// Weak: the buffer lives while its descriptors, mappings or importers hold it; once it
    /// is released it leaves the list.
    weak var buffer: DmaBufFile?
}

/// An imported dma-buf (`struct gntdev_dmabuf` of an import): the grants made for its pages.
final class ImportRecord {
    let fdNumber: Int32
    let buffer: DmaBufFile
    let refs: [UInt32]

    init(fdNumber: Int32, buffer: DmaBufFile, refs: [UInt32]) {
        self.fdNumber = fdNumber
        self.buffer = buffer
        self.refs = refs
    }
}

/// The gntdev dma-buf ioctls (Linux 6.1 `drivers/xen/gntdev-dmabuf.c`, `CONFIG_XEN_GNTDEV_DMABUF`).
extension GntdevFile {
    func exportFromRefs(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        // Lab case `export-refused-pv`: a PV domain (use_ptemod) refuses every export.
        if domain.type == .pv { throw .invalidArgument }
        let op = try UserMemory.load(ioctl_gntdev_dmabuf_exp_from_refs.self, from: argument)
        try checkCount(op.count, context)
        // Lab case `export-bad-input`: both DMA flags are refused; an undefined bit is silently
        // ignored.
        let wc = UInt32(GNTDEV_DMA_FLAG_WC)
        let coherent = UInt32(GNTDEV_DMA_FLAG_COHERENT)
        if op.flags & wc != 0, op.flags & coherent != 0 { throw .invalidArgument }
        // An x86 PVH/HVM kernel without the lab's patch maps exports with GNTMAP_device_map,
        // which Xen refuses for auto-translated guests: every export fails
        // (Documentation/Lab.md, "The kernel patch").
        if domain.type != .arm, !context.configuration.x86ExportFix { throw .invalidArgument }
        let refs = try UserMemory.array(
            of: UInt32.self,
            at: argument!,
            offset: MemoryLayout<ioctl_gntdev_dmabuf_exp_from_refs>.offset(of: \.refs)!,
            count: Int(op.count)
        )
        let grants = refs.map { (domid: op.domid, ref: $0) }
        // Export always maps writable (lab `export-read-only-grant`).
        guard let mapped = context.hypervisor.map(grants, by: domain, writable: true) else { throw .invalidArgument }
        let buffer = DmaBufFile(kernel: kernel, pages: mapped.map(\.page), exporter: .gntdev(self, maps: mapped))
        let fd: Int32
        do throws(Errno) {
            fd = try context.machine.newDescriptor(size: buffer.size)
        } catch {
            context.hypervisor.unmap(mapped)
            throw error
        }
        context.install(fd, buffer)
        // The export holds its gntdev file open.
        hold()
        exports.insert(ExportRecord(fdNumber: fd, buffer: buffer), at: 0)
        UserMemory.store(
            UInt32(bitPattern: fd),
            at: argument,
            offset: MemoryLayout<ioctl_gntdev_dmabuf_exp_from_refs>.offset(of: \.fd)!
        )
        return 0
    }

    func waitReleased(_ argument: UnsafeMutableRawPointer?) throws(Errno) -> IoctlOutcome {
        let op = try UserMemory.load(ioctl_gntdev_dmabuf_exp_wait_released.self, from: argument)
        // The kernel searches this file's exports by the number recorded at export, newest
        // first; a released buffer has left the list (lab `wait-released-enoent`: ENOENT
        // after release, for an unknown number, or on another gntdev file).
        guard let buffer = exports.first(where: { $0.fdNumber == Int32(bitPattern: op.fd) })?.buffer, !buffer.isReleased else {
            throw .noSuchFileOrDirectory
        }
        return .waitForRelease(buffer, milliseconds: op.wait_to_ms)
    }

    /// The export `buffer` was released (its last reference went).
    func exportReleased(_ buffer: DmaBufFile, _ machine: Machine) {
        exports.removeAll { $0.buffer == nil || $0.buffer === buffer }
        drop(machine)
    }

    func importToRefs(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_dmabuf_imp_to_refs.self, from: argument)
        try checkCount(op.count, context)
        let fd = Int32(bitPattern: op.fd)
        // dma_buf_get: EBADF for a closed descriptor, EINVAL for one that is not a dma-buf
        // (lab `import-bad-input`).
        let buffer: DmaBufFile
        switch context.lookup(fd) {
        case .file(let file as DmaBufFile): buffer = file
        case .file: throw .invalidArgument
        case .foreign: throw .badFileDescriptor
        case .host: throw HostCalls.isOpen(fd) ? .invalidArgument : .badFileDescriptor
        }
        // Lab `import-bad-input`: the count must match the buffer.
        if buffer.size != Int(op.count) * xenPageSize { throw .invalidArgument }
        let out = try UserMemory.array(
            of: UInt32.self,
            at: argument!,
            offset: MemoryLayout<ioctl_gntdev_dmabuf_imp_to_refs>.offset(of: \.refs)!,
            count: Int(op.count)
        )
        // The domid is not checked (lab `import-bad-input`); gnttab takes a domid_t. A full
        // grant table is ENOSPC (dmabuf_imp_grant_foreign_access).
        let grantee = UInt16(truncatingIfNeeded: op.domid)
        guard domain.grantTable.available >= buffer.pages.count else { throw .noSpace }
        var refs: [UInt32] = []
        refs.reserveCapacity(buffer.pages.count)
        for page in buffer.pages {
            do throws(Errno) {
                refs.append(try domain.grantTable.grant(page, to: grantee, readOnly: false, ownsPage: false).ref)
            } catch {
                for ref in refs { context.hypervisor.endAccess(ref, of: domain) }
                throw error
            }
        }
        for (i, ref) in refs.enumerated() { out[i] = ref }
        buffer.hold()
        imports.insert(ImportRecord(fdNumber: fd, buffer: buffer, refs: refs), at: 0)
        return 0
    }

    func importRelease(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_dmabuf_imp_release.self, from: argument)
        // Lab `import-bad-input`: ENOENT once it is gone. Release while the peer maps the
        // pages succeeds; the end of access is deferred (lab `import-release-while-mapped`).
        guard let position = imports.firstIndex(where: { $0.fdNumber == Int32(bitPattern: op.fd) }) else {
            throw .noSuchFileOrDirectory
        }
        endImport(imports.remove(at: position), context.machine)
        return 0
    }

    func endImport(_ record: ImportRecord, _ machine: Machine) {
        for ref in record.refs { machine.hypervisor.endAccess(ref, of: domain) }
        record.buffer.drop(machine)
    }
}
