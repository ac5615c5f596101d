import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// A page followed by a hole: an argument placed at the page's end that claims more than fits
/// runs into unmapped memory, as a lying count would.
final class Cliff {
    let base: UnsafeMutableRawPointer

    init() throws {
        let pages = mmap(nil, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let pages, pages != MAP_FAILED else { throw Errno.noMemory }
        base = pages
        munmap(base + 4096, 4096)
    }

    /// `bytes` bytes before the hole, zeroed.
    func edge(_ bytes: Int) -> UnsafeMutableRawPointer {
        let start = base + 4096 - bytes
        start.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        return start
    }

    deinit { munmap(base, 4096) }
}

extension Simulated {
    /// Raw structs no library would send: the simulated kernel answers as Linux would, and
    /// neither traps nor allocates what the count claims.
    @Suite struct HostileStructs {
        let host: Host
        let raw: Raw
        let cliff: Cliff

        init() throws {
            host = try Host()
            raw = Raw(host.backend.system)
            cliff = try Cliff()
        }

        func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) -> Errno? {
            do {
                _ = try raw.calls.ioctl(fd, request, argument)
                return nil
            } catch {
                return error
            }
        }

        @Test func lyingCountsAndPointersAreEFAULTOrEINVAL() throws {
            let gntdev = try raw.open(Paths.gntdev)
            let gntalloc = try raw.open(Paths.gntalloc)
            defer {
                raw.close(gntdev)
                raw.close(gntalloc)
            }
            let map = cxg_request_gntdev_map_grant_ref()
            #expect(ioctl(gntdev, map, nil) == .badAddress)
            #expect(ioctl(gntdev, map, UnsafeMutableRawPointer(bitPattern: 0x1000)) == .badAddress)
            let header = cliff.edge(24)
            header.storeBytes(of: UInt32.max, as: UInt32.self)
            #expect(ioctl(gntdev, map, header) == .invalidArgument, "over gntdev's limit")
            header.storeBytes(of: UInt32(100), as: UInt32.self)
            #expect(ioctl(gntdev, map, header) == .badAddress, "100 refs run into the hole")
            #expect(ioctl(gntdev, map, cliff.edge(8)) == .badAddress, "the header itself")

            let export = cliff.edge(20)
            export.storeBytes(of: UInt32(2), toByteOffset: cxg_offsetof_exp_from_refs_count(), as: UInt32.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_dmabuf_exp_from_refs(), export) == .badAddress)
            export.storeBytes(of: UInt32.max, toByteOffset: cxg_offsetof_exp_from_refs_count(), as: UInt32.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_dmabuf_exp_from_refs(), export) == .invalidArgument)
            let imp = cliff.edge(20)
            imp.storeBytes(of: UInt32.max, toByteOffset: cxg_offsetof_imp_to_refs_count(), as: UInt32.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_dmabuf_imp_to_refs(), imp) == .invalidArgument)

            let alloc = cliff.edge(24)
            alloc.storeBytes(of: UInt32.max, toByteOffset: cxg_offsetof_alloc_gref_count(), as: UInt32.self)
            #expect(ioctl(gntalloc, cxg_request_gntalloc_alloc_gref(), alloc) == .noSpace)
            alloc.storeBytes(of: UInt32(4), toByteOffset: cxg_offsetof_alloc_gref_count(), as: UInt32.self)
            #expect(ioctl(gntalloc, cxg_request_gntalloc_alloc_gref(), alloc) == .badAddress, "the ids do not fit")
            #expect(host.xen.census()[host.backend.id]?.gntallocPages == 4, "the kernel keeps what it could not report")
            #expect(raw.deallocGref(gntalloc, index: 0, count: .max) == .invalidArgument)
            #expect(raw.deallocGref(gntalloc, index: .max, count: 1) == .invalidArgument)
            let calls = raw.calls
            #expect(throws: Errno.noSuchFileOrDirectory) {
                _ = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: gntalloc, offset: .max & ~4095)
            }

            #expect(raw.unmapGrantRef(gntdev, index: .max, count: .max) == .noSuchFileOrDirectory)
            #expect(
                raw.notify(gntdev, request: cxg_request_gntdev_set_unmap_notify(), index: .max, action: 1)
                    == .noSuchFileOrDirectory
            )
            var vaddr = ioctl_gntdev_get_offset_for_vaddr(vaddr: .max, offset: 0, count: 0, pad: 0)
            #expect(ioctl(gntdev, cxg_request_gntdev_get_offset_for_vaddr(), &vaddr) == .invalidArgument)
        }

        @Test func grantCopySegmentsAreReadAsTheKernelReachesThem() throws {
            let gntdev = try raw.open(Paths.gntdev)
            defer { raw.close(gntdev) }
            let ref = try host.frontend.grantPages(1, to: host.backend.id)[0]
            try host.frontend.write([0x5A], toGrant: ref)
            let local = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)
            defer { local.deallocate() }
            local.storeBytes(of: 0, as: UInt8.self)
            let segmentSize = MemoryLayout<ioctl_gntdev_grant_copy_segment>.size
            let segments = cliff.edge(segmentSize)
            var segment = ioctl_gntdev_grant_copy_segment()
            segment.flags = UInt16(CXG_GNTCOPY_SOURCE_GREF)
            segment.len = 1
            segment.source.foreign.ref = ref.rawValue
            segment.source.foreign.offset = 0
            segment.source.foreign.domid = 1
            segment.dest.virt = local
            segments.storeBytes(of: segment, as: ioctl_gntdev_grant_copy_segment.self)
            var copy = ioctl_gntdev_grant_copy(
                count: .max,
                segments: segments.assumingMemoryBound(to: ioctl_gntdev_grant_copy_segment.self)
            )
            #expect(ioctl(gntdev, cxg_request_gntdev_grant_copy(), &copy) == .badAddress, "the second segment is in the hole")
            #expect(local.load(as: UInt8.self) == 0, "nothing was copied")
            copy.count = 1
            #expect(ioctl(gntdev, cxg_request_gntdev_grant_copy(), &copy) == nil)
            #expect(local.load(as: UInt8.self) == 0x5A)

            segment.dest.virt = UnsafeMutableRawPointer(bitPattern: UInt.max - 2)
            segments.storeBytes(of: segment, as: ioctl_gntdev_grant_copy_segment.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_grant_copy(), &copy) == .badAddress)
            let readOnly = mmap(nil, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)!
            defer { munmap(readOnly, 4096) }
            segment.dest.virt = readOnly
            segments.storeBytes(of: segment, as: ioctl_gntdev_grant_copy_segment.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_grant_copy(), &copy) == .badAddress, "a read-only destination")
            segment.source.foreign.offset = 0xFFFF
            segment.len = 0xFFFF
            segments.storeBytes(of: segment, as: ioctl_gntdev_grant_copy_segment.self)
            #expect(ioctl(gntdev, cxg_request_gntdev_grant_copy(), &copy) == .invalidArgument)
        }

        @Test func namesAndMappingsOfHostileSize() throws {
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            let fd = buffer.fileDescriptor.rawValue
            let name = cliff.edge(5)
            name.initializeMemory(as: UInt8.self, repeating: 0x61, count: 5)
            #expect(ioctl(fd, cxg_request_dma_buf_set_name(), name) == .badAddress, "no NUL before the hole")
            name.storeBytes(of: 0, toByteOffset: 4, as: UInt8.self)
            #expect(ioctl(fd, cxg_request_dma_buf_set_name(), name) == nil, "a name that ends just before it")

            let gntdev = try raw.open(Paths.gntdev)
            defer { raw.close(gntdev) }
            let calls = raw.calls
            #expect(throws: Errno.noMemory) {
                _ = try calls.mmap(length: .max, protection: PROT_READ, flags: MAP_SHARED, fd: gntdev, offset: 0)
            }
            #expect(throws: Errno.invalidArgument) {
                _ = try calls.mmap(length: 0, protection: PROT_READ, flags: MAP_SHARED, fd: gntdev, offset: 0)
            }
            #expect(throws: Errno.invalidArgument) {
                _ = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: gntdev, offset: 5)
            }
            #expect(throws: Errno.invalidArgument) {
                _ = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: fd, offset: -4096)
            }
            #expect(throws: Errno.invalidArgument) {
                _ = try calls.mmap(length: 8192, protection: PROT_READ, flags: MAP_SHARED, fd: fd, offset: 0)
            }
            // gntdev_mmap keeps vm_pgoff in an int: page offset 2^32 is map index 0.
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            let index = try raw.mapGrantRef(gntdev, [(domid: 1, ref: refs[0].rawValue)]).get()
            #expect(index == 0)
            let address = try calls.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: gntdev, offset: 1 << 44)
            try calls.munmap(address, length: 4096)
        }
    }

    /// Lab finding `pvh-self-map` (2026-12-01, 3 boots of 3): an x86 PVH/HVM domain that maps
    /// a grant it issued to itself sees another page, and its next gntalloc mmap oopses.
    @Suite struct SelfMaps {
        @Test func aPVHDomainMappingItsOwnGrantSeesAnotherPageAndItsKernelOopses() throws {
            let host = try Host()
            let pvh = host.backend
            let refs = try pvh.grantPages(1, to: pvh.id)
            try pvh.write([0xAB], toGrant: refs[0])
            let raw = Raw(pvh.system)
            let gntdev = try raw.open(Paths.gntdev)
            let index = try raw.mapGrantRef(gntdev, [(domid: UInt32(pvh.id.rawValue), ref: refs[0].rawValue)]).get()
            let address = try raw.mmap(gntdev, pages: 1, offset: index).get()
            #expect(address.load(as: UInt8.self) == 0, "not the granted page")
            #expect(host.xen.mappings(by: pvh.id, of: pvh.id) == 1)
            #expect(pvh.state == .running, "nothing shows yet")

            let gntalloc = try raw.open(Paths.gntalloc)
            let share = try raw.allocGref(gntalloc, domid: 1, count: 1).get()
            #expect(raw.errno(raw.mmap(gntalloc, pages: 1, offset: share.index)) == .badAddress)
            #expect(pvh.state == .crashed && host.xen.state(of: pvh.id) == .crashed)
            let census = host.xen.census()
            #expect(census[pvh.id]?.oops?.contains("pvh-self-map") == true)
            #expect(census.description.contains("oops"))
            #expect(throws: Errno.ioError) { _ = try raw.calls.open(Paths.gntdev, flags: O_RDWR, mode: 0) }
            #expect(throws: SimulationError.self) { _ = try pvh.spawnProcess() }
            #expect(XenCapabilities.probe(on: host.dom0.system).isXenDomain, "other domains carry on")

            host.xen.destroyDomain(pvh.id)
            #expect(host.xen.state(of: pvh.id) == .gone)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test(arguments: [GuestType.pv, .arm])
        func pvAndArmDomainsMapTheirOwnGrants(_ type: GuestType) throws {
            let xen = XenSimulation()
            let domain = try xen.addDomain(3, type: type)
            let refs = try domain.grantPages(1, to: domain.id)
            try domain.write([0xAB], toGrant: refs[0])
            let mapping = try GrantDevice(on: domain.system).map(refs, from: domain.id)
            #expect(mapping.withUnsafeBytes { $0[0] } == 0xAB)
            let shared = try GrantAllocator(on: domain.system).share(pages: 1, with: 4)
            #expect(shared.pageCount == 1 && domain.state == .running)
        }
    }
}
