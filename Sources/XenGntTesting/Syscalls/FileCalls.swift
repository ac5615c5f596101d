internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// The descriptor calls of a simulated process (Linux's VFS layer): a simulated file's call
/// goes to its driver; a host-backed file's (memfd, eventfd, /dev/null made through the seam),
/// or a host descriptor's the test handed over, goes to the host.
extension Context {
    func open(_ path: String, flags: Int32) throws(Errno) -> Int32 {
        guard let (node, driver) = kernel.registry.nodes[path] else {
            if (try? kernel.registry.list(path, kernel: kernel)) != nil { throw .isDirectory }
            throw .noSuchFileOrDirectory
        }
        let file = try driver.open(node, flags: flags, self)
        let fd =
            try file.isHostBacked
            ? HostCalls.open(path, flags: flags)
            : machine.newDescriptor(nonBlocking: flags & O_NONBLOCK != 0)
        install(fd, file)
        return fd
    }

    func close(_ fd: Int32) throws(Errno) {
        guard case .file = lookup(fd) else {
            if case .foreign = lookup(fd) { throw .badFileDescriptor }
            return try HostCalls.close(fd)
        }
        defer { machine.forget(fd) }
        try HostCalls.close(fd)
    }

    func dup(_ fd: Int32, minimum: Int32, command: Int32 = F_DUPFD_CLOEXEC) throws(Errno) -> Int32 {
        let file = try self.file(fd)
        let copy = try HostCalls.fcntl(fd, command: command, argument: minimum)
        if let file { install(copy, file) }
        return copy
    }

    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        let file = try self.file(oldFD)
        // The number is another process's: the simulation cannot give it to this one.
        if case .foreign = lookup(newFD) { throw .badFileDescriptor }
        try HostCalls.dup3(oldFD, newFD, flags: flags)
        // The number now names the old descriptor's file; what it named loses a reference.
        machine.forget(newFD)
        if let file { install(newFD, file) }
    }

    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        let file = try self.file(fd)
        switch command {
        case F_DUPFD, F_DUPFD_CLOEXEC:
            return try dup(fd, minimum: argument, command: command)
        case Int32(CXG_F_ADD_SEALS), Int32(CXG_F_GET_SEALS):
            // Only shmem files (memfds) take seals; a device or a dma-buf is EINVAL.
            if let file, !file.isHostBacked { throw .invalidArgument }
            fallthrough
        default:
            return try HostCalls.fcntl(fd, command: command, argument: argument)
        }
    }

    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        if let file = try self.file(fd), !file.isHostBacked { return try file.llseek(offset: offset, whence: whence) }
        return try HostCalls.lseek(fd, offset: offset, whence: whence)
    }

    /// A simulated file's status is synthesized (a device node's `st_rdev`, a dma-buf's size);
    /// a host descriptor's is the host's.
    func fstat(_ fd: Int32) throws(Errno) -> stat {
        if let file = try self.file(fd), !file.isHostBacked { return file.status() }
        return try HostCalls.fstat(fd)
    }

    func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        if let file = try self.file(fd), !file.isHostBacked { throw .invalidArgument }
        try HostCalls.ftruncate(fd, length: length)
    }

    /// A memfd of this process (a real one: udmabuf reads its seals and pages).
    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        let fd = try HostCalls.memfdCreate(name, flags: flags)
        install(fd, HostFile(kernel: kernel, kind: .memfd))
        return fd
    }

    /// An eventfd of this process: reads, writes and polls go to the host eventfd.
    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        let fd = try HostCalls.eventfd(initialValue: initialValue, flags: flags)
        install(fd, HostFile(kernel: kernel, kind: .eventfd))
        return fd
    }

    func readSmallFile(_ path: String) throws(Errno) -> String {
        guard let text = kernel.registry.attributes(of: kernel)[path] else { throw .noSuchFileOrDirectory }
        return text
    }

    /// Connects to a Unix socket of this kernel's registry (none yet: xenstored's comes later).
    func connect(_ path: String) throws(Errno) -> Int32 {
        guard let endpoint = kernel.registry.sockets[path] else {
            if kernel.registry.nodes[path] != nil || kernel.registry.attributes(of: kernel)[path] != nil {
                throw .connectionRefused
            }
            throw .noSuchFileOrDirectory
        }
        let file = try endpoint.connect(self)
        let fd = try machine.newDescriptor()
        install(fd, file)
        return fd
    }

    /// The ioctl `request` on `fd` names, as the file's driver decodes it.
    func decode(_ fd: Int32, _ request: UInt) -> SimulatedIoctl? {
        guard case .file(let file) = lookup(fd) else { return nil }
        return file.decode(request)
    }

    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> IoctlOutcome {
        guard let file = try self.file(fd) else {
            // A host descriptor (memfd, socket) has none of these ioctls.
            if HostCalls.isOpen(fd) { throw .inappropriateIOCTLForDevice }
            throw .badFileDescriptor
        }
        if file.isHostBacked { throw .inappropriateIOCTLForDevice }
        return try file.ioctl(request, argument, self)
    }
}
