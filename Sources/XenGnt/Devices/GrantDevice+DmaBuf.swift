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
    /// The kernel refuses export in x86 PV domains (``XenGntError/Code/exportRefusedInPV``);
    /// use ``importDmaBuf(_:to:pageCount:)`` there instead. A rejected export in an x86 PVH/HVM
    /// domain is reported as ``XenGntError/Code/exportRejected``: a bad reference, or a kernel
    /// that maps exports with `GNTMAP_device_map`.
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
        try refuseOwnGrants(domain, for: .exportDmaBuf)
        let count = refs.count
        return try exportDmaBuf(count: count, domain: domain, allocation: allocation) { buffer throws(XenGntError) in
            // One copy, straight into the ioctl argument; never past it, and never fewer or more
            // than the collection claims.
            if let copied = refs.withContiguousStorageIfAvailable({ source -> Int in
                let n = min(source.count, buffer.count)
                if n > 0 { buffer.baseAddress!.initialize(from: source.baseAddress!, count: n) }
                return source.count
            }) {
                if copied != count { throw XenGntError(.countMismatch, .exportDmaBuf, count: count, actualCount: copied) }
                return
            }
            var i = 0
            var iterator = refs.makeIterator()
            while i < buffer.count, let ref = iterator.next() {
                buffer[i] = ref
                i += 1
            }
            try checkYield(claimed: count, filled: i, rest: &iterator, for: .exportDmaBuf)
        }
    }

    @usableFromInline
    func exportDmaBuf(
        count: Int,
        domain: DomainID,
        allocation: DmaBufAllocation,
        fill: (UnsafeMutableBufferPointer<GrantRef>) throws(XenGntError) -> Void
    ) throws(XenGntError) -> ExportedDmaBuf {
        try validate(count: count, for: .exportDmaBuf)
        handle.retryParked()
        handle.sweepLingering()
        let size = cxg_exp_from_refs_size(UInt32(count))
        let fd: Int32 = try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self)
            argument.pointee.flags = allocation.flags
            argument.pointee.count = UInt32(count)
            argument.pointee.domid = UInt32(domain.rawValue)
            let refs = UnsafeMutableRawPointer(cxg_exp_from_refs_refs(argument)!)
            try fill(UnsafeMutableBufferPointer(start: refs.bindMemory(to: GrantRef.self, capacity: count), count: count))
            do throws(Errno) {
                _ = try handle.ioctl(Request.expFromRefs, raw)
            } catch {
                throw exportError(error, count: count, domain: domain, allocation: allocation)
            }
            return Int32(bitPattern: argument.pointee.fd)
        }
        return ExportedDmaBuf(handle: handle, fd: fd, pageCount: count, domain: domain)
    }

    func exportError(_ errno: Errno, count: Int, domain: DomainID, allocation: DmaBufAllocation) -> XenGntError {
        var limit: Int?
        let code: XenGntError.Code
        switch errno {
        case .inappropriateIOCTLForDevice:
            code = .dmaBufUnsupported
        case .invalidArgument where guestType == .pv:
            code = .exportRefusedInPV
        case .invalidArgument:
            (code, limit) = limitOr(.exportRejected, count: count)
        case .noMemory:
            code = .outOfMemory
        default:
            code = .kernel
        }
        return XenGntError(
            code,
            .exportDmaBuf,
            call: Call.expFromRefs,
            errno: errno,
            count: count,
            limit: limit,
            domain: domain,
            guestType: guestType,
            allocation: allocation
        )
    }

    /// Grants `domain` access to the pages of a local dma-buf (from udmabuf, a DMA heap, a DRM
    /// dumb buffer) and returns the grant references to send it. This is the zero-copy path that
    /// works in every guest type, PV Dom0 included.
    ///
    /// The import takes the buffer and hands it back from ``DmaBufImport/release()``: the
    /// kernel names an import by its descriptor number, so the number must stay this buffer's
    /// until the import is released. That costs no system call beyond the import itself. If
    /// the import fails, the buffer is closed; to keep it, import a ``DmaBuf/duplicate()``, or
    /// use ``importDmaBuf(fileDescriptor:to:pageCount:)``. Access is always writable (the kernel
    /// grants no read-only imports).
    ///
    /// - Parameters:
    ///   - buffer: the dma-buf to share.
    ///   - domain: the domain to grant access to. The kernel does not check that it exists.
    ///   - pageCount: the page count the peer expects; `nil` takes the buffer's size (known for
    ///     buffers XenGnt allocated, else read with `lseek`). A count the kernel refuses is
    ///     explained by reading the buffer's size then.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`.
    public func importDmaBuf(
        _ buffer: consuming DmaBuf,
        to domain: DomainID,
        pageCount: Int? = nil
    ) throws(XenGntError) -> DmaBufImport {
        try domain.validate(for: .importDmaBuf)
        let pages: Int
        if let pageCount {
            pages = pageCount
        } else {
            let bytes: Int
            if let known = buffer.knownSize {
                bytes = known
            } else {
                bytes = try DmaBuf.size(of: buffer.fd, calls: handle.calls, operation: .importDmaBuf)
            }
            guard bytes % xenPageSize == 0 else {
                throw XenGntError(.pageCountMismatch, .importDmaBuf, count: bytes / xenPageSize, length: bytes)
            }
            pages = bytes / xenPageSize
        }
        try validate(count: pages, for: .importDmaBuf)
        let refs = try importToRefs(buffer.fd, pages: pages, domain: domain)
        return DmaBufImport(handle: handle, buffer: buffer, refs: refs, domain: domain)
    }

    /// Grants `domain` access to the pages of the dma-buf behind `fileDescriptor`, which stays
    /// the caller's.
    ///
    /// XenGnt imports its own duplicate of the descriptor (a `dup`, and a `close` at release):
    /// the kernel names the import by descriptor number, and the caller may close its own. To
    /// avoid those two system calls, hand a ``DmaBuf`` to ``importDmaBuf(_:to:pageCount:)``.
    ///
    /// The corresponding ioctl is `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS`.
    public func importDmaBuf(
        fileDescriptor: FileDescriptor,
        to domain: DomainID,
        pageCount: Int? = nil
    ) throws(XenGntError) -> DmaBufImport {
        try domain.validate(for: .importDmaBuf)
        if let pageCount { try validate(count: pageCount, for: .importDmaBuf) }
        let duplicate: DmaBuf
        do throws(Errno) {
            duplicate = DmaBuf(fd: try handle.calls.dup(fileDescriptor.rawValue), calls: handle.calls)
        } catch {
            throw XenGntError(
                error == .badFileDescriptor ? .badFileDescriptor : .kernel,
                .importDmaBuf,
                call: Call.dup,
                errno: error
            )
        }
        return try importDmaBuf(duplicate, to: domain, pageCount: pageCount)
    }

    /// Issues `IOCTL_GNTDEV_DMABUF_IMP_TO_REFS` for the buffer behind `fd`.
    private func importToRefs(_ fd: Int32, pages: Int, domain: DomainID) throws(XenGntError) -> [GrantRef] {
        handle.retryParked()
        let size = cxg_imp_to_refs_size(UInt32(pages))
        return try handle.withArgument(bytes: size) { raw throws(XenGntError) in
            let argument = raw.assumingMemoryBound(to: ioctl_gntdev_dmabuf_imp_to_refs.self)
            argument.pointee.fd = UInt32(bitPattern: fd)
            argument.pointee.count = UInt32(pages)
            argument.pointee.domid = UInt32(domain.rawValue)
            argument.pointee.reserved = 0
            do throws(Errno) {
                _ = try handle.ioctl(Request.impToRefs, raw)
            } catch {
                throw importError(error, fd: fd, pages: pages, domain: domain)
            }
            let out = UnsafeRawPointer(cxg_imp_to_refs_refs(argument)!).assumingMemoryBound(to: GrantRef.self)
            return Array(UnsafeBufferPointer(start: out, count: pages))
        }
    }

    /// Explains a refused import. `EINVAL` has three causes, told apart only now: a count over
    /// the per-call limit, a count that does not match the buffer, or not a dma-buf at all.
    private func importError(_ errno: Errno, fd: Int32, pages: Int, domain: DomainID) -> XenGntError {
        switch errno {
        case .inappropriateIOCTLForDevice:
            return XenGntError(.dmaBufUnsupported, .importDmaBuf, call: Call.impToRefs, errno: errno)
        case .badFileDescriptor:
            return XenGntError(.badFileDescriptor, .importDmaBuf, call: Call.impToRefs, errno: errno)
        case .noSpace:
            return XenGntError(.grantTableFull, .importDmaBuf, call: Call.impToRefs, errno: errno, count: pages)
        case .noMemory:
            return XenGntError(.outOfMemory, .importDmaBuf, call: Call.impToRefs, errno: errno, count: pages)
        case .invalidArgument:
            let (code, limit) = limitOr(.notADmaBuf, count: pages)
            if code == .tooManyPages {
                return XenGntError(code, .importDmaBuf, call: Call.impToRefs, errno: errno, count: pages, limit: limit)
            }
            let sizeOfBuffer = { () throws(Errno) in try self.handle.calls.lseek(fd, offset: 0, whence: SEEK_END) }
            if let bytes = try? retryingOnInterrupt(sizeOfBuffer), bytes != Int64(pages) * Int64(xenPageSize) {
                return XenGntError(
                    .pageCountMismatch,
                    .importDmaBuf,
                    call: Call.impToRefs,
                    errno: errno,
                    count: pages,
                    length: Int(bytes)
                )
            }
            return XenGntError(.notADmaBuf, .importDmaBuf, call: Call.impToRefs, errno: errno)
        default:
            return XenGntError(.kernel, .importDmaBuf, call: Call.impToRefs, errno: errno, domain: domain)
        }
    }
}
