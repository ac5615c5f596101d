import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// XenGnt's seam for one simulated process: every call is checked (the process is alive, its
/// kernel has not oopsed, no fault is injected on it) before the simulated kernel, or the host,
/// sees it. A call that may block (poll, a read or write of a host descriptor, waiting for a
/// dma-buf's release) waits without holding the simulator's lock.
struct ProcessSystemCalls: SystemCalls {
    let simulation: XenSimulation
    /// Whose calls these are.
    let serial: ProcessName

    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
        try simulation.enter(serial, .open) { (context) throws(Errno) in try context.open(path, flags: flags) }
    }

    func close(_ fd: Int32) throws(Errno) {
        try simulation.enter(serial, .close) { (context) throws(Errno) in try context.close(fd) }
    }

    func dup(_ fd: Int32) throws(Errno) -> Int32 {
        try simulation.enter(serial, .dup) { (context) throws(Errno) in try context.dup(fd, minimum: 0) }
    }

    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {
        try simulation.enter(serial, .dup) { (context) throws(Errno) in try context.dup3(oldFD, newFD, flags: flags) }
    }

    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let outcome = try simulation.enter(serial, { context in .ioctl(context.decode(fd, request)) }) {
            (context) throws(Errno) in
            try context.ioctl(fd, request, argument)
        }
        switch outcome {
        case .done(let result):
            return result
        case .waitForRelease(let buffer, let milliseconds):
            return try simulation.waitForRelease(buffer, milliseconds: milliseconds)
        case .block(let call):
            return try simulation.waitBlocked(call)
        }
    }

    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        try simulation.enter(serial, .mmap) { (context) throws(Errno) in
            try context.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
        }
    }

    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        try simulation.enter(serial, .munmap) { (context) throws(Errno) in try context.munmap(address, length: length) }
    }

    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
        try simulation.enter(serial, .lseek) { (context) throws(Errno) in try context.lseek(fd, offset: offset, whence: whence) }
    }

    func fstat(_ fd: Int32) throws(Errno) -> stat {
        try simulation.enter(serial, .fstat) { (context) throws(Errno) in try context.fstat(fd) }
    }

    func readSmallFile(_ path: String) throws(Errno) -> String {
        try simulation.enter(serial, .readFile) { (context) throws(Errno) in try context.readSmallFile(path) }
    }

    func machine() -> String {
        simulation.machine.withLock { machine in
            (try? machine.context(of: serial))?.domain.type == .arm ? "aarch64" : "x86_64"
        }
    }

    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 {
        try simulation.enter(serial, .memfd) { (context) throws(Errno) in try context.memfdCreate(name, flags: flags) }
    }

    func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {
        try simulation.enter(serial, .ftruncate) { (context) throws(Errno) in try context.ftruncate(fd, length: length) }
    }

    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
        try simulation.enter(serial, .fcntl) { (context) throws(Errno) in
            try context.fcntl(fd, command: command, argument: argument)
        }
    }

    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        try simulation.read(serial, fd, into: buffer)
    }

    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
        try simulation.write(serial, fd, from: buffer)
    }

    func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
        try simulation.poll(serial, descriptors, timeout: timeout)
    }

    func connectUnixSocket(_ path: String) throws(Errno) -> Int32 {
        try simulation.enter(serial, .connect) { (context) throws(Errno) in try context.connect(path) }
    }

    func listDirectory(_ path: String) throws(Errno) -> [String] {
        try simulation.enter(serial, .listDirectory) { (context) throws(Errno) in
            try context.kernel.registry.list(path, kernel: context.kernel)
        }
    }

    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
        try simulation.enter(serial, .eventfd) { (context) throws(Errno) in
            try context.eventfd(initialValue: initialValue, flags: flags)
        }
    }
}

extension XenSimulation {
    /// Runs a seam call of process `serial` under the lock, after the checks every call gets:
    /// the process (`ENODEV`, `ESRCH`, `EIO`), then the fault rules for `call`.
    func enter<T>(_ serial: ProcessName, _ call: SimulatedCall, _ body: (Context) throws(Errno) -> T) throws(Errno) -> T {
        try enter(serial, { _ in call }, body)
    }

    /// As above, with the call decided from the context (an ioctl is decoded by the driver of
    /// the file it is sent to).
    func enter<T>(
        _ serial: ProcessName,
        _ call: (Context) -> SimulatedCall,
        _ body: (Context) throws(Errno) -> T
    ) throws(Errno) -> T {
        try machine.withLock { (machine) throws(Errno) -> UncheckedBox<T> in
            let context = try machine.context(of: serial)
            if let fault = machine.takeFault(call(context), domain: context.domain.id) { throw fault }
            return UncheckedBox(try body(context))
        }.value
    }

    /// Polls `call` under the lock until it is ready, then finishes it there.
    func waitBlocked(_ call: BlockedCall) throws(Errno) -> Int32 {
        let token = UncheckedBox(call)
        while true {
            let result = try machine.withLock { (machine) throws(Errno) -> Int32? in
                token.value.isReady(machine) ? try token.value.finish(machine) : nil
            }
            if let result { return result }
            HostCalls.sleep(microseconds: 200)
        }
    }

    /// Lab `export-balloon` (and -wc, -coherent): ETIMEDOUT after the timeout while any
    /// holder remains, 0 as soon as the last one goes. Polled without the lock.
    func waitForRelease(_ buffer: DmaBufFile, milliseconds: UInt32) throws(Errno) -> Int32 {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(milliseconds)))
        let token = UncheckedBox(buffer)
        while true {
            if machine.withLock({ _ in token.value.isReleased }) { return 0 }
            if ContinuousClock.now >= deadline { throw .timedOut }
            HostCalls.sleep(microseconds: 200)
        }
    }
}

/// Carries a simulator object across the lock boundary; only used under the lock, or kept
/// alive by it.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
