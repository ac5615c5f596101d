package import Glibc
package import SystemPackage

/// The one seam through which XenGnt touches a device or the kernel's view of the system.
///
/// The production implementation (``KernelSystemCalls``) calls the kernel. The simulated Xen in
/// XenGntTesting implements the same requirements: it receives the raw ioctl request number and
/// argument pointer and decodes the C struct exactly as the kernel would, so a unit test checks
/// the bytes that would reach the kernel.
///
/// Requirements report failure with the raw `Errno`. They do not retry `EINTR`; the core calls
/// them through ``retryingOnInterrupt(_:)``, so the retry is the same whichever implementation
/// sits behind the seam (and the simulator's injected `EINTR` proves it). `close` is never retried:
/// on Linux the descriptor is gone even when `close` reports `EINTR`.
package protocol SystemCalls: Sendable {
    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32
    func close(_ fd: Int32) throws(Errno)
    /// Duplicates `fd` to the lowest free number, with `FD_CLOEXEC` set.
    func dup(_ fd: Int32) throws(Errno) -> Int32
    /// Atomically makes `newFD` refer to the file of `oldFD` (closing what `newFD` referred to).
    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno)
    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32
    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno)
    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64
    func fstat(_ fd: Int32) throws(Errno) -> stat
    /// Reads a small text file (sysfs, procfs) whole.
    func readSmallFile(_ path: String) throws(Errno) -> String
    /// The machine name of `uname(2)` (`x86_64`, `aarch64`).
    func machine() -> String
    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32
    func ftruncate(_ fd: Int32, length: Int64) throws(Errno)
    /// `fcntl` with an integer argument (sealing: `F_ADD_SEALS`, `F_GET_SEALS`).
    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32

    // MARK: I/O on devices and sockets (DRM events, event channels, xenbus, xenstored)

    /// Reads at most `buffer.count` bytes; returns how many were read (0 at end of file).
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int
    /// Writes at most `buffer.count` bytes; returns how many were written.
    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int
    /// Waits until one of `descriptors` is ready or `timeout` milliseconds pass (-1: no limit),
    /// setting each entry's `revents`; returns how many entries are ready (0 on timeout).
    func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int
    /// Opens a stream socket connected to the Unix socket at `path` (close-on-exec).
    func connectUnixSocket(_ path: String) throws(Errno) -> Int32
    /// The names in directory `path`, without `.` and `..`, in no particular order.
    func listDirectory(_ path: String) throws(Errno) -> [String]
    /// An eventfd (`eventfd2`): what the poll reader uses to wake itself.
    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32
}

/// Runs `body` again for as long as it fails with `EINTR`.
@inline(__always)
package func retryingOnInterrupt<T>(_ body: () throws(Errno) -> T) throws(Errno) -> T {
    while true {
        do {
            return try body()
        } catch  where error == .interrupted {
            continue
        }
    }
}

/// Where a device is opened: the running kernel, or a simulated Xen domain.
///
/// Pass ``kernel`` in production. XenGntTesting's `XenSimulation.system(of:)` gives values that
/// route every call to a simulated domain instead, so code written against XenGnt can be unit
/// tested on any machine. The value is opaque: it only says where calls go.
public struct XenSystem: Sendable {
    package let calls: any SystemCalls

    /// The id of the domain this system runs in, when known (a simulated domain knows it; on
    /// the kernel it is learnt from XenStore's `domid` key). XenGnt uses it to refuse what would
    /// harm this domain, such as mapping its own grants in an x86 PVH/HVM domain.
    public let domainID: DomainID?

    package init(_ calls: any SystemCalls, domainID: DomainID? = nil) {
        self.calls = calls
        self.domainID = domainID
    }

    /// The same system, known to run in domain `id`.
    public func identifying(as id: DomainID) -> XenSystem {
        XenSystem(calls, domainID: id)
    }

    /// The running kernel: `/dev/xen/gntdev`, `/dev/xen/gntalloc`, real dma-bufs.
    public static let kernel = XenSystem(KernelSystemCalls())
}

extension Errno {
    /// `ENODEV`.
    package static var noDevice: Errno { .operationNotSupportedByDevice }
}
