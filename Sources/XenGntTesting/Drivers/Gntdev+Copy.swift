internal import CXenGnt
import SystemPackage
import XenGnt

/// `IOCTL_GNTDEV_GRANT_COPY` (lab `grant-copy`): each segment copies between a grant and a
/// local address, or two grants; Xen answers each with a `GNTST_*` status.
extension GntdevFile {
    private static let sourceGref = UInt16(CXG_GNTCOPY_SOURCE_GREF)
    private static let destinationGref = UInt16(CXG_GNTCOPY_DEST_GREF)

    func grantCopy(_ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> Int32 {
        let op = try UserMemory.load(ioctl_gntdev_grant_copy.self, from: argument)
        guard op.count > 0 else { return 0 }
        guard let base = op.segments.map(UnsafeMutableRawPointer.init) else { throw .badAddress }
        let stride = MemoryLayout<ioctl_gntdev_grant_copy_segment>.stride
        // Each segment is copied in as the kernel reaches it (EFAULT past what the caller
        // mapped, whatever the count says) and checked; a refused one fails the whole ioctl.
        var segments: [(address: UnsafeMutableRawPointer, segment: ioctl_gntdev_grant_copy_segment)] = []
        for i in 0..<Int(op.count) {
            let (offset, overflow) = i.multipliedReportingOverflow(by: stride)
            let (address, wrapped) = UInt(bitPattern: base).addingReportingOverflow(UInt(offset))
            if overflow || wrapped { throw .badAddress }
            let pointer = UnsafeMutableRawPointer(bitPattern: address)
            let segment = try UserMemory.load(ioctl_gntdev_grant_copy_segment.self, from: pointer)
            try Self.check(segment)
            segments.append((pointer!, segment))
        }
        let statusOffset = MemoryLayout<ioctl_gntdev_grant_copy_segment>.offset(of: \.status)!
        for (address, segment) in segments {
            let status = try copy(segment, context)
            UserMemory.store(status.rawValue, at: address, offset: statusOffset)
        }
        return 0
    }

    /// gntdev_grant_copy_seg: local to local is refused; a grant side may not cross its page.
    private static func check(_ segment: ioctl_gntdev_grant_copy_segment) throws(Errno) {
        if segment.flags & (sourceGref | destinationGref) == 0 { throw .invalidArgument }
        if segment.flags & sourceGref != 0, Int(segment.source.foreign.offset) + Int(segment.len) > xenPageSize {
            throw .invalidArgument
        }
        if segment.flags & destinationGref != 0, Int(segment.dest.foreign.offset) + Int(segment.len) > xenPageSize {
            throw .invalidArgument
        }
    }

    private func copy(_ segment: ioctl_gntdev_grant_copy_segment, _ context: Context) throws(Errno) -> GrantStatus {
        let length = Int(segment.len)
        var from: (page: Page, offset: Int)?
        var to: (page: Page, offset: Int)?
        if segment.flags & Self.sourceGref != 0 {
            let foreign = segment.source.foreign
            switch context.hypervisor.resolveForCopy(foreign.domid, foreign.ref, by: domain, writing: false) {
            case .page(let page): from = (page, Int(foreign.offset))
            case .failed(let status): return status
            }
        }
        if segment.flags & Self.destinationGref != 0 {
            let foreign = segment.dest.foreign
            switch context.hypervisor.resolveForCopy(foreign.domid, foreign.ref, by: domain, writing: true) {
            case .page(let page): to = (page, Int(foreign.offset))
            case .failed(let status): return status
            }
        }
        guard length > 0 else { return .okay }
        // pin_user_pages of an address the caller cannot read or write: EFAULT for the whole
        // ioctl (the host's pread/pwrite answer the same for the same address).
        switch (from, to) {
        case let (from?, to?):
            to.page.write(from.page.read(at: from.offset, count: length), at: to.offset)
        case let (from?, nil):
            guard let virt = segment.dest.virt else { throw .badAddress }
            try from.page.copy(to: virt, count: length, at: from.offset)
        case let (nil, to?):
            guard let virt = segment.source.virt else { throw .badAddress }
            try to.page.copy(from: virt, count: length, at: to.offset)
        case (nil, nil):
            throw .invalidArgument
        }
        return .okay
    }
}
