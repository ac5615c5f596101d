import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// x86-64's `TASK_SIZE` (4-level paging): no mapping can be longer.
private let taskSize: UInt = (1 << 47) - UInt(xenPageSize)

/// The memory calls of a simulated process (Linux's mm layer): `do_mmap`'s generic checks,
/// then the driver's `mmap`; `munmap` closes the mapping (the driver's `vm_ops->close`).
extension Context {
    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        let file = flags & MAP_ANONYMOUS != 0 ? nil : try self.file(fd)
        guard let file, !file.isHostBacked else {
            // A host mapping (anonymous, a memfd, a descriptor the test handed over): the host
            // maps it; the process keeps count so that kill unmaps it.
            let address = try HostCalls.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
            record(MappedArea(address: address, length: (length + xenPageSize - 1) & ~(xenPageSize - 1)), of: file)
            return address
        }
        guard length > 0 else { throw .invalidArgument }
        guard offset & Int64(xenPageSize - 1) == 0 else { throw .invalidArgument }
        let (rounded, overflow) = UInt(length).addingReportingOverflow(UInt(xenPageSize - 1))
        guard !overflow, rounded & ~UInt(xenPageSize - 1) <= taskSize else { throw .noMemory }
        let pages = Int(rounded / UInt(xenPageSize))
        let pageOffset = UInt64(bitPattern: offset) >> 12
        guard !pageOffset.addingReportingOverflow(UInt64(pages)).overflow else { throw .overflow }
        guard flags & MAP_SHARED != 0 || flags & MAP_PRIVATE != 0 else { throw .invalidArgument }
        let mapped = try file.mmap(MmapRequest(pages: pages, pageOffset: pageOffset, protection: protection, flags: flags), self)
        record(mapped, of: file)
        return mapped.address
    }

    private func record(_ mapped: MappedArea, of file: OpenFile?) {
        let area = VMArea(start: mapped.address, length: mapped.length, process: process, file: file, data: mapped.data)
        let key = UInt(bitPattern: mapped.address)
        machine.areas[key] = area
        process.areas.insert(key)
        file?.hold()
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        let key = UInt(bitPattern: address)
        if let area = machine.areas[key], area.process === process {
            guard length > 0 else { throw .invalidArgument }
            try HostCalls.munmap(area.start, length: area.length)
            machine.close(area)
            return
        }
        let touched = machine.areas.values.filter { $0.overlaps(key, length) }
        // Part of a mapping of this process: the simulator does not split mappings.
        if touched.contains(where: { $0.process === process }) { throw .invalidArgument }
        // Another process's memory: nothing of this process is there.
        if !touched.isEmpty { return }
        try HostCalls.munmap(address, length: length)
    }
}
