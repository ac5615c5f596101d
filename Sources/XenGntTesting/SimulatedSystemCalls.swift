import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// The simulator's side of XenGnt's seam, for one domain.
struct SimulatedSystemCalls: SystemCalls {
    let simulation: XenSimulation
    let domain: UInt16

    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        try simulation.withDomain(domain, .open) { (kernel, domain) throws(Errno) in try kernel.open(path, flags: flags, in: domain) }
    }

    func close(_ fd: Int32) throws(Errno) {
        try simulation.withDomain(domain, .close) { (kernel, domain) throws(Errno) in try kernel.close(fd, in: domain) }
    }

    func dup(_ fd: Int32) throws(Errno) -> Int32 {
        try simulation.withDomain(domain, .dup) { (kernel, domain) throws(Errno) in try kernel.dup(fd, in: domain) }
    }

    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        try simulation.withDomain(domain, .dup) { (kernel, domain) throws(Errno) in try kernel.dup3(oldFD, newFD, flags: flags, in: domain) }
    }

    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        try simulation.ioctl(domain, fd, request, argument)
    }

    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        try simulation.withDomain(domain, .mmap) { (kernel, domain) throws(Errno) in
            try kernel.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset, in: domain)
        }
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        try simulation.withDomain(domain, .munmap) { (kernel, domain) throws(Errno) in try kernel.munmap(address, length: length, in: domain) }
    }

    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        try simulation.withDomain(domain, .lseek) { (kernel, domain) throws(Errno) in try kernel.lseek(fd, offset: offset, whence: whence, in: domain) }
    }

    func fstat(_ fd: Int32) throws(Errno) -> stat {
        try HostCalls.fstat(fd)
    }

    func readSmallFile(_ path: String) throws(Errno) -> String {
        try simulation.kernel.withLock { (kernel) throws(Errno) in
            guard let domain = kernel.domains[domain] else { throw .noDevice }
            return try kernel.readSmallFile(path, in: domain)
        }
    }

    func machine() -> String {
        simulation.kernel.withLock { kernel in kernel.domains[domain]?.type == .arm ? "aarch64" : "x86_64" }
    }

    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        try HostCalls.memfdCreate(name, flags: flags)
    }

    func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        try HostCalls.ftruncate(fd, length: length)
    }

    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        try HostCalls.fcntl(fd, command: command, argument: argument)
    }

    // Interim: passed to the host until the simulated drivers that need them exist.
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try HostCalls.read(fd, into: buffer)
    }

    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try HostCalls.write(fd, from: buffer)
    }

    func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        try HostCalls.poll(descriptors, timeout: timeout)
    }

    func connectUnixSocket(_ path: String) throws(Errno) -> Int32 { throw .noSuchFileOrDirectory }

    func listDirectory(_ path: String) throws(Errno) -> [String] { throw .noSuchFileOrDirectory }

    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        try HostCalls.eventfd(initialValue: initialValue, flags: flags)
    }
}
