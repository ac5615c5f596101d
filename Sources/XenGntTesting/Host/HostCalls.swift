internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// Every call the simulator makes to the real kernel it runs on: the memfds that hold simulated
/// memory, the eventfds and memfds that stand for simulated descriptors, the mappings that alias
/// simulated pages, and the host side of the I/O calls. This is the only file of XenGntTesting
/// that calls libc, so an injected fault or a dead process can be checked before anything here
/// runs (the seam, `Syscalls/`, decides whether to call it at all).
enum HostCalls {
    @inline(__always)
    private static func check(_ result: Int32) throws(Errno) -> Int32 {
        if result < 0 { throw Errno(rawValue: errno) }
        return result
    }

    @inline(__always)
    private static func check(_ result: Int) throws(Errno) -> Int {
        if result < 0 { throw Errno(rawValue: errno) }
        return result
    }

    // MARK: Descriptors

    /// A close-on-exec memfd (`flags` adds `MFD_ALLOW_SEALING` and the like).
    static func memfdCreate(_ name: String, flags: UInt32 = 0) throws(Errno) -> Int32 {
        try check(cxg_memfd_create(name, flags | UInt32(CXG_MFD_CLOEXEC)))
    }

    /// A close-on-exec eventfd (`flags` may add `EFD_NONBLOCK`).
    static func eventfd(initialValue: UInt32 = 0, flags: Int32 = 0) throws(Errno) -> Int32 {
        try check(cxg_eventfd(initialValue, flags | O_CLOEXEC))
    }

    /// Opens a host path (`/dev/null`, `/proc/self/fd/N`), close-on-exec.
    static func open(_ path: String, flags: Int32) throws(Errno) -> Int32 {
        try check(Glibc.open(path, flags | O_CLOEXEC))
    }

    /// A new open file description of the file behind `fd` (through `/proc/self/fd`), so the
    /// simulator keeps the file when the caller closes `fd`.
    static func reopen(_ fd: Int32) throws(Errno) -> Int32 {
        try open("/proc/self/fd/\(fd)", flags: O_RDWR)
    }

    static func close(_ fd: Int32) throws(Errno) {
        _ = try check(Glibc.close(fd))
    }

    /// The lowest free number at or above `minimum`, close-on-exec, naming `fd`'s file.
    static func dup(_ fd: Int32, minimum: Int32 = 0) throws(Errno) -> Int32 {
        try check(cxg_fcntl_int(fd, F_DUPFD_CLOEXEC, minimum))
    }

    static func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        _ = try check(cxg_dup3(oldFD, newFD, flags))
    }

    static func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        try check(cxg_fcntl_int(fd, command, argument))
    }

    /// Whether `fd` is an open descriptor of this (host) process.
    static func isOpen(_ fd: Int32) -> Bool {
        cxg_fcntl_int(fd, F_GETFD, 0) >= 0
    }

    static func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        _ = try check(Glibc.ftruncate(fd, off_t(length)))
    }

    static func fstat(_ fd: Int32) throws(Errno) -> stat {
        var info = stat()
        _ = try check(Glibc.fstat(fd, &info))
        return info
    }

    static func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        let result = Glibc.lseek(fd, off_t(offset), whence)
        if result < 0 { throw Errno(rawValue: errno) }
        return Int64(result)
    }

    // MARK: I/O

    static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try check(Glibc.read(fd, buffer.baseAddress, buffer.count))
    }

    static func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try check(Glibc.write(fd, buffer.baseAddress, buffer.count))
    }

    /// Reads `count` bytes at `offset` of `fd` into `address`. The kernel copies into the
    /// address, so an address that is not writable is `EFAULT`, not a crash.
    static func pread(_ fd: Int32, into address: UnsafeMutableRawPointer, count: Int, at offset: Int) throws(Errno) {
        var done = 0
        while done < count {
            let n = try check(Glibc.pread(fd, address + done, count - done, off_t(offset + done)))
            if n == 0 { break }
            done += n
        }
    }

    /// Writes `count` bytes from `address` at `offset` of `fd`; an address that is not
    /// readable is `EFAULT`.
    static func pwrite(_ fd: Int32, from address: UnsafeRawPointer, count: Int, at offset: Int) throws(Errno) {
        var done = 0
        while done < count {
            done += try check(Glibc.pwrite(fd, address + done, count - done, off_t(offset + done)))
        }
    }

    static func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        Int(try check(Glibc.poll(descriptors.baseAddress, nfds_t(descriptors.count), timeout)))
    }

    /// Adds one to an eventfd's counter: it becomes readable.
    static func signal(eventfd fd: Int32) {
        var one: UInt64 = 1
        _ = Glibc.write(fd, &one, 8)
    }

    /// Empties an eventfd's counter if it is readable, without blocking.
    static func drain(eventfd fd: Int32) {
        var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard Glibc.poll(&entry, 1, 0) == 1, entry.revents & Int16(POLLIN) != 0 else { return }
        var value: UInt64 = 0
        _ = Glibc.read(fd, &value, 8)
    }

    /// Sleeps the calling thread (the simulator never sleeps holding its lock).
    static func sleep(microseconds: UInt32) {
        usleep(microseconds)
    }

    // MARK: Memory

    /// Maps `length` bytes of `fd` anywhere, as the caller asked (a passthrough mmap).
    static func mmap(
        length: Int,
        protection: Int32,
        flags: Int32,
        fd: Int32,
        offset: Int64
    ) throws(Errno) -> UnsafeMutableRawPointer {
        guard let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset)), address != MAP_FAILED else {
            throw Errno(rawValue: errno)
        }
        return address
    }

    /// Reserves `length` bytes of address space that nothing may touch yet.
    static func reserve(length: Int) throws(Errno) -> UnsafeMutableRawPointer {
        try mmap(length: length, protection: PROT_NONE, flags: MAP_PRIVATE | MAP_ANONYMOUS, fd: -1, offset: 0)
    }

    /// Maps `length` bytes of `fd` at `offset` over `address` (`MAP_FIXED | MAP_SHARED`).
    static func mapShared(
        at address: UnsafeMutableRawPointer,
        length: Int,
        protection: Int32,
        fd: Int32,
        offset: Int
    ) throws(Errno) {
        let mapped = Glibc.mmap(address, length, protection, MAP_FIXED | MAP_SHARED, fd, off_t(offset))
        if mapped == MAP_FAILED { throw Errno(rawValue: errno) }
    }

    static func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        _ = try check(Glibc.munmap(address, length))
    }

    /// Whether `[address, address + count)` is mapped in this process (`mincore`, a chunk of
    /// pages at a time, so a hostile count costs no large allocation).
    static func isAccessible(_ address: UnsafeRawPointer, count: Int) -> Bool {
        let pageSize = UInt(xenPageSize)
        let start = UInt(bitPattern: address) & ~(pageSize - 1)
        let (last, overflow) = UInt(bitPattern: address).addingReportingOverflow(UInt(max(count, 1)) - 1)
        if overflow { return false }
        var pages = (last - start) / pageSize + 1
        var page = start
        var vector = [UInt8](repeating: 0, count: Int(min(pages, 256)))
        while pages > 0 {
            let chunk: UInt = min(pages, 256)
            let result = vector.withUnsafeMutableBufferPointer {
                mincore(UnsafeMutableRawPointer(bitPattern: page), Int(chunk * pageSize), $0.baseAddress)
            }
            if result != 0 { return false }
            pages -= chunk
            page += chunk * pageSize
        }
        return true
    }
}
