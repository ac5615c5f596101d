internal import CXenGnt
public import SystemPackage

#if canImport(Glibc)
import Glibc
#endif

extension GrantDevice {
    /// Turns pages `domain` granted to this domain into a dma-buf that a DRM/KMS, V4L2 or GPU
    /// driver can import directly (zero copy).
    ///
    /// Export or map a buffer once and keep it for the buffer's life: the kernel maps every page
    /// through Xen, which costs tens of milliseconds for a 1080p frame.
    ///
    /// The kernel refuses export in x86 PV domains (``XenGntError/Cause/exportRefusedInPV``);
    /// use ``importDmaBuf(_:to:pageCount:)`` there instead. A rejected export in an x86 PVH/HVM
    /// domain is reported as ``XenGntError/Cause/exportRejected(guest:)``: a bad reference, or a
    /// kernel that maps exports with `GNTMAP_device_map`.
    ///
    /// - Parameters:
    ///   - refs: one grant reference per page, in buffer order; all from `domain`.
    ///   - domain: the granting (frontend) domain.
    ///   - allocation: where the backing pages come from: the balloon, or contiguous DMA memory.
    /// - Returns: the exported buffer, which owns the dma-buf descriptor.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS`.
    @inlinable
    public func exportDmaBuf(
        refs: some Collection<GrantRef>,
        from domain: DomainID,
        allocation: DmaBufAllocation = .balloon
    ) throws(XenGntError) -> ExportedDmaBuf {
        try domain.validate(for: .exportDmaBuf)
        return try exportDmaBuf(count: refs.count, domain: domain, flags: allocation.flags) { buffer in
            // One copy, straight into the ioctl argument; never past it, whatever the collection
            // claims its count is.
            if let copied = refs.withContiguousStorageIfAvailable({ source in
                let count = min(source.count, buffer.count)
                if count > 0 { buffer.baseAddress!.initialize(from: source.baseAddress!, count: count) }
            }) {
                return copied
            }
            var i = 0
            for ref in refs where i < buffer.count {
                buffer[i] = ref
                i += 1
            }
        }
    }

    @usableFromInline
    func exportDmaBuf(
        count: Int,
        domain: DomainID,
        flags: UInt32,
        fill: (UnsafeMutableBufferPointer<GrantRef>) -> Void
    ) throws(XenGntError) -> ExportedDmaBuf {
        try validate(count: count, for: .exportDmaBuf)
        handle.sweepLingering()
        let size = cxg_exp_from_refs_size(UInt32(count))
        let fd: Int32 = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self)
            argument.pointee.flags = flags
            argument.pointee.count = UInt32(count)
            argument.pointee.domid = UInt32(domain.rawValue)
            let refs = UnsafeMutableRawPointer(cxg_exp_from_refs_refs(argument)!)
            fill(UnsafeMutableBufferPointer(start: refs.bindMemory(to: GrantRef.self, capacity: count), count: count))
            do throws(Errno) {
                _ = try handle.ioctl(Request.expFromRefs, raw)
            } catch {
                throw XenGntError(.exportDmaBuf, errno: error, cause: exportCause(error))
            }
            return Int32(bitPattern: argument.pointee.fd)
        }
        return ExportedDmaBuf(handle: handle, fd: fd, pageCount: count, domain: domain)
    }

    func exportCause(_ errno: Errno) -> XenGntError.Cause {
        switch errno {
        case .inappropriateIOCTLForDevice: .dmaBufUnsupported
        case .invalidArgument: guestType == .pv ? .exportRefusedInPV : .exportRejected(guest: guestType)
        case .noMemory: .outOfMemory
        default: .kernel
        }
    }

    /// Grants `domain` access to the pages of a local dma-buf (from udmabuf, a DMA heap, a DRM
    /// dumb buffer) and returns the grant references to send it. This is the zero-copy path that
    /// works in every guest type, PV Dom0 included.
    ///
    /// XenGnt keeps its own duplicate of the descriptor until the import is released: the
    /// kernel names imports by descriptor number, so the number must stay reserved. `buffer`
    /// stays yours. Access is always writable (the kernel grants no read-only imports).
    ///
    /// - Parameters:
    ///   - buffer: the dma-buf to share.
    ///   - domain: the domain to grant access to. The kernel does not check that it exists.
    ///   - pageCount: the page count the peer expects; checked against the buffer's size before
    ///     the kernel sees it. `nil` takes the buffer's size.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`.
    public func importDmaBuf(_ buffer: borrowing DmaBuf, to domain: DomainID, pageCount: Int? = nil) throws(XenGntError) -> DmaBufImport {
        try importDmaBuf(fileDescriptor: buffer.fileDescriptor, to: domain, pageCount: pageCount)
    }

    /// Grants `domain` access to the pages of the dma-buf behind `fileDescriptor`, which stays
    /// the caller's (XenGnt imports a duplicate of it).
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`.
    public func importDmaBuf(fileDescriptor: FileDescriptor, to domain: DomainID, pageCount: Int? = nil) throws(XenGntError) -> DmaBufImport {
        try domain.validate(for: .importDmaBuf)
        let bytes = try DmaBuf.size(of: fileDescriptor.rawValue, calls: handle.calls, operation: .importDmaBuf)
        let pages = bytes / xenPageSize
        if bytes % xenPageSize != 0 || (pageCount != nil && pageCount != pages) {
            throw XenGntError(.importDmaBuf, cause: .pageCountMismatch(pages: pageCount ?? pages, bufferBytes: bytes))
        }
        try validate(count: pages, for: .importDmaBuf)
        let number: Int32
        do throws(Errno) {
            number = try handle.calls.dup(fileDescriptor.rawValue)
        } catch {
            throw XenGntError(.duplicate, errno: error, cause: error == .badFileDescriptor ? .badFileDescriptor : .kernel)
        }
        let size = cxg_imp_to_refs_size(UInt32(pages))
        do throws(XenGntError) {
            let refs: [GrantRef] = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
                let argument = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
                argument.pointee.fd = UInt32(bitPattern: number)
                argument.pointee.count = UInt32(pages)
                argument.pointee.domid = UInt32(domain.rawValue)
                argument.pointee.reserved = 0
                do throws(Errno) {
                    _ = try handle.ioctl(Request.impToRefs, raw)
                } catch {
                    throw XenGntError(.importDmaBuf, errno: error, cause: importCause(error))
                }
                let out = UnsafeRawPointer(cxg_imp_to_refs_refs(argument)!).assumingMemoryBound(to: GrantRef.self)
                return Array(UnsafeBufferPointer(start: out, count: pages))
            }
            return DmaBufImport(handle: handle, fd: number, refs: refs, domain: domain)
        } catch {
            try? handle.calls.close(number)
            throw error
        }
    }

    func importCause(_ errno: Errno) -> XenGntError.Cause {
        switch errno {
        case .inappropriateIOCTLForDevice: .dmaBufUnsupported
        case .invalidArgument: .notADmaBuf
        case .badFileDescriptor: .badFileDescriptor
        case .noSpace: .grantTableFull
        case .noMemory: .outOfMemory
        default: .kernel
        }
    }
}
