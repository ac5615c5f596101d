import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

/// Every non-DRM row of Documentation/KernelFacts.md's "measured" table, sent to the simulator as
/// raw request numbers and C structs, so that XenGnt's own validation cannot hide a gap.
extension Simulated {
    @Suite struct RawKernelTable {
        let host: Host
        let pvh: Raw
        let pv: Raw

        init() throws {
            host = try Host()
            pvh = Raw(host.backend.system)
            pv = Raw(host.dom0.system)
        }

        @Test func exportInAPVDomainIsAlwaysEINVAL() throws {
            let fd = try pv.open("/dev/xen/gntdev")
            defer { pv.close(fd) }
            let refs = try host.frontend.grantPages(2, to: host.dom0.id).map(\.rawValue)
            for flags: UInt32 in [0, 1, 2, 3, 4] {
                #expect(pv.errno(pv.export(fd, domid: 1, refs: refs, flags: flags)) == .invalidArgument)
            }
            #expect(pv.errno(pv.export(fd, domid: 1, refs: [], count: 0)) == .invalidArgument)
        }

        @Test func exportInAPVHDomainWorksWithEveryFlagAndIgnoresUnknownBits() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            for flags: UInt32 in [0, 1, 2, 4] {
                let refs = try host.frontend.grantPages(4, to: host.backend.id).map(\.rawValue)
                let exported = try pvh.export(fd, domid: 1, refs: refs, flags: flags).get()
                #expect(lseek(exported, 0, SEEK_END) == 4 * 4096)
                pvh.close(exported)
            }
            let refs = try host.frontend.grantPages(1, to: host.backend.id).map(\.rawValue)
            #expect(pvh.errno(pvh.export(fd, domid: 1, refs: refs, flags: 3)) == .invalidArgument)
        }

        @Test func badExportArgumentsAreEINVALAllOrNothing() throws {
            host.backend.kernel.gntdevLimit = 16
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            let good = try host.frontend.grantPages(1, to: host.backend.id)[0].rawValue
            let unused: UInt32 = 3000
            _ = try host.xen.addDomain(3, type: .pvh)
            let cases: [(domid: UInt32, refs: [UInt32], count: UInt32?)] = [
                (1, [], 0),  // count 0
                (1, Array(repeating: good, count: 17), nil),  // over the limit
                (1, [40000], nil),  // invalid ref
                (1, [unused], nil),  // unused ref
                (3, [good], nil),  // wrong domid
                (99, [good], nil),  // unknown domid
                (1, [good, unused], nil),  // one good + one bad
            ]
            for (domid, refs, count) in cases {
                #expect(pvh.errno(pvh.export(fd, domid: domid, refs: refs, count: count)) == .invalidArgument)
            }
            #expect(host.frontend.mapCount(of: GrantRef(good)) == 0)
        }

        @Test func theSameRefsExportTwiceAndTheExportHasNoMmap() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            let refs = try host.frontend.grantPages(2, to: host.backend.id).map(\.rawValue)
            let first = try pvh.export(fd, domid: 1, refs: refs).get()
            let second = try pvh.export(fd, domid: 1, refs: refs).get()
            #expect(first != second)
            #expect(pvh.errno(pvh.mmap(first, pages: 2, offset: 0)) == .invalidArgument)
            pvh.close(first)
            pvh.close(second)
        }

        @Test func waitReleasedTimesOutWhileOpenAndIsENOENTOnceReleased() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            let refs = try host.frontend.grantPages(1, to: host.backend.id).map(\.rawValue)
            let exported = try pvh.export(fd, domid: 1, refs: refs).get()
            let started = ContinuousClock.now
            #expect(pvh.waitReleased(fd, exported: exported, milliseconds: 100) == .timedOut)
            #expect(ContinuousClock.now - started >= .milliseconds(100))
            pvh.close(exported)
            #expect(pvh.waitReleased(fd, exported: exported, milliseconds: 100) == .noSuchFileOrDirectory)
        }

        @Test func waitReleasedOnAnUnknownNumberOrAnotherFileIsENOENT() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            let other = try pvh.open("/dev/xen/gntdev")
            defer {
                pvh.close(fd)
                pvh.close(other)
            }
            let refs = try host.frontend.grantPages(1, to: host.backend.id).map(\.rawValue)
            let exported = try pvh.export(fd, domid: 1, refs: refs).get()
            defer { pvh.close(exported) }
            #expect(pvh.waitReleased(fd, exported: 777, milliseconds: 0) == .noSuchFileOrDirectory)
            #expect(pvh.waitReleased(other, exported: exported, milliseconds: 0) == .noSuchFileOrDirectory)
            let pvFile = try pv.open("/dev/xen/gntdev")
            defer { pv.close(pvFile) }
            #expect(pv.waitReleased(pvFile, exported: 777, milliseconds: 0) == .noSuchFileOrDirectory)
        }

        enum Source: CaseIterable, Sendable { case udmabuf, heap }

        @Test(arguments: Source.allCases)
        func importToRefsSucceedsAndThePeerMapsCoherently(source: Source) throws {
            let fd = try pv.open("/dev/xen/gntdev")
            defer { pv.close(fd) }
            let buffer: DmaBuf =
                source == .udmabuf
                ? try DmaBuf.udmabuf(pages: 2, on: host.dom0.system)
                : try DmaBuf.allocate(fromHeap: "system", pages: 2, on: host.dom0.system)
            let refs = try pv.importToRefs(fd, buffer: buffer.fileDescriptor.rawValue, count: 2, domid: 2).get()
            let peer = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(peer) }
            let index = try pvh.mapGrantRef(peer, refs.map { (domid: 0, ref: $0) }).get()
            let address = try pvh.mmap(peer, pages: 2, offset: index).get()
            let cpu = try buffer.map()
            try cpu.withUnsafeMutableBytes { $0[4096] = 9 }
            #expect(address.load(fromByteOffset: 4096, as: UInt8.self) == 9)
            address.storeBytes(of: 10, toByteOffset: 1, as: UInt8.self)
            #expect(cpu.withUnsafeBytes { $0[1] } == 10)
            pvh.munmap(address, pages: 2)
            #expect(pvh.unmapGrantRef(peer, index: index, count: 2) == nil)
            #expect(pv.importRelease(fd, buffer: buffer.fileDescriptor.rawValue) == nil)
        }

        @Test func importToRefsFailures() throws {
            let fd = try pv.open("/dev/xen/gntdev")
            defer { pv.close(fd) }
            let buffer = try DmaBuf.udmabuf(pages: 2, on: host.dom0.system)
            let number = buffer.fileDescriptor.rawValue
            #expect(pv.errno(pv.importToRefs(fd, buffer: number, count: 3, domid: 1)) == .invalidArgument)  // count ≠ pages
            #expect(pv.errno(pv.importToRefs(fd, buffer: number, count: 0, domid: 1)) == .invalidArgument)  // count 0
            let memfd = try pv.calls.memfdCreate("plain", flags: 1)
            _ = ftruncate(memfd, 8192)
            #expect(pv.errno(pv.importToRefs(fd, buffer: memfd, count: 2, domid: 1)) == .invalidArgument)  // not a dma-buf
            close(memfd)
            #expect(pv.errno(pv.importToRefs(fd, buffer: 9999, count: 2, domid: 1)) == .badFileDescriptor)  // closed fd
            #expect(pv.errno(pv.importToRefs(fd, buffer: fd, count: 2, domid: 1)) == .invalidArgument)  // the gntdev fd itself
            #expect((try? pv.importToRefs(fd, buffer: number, count: 2, domid: 555).get()) != nil)  // unknown domid
        }

        @Test func importReleaseWhileMappedSucceedsTwiceIsENOENT() throws {
            let fd = try pv.open("/dev/xen/gntdev")
            defer { pv.close(fd) }
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.dom0.system)
            let number = buffer.fileDescriptor.rawValue
            let refs = try pv.importToRefs(fd, buffer: number, count: 1, domid: 2).get()
            let peer = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(peer) }
            let index = try pvh.mapGrantRef(peer, [(domid: 0, ref: refs[0])]).get()
            let address = try pvh.mmap(peer, pages: 1, offset: index).get()
            #expect(pv.importRelease(fd, buffer: number) == nil)
            #expect(host.dom0.isGranted(GrantRef(refs[0])), "deferred while mapped")
            #expect(pv.importRelease(fd, buffer: number) == .noSuchFileOrDirectory)
            #expect(pv.importRelease(fd, buffer: 4321) == .noSuchFileOrDirectory)
            pvh.munmap(address, pages: 1)
            #expect(pvh.unmapGrantRef(peer, index: index, count: 1) == nil)
            #expect(!host.dom0.isGranted(GrantRef(refs[0])))
        }

        @Test func gntdevMapOfABadRefFailsAtMmapNotAtTheIoctl() throws {
            for (raw, domid) in [(pvh, UInt32(1)), (pv, UInt32(1))] {
                let fd = try raw.open("/dev/xen/gntdev")
                defer { raw.close(fd) }
                let index = try raw.mapGrantRef(fd, [(domid: domid, ref: 40000)]).get()
                #expect(raw.errno(raw.mmap(fd, pages: 1, offset: index)) == .invalidArgument)
                let unknown = try raw.mapGrantRef(fd, [(domid: 88, ref: 8)]).get()
                #expect(raw.errno(raw.mmap(fd, pages: 1, offset: unknown)) == .invalidArgument)
                #expect(raw.unmapGrantRef(fd, index: index, count: 1) == nil)
                #expect(raw.unmapGrantRef(fd, index: index, count: 1) == .noSuchFileOrDirectory)
            }
        }

        @Test func aMapIsMmappedOnceNeedsSharedForWritesAndExactRanges() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            let refs = try host.frontend.grantPages(2, to: host.backend.id).map { (domid: UInt32(1), ref: $0.rawValue) }
            let index = try pvh.mapGrantRef(fd, refs).get()
            #expect(pvh.errno(pvh.mmap(fd, pages: 2, offset: index, shared: false)) == .invalidArgument)
            #expect(pvh.errno(pvh.mmap(fd, pages: 1, offset: index)) == .invalidArgument)
            let address = try pvh.mmap(fd, pages: 2, offset: index).get()
            #expect(pvh.errno(pvh.mmap(fd, pages: 2, offset: index)) == .invalidArgument)
            pvh.munmap(address, pages: 2)
            #expect(pvh.errno(pvh.mmap(fd, pages: 2, offset: index)) == .invalidArgument, "in_use is never cleared")
            #expect(pvh.errno(pvh.mapGrantRef(fd, [], count: 0)) == .invalidArgument)
        }

        @Test func aDmaBufIoctlOnGntallocIsENOTTY() throws {
            let fd = try pv.open("/dev/xen/gntalloc")
            defer { pv.close(fd) }
            #expect(pv.errno(pv.export(fd, domid: 1, refs: [8])) == .inappropriateIOCTLForDevice)
            #expect(pv.importRelease(fd, buffer: 1) == .inappropriateIOCTLForDevice)
            #expect(pv.waitReleased(fd, exported: 1, milliseconds: 0) == .inappropriateIOCTLForDevice)
        }

        @Test func aKernelWithoutDmaBufAnswersENOTTYToAllFour() throws {
            let host = try Host { $0.dmaBufIoctls = false }
            let raw = Raw(host.backend.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            #expect(raw.errno(raw.export(fd, domid: 1, refs: [8])) == .inappropriateIOCTLForDevice)
            #expect(raw.waitReleased(fd, exported: 3, milliseconds: 0) == .inappropriateIOCTLForDevice)
            #expect(raw.errno(raw.importToRefs(fd, buffer: 3, count: 1, domid: 1)) == .inappropriateIOCTLForDevice)
            #expect(raw.importRelease(fd, buffer: 3) == .inappropriateIOCTLForDevice)
        }

        @Test func anX86KernelWithoutTheExportFixRefusesEveryExport() throws {
            let host = try Host { $0.x86ExportFix = false }
            let raw = Raw(host.backend.system)
            let fd = try raw.open("/dev/xen/gntdev")
            defer { raw.close(fd) }
            let refs = try host.frontend.grantPages(1, to: host.backend.id).map(\.rawValue)
            #expect(raw.errno(raw.export(fd, domid: 1, refs: refs)) == .invalidArgument)
        }

        @Test func gntallocLimitIsGlobalToTheKernelAndENOSPC() throws {
            host.dom0.kernel.gntallocLimit = 4
            let a = try pv.open("/dev/xen/gntalloc")
            let b = try pv.open("/dev/xen/gntalloc")
            defer {
                pv.close(a)
                pv.close(b)
            }
            #expect(pv.errno(pv.allocGref(a, domid: 1, count: 5)) == .noSpace)
            let first = try pv.allocGref(a, domid: 1, count: 3).get()
            #expect(pv.errno(pv.allocGref(b, domid: 1, count: 2)) == .noSpace)
            #expect(pv.deallocGref(a, index: first.index, count: 3) == nil)
            #expect((try? pv.allocGref(b, domid: 1, count: 2).get()) != nil)
        }

        @Test func gntallocCountZeroIsAcceptedAndBadDeallocsAreEINVAL() throws {
            let fd = try pv.open("/dev/xen/gntalloc")
            defer { pv.close(fd) }
            #expect((try? pv.allocGref(fd, domid: 1, count: 0).get()) != nil)
            let share = try pv.allocGref(fd, domid: 1, count: 2).get()
            #expect(pv.deallocGref(fd, index: share.index + 4096, count: 2) == .invalidArgument)
            #expect(pv.deallocGref(fd, index: share.index, count: 0) == .invalidArgument)
            #expect(pv.errno(pv.mmap(fd, pages: 2, offset: share.index, shared: false)) == .invalidArgument)
            #expect(pv.errno(pv.mmap(fd, pages: 2, offset: share.index + 8192)) == .noSuchFileOrDirectory)
            #expect(pv.deallocGref(fd, index: share.index, count: 2) == nil)
        }

        @Test func unmapNotifyFailures() throws {
            let gntdev = try pvh.open("/dev/xen/gntdev")
            let gntalloc = try pv.open("/dev/xen/gntalloc")
            defer {
                pvh.close(gntdev)
                pv.close(gntalloc)
            }
            let notify = cxg_request_gntdev_set_unmap_notify()
            #expect(pvh.notify(gntdev, request: notify, index: 0, action: 1) == .noSuchFileOrDirectory)
            #expect(pvh.notify(gntdev, request: notify, index: 0, action: 4) == .invalidArgument)
            #expect(pvh.notify(gntdev, request: notify, index: 0, action: 2, port: 5) == .invalidArgument)
            let share = try pv.allocGref(gntalloc, domid: 2, count: 1).get()
            let allocNotify = cxg_request_gntalloc_set_unmap_notify()
            #expect(pv.notify(gntalloc, request: allocNotify, index: share.index + 8192, action: 1) == .noSuchFileOrDirectory)
            #expect(pv.notify(gntalloc, request: allocNotify, index: share.index, action: 8) == .invalidArgument)
            #expect(pv.notify(gntalloc, request: allocNotify, index: share.index + 5, action: 1) == nil)
        }

        @Test func setMaxGrantsIsENOTTY() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            let result = pvh.ioctl(
                fd,
                cxg_request_gntdev_set_max_grants(),
                size: 4,
                fill: { $0.storeBytes(of: UInt32(8), as: UInt32.self) },
                read: { _ in () }
            )
            #expect(pvh.errno(result) == .inappropriateIOCTLForDevice)
        }

        @Test func unknownRequestsAndNullArgumentsAreRefused() throws {
            let fd = try pvh.open("/dev/xen/gntdev")
            defer { pvh.close(fd) }
            #expect(throws: Errno.badAddress) { _ = try pvh.calls.ioctl(fd, cxg_request_gntdev_map_grant_ref(), nil) }
            #expect(throws: Errno.inappropriateIOCTLForDevice) { _ = try pvh.calls.ioctl(fd, 0x1234, nil) }
            #expect(throws: Errno.badFileDescriptor) { _ = try pvh.calls.ioctl(9999, cxg_request_gntdev_map_grant_ref(), nil) }
        }
    }
}
