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

    init(fd: Int32) {
        self.fd = fd
        SimulatorDescriptors.insert(fd)
    }

    static func create(name: String, bytes: Int) throws(Errno) -> MemoryObject {
        let object = MemoryObject(fd: try HostCalls.memfdCreate(name))
        if bytes > 0 { try object.resize(bytes) }
        return object
    }

    func resize(_ bytes: Int) throws(Errno) {
        try HostCalls.ftruncate(fd, length: Int64(bytes))
    }

    func read(at offset: Int, count: Int) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { try? HostCalls.pread(fd, into: $0.baseAddress!, count: count, at: offset) }
        return bytes
    }

    func write(_ bytes: [UInt8], at offset: Int) {
        bytes.withUnsafeBytes { try? HostCalls.pwrite(fd, from: $0.baseAddress!, count: bytes.count, at: offset) }
    }

    deinit {
        SimulatorDescriptors.remove(fd)
        try? HostCalls.close(fd)
    }
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

    /// Copies `count` bytes at `offset` of the page to a caller's address, as `copy_to_user`
    /// does: `EFAULT` when the address is not writable.
    func copy(to address: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(Errno) {
        try HostCalls.pread(memory.fd, into: address, count: count, at: byteOffset + offset)
    }

    /// Copies `count` bytes from a caller's address into the page at `offset`, as
    /// `copy_from_user` does: `EFAULT` when the address is not readable.
    func copy(from address: UnsafeRawPointer, count: Int, at offset: Int) throws(Errno) {
        try HostCalls.pwrite(memory.fd, from: address, count: count, at: byteOffset + offset)
    }
}

/// A domain's RAM: pages of one memfd, handed out and taken back (freed pages are reused,
/// zeroed).
final class DomainMemory {
    let object: MemoryObject
    private var pageCount = 0
    /// Pages the memfd has room for (it grows sparsely, by doubling).
    private var capacity = 0
    private var freePages: [Int] = []

    init(domain: UInt16) throws(Errno) {
        object = try MemoryObject.create(name: "xengnt-sim-dom\(domain)", bytes: 0)
    }

    func allocatePage() throws(Errno) -> Page {
        if let index = freePages.popLast() {
            let page = Page(memory: object, index: index)
            page.write([UInt8](repeating: 0, count: xenPageSize), at: 0)
            return page
        }
        if pageCount == capacity {
            let grown = max(64, capacity * 2)
            try object.resize(grown * xenPageSize)
            capacity = grown
        }
        pageCount += 1
        return Page(memory: object, index: pageCount - 1)
    }

    func free(_ page: Page) {
        if page.memory === object { freePages.append(page.index) }
    }
}

/// Maps `pages` contiguously into this process, each page over its memory object with
/// `MAP_FIXED | MAP_SHARED` (runs of consecutive pages of one object in one call).
func mapPages(_ pages: [Page], protection: Int32) throws(Errno) -> UnsafeMutableRawPointer {
    let length = pages.count * xenPageSize
    let base = try HostCalls.reserve(length: length)
    var start = 0
    while start < pages.count {
        var end = start + 1
        while end < pages.count, pages[end].memory === pages[start].memory, pages[end].index == pages[end - 1].index + 1 {
            end += 1
        }
        do throws(Errno) {
            try HostCalls.mapShared(
                at: base + start * xenPageSize,
                length: (end - start) * xenPageSize,
                protection: protection,
                fd: pages[start].memory.fd,
                offset: pages[start].byteOffset
            )
        } catch {
            try? HostCalls.munmap(base, length: length)
            throw error
        }
        start = end
    }
    return base
}
