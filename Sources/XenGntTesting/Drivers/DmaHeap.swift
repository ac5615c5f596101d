internal import CXenGnt
import SystemPackage
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

/// `/dev/dma_heap/system` (Linux 6.1 `drivers/dma-buf/dma-heap.c`, `heaps/system_heap.c`):
/// dma-bufs of ordinary pages.
struct DmaHeapDevice: KernelDriver {
    var device: SimulatedKernel.Device? { .dmaHeap }
    var nodes: [DeviceNode] { [DeviceNode(path: Paths.dmaHeaps + "system", major: 253, minor: 0)] }

    func open(_ node: DeviceNode, flags: Int32, _ context: Context) throws(Errno) -> OpenFile {
        DmaHeapFile(kernel: context.kernel, node: node)
    }
}

/// An open DMA heap.
final class DmaHeapFile: DeviceFile {
    private static let ioctlWrite: UInt = 1 << 30  // _IOC_WRITE: user to kernel
    private static let ioctlRead: UInt = 2 << 30  // _IOC_READ: kernel to user

    override func decode(_ request: UInt) -> SimulatedIoctl? {
        request == Request.dmaHeapAlloc ? .dmaHeapAlloc : nil
    }

    /// dma_heap_ioctl: a request numbered past the one it knows is EINVAL; request 0 is
    /// `DMA_HEAP_IOCTL_ALLOC` whatever its size and direction say (the argument is copied in
    /// and out as far as both agree, the rest zeroed).
    override func ioctl(_ request: UInt, _ argument: UnsafeMutableRawPointer?, _ context: Context) throws(Errno) -> IoctlOutcome {
        if request & 0xFF != 0 { throw .invalidArgument }
        let kernelRequest = Request.dmaHeapAlloc
        let size = MemoryLayout<dma_heap_allocation_data>.size
        let userSize = Int((request >> 16) & 0x3FFF)
        let inSize = request & kernelRequest & Self.ioctlWrite != 0 ? userSize : 0
        let outSize = request & kernelRequest & Self.ioctlRead != 0 ? userSize : 0
        var data = dma_heap_allocation_data()
        if inSize > 0 {
            let source = try UserMemory.check(argument, bytes: inSize)
            withUnsafeMutableBytes(of: &data) {
                $0.copyMemory(from: UnsafeRawBufferPointer(start: source, count: min(inSize, size)))
            }
        }
        let buffer = try allocate(data)
        let fd = try context.machine.newDescriptor(size: buffer.size)
        data.fd = UInt32(bitPattern: fd)
        if outSize > 0 {
            guard let target = try? UserMemory.check(argument, bytes: outSize) else {
                try? HostCalls.close(fd)
                throw .badAddress
            }
            withUnsafeBytes(of: data) { target.copyMemory(from: $0.baseAddress!, byteCount: min(outSize, size)) }
            if outSize > size { (target + size).initializeMemory(as: UInt8.self, repeating: 0, count: outSize - size) }
        }
        context.install(fd, buffer)
        return .done(0)
    }

    /// dma_heap_ioctl_allocate, then the system heap: `fd` must be 0, no undefined descriptor
    /// or heap flags (no heap flags are defined: lab `dmabuf-sync-name`), a length that is not
    /// 0 once page-aligned (the alignment wraps, as `PAGE_ALIGN` does); more than the domain's
    /// memory is ENOMEM.
    private func allocate(_ data: dma_heap_allocation_data) throws(Errno) -> DmaBufFile {
        if data.fd != 0 { throw .invalidArgument }
        if data.fd_flags & ~UInt32(O_CLOEXEC | O_ACCMODE) != 0 || data.heap_flags != 0 { throw .invalidArgument }
        let length = (data.len &+ UInt64(xenPageSize - 1)) & ~UInt64(xenPageSize - 1)
        if length == 0 { throw .invalidArgument }
        if length > UInt64(XenDomain.ramBytes) { throw .noMemory }
        let memory = try MemoryObject.create(name: "xengnt-sim-heap", bytes: Int(length))
        let pages = (0..<(Int(length) / xenPageSize)).map { Page(memory: memory, index: $0) }
        return DmaBufFile(kernel: kernel, pages: pages, exporter: .heap)
    }
}
