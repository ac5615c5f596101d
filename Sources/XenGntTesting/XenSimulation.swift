import Synchronization
public import SystemPackage
public import XenGnt

/// A simulated Xen host: domains, their grant tables and memory, and the gntdev, gntalloc,
/// udmabuf and DMA-heap drivers of each domain's kernel — behind the same seam XenGnt uses for
/// the real kernel.
///
/// The simulator receives the raw ioctl request numbers and argument structs and answers as
/// Linux 6.1 on Xen 4.17 does (every rule is checked against the real kernel in the lab; see
/// Documentation/Lab.md). Mapped memory aliases the granting domain's pages, so a write on one
/// side is visible on the other with no copy. Descriptors are real (eventfd, memfd), so code
/// that passes them around works unchanged; the simulator sees closes that go through XenGnt.
///
/// ```swift
/// let xen = XenSimulation()
/// let frontend = try xen.addDomain(1, type: .pvh)
/// let backend = try xen.addDomain(2, type: .pvh)
/// let refs = try frontend.grantPages(4, to: backend.id)
/// let gntdev = try GrantDevice(on: backend.system)
/// let buffer = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
/// ```
public final class XenSimulation: Sendable {
    /// The simulated kernel's build and module parameters.
    public struct Configuration: Sendable, Hashable {
        /// Device nodes the simulated kernels provide.
        public enum Device: Sendable, Hashable, CaseIterable {
            case gntdev, gntalloc, udmabuf, dmaHeap
        }

        /// Whether the kernel has `CONFIG_XEN_GNTDEV_DMABUF` (without it the four dma-buf ioctls
        /// answer `ENOTTY`, as on Debian's stock kernel).
        public var dmaBufIoctls = true
        /// gntdev's `limit` module parameter: pages per request.
        public var gntdevLimit = 65536
        /// gntalloc's `limit` module parameter: pages across all gntalloc files.
        public var gntallocLimit = 1024
        /// Whether x86 PVH/HVM kernels carry the export fix (no `GNTMAP_device_map` for
        /// auto-translated guests). Without it every x86 PVH/HVM export fails with `EINVAL`.
        public var x86ExportFix = true
        /// Grant-table entries per domain.
        public var grantTableSize = 32768
        /// The device nodes that exist.
        public var devices: Set<Device> = Set(Device.allCases)

        public init() {}
    }

    let kernel: Mutex<SimKernel>

    public init(_ configuration: Configuration = Configuration()) {
        kernel = Mutex(SimKernel(configuration: configuration))
    }

    /// The configuration; changes apply to the next call (e.g. raising gntalloc's limit).
    public var configuration: Configuration {
        get { kernel.withLock { $0.configuration } }
        set { kernel.withLock { $0.configuration = newValue } }
    }

    /// Creates a domain.
    ///
    /// - Throws: ``XenGntError`` with ``XenGntError/Cause/reservedDomain(_:)`` for a reserved
    ///   id, or ``XenGntError/Cause/invalidArgument(_:)`` if the id is taken.
    @discardableResult
    public func addDomain(_ id: DomainID, type: GuestType) throws(XenGntError) -> SimulatedDomain {
        if id.isReserved { throw XenGntError(.probe, cause: .reservedDomain(id.rawValue)) }
        try kernel.withLock { (kernel) throws(XenGntError) in
            if kernel.domains[id.rawValue] != nil {
                throw XenGntError(.probe, cause: .invalidArgument("the simulation already has \(id)."))
            }
            do throws(Errno) {
                kernel.domains[id.rawValue] = try SimDomain(id: id.rawValue, type: type)
            } catch {
                throw XenGntError(.probe, errno: error, cause: .kernel)
            }
        }
        return SimulatedDomain(simulation: self, id: id, type: type)
    }

    /// The domain with `id`, if it was added.
    public func existingDomain(_ id: DomainID) -> SimulatedDomain? {
        kernel.withLock { kernel in kernel.domains[id.rawValue].map { $0.type } }
            .map { SimulatedDomain(simulation: self, id: id, type: $0) }
    }

    /// Where to open devices to act as domain `id`: pass it to `GrantDevice(on:)`,
    /// `GrantAllocator(on:)` and the `DmaBuf` constructors. Calls on a domain that was never
    /// added fail with `ENODEV`.
    public func domain(_ id: DomainID) -> XenSystem {
        XenSystem(SimulatedSystemCalls(simulation: self, domain: id.rawValue))
    }

    /// Destroys a domain, as `xl destroy` does: its grants can no longer be mapped (existing
    /// mappings of them stay valid until unmapped), and every mapping it held of other domains'
    /// pages is torn down, so their deferred ends of access complete. Descriptors it had open
    /// stay valid; XenGnt owners of it tear down without error.
    public func destroyDomain(_ id: DomainID) {
        kernel.withLock { kernel in
            if let domain = kernel.domains[id.rawValue] { kernel.destroy(domain) }
        }
    }

    /// Makes the next `times` calls of `call` (by `domain`, or by any domain) fail with `errno`.
    /// `EINTR` proves that XenGnt retries; `ENOMEM`, `EFAULT` and the like exercise error paths.
    public func injectFault(_ errno: Errno, on call: SimulatedCall, times: Int = 1, domain: DomainID? = nil) {
        kernel.withLock { kernel in
            kernel.faults.append(FaultRule(call: call, errno: errno, remaining: times, domain: domain?.rawValue))
        }
    }

    /// What the simulated kernels currently hold: useful to assert that nothing leaked.
    public func census() -> Census {
        kernel.withLock { kernel in
            var seen = Set<ObjectIdentifier>()
            var census = Census()
            for file in kernel.files.values where seen.insert(ObjectIdentifier(file)).inserted {
                census.openFiles += 1
                if let gntdev = file as? GntdevFile {
                    census.grantMaps += gntdev.maps.count
                    census.exports += gntdev.exports.count
                    census.imports += gntdev.imports.count
                }
            }
            for buffer in kernel.files.values.compactMap({ $0 as? DmaBufFile }) {
                if case .gntdevExport(let exporter, _) = buffer.origin, seen.insert(ObjectIdentifier(exporter)).inserted {
                    census.exports += exporter.exports.count
                }
            }
            census.openDescriptors = kernel.files.count
            census.memoryMappings = kernel.regions.count
            census.gntallocPages = kernel.gntallocPages
            census.grants = kernel.domains.values.reduce(0) { $0 + $1.grants.count }
            return census
        }
    }

    /// Counts of live simulated kernel objects.
    public struct Census: Sendable, Hashable {
        /// Descriptor numbers that name a simulated file.
        public var openDescriptors = 0
        /// Distinct simulated open files reachable through descriptors.
        public var openFiles = 0
        /// Memory mappings made through the simulated kernel.
        public var memoryMappings = 0
        /// gntdev grant maps still requested.
        public var grantMaps = 0
        /// Exported dma-bufs not yet released.
        public var exports = 0
        /// Imported dma-bufs not yet released.
        public var imports = 0
        /// Pages gntalloc holds (its global count).
        public var gntallocPages = 0
        /// Grant-table entries in use, all domains together.
        public var grants = 0

        /// Nothing at all.
        public init() {}
    }

    // MARK: Kernel entry points (the seam)

    func withDomain<T>(_ id: UInt16, _ call: SimulatedCall, _ body: (SimKernel, SimDomain) throws(Errno) -> T) throws(Errno) -> T {
        try kernel.withLock { (kernel) throws(Errno) -> T in
            guard let domain = kernel.domains[id] else { throw .noDevice }
            if let fault = kernel.takeFault(call, domain: id) { throw fault }
            return try body(kernel, domain)
        }
    }

    func ioctl(_ domain: UInt16, _ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
        let outcome = try withDomain(domain, .ioctl(SimulatedIoctl(request: request))) { (kernel, domain) throws(Errno) in
            try kernel.ioctl(fd, request, argument, in: domain)
        }
        switch outcome {
        case .done(let result):
            return result
        case .waitForRelease(let buffer, let milliseconds):
            // Lab `export-balloon` (and -wc, -coherent): ETIMEDOUT after the timeout while any
            // holder remains, 0 as soon as the last one goes.
            let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int(milliseconds)))
            let token = UncheckedBox(buffer)
            while true {
                if kernel.withLock({ _ in token.value.released }) { return 0 }
                if ContinuousClock.now >= deadline { throw .timedOut }
                HostCalls.sleep(microseconds: 200)
            }
        }
    }
}

/// Carries a simulator object across the lock boundary; only read under the lock.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// A call of the seam, for fault injection.
public enum SimulatedCall: Sendable, Hashable {
    case open, close, dup, mmap, munmap, lseek
    /// An ioctl; `nil` matches every request.
    case ioctl(SimulatedIoctl?)

    func matches(_ actual: SimulatedCall) -> Bool {
        if case .ioctl(nil) = self, case .ioctl = actual { return true }
        return self == actual
    }
}

/// The ioctls the simulator serves.
public enum SimulatedIoctl: Sendable, Hashable, CaseIterable {
    case mapGrantRef, unmapGrantRef, getOffsetForVaddr, setMaxGrants, gntdevSetUnmapNotify, grantCopy
    case exportFromRefs, waitReleased, importToRefs, importRelease
    case allocGref, deallocGref, gntallocSetUnmapNotify
    case dmaBufSync, dmaBufSetName, udmabufCreate, dmaHeapAlloc

    /// The request number.
    public var request: UInt {
        switch self {
        case .mapGrantRef: Request.mapGrantRef
        case .unmapGrantRef: Request.unmapGrantRef
        case .getOffsetForVaddr: Request.getOffsetForVaddr
        case .setMaxGrants: Request.setMaxGrants
        case .gntdevSetUnmapNotify: Request.gntdevSetUnmapNotify
        case .grantCopy: Request.grantCopy
        case .exportFromRefs: Request.expFromRefs
        case .waitReleased: Request.expWaitReleased
        case .importToRefs: Request.impToRefs
        case .importRelease: Request.impRelease
        case .allocGref: Request.allocGref
        case .deallocGref: Request.deallocGref
        case .gntallocSetUnmapNotify: Request.gntallocSetUnmapNotify
        case .dmaBufSync: Request.dmaBufSync
        case .dmaBufSetName: Request.dmaBufSetName
        case .udmabufCreate: Request.udmabufCreate
        case .dmaHeapAlloc: Request.dmaHeapAlloc
        }
    }

    init?(request: UInt) {
        guard let match = Self.allCases.first(where: { $0.request == request }) else { return nil }
        self = match
    }
}
