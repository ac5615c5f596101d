import CXenGnt
import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// Every suite of this target is nested in this one, so the tests run one at a time: the
/// leak tests compare the process's open descriptors before and after, which parallel tests
/// would disturb.
@Suite(.serialized, .timeLimit(.minutes(5))) enum Simulated {}

/// A simulated host with the usual cast: a PVH frontend (dom1), a PVH backend (dom2) and a PV
/// Dom0, each running `kernel` as configured.
struct Host {
    let xen: XenSimulation
    let frontend: SimulatedDomain
    let backend: SimulatedDomain
    let dom0: SimulatedDomain

    init(maxGrantFrames: Int = 64, _ configure: (inout SimulatedKernel) -> Void = { _ in }) throws {
        var kernel = SimulatedKernel()
        configure(&kernel)
        xen = XenSimulation(maxGrantFrames: maxGrantFrames)
        dom0 = try xen.addDomain(0, type: .pv, kernel: kernel)
        frontend = try xen.addDomain(1, type: .pvh, kernel: kernel)
        backend = try xen.addDomain(2, type: .pvh, kernel: kernel)
    }

    /// The backend's gntdev.
    func gntdev() throws -> GrantDevice { try GrantDevice(on: backend.system) }
}

/// The descriptors this process has open.
func openDescriptors() -> Set<Int32> {
    guard let directory = opendir("/proc/self/fd") else { return [] }
    defer { closedir(directory) }
    var numbers = Set<Int32>()
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let number = Int32(name) { numbers.insert(number) }
    }
    numbers.remove(dirfd(directory))
    return numbers
}

/// Whether `fd` is open in this process.
func isOpen(_ fd: Int32) -> Bool { fcntl(fd, F_GETFD) >= 0 }

/// A seam that forwards every call to another and records its name, so a test can count the
/// system calls an operation makes (`ioctl` calls are recorded by request: `IOCTL_GNTDEV_...`).
final class SeamRecorder: SystemCalls, @unchecked Sendable {
    let inner: any SystemCalls
    private let log = Locked<[String]>([])

    init(_ system: XenSystem) { inner = system.calls }

    /// Where to open devices so that their calls are recorded.
    var system: XenSystem { XenSystem(self) }
    /// Every call so far, in order.
    var calls: [String] { log.withLock { $0 } }
    /// How many calls so far.
    var count: Int { log.withLock { $0.count } }
    /// The calls made by `body`.
    func calls(during body: () throws -> Void) rethrows -> [String] {
        let start = count
        try body()
        return Array(calls[start...])
    }

    private func note(_ name: String) { log.withLock { $0.append(name) } }

    static let requestNames: [UInt: String] = [
        Request.mapGrantRef: "IOCTL_GNTDEV_MAP_GRANT_REF", Request.unmapGrantRef: "IOCTL_GNTDEV_UNMAP_GRANT_REF",
        Request.getOffsetForVaddr: "IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR", Request.setMaxGrants: "IOCTL_GNTDEV_SET_MAX_GRANTS",
        Request.gntdevSetUnmapNotify: "SET_UNMAP_NOTIFY", Request.grantCopy: "IOCTL_GNTDEV_GRANT_COPY",
        Request.expFromRefs: "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS",
        Request.expWaitReleased: "IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED",
        Request.impToRefs: "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS", Request.impRelease: "IOCTL_GNTDEV_DMABUF_IMP_RELEASE",
        Request.allocGref: "IOCTL_GNTALLOC_ALLOC_GREF", Request.deallocGref: "IOCTL_GNTALLOC_DEALLOC_GREF",
        Request.dmaBufSync: "DMA_BUF_IOCTL_SYNC", Request.dmaBufSetName: "DMA_BUF_SET_NAME",
        Request.udmabufCreate: "UDMABUF_CREATE", Request.dmaHeapAlloc: "DMA_HEAP_IOCTL_ALLOC",
    ]

    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        note("open \(path)")
        return try inner.open(path, flags: flags, mode: mode)
    }
    func close(_ fd: Int32) throws(Errno) {
        note("close")
        try inner.close(fd)
    }
    func dup(_ fd: Int32) throws(Errno) -> Int32 {
        note("dup")
        return try inner.dup(fd)
    }
    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        note("dup3")
        try inner.dup3(oldFD, newFD, flags: flags)
    }
    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        note(Self.requestNames[request] ?? "ioctl \(request)")
        return try inner.ioctl(fd, request, argument)
    }
    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        note("mmap")
        return try inner.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
    }
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        note("munmap")
        try inner.munmap(address, length: length)
    }
    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        note("lseek")
        return try inner.lseek(fd, offset: offset, whence: whence)
    }
    func fstat(_ fd: Int32) throws(Errno) -> stat {
        note("fstat")
        return try inner.fstat(fd)
    }
    func readSmallFile(_ path: String) throws(Errno) -> String {
        note("read \(path)")
        return try inner.readSmallFile(path)
    }
    func machine() -> String {
        note("uname")
        return inner.machine()
    }
    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        note("memfd_create")
        return try inner.memfdCreate(name, flags: flags)
    }
    func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        note("ftruncate")
        try inner.ftruncate(fd, length: length)
    }
    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        note("fcntl")
        return try inner.fcntl(fd, command: command, argument: argument)
    }
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        note("read")
        return try inner.read(fd, into: buffer)
    }
    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        note("write")
        return try inner.write(fd, from: buffer)
    }
    func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        note("poll")
        return try inner.poll(descriptors, timeout: timeout)
    }
    func connectUnixSocket(_ path: String) throws(Errno) -> Int32 {
        note("connect \(path)")
        return try inner.connectUnixSocket(path)
    }
    func listDirectory(_ path: String) throws(Errno) -> [String] {
        note("list \(path)")
        return try inner.listDirectory(path)
    }
    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        note("eventfd")
        return try inner.eventfd(initialValue: initialValue, flags: flags)
    }
}

/// Checks that a test leaves this process's descriptors as it found them (every suite here is
/// serialized, so nothing else opens or closes descriptors meanwhile).
struct NoDescriptorLeaks: TestTrait, SuiteTrait, TestScoping {
    var isRecursive: Bool { true }

    func provideScope(for test: Test, testCase: Test.Case?, performing function: @Sendable () async throws -> Void) async throws {
        // The concurrency runtime opens its timer descriptors on the first sleep; let it do so
        // before counting, so that a test that sleeps is not blamed for them.
        try? await Task.sleep(for: .milliseconds(1))
        let before = openDescriptors()
        try await function()
        let after = openDescriptors()
        #expect(
            after == before,
            "descriptors opened and not closed: \(after.subtracting(before).sorted()), closed: \(before.subtracting(after).sorted())"
        )
    }
}

extension Trait where Self == NoDescriptorLeaks {
    /// The test leaves this process's descriptors as it found them.
    static var noDescriptorLeaks: Self { Self() }
}
