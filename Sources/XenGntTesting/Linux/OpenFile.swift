import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// What an ioctl asks of the seam once the simulator's lock is dropped.
enum IoctlOutcome {
    case done(Int32)
    /// `IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED` on a live buffer: wait (without the lock).
    case waitForRelease(DmaBufFile, milliseconds: UInt32)
    /// A blocking DRM call (a commit behind a pending one, `WAIT_VBLANK`): wait (without the
    /// lock) until it can finish.
    case block(BlockedCall)
}

/// What a driver's `read` gives.
enum ReadOutcome {
    case bytes(Int)
    /// Nothing to read yet: the seam waits for the file's descriptor to become readable
    /// (without the lock) and asks again, or answers `EAGAIN` for a non-blocking file.
    case wouldBlock
}

/// How `poll` learns whether a file is ready.
enum PollAnswer {
    /// At once: the file has no poll operation (Linux answers `DEFAULT_POLLMASK`), or the
    /// driver knows.
    case ready(Int16)
    /// From the file's host descriptor: an eventfd the driver signals when it has something
    /// (`events` are those it can report), or the real memfd/eventfd/file behind it.
    case host(events: Int16)
}

/// A mapping request that passed the generic mmap checks, for a driver's `mmap`.
struct MmapRequest {
    let pages: Int
    /// `vm_pgoff`: the offset in pages.
    let pageOffset: UInt64
    let protection: Int32
    let flags: Int32

    var length: Int { pages * xenPageSize }
    var writable: Bool { protection & PROT_WRITE != 0 }
    var shared: Bool { flags & MAP_SHARED != 0 }
}

/// What a driver mapped: where, and its private data for `close(_:)` (`vm_private_data`).
struct MappedArea {
    let address: UnsafeMutableRawPointer
    let length: Int
    var data: AnyObject?
}

/// A memory mapping a process made through the seam (`struct vm_area_struct`).
final class VMArea {
    let start: UnsafeMutableRawPointer
    let length: Int
    let process: Process
    /// The simulated file mapped, or `nil` for a host mapping (an anonymous or host-file mmap).
    let file: OpenFile?
    let data: AnyObject?

    init(start: UnsafeMutableRawPointer, length: Int, process: Process, file: OpenFile?, data: AnyObject?) {
        self.start = start
        self.length = length
        self.process = process
        self.file = file
        self.data = data
    }

    func overlaps(_ address: UInt, _ length: Int) -> Bool {
        let mine = UInt(bitPattern: start)
        let (end, overflow) = address.addingReportingOverflow(UInt(max(length, 1)))
        return address < mine + UInt(self.length) && (overflow || end > mine)
    }
}

/// A simulated open file (`struct file`) and its operations (`file_operations`): a driver
/// subclasses it and overrides what its device does; the defaults are what Linux answers for a
/// device without the operation.
///
/// `references` counts descriptors, memory mappings and kernel holders (an exported buffer holds
/// its gntdev file, an import holds its dma-buf); the file is released when it reaches zero.
/// Each descriptor number of the file is a host descriptor: an eventfd for a device (a driver
/// with readiness signals it), a memfd for a dma-buf, the real file for host-backed files.
class OpenFile {
    let kernel: DomainKernel
    private(set) var references = 0
    private(set) var isReleased = false
    /// Descriptor numbers naming this file.
    var numbers: Set<Int32> = []

    init(kernel: DomainKernel) { self.kernel = kernel }

    var domain: XenDomain { kernel.domain }

    /// Takes a reference (a descriptor, a mapping, a kernel holder).
    func hold() {
        if references == 0, !isReleased { kernel.liveFiles[ObjectIdentifier(self)] = self }
        references += 1
    }

    /// Drops a reference; releases the file when it was the last.
    func drop(_ machine: Machine) {
        references -= 1
        guard references == 0, !isReleased else { return }
        isReleased = true
        kernel.liveFiles[ObjectIdentifier(self)] = nil
        release(machine)
    }

    // MARK: Operations (override in a driver)

    /// Whether every operation goes to the host descriptor (a memfd or eventfd made through the
    /// seam, /dev/null): the simulator only keeps count of it.
    var isHostBacked: Bool { false }

    /// The ioctl `request` names for fault injection, decoded as this file's driver does.
    func decode(_ request: UInt) -> SimulatedIoctl? { nil }

    /// `unlocked_ioctl`; none: `ENOTTY`.
    func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        throw .inappropriateIOCTLForDevice
    }

    /// `mmap`; none: `ENODEV`.
    func mmap(_ request: MmapRequest, _ context: Context) throws(Errno) -> MappedArea {
        throw .noDevice
    }

    /// `vm_ops->close`: a mapping of this file went away (after the host munmap).
    func close(_ area: VMArea, _ machine: Machine) {}

    /// `read`; none: `EINVAL`.
    func read(into buffer: UnsafeMutableRawBufferPointer, _ context: Context) throws(Errno) -> ReadOutcome {
        throw .invalidArgument
    }

    /// `write`; none: `EINVAL`.
    func write(from buffer: UnsafeRawBufferPointer, _ context: Context) throws(Errno) -> Int {
        throw .invalidArgument
    }

    /// `llseek`; none (`no_llseek`): `ESPIPE`.
    func llseek(offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        throw .illegalSeek
    }

    /// Called under the lock before `poll` is read for a wait: a driver whose readiness depends
    /// on time (a display's vblank) may move it on.
    func willPoll(_ machine: Machine) {}

    /// `poll`; none: ready for reading and writing at once (`DEFAULT_POLLMASK`).
    var poll: PollAnswer { .ready(Int16(POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)) }

    /// What `fstat` reports (a device node's `st_rdev`, a dma-buf's size).
    func status() -> stat { stat() }

    /// `release`: the last reference went.
    func release(_ machine: Machine) {}

    // MARK: Readiness

    /// Makes the file readable to `poll` (or not), for a driver whose `poll` is `.host`:
    /// signals, or drains, the eventfd behind its descriptors.
    func setReadable(_ readable: Bool) {
        guard let fd = numbers.first else { return }
        if readable { HostCalls.signal(eventfd: fd) } else { HostCalls.drain(eventfd: fd) }
    }
}
