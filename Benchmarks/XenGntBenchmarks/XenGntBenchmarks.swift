// XenGnt's hot paths, measured with ordo-one/benchmark.
//
//   XENGNT_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark
//
// Two kinds of benchmark:
// - "XenGnt only": the library against a seam that answers every call at once without
//   allocating (NullKernel below), so the malloc count is XenGnt's own: building and issuing
//   the ioctl for 2025 refs (one 1080p XRGB8888 frame) must allocate nothing; a result that
//   carries refs allocates once.
// - "simulated": the same operation end to end against XenGntTesting's simulated Xen.
// Costs on a real Xen are in Documentation/Lab.md and Documentation/KernelFacts.md (tens of ms per 1080p export).
import Benchmark
import CXenGnt
import SystemPackage
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

let framePages = 2025

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .instructions],
        maxDuration: .seconds(2),
        maxIterations: 10_000
    )

    let refs = (0..<framePages).map { GrantRef(UInt32(8 + $0)) }

    // What the harness itself allocates per sample: subtract it from the others.
    Benchmark("baseline: empty loop") { benchmark in
        for i in benchmark.scaledIterations {
            blackHole(i)
        }
    }

    Benchmark("export 2025 refs, XenGnt only") { benchmark in
        let gntdev = try GrantDevice(on: XenSystem(NullKernel()))
        _ = try gntdev.exportDmaBuf(refs: refs, from: 1)  // grow the scratch buffer once
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let exported = try gntdev.exportDmaBuf(refs: refs, from: 1)
            blackHole(exported.pageCount)
        }
    }

    Benchmark("export + release + wait 2025 refs, XenGnt only") { benchmark in
        let gntdev = try GrantDevice(on: XenSystem(NullKernel()))
        _ = try gntdev.exportDmaBuf(refs: refs, from: 1).release().wait(timeout: .zero)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let pending = try gntdev.exportDmaBuf(refs: refs, from: 1).release()
            blackHole(try pending.wait(timeout: .zero))
        }
    }

    Benchmark("map + unmap 2025 refs, XenGnt only") { benchmark in
        let gntdev = try GrantDevice(on: XenSystem(NullKernel()))
        try gntdev.map(refs, from: 1).unmap()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            try gntdev.map(refs, from: 1).unmap()
        }
    }

    Benchmark("import 2025-page dma-buf + release, XenGnt only") { benchmark in
        let system = XenSystem(NullKernel())
        let gntdev = try GrantDevice(on: system)
        // The import takes the buffer and hands it back at release: one buffer for every round.
        var buffer = DmaBuf(adopting: FileDescriptor(rawValue: NullKernel.dmaBufFD), byteCount: framePages * 4096, on: system)
        buffer = try gntdev.importDmaBuf(buffer, to: 1).release()
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let imported = try gntdev.importDmaBuf(buffer, to: 1)
            blackHole(imported.refs.count)
            buffer = try imported.release()
        }
        _ = buffer.take()
    }

    Benchmark("export + release 2025 refs, simulated Xen") { benchmark in
        let xen = XenSimulation()
        let frontend = try xen.addDomain(1, type: .pvh)
        let backend = try xen.addDomain(2, type: .pvh)
        let frame = try frontend.grantPages(framePages, to: backend.id)
        let gntdev = try GrantDevice(on: backend.system)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            let pending = try gntdev.exportDmaBuf(refs: frame, from: frontend.id).release()
            blackHole(try pending.wait(timeout: .zero))
        }
    }

    displayBenchmarks()
}

/// A seam that answers every call at once, as a kernel that always succeeds would, without
/// allocating: it isolates XenGnt's own cost.
struct NullKernel: SystemCalls {
    static let deviceFD: Int32 = 1000
    static let dmaBufFD: Int32 = 1001
    /// Stands in for mapped memory: large enough for one frame, never touched.
    nonisolated(unsafe) static let memory = UnsafeMutableRawPointer.allocate(byteCount: framePages * 4096, alignment: 4096)

    func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 { Self.deviceFD }
    func close(_ fd: Int32) throws(Errno) {}
    func dup(_ fd: Int32) throws(Errno) -> Int32 { Self.dmaBufFD + 1 }
    func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) {}

    func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        guard let argument else { throw .badAddress }
        switch request {
        case cxg_request_gntdev_dmabuf_exp_from_refs():
            argument.assumingMemoryBound(to: ioctl_gntdev_dmabuf_exp_from_refs.self).pointee.fd = UInt32(Self.dmaBufFD)
        case cxg_request_gntdev_map_grant_ref():
            argument.assumingMemoryBound(to: ioctl_gntdev_map_grant_ref.self).pointee.index = 0
        case cxg_request_gntdev_dmabuf_exp_wait_released():
            throw .noSuchFileOrDirectory  // released
        default:
            break
        }
        return 0
    }

    func mmap(length: Int, protection: Int32, flags: Int32, fd: Int32, offset: Int64) throws(Errno) -> UnsafeMutableRawPointer {
        Self.memory
    }
    func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {}
    func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 { Int64(framePages * 4096) }
    func fstat(_ fd: Int32) throws(Errno) -> stat { stat() }
    func readSmallFile(_ path: String) throws(Errno) -> String { throw .noSuchFileOrDirectory }
    func machine() -> String { "x86_64" }
    func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 { throw .notSupported }
    func ftruncate(_ fd: Int32, length: Int64) throws(Errno) {}
    func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 { 0 }
    func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int { 0 }
    func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int { buffer.count }
    func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int { 0 }
    func connectUnixSocket(_ path: String) throws(Errno) -> Int32 { throw .noSuchFileOrDirectory }
    func listDirectory(_ path: String) throws(Errno) -> [String] { [] }
    func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 { Self.deviceFD }
}
