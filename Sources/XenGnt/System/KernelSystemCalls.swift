internal import CXenGnt
package import Glibc
package import SystemPackage

/// The production side of the seam: every requirement is one libc call. This is the only file in
/// XenGnt that calls libc for devices, descriptors or memory mappings.
package struct KernelSystemCalls: SystemCalls {
    package init() {}

    @inline(__always)
    private func check(_ result: Int32) throws(Errno) -> Int32 {
        if result < 0 { throw Errno(rawValue: Glibc.errno) }
        return result
    }

    package func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        try check(Glibc.open(path, flags, mode_t(mode)))
    }

    package func close(_ fd: Int32) throws(Errno) {
        _ = try check(Glibc.close(fd))
    }

    package func dup(_ fd: Int32) throws(Errno) -> Int32 {
        try check(cxg_fcntl_int(fd, F_DUPFD_CLOEXEC, 0))
    }

    package func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        _ = try check(cxg_dup3(oldFD, newFD, flags))
    }

    package func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        try check(cxg_ioctl(fd, request, argument))
    }

    package func mmap(
        length: Int,
        protection: Int32,
        flags: Int32,
        fd: Int32,
        offset: Int64
    ) throws(Errno) -> UnsafeMutableRawPointer {
        guard let address = Glibc.mmap(nil, length, protection, flags, fd, off_t(offset)),
            address != MAP_FAILED
        else { throw Errno(rawValue: Glibc.errno) }
        return address
    }

    package func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        _ = try check(Glibc.munmap(address, length))
    }

    package func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        let result = Glibc.lseek(fd, off_t(offset), whence)
        if result < 0 { throw Errno(rawValue: Glibc.errno) }
        return Int64(result)
    }

    package func fstat(_ fd: Int32) throws(Errno) -> stat {
        var info = stat()
        _ = try check(Glibc.fstat(fd, &info))
        return info
    }

    package func readSmallFile(_ path: String) throws(Errno) -> String {
        let fd = try retryingOnInterrupt { () throws(Errno) in try check(Glibc.open(path, O_RDONLY | O_CLOEXEC)) }
        defer { _ = Glibc.close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        var length = 0
        while length < buffer.count {
            let n = buffer.withUnsafeMutableBytes { raw in
                Glibc.read(fd, raw.baseAddress! + length, raw.count - length)
            }
            if n < 0 {
                if Glibc.errno == EINTR { continue }
                throw Errno(rawValue: Glibc.errno)
            }
            if n == 0 { break }
            length += n
        }
        return String(decoding: buffer[..<length], as: UTF8.self)
    }

    package func machine() -> String {
        var names = utsname()
        guard uname(&names) == 0 else { return "" }
        return withUnsafeBytes(of: &names.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    package func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        try check(cxg_memfd_create(name, flags))
    }

    package func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        _ = try check(Glibc.ftruncate(fd, off_t(length)))
    }

    package func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        try check(cxg_fcntl_int(fd, command, argument))
    }

    package func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n < 0 { throw Errno(rawValue: Glibc.errno) }
        return n
    }

    package func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        let n = Glibc.write(fd, buffer.baseAddress, buffer.count)
        if n < 0 { throw Errno(rawValue: Glibc.errno) }
        return n
    }

    package func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        Int(try check(Glibc.poll(descriptors.baseAddress, nfds_t(descriptors.count), timeout)))
    }

    package func connectUnixSocket(_ path: String) throws(Errno) -> Int32 {
        let fd = try check(Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0))
        let connected = path.withCString { cxg_connect_unix(fd, $0) }
        if connected < 0 {
            let failure = Errno(rawValue: Glibc.errno)
            _ = Glibc.close(fd)
            throw failure
        }
        return fd
    }

    package func listDirectory(_ path: String) throws(Errno) -> [String] {
        guard let directory = opendir(path) else { throw Errno(rawValue: Glibc.errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    package func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        try check(cxg_eventfd(initialValue, flags))
    }
}
