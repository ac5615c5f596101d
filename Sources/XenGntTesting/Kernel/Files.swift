internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension SimKernel {
    func open(_ path: String, flags: Int32, in domain: SimDomain) throws(Errno) -> Int32 {
        let file: SimFile
        switch path {
        case Paths.gntdev:
            guard configuration.devices.contains(.gntdev) else { throw .noSuchFileOrDirectory }
            file = GntdevFile(domain: domain)
        case Paths.gntalloc:
            guard configuration.devices.contains(.gntalloc) else { throw .noSuchFileOrDirectory }
            file = GntallocFile(domain: domain)
        case Paths.udmabuf:
            guard configuration.devices.contains(.udmabuf) else { throw .noSuchFileOrDirectory }
            file = PlainFile(domain: domain, kind: .udmabufDevice)
        case Paths.dmaHeaps + "system":
            guard configuration.devices.contains(.dmaHeap) else { throw .noSuchFileOrDirectory }
            file = PlainFile(domain: domain, kind: .dmaHeap)
        case Paths.devNull:
            let fd = try HostCalls.open(path, flags: flags)
            register(fd, PlainFile(domain: domain, kind: .devNull))
            return fd
        default:
            throw .noSuchFileOrDirectory
        }
        let fd = try newDescriptor()
        register(fd, file)
        return fd
    }

    func close(_ fd: Int32, in domain: SimDomain) throws(Errno) {
        if files[fd] != nil, file(fd, in: domain) == nil { throw .badFileDescriptor }
        try HostCalls.close(fd)
        unregister(fd)
    }

    func dup(_ fd: Int32, in domain: SimDomain) throws(Errno) -> Int32 {
        if files[fd] != nil, file(fd, in: domain) == nil { throw .badFileDescriptor }
        let copy = try HostCalls.dup(fd)
        if let file = files[fd] { register(copy, file) }
        return copy
    }

    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32, in domain: SimDomain) throws(Errno) {
        if files[oldFD] != nil, file(oldFD, in: domain) == nil { throw .badFileDescriptor }
        try HostCalls.dup3(oldFD, newFD, flags: flags)
        // The number now names the old descriptor's file; what it named loses a reference.
        unregister(newFD)
        if let file = files[oldFD] { register(newFD, file) }
    }

    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64, in domain: SimDomain) throws(Errno) -> UnsafeMutableRawPointer {
        guard let file = file(fd, in: domain) else {
            if files[fd] != nil { throw .badFileDescriptor }
            return try HostCalls.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
        }
        guard length > 0, offset >= 0, offset % Int64(xenPageSize) == 0 else { throw .invalidArgument }
        let pages = (length + xenPageSize - 1) / xenPageSize
        let shared = flags & MAP_SHARED != 0
        let writable = protection & PROT_WRITE != 0
        let region: Region
        let address: UnsafeMutableRawPointer
        switch file {
        case let gntdev as GntdevFile:
            // gntdev_mmap: writable maps must be shared; offset and length must name one map
            // exactly; each map is mmapped once (lab `map-mmap-twice`); Xen checks the grants
            // here, so a bad ref fails the mmap, not the ioctl (lab `map-bad-refs`).
            if writable && !shared { throw .invalidArgument }
            let index = UInt64(offset) >> 12
            guard let map = gntdev.maps.first(where: { $0.index == index && $0.count == pages }), !map.inUse else {
                throw .invalidArgument
            }
            map.inUse = true
            if let readOnly = map.readOnly {
                if writable && readOnly { throw .invalidArgument }
            } else {
                map.readOnly = !writable
            }
            guard let mapped = mapGrants(map.grants, by: domain, writable: writable) else { throw .invalidArgument }
            do throws(Errno) {
                address = try mapPages(mapped.map(\.entry.page), protection: protection)
            } catch {
                unmap(mapped)
                throw error
            }
            map.mapped = mapped
            map.vmaLive = true
            region = Region(length: pages * xenPageSize, file: gntdev, kind: .gntdev(map))
        case let gntalloc as GntallocFile:
            // gntalloc_mmap: must be shared; ENOENT when the range is not this file's pages.
            if !shared { throw .invalidArgument }
            guard let run = findGrefs(gntalloc, index: UInt64(offset), count: pages) else { throw .noSuchFileOrDirectory }
            let grefs = Array(run)
            address = try mapPages(grefs.map(\.page), protection: protection)
            for gref in grefs { gref.users += 1 }
            region = Region(length: pages * xenPageSize, file: gntalloc, kind: .gntalloc(grefs))
        case let buffer as DmaBufFile:
            // The gntdev exporter has no mmap (lab `export-balloon`).
            if case .gntdevExport = buffer.origin { throw .invalidArgument }
            if !shared { throw .invalidArgument }
            let first = Int(offset) / xenPageSize
            guard first + pages <= buffer.pages.count else { throw .invalidArgument }
            address = try mapPages(Array(buffer.pages[first..<(first + pages)]), protection: protection)
            region = Region(length: pages * xenPageSize, file: buffer, kind: .dmaBuf)
        default:
            throw .noDevice
        }
        file.references += 1
        regions[UInt(bitPattern: address)] = region
        return address
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int, in domain: SimDomain) throws(Errno) {
        guard let region = regions[UInt(bitPattern: address)], region.file.domain === domain else {
            try HostCalls.munmap(address, length: length)
            return
        }
        try HostCalls.munmap(address, length: region.length)
        regions[UInt(bitPattern: address)] = nil
        switch region.kind {
        case .gntdev(let map):
            map.vmaLive = false
            if let gntdev = region.file as? GntdevFile {
                if domain.type == .pv, let mapped = map.mapped {
                    // PV (use_ptemod): the grants are unmapped with the page tables, at munmap.
                    if map.notifyFlags & UInt32(UNMAP_NOTIFY_CLEAR_BYTE) != 0, map.notifyOffset / xenPageSize < mapped.count {
                        mapped[map.notifyOffset / xenPageSize].entry.page.write([0], at: map.notifyOffset % xenPageSize)
                        map.notifyFlags &= ~UInt32(UNMAP_NOTIFY_CLEAR_BYTE)
                    }
                    unmap(mapped)
                    map.mapped = nil
                }
                put(map, in: gntdev)
            }
        case .gntalloc(let grefs):
            for gref in grefs {
                gref.users -= 1
                if gref.users == 0 { delete(gref, of: region.file.domain) }
            }
        case .dmaBuf:
            break
        }
        drop(region.file)
    }

    func lseek(_ fd: Int32, offset: Int64, whence: Int32, in domain: SimDomain) throws(Errno) -> Int64 {
        if let buffer = file(fd, in: domain) as? DmaBufFile {
            // dma_buf_llseek: only SEEK_END or SEEK_SET, offset 0.
            guard offset == 0 else { throw .invalidArgument }
            switch whence {
            case SEEK_END: return Int64(buffer.size)
            case SEEK_SET: return 0
            default: throw .invalidArgument
            }
        }
        if files[fd] != nil, file(fd, in: domain) == nil { throw .badFileDescriptor }
        return try HostCalls.lseek(fd, offset: offset, whence: whence)
    }

    func readSmallFile(_ path: String, in domain: SimDomain) throws(Errno) -> String {
        switch path {
        case Paths.hypervisorType:
            return "xen\n"
        case Paths.guestType:
            // Arm guests are HVM domains to Linux (xen_domain_type).
            return (domain.type == .arm ? "HVM" : domain.type.rawValue) + "\n"
        case Paths.gntdevLimit:
            guard configuration.devices.contains(.gntdev) else { throw .noSuchFileOrDirectory }
            return "\(configuration.gntdevLimit)\n"
        case Paths.gntallocLimit:
            guard configuration.devices.contains(.gntalloc) else { throw .noSuchFileOrDirectory }
            return "\(configuration.gntallocLimit)\n"
        default:
            throw .noSuchFileOrDirectory
        }
    }
}
