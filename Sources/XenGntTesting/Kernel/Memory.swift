internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// A memfd the simulator owns: a simulated domain's RAM, or the backing of a dma-buf. Pages of
/// it are mapped with `MAP_SHARED` wherever the simulated kernel would map the page, so every
/// mapping aliases the same bytes (zero copy is observable).
final class MemoryObject: @unchecked Sendable {
    let fd: Int32

    init(fd: Int32) { self.fd = fd }

    static func create(name: String, bytes: Int) throws(Errno) -> MemoryObject {
        let fd = cxg_memfd_create(name, UInt32(CXG_MFD_CLOEXEC))
        if fd < 0 { throw Errno(rawValue: errno) }
        let object = MemoryObject(fd: fd)
        if bytes > 0 { try object.resize(bytes) }
        return object
    }

    func resize(_ bytes: Int) throws(Errno) {
        if Glibc.ftruncate(fd, off_t(bytes)) < 0 { throw Errno(rawValue: errno) }
    }

    func read(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        _ = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
        return bytes
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        _ = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, bytes.count, off_t(offset)) }
    }

    func copy(from address: UnsafeRawPointer, count: Int, at offset: Int) {
        _ = pwrite(fd, address, count, off_t(offset))
    }

    func copy(to address: UnsafeMutableRawPointer, count: Int, at offset: Int) {
        _ = pread(fd, address, count, off_t(offset))
    }

    deinit { Glibc.close(fd) }
}

/// One 4 KiB page of a memory object.
struct Page {
    let memory: MemoryObject
    let index: Int

    var byteOffset: Int { index * xenPageSize }

    func read(at offset: Int = 0, count: Int = xenPageSize) -> [UInt8] {
        memory.read(at: byteOffset + offset, count: count)
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        memory.write(bytes, at: byteOffset + offset)
    }
}

/// Maps `pages` contiguously into this process, each page over its memory object with
/// `MAP_FIXED | MAP_SHARED` (runs of consecutive pages of one object in one call).
func mapPages(_ pages: [Page], protection: Int32) throws(Errno) -> UnsafeMutableRawPointer {
    let length = pages.count * xenPageSize
    guard let base = Glibc.mmap(nil, length, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), base != MAP_FAILED else {
        throw Errno(rawValue: errno)
    }
    var start = 0
    while start < pages.count {
        var end = start + 1
        while end < pages.count, pages[end].memory === pages[start].memory, pages[end].index == pages[end - 1].index + 1 {
            end += 1
        }
        let address = Glibc.mmap(base + start * xenPageSize, (end - start) * xenPageSize, protection,
                                 MAP_FIXED | MAP_SHARED, pages[start].memory.fd, off_t(pages[start].byteOffset))
        if address == MAP_FAILED {
            let failure = Errno(rawValue: errno)
            Glibc.munmap(base, length)
            throw failure
        }
        start = end
    }
    return base
}

/// Whether `[address, address + count)` is mapped memory of this process.
func isAccessible(_ address: UnsafeRawPointer, count: Int) -> Bool {
    let page = UInt(bitPattern: address) & ~UInt(xenPageSize - 1)
    let end = UInt(bitPattern: address) + UInt(max(count, 1))
    let pages = Int((end - page + UInt(xenPageSize) - 1) / UInt(xenPageSize))
    var vector = [UInt8](repeating: 0, count: pages)
    return vector.withUnsafeMutableBufferPointer { mincore(UnsafeMutableRawPointer(bitPattern: page), pages * xenPageSize, $0.baseAddress) } == 0
}
