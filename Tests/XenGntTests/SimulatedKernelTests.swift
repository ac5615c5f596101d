import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    /// Each domain runs its own Linux: build, module parameters and module state are per domain.
    @Suite struct Kernels {
        @Test func gntallocLimitsAndCountsArePerDomain() throws {
            let host = try Host()
            host.dom0.kernel.gntallocLimit = 2
            let dom0 = try GrantAllocator(on: host.dom0.system)
            #expect(dom0.globalLimit == 2)
            let held = try dom0.share(pages: 2, with: host.frontend.id)
            let full = #expect(throws: XenGntError.self) { _ = try dom0.share(pages: 1, with: host.frontend.id) }
            #expect(full?.errno == .noSpace)
            #expect(full?.code == .gntallocLimit && full?.limit == 2)

            let backend = try GrantAllocator(on: host.backend.system)
            #expect(backend.globalLimit == 1024, "lowering dom0's limit leaves dom2's alone")
            let big = try backend.share(pages: 10, with: host.frontend.id)
            let census = host.xen.census()
            #expect(census[host.dom0.id]?.gntallocPages == 2)
            #expect(census[host.backend.id]?.gntallocPages == 10)
            #expect(census.gntallocPages == 12)
            #expect(host.backend.kernel.gntallocLimit == 1024)
            _ = (held.refs, big.refs)
        }

        @Test func aStockDom0BesideAPatchedPVHDomU() throws {
            let xen = XenSimulation()
            let dom0 = try xen.addDomain(0, type: .pv, kernel: .debianStock)
            let domU = try xen.addDomain(1, type: .pvh, kernel: .lab)
            let frontend = try xen.addDomain(2, type: .pvh)

            let stock = XenCapabilities.probe(on: dom0.system)
            #expect(stock.dmaBufIoctls == false && stock.export == .notCompiledIn)
            #expect(stock.gntallocLimit == 1024)
            let lab = XenCapabilities.probe(on: domU.system)
            #expect(lab.dmaBufIoctls == true && lab.gntallocLimit == 8192)

            // The stock Dom0 cannot import; it shares with gntalloc instead, and the lab DomU
            // maps that and exports a frontend's frame.
            let refused = #expect(throws: XenGntError.self) {
                _ = try GrantDevice(on: dom0.system).importDmaBuf(DmaBuf.udmabuf(pages: 1, on: dom0.system), to: domU.id)
            }
            #expect(refused?.code == .dmaBufUnsupported)
            let raw = Raw(dom0.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            let buffer = try DmaBuf.udmabuf(pages: 1, on: dom0.system)
            #expect(raw.importRelease(fd, buffer: buffer.fileDescriptor.rawValue) == .inappropriateIOCTLForDevice)

            let shared = try GrantAllocator(on: dom0.system).share(pages: 1, with: domU.id)
            shared.withUnsafeMutableBytes { $0[0] = 0x42 }
            let gntdev = try GrantDevice(on: domU.system)
            let mapping = try gntdev.map(shared.refs, from: dom0.id)
            #expect(mapping.withUnsafeBytes { $0[0] } == 0x42)
            let refs = try frontend.grantPages(2, to: domU.id)
            let frame = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
            #expect(frame.byteCount == 2 * 4096)
        }

        @Test func aSystemAskedForBeforeItsDomainIsAddedWorksOnceItIs() throws {
            let xen = XenSimulation()
            let early = xen.system(of: 9)
            #expect(early.domainID == 9)
            #expect(throws: Errno.noDevice) { _ = try early.calls.readSmallFile(Paths.hypervisorType) }
            try xen.addDomain(9, type: .hvm)
            #expect(try early.calls.readSmallFile(Paths.guestType) == "HVM\n")
            #expect(xen.system(of: 9).domainID == 9 && xen.existingDomain(9)?.system.domainID == 9)
        }

        @Test func aModuleParameterChangeAppliesToTheNextCall() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            #expect(try calls.readSmallFile("/sys/module/xen_gntdev/parameters/limit") == "65536\n")
            host.backend.kernel.gntdevLimit = 2
            #expect(try calls.readSmallFile("/sys/module/xen_gntdev/parameters/limit") == "2\n")
            #expect(try host.dom0.system.calls.readSmallFile("/sys/module/xen_gntdev/parameters/limit") == "65536\n")
            host.backend.kernel.devices = [.gntdev]
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try calls.open("/dev/xen/gntalloc", flags: O_RDWR, mode: 0) }
            #expect(throws: Errno.noSuchFileOrDirectory) {
                _ = try calls.readSmallFile("/sys/module/xen_gntalloc/parameters/limit")
            }
            #expect(try host.dom0.system.calls.readSmallFile("/sys/module/xen_gntalloc/parameters/limit") == "1024\n")
        }
    }

    /// Grant tables as Xen and Linux share them: one 512-entry frame at first, grown on demand
    /// up to the host's `gnttab_max_frames`.
    @Suite struct GrantTables {
        func copyStatus(_ gntdev: GrantDevice, from domain: DomainID, ref: UInt32) throws -> GrantStatus {
            var byte: UInt8 = 0
            return try withUnsafeMutableBytes(of: &byte) { local in
                var segments = [
                    GrantCopySegment(
                        from: .grant(ForeignGrant(domain: domain, ref: GrantRef(ref)), offset: 0),
                        to: .local(local.baseAddress!),
                        length: 1
                    )
                ]
                try gntdev.copy(&segments)
                return segments[0].status
            }
        }

        @Test func theTableGrowsAFrameAtATimeUpToTheHostsMaximum() throws {
            let host = try Host(maxGrantFrames: 2)
            let gntdev = try host.gntdev()
            let first = try host.frontend.grantPages(504, to: host.backend.id)
            #expect(first.first == GrantRef(8) && first.last == GrantRef(511), "one frame: refs 8...511")
            #expect(try copyStatus(gntdev, from: host.frontend.id, ref: 511) == .okay)
            #expect(try copyStatus(gntdev, from: host.frontend.id, ref: 600) == .badGrantRef, "past the current size")

            let grown = try host.frontend.grantPages(1, to: host.dom0.id)
            #expect(grown == [GrantRef(512)], "the second frame")
            #expect(try copyStatus(gntdev, from: host.frontend.id, ref: 600) == .generalError, "within the table, unused")
            #expect(try copyStatus(gntdev, from: host.frontend.id, ref: 512) == .generalError, "granted to dom0")
            #expect(try copyStatus(gntdev, from: host.frontend.id, ref: 1024) == .badGrantRef)

            _ = try host.frontend.grantPages(511, to: host.backend.id)
            do {
                _ = try host.frontend.grantPages(1, to: host.backend.id)
                Issue.record("a full table must be refused")
            } catch {
                #expect(error.reason == .grantTableFull(host.frontend.id, available: 0))
                #expect(error.description.contains("max_grant_frames"))
            }
            host.frontend.endAccess(first)
            #expect(try host.frontend.grantPages(504, to: host.backend.id).count == 504, "freed entries are reused")
        }

        @Test func aFullTableIsENOSPCForGntalloc() throws {
            let host = try Host(maxGrantFrames: 1)
            _ = try host.dom0.grantPages(500, to: host.frontend.id)
            let raw = Raw(host.dom0.system)
            let fd = try raw.open("/dev/xen/gntalloc")
            defer { raw.close(fd) }
            #expect(raw.errno(raw.allocGref(fd, domid: 1, count: 5)) == .noSpace)
            #expect(host.xen.census()[host.dom0.id]?.gntallocPages == 0)
            let four = try raw.allocGref(fd, domid: 1, count: 4).get()
            #expect(four.refs.count == 4)
            #expect(host.xen.grants(from: host.dom0.id, to: host.frontend.id) == 504)
        }

        @Test func setupRefusesHostileValuesWithoutTrapping() throws {
            let host = try Host()
            let ref = try host.frontend.grantPages(1, to: host.backend.id)[0]
            func reason(_ body: () throws -> Void) -> SimulationError.Reason? {
                do {
                    try body()
                    return nil
                } catch let error as SimulationError {
                    return error.reason
                } catch {
                    Issue.record("expected a SimulationError, got \(error)")
                    return nil
                }
            }
            #expect(reason { try host.frontend.write([1], toGrant: ref, at: .max) } == .outOfRange(offset: .max, count: 1))
            #expect(reason { try host.frontend.write([1, 2], toGrant: ref, at: 4095) } == .outOfRange(offset: 4095, count: 2))
            #expect(reason { try host.frontend.write([1], toGrant: ref, at: -1) } == .outOfRange(offset: -1, count: 1))
            #expect(reason { _ = try host.frontend.read(grant: ref, at: .max, count: 1) } == .outOfRange(offset: .max, count: 1))
            #expect(reason { _ = try host.frontend.read(grant: ref, at: 1, count: .max) } == .outOfRange(offset: 1, count: .max))
            #expect(reason { _ = try host.frontend.read(grant: ref, at: 0, count: -5) } == .outOfRange(offset: 0, count: -5))
            #expect(
                reason { _ = try host.frontend.read(grant: GrantRef(999), count: 1) }
                    == .noSuchGrant(host.frontend.id, GrantRef(999))
            )
            #expect(reason { _ = try host.frontend.grantPages(-1, to: host.backend.id) } == .invalidCount(-1))
            #expect(
                reason { _ = try host.frontend.grantPages(.max, to: host.backend.id) }
                    == .grantTableFull(host.frontend.id, available: 32759)
            )
            #expect(reason { _ = try host.xen.addDomain(0x7FF0, type: .pv) } == .reservedDomain(0x7FF0))
            #expect(reason { _ = try host.xen.addDomain(1, type: .pv) } == .domainExists(1))
            #expect(
                reason { _ = try host.frontend.bindInterdomain(remote: host.backend.id, remotePort: 77) }
                    == .noUnboundPort(remote: host.backend.id, port: 77)
            )
            #expect(reason { _ = try host.frontend.bindInterdomain(remote: 9, remotePort: 1) } == .noSuchDomain(9))
            #expect(try host.frontend.read(grant: ref, at: 4096, count: 0) == [])
            #expect(host.xen.census().grants == 1)
        }
    }

    /// udmabuf's module parameters, and DMA-heap lengths.
    @Suite struct DmaBufSources {
        @Test func udmabufSizeAndListLimitsAreTheModulesParameters() throws {
            let host = try Host()
            let calls = host.backend.system.calls
            #expect(try calls.readSmallFile("/sys/module/udmabuf/parameters/size_limit_mb") == "64\n")
            #expect(try calls.readSmallFile("/sys/module/udmabuf/parameters/list_limit") == "1024\n")
            let whole = try DmaBuf.udmabuf(pages: 64 * 256, on: host.backend.system)
            #expect(try whole.size() == 64 << 20, "64 MiB is the limit itself")
            let over = #expect(throws: XenGntError.self) { _ = try DmaBuf.udmabuf(pages: 64 * 256 + 1, on: host.backend.system) }
            #expect(over?.errno == .invalidArgument, "6.1's udmabuf_create: more than size_limit_mb is EINVAL")
            host.backend.kernel.udmabufSizeLimitMB = 1
            #expect(try calls.readSmallFile("/sys/module/udmabuf/parameters/size_limit_mb") == "1\n")
            #expect(
                #expect(throws: XenGntError.self) { _ = try DmaBuf.udmabuf(pages: 257, on: host.backend.system) }?.errno
                    == .invalidArgument
            )
            _ = try DmaBuf.udmabuf(pages: 256, on: host.backend.system)
            _ = try DmaBuf.udmabuf(pages: 257, on: host.dom0.system)
        }

        /// A sealed memfd of `pages` pages made through the seam, and /dev/udmabuf.
        func sealedMemfd(_ raw: Raw, pages: Int) throws -> (memfd: Int32, device: Int32) {
            let memfd = try raw.calls.memfdCreate("xengnt-test", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
            try raw.calls.ftruncate(memfd, length: Int64(pages * 4096))
            _ = try raw.calls.fcntl(memfd, command: Int32(CXG_F_ADD_SEALS), argument: Int32(CXG_F_SEAL_SHRINK))
            return (memfd, try raw.open("/dev/udmabuf"))
        }

        func create(_ raw: Raw, _ device: Int32, memfd: Int32, offset: UInt64, size: UInt64) -> Errno? {
            raw.errno(
                raw.ioctl(
                    device,
                    cxg_request_udmabuf_create(),
                    size: MemoryLayout<udmabuf_create>.size,
                    fill: {
                        $0.storeBytes(
                            of: udmabuf_create(memfd: UInt32(bitPattern: memfd), flags: 0, offset: offset, size: size),
                            as: udmabuf_create.self
                        )
                    },
                    read: { Int32($0.load(as: UInt32.self)) }
                )
            )
        }

        @Test func udmabufRefusesHostileSizesAndOffsetsAsTheKernelDoes() throws {
            let host = try Host()
            let raw = Raw(host.backend.system)
            let (memfd, device) = try sealedMemfd(raw, pages: 2)
            defer {
                raw.close(memfd)
                raw.close(device)
            }
            #expect(create(raw, device, memfd: memfd, offset: 0, size: ~UInt64(4095)) == .invalidArgument)
            #expect(create(raw, device, memfd: memfd, offset: ~UInt64(4095), size: 4096) == .invalidArgument)
            #expect(create(raw, device, memfd: memfd, offset: 4096, size: 8192) == .invalidArgument, "past the memfd's end")
            #expect(create(raw, device, memfd: memfd, offset: 1, size: 4096) == .invalidArgument)
            #expect(create(raw, device, memfd: memfd, offset: 0, size: 0) == .invalidArgument)
            #expect(create(raw, device, memfd: 9999, offset: 0, size: 4096) == Errno(rawValue: EBADFD))
            #expect(create(raw, device, memfd: device, offset: 0, size: 4096) == Errno(rawValue: EBADFD), "not a memfd")
            host.backend.kernel.udmabufSizeLimitMB = 1 << 20
            #expect(create(raw, device, memfd: memfd, offset: 0, size: 8 << 30) == .noMemory, "more than the domain's memory")
        }

        @Test func udmabufCreateListJoinsItemsUpToTheListLimit() throws {
            let host = try Host()
            let raw = Raw(host.backend.system)
            let (memfd, device) = try sealedMemfd(raw, pages: 3)
            defer {
                raw.close(memfd)
                raw.close(device)
            }
            let request = SimulatedIoctl.udmabufCreateList.request
            func createList(_ items: [(offset: UInt64, size: UInt64)], count: UInt32? = nil) throws(Errno) -> Int32 {
                let argument = UnsafeMutableRawPointer.allocate(byteCount: 8 + 24 * max(items.count, 1), alignment: 16)
                defer { argument.deallocate() }
                argument.storeBytes(of: UInt32(0), as: UInt32.self)
                argument.storeBytes(of: count ?? UInt32(items.count), toByteOffset: 4, as: UInt32.self)
                for (i, item) in items.enumerated() {
                    argument.storeBytes(
                        of: udmabuf_create_item(memfd: UInt32(memfd), __pad: 0, offset: item.offset, size: item.size),
                        toByteOffset: 8 + 24 * i,
                        as: udmabuf_create_item.self
                    )
                }
                return try raw.calls.ioctl(device, request, argument)
            }
            let joined = try createList([(8192, 4096), (0, 4096)])
            #expect(try raw.calls.lseek(joined, offset: 0, whence: SEEK_END) == 8192)
            raw.close(joined)
            #expect(throws: Errno.invalidArgument, "over list_limit") { _ = try createList([(0, 4096)], count: 1025) }
            host.backend.kernel.udmabufListLimit = 1
            #expect(throws: Errno.invalidArgument) { _ = try createList([(8192, 4096), (0, 4096)]) }
            #expect(host.xen.census()[host.backend.id]?.openFiles == 2, "the device and the memfd: the buffer was closed")
        }

        func heapAlloc(
            _ raw: Raw,
            _ heap: Int32,
            request: UInt = cxg_request_dma_heap_alloc(),
            len: UInt64,
            fd: UInt32 = 0
        ) -> Errno? {
            raw.errno(
                raw.ioctl(
                    heap,
                    request,
                    size: MemoryLayout<dma_heap_allocation_data>.size,
                    fill: {
                        $0.storeBytes(
                            of: dma_heap_allocation_data(len: len, fd: fd, fd_flags: UInt32(O_RDWR | O_CLOEXEC), heap_flags: 0),
                            as: dma_heap_allocation_data.self
                        )
                    },
                    read: { raw.close(Int32(bitPattern: $0.load(fromByteOffset: 8, as: UInt32.self))) }
                )
            )
        }

        @Test func dmaHeapLengthsWrapAndOverflowAsTheKernelSays() throws {
            let host = try Host()
            let raw = Raw(host.backend.system)
            let heap = try raw.open("/dev/dma_heap/system")
            defer { raw.close(heap) }
            #expect(heapAlloc(raw, heap, len: .max) == .invalidArgument, "PAGE_ALIGN wraps to 0")
            #expect(heapAlloc(raw, heap, len: .max - 8191) == .noMemory)
            #expect(heapAlloc(raw, heap, len: 0) == .invalidArgument)
            #expect(heapAlloc(raw, heap, len: 4096, fd: 3) == .invalidArgument, "fd must be 0")
            #expect(
                heapAlloc(raw, heap, request: cxg_request_dma_heap_alloc() + 1, len: 4096) == .invalidArgument,
                "past the one request"
            )
            #expect(heapAlloc(raw, heap, len: 1) == nil)
            #expect(host.xen.census()[host.backend.id]?.descriptors == 1)
        }
    }
}
