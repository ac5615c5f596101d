import CXenGnt
import Synchronization
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    @Suite struct Probe {
        @Test func pvhPvAndArmDomains() throws {
            let host = try Host {
                $0.gntdevLimit = 4096
                $0.gntallocLimit = 8192
            }
            let arm = try host.xen.addDomain(7, type: .arm)
            let pvh = XenCapabilities.probe(on: host.backend.system)
            #expect(pvh.isXenDomain && pvh.guestType == .pvh)
            #expect(pvh.gntdev == .available && pvh.gntalloc == .available)
            #expect(pvh.dmaBufIoctls == true)
            #expect(pvh.export == .uncertain)
            #expect(pvh.gntdevLimit == 4096 && pvh.gntallocLimit == 8192)
            let pv = XenCapabilities.probe(on: host.dom0.system)
            #expect(pv.guestType == .pv && pv.export == .refusedInPV)
            let onArm = XenCapabilities.probe(on: arm.system)
            #expect(onArm.guestType == .arm && onArm.export == .supported)
            #expect(GuestType.arm.isAutoTranslated && !GuestType.pv.isAutoTranslated)
            #expect(host.xen.census().openFiles == 0, "the probe leaves nothing open")
        }

        @Test func aKernelWithoutDmaBufOrDevices() throws {
            let host = try Host { $0.dmaBufIoctls = false }
            let probe = XenCapabilities.probe(on: host.backend.system)
            #expect(probe.dmaBufIoctls == false && probe.export == .notCompiledIn)
            let bare = try Host { $0.devices = [] }
            let none = XenCapabilities.probe(on: bare.backend.system)
            #expect(none.gntdev == .missing && none.gntalloc == .missing)
            #expect(none.dmaBufIoctls == nil && none.export == .unknown)
            #expect(none.gntdevLimit == nil)
            bare.xen.injectFault(.permissionDenied, on: .open, times: 1)
            bare.backend.kernel.devices = [.gntdev, .gntalloc]
            let denied = XenCapabilities.probe(on: bare.backend.system)
            #expect(denied.gntdev == .permissionDenied && denied.gntalloc == .available)
            bare.xen.injectFault(.resourceBusy, on: .open, times: 2)
            let failed = XenCapabilities.probe(on: bare.backend.system)
            #expect(failed.gntdev == .failed(.resourceBusy))
        }

        @Test func aDomainThatWasNeverAddedIsNotXen() {
            let xen = XenSimulation()
            let probe = XenCapabilities.probe(on: xen.system(of: 9))
            #expect(!probe.isXenDomain && probe.guestType == nil && probe.gntdev == .missing)
        }

        /// Outside Xen (this machine) the probe reports no Xen rather than failing.
        @Test func theRealKernelOfANonXenMachine() throws {
            try #require(access("/dev/xen/gntdev", F_OK) != 0, "this machine is a Xen domain; the lab covers it")
            let probe = XenCapabilities.probe()
            #expect(probe.gntdev == .missing)
            #expect(probe.export == .unknown)
            #expect(#expect(throws: XenGntError.self) { _ = try GrantDevice() }?.path == "/dev/xen/gntdev")
        }
    }

    /// The bytes XenGnt puts in each argument, checked against offsets from the C headers
    /// (`offsetof` through the shim), not against XenGnt's own layout code.
    @Suite struct ArgumentBytes {
        /// A seam that copies each ioctl argument before passing it on.
        final class Recording: SystemCalls, @unchecked Sendable {
            let inner: any SystemCalls
            let log = Mutex<[(request: UInt, bytes: [UInt8])]>([])

            init(_ inner: any SystemCalls) { self.inner = inner }

            func record(_ request: UInt, _ argument: UnsafeMutableRawPointer?) {
                guard let argument else { return }
                let base = Int((request >> 16) & 0x3FFF)
                var size = base
                func count(at offset: Int) -> Int { Int(argument.load(fromByteOffset: offset, as: UInt32.self)) }
                switch request {
                case cxg_request_gntdev_map_grant_ref(): size = cxg_map_grant_ref_size(UInt32(count(at: 0)))
                case cxg_request_gntdev_dmabuf_exp_from_refs():
                    size = cxg_exp_from_refs_size(UInt32(count(at: cxg_offsetof_exp_from_refs_count())))
                case cxg_request_gntdev_dmabuf_imp_to_refs():
                    size = cxg_imp_to_refs_size(UInt32(count(at: cxg_offsetof_imp_to_refs_count())))
                case cxg_request_gntalloc_alloc_gref():
                    size = cxg_alloc_gref_size(UInt32(count(at: cxg_offsetof_alloc_gref_count())))
                default: break
                }
                let bytes = Array(UnsafeRawBufferPointer(start: argument, count: size))
                log.withLock { $0.append((request, bytes)) }
            }

            func last(_ request: UInt) -> [UInt8]? { log.withLock { $0.last { $0.request == request }?.bytes } }

            func open(_ path: String, flags: Int32, mode: UInt32) throws(Errno) -> Int32 {
                try inner.open(path, flags: flags, mode: mode)
            }
            func close(_ fd: Int32) throws(Errno) { try inner.close(fd) }
            func dup(_ fd: Int32) throws(Errno) -> Int32 { try inner.dup(fd) }
            func dup3(_ oldFD: Int32, _ newFD: Int32, flags: Int32) throws(Errno) { try inner.dup3(oldFD, newFD, flags: flags) }
            func ioctl(_ fd: Int32, _ request: UInt, _ argument: UnsafeMutableRawPointer?) throws(Errno) -> Int32 {
                record(request, argument)
                return try inner.ioctl(fd, request, argument)
            }
            func mmap(
                length: Int,
                protection: Int32,
                flags: Int32,
                fd: Int32,
                offset: Int64
            ) throws(Errno) -> UnsafeMutableRawPointer {
                try inner.mmap(length: length, protection: protection, flags: flags, fd: fd, offset: offset)
            }
            func munmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
                try inner.munmap(address, length: length)
            }
            func lseek(_ fd: Int32, offset: Int64, whence: Int32) throws(Errno) -> Int64 {
                try inner.lseek(fd, offset: offset, whence: whence)
            }
            func fstat(_ fd: Int32) throws(Errno) -> stat { try inner.fstat(fd) }
            func readSmallFile(_ path: String) throws(Errno) -> String { try inner.readSmallFile(path) }
            func machine() -> String { inner.machine() }
            func memfdCreate(_ name: String, flags: UInt32) throws(Errno) -> Int32 { try inner.memfdCreate(name, flags: flags) }
            func ftruncate(_ fd: Int32, length: Int64) throws(Errno) { try inner.ftruncate(fd, length: length) }
            func fcntl(_ fd: Int32, command: Int32, argument: Int32) throws(Errno) -> Int32 {
                try inner.fcntl(fd, command: command, argument: argument)
            }
            func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
                try inner.read(fd, into: buffer)
            }
            func write(_ fd: Int32, from buffer: UnsafeRawBufferPointer) throws(Errno) -> Int {
                try inner.write(fd, from: buffer)
            }
            func poll(_ descriptors: UnsafeMutableBufferPointer<pollfd>, timeout: Int32) throws(Errno) -> Int {
                try inner.poll(descriptors, timeout: timeout)
            }
            func connectUnixSocket(_ path: String) throws(Errno) -> Int32 { try inner.connectUnixSocket(path) }
            func listDirectory(_ path: String) throws(Errno) -> [String] { try inner.listDirectory(path) }
            func eventfd(initialValue: UInt32, flags: Int32) throws(Errno) -> Int32 {
                try inner.eventfd(initialValue: initialValue, flags: flags)
            }
        }

        func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) }
        }

        func u16(_ bytes: [UInt8], _ offset: Int) -> UInt16 {
            bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt16.self) }
        }

        @Test func exportMapImportAndAllocArgumentsHaveTheKernelsLayout() throws {
            let host = try Host()
            let recording = Recording(host.backend.system.calls)
            let system = XenSystem(recording)
            let gntdev = try GrantDevice(on: system)
            let refs = try host.frontend.grantPages(3, to: host.backend.id)

            _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id, allocation: .contiguousCoherent)
            let export = try #require(recording.last(cxg_request_gntdev_dmabuf_exp_from_refs()))
            #expect(export.count == 16 + 3 * 4)
            #expect(u32(export, cxg_offsetof_exp_from_refs_flags()) == 2)
            #expect(u32(export, cxg_offsetof_exp_from_refs_count()) == 3)
            #expect(u32(export, cxg_offsetof_exp_from_refs_domid()) == 1)
            #expect((0..<3).map { u32(export, cxg_offsetof_exp_from_refs_refs() + 4 * $0) } == refs.map(\.rawValue))

            _ = try gntdev.map(refs, from: host.frontend.id)
            let map = try #require(recording.last(cxg_request_gntdev_map_grant_ref()))
            #expect(map.count == 16 + 3 * 8)
            #expect(u32(map, 0) == 3)
            #expect(u32(map, 4) == 0, "pad")
            for i in 0..<3 {
                #expect(u32(map, cxg_offsetof_map_grant_ref_refs() + 8 * i) == 1, "domid")
                #expect(u32(map, cxg_offsetof_map_grant_ref_refs() + 8 * i + 4) == refs[i].rawValue, "ref")
            }

            let buffer = try DmaBuf.udmabuf(pages: 2, on: host.backend.system)
            let number = buffer.fileDescriptor.rawValue
            let imported = try gntdev.importDmaBuf(buffer, to: host.frontend.id)
            let imp = try #require(recording.last(cxg_request_gntdev_dmabuf_imp_to_refs()))
            #expect(u32(imp, cxg_offsetof_imp_to_refs_count()) == 2)
            #expect(u32(imp, cxg_offsetof_imp_to_refs_domid()) == 1)
            #expect(
                u32(imp, cxg_offsetof_imp_to_refs_reserved()) == 0,
                "reserved is zeroed (libxengnttab leaves it uninitialised)"
            )
            #expect(Int32(bitPattern: u32(imp, cxg_offsetof_imp_to_refs_fd())) == number, "the import names the buffer it took")
            try imported.release()
            let release = try #require(recording.last(cxg_request_gntdev_dmabuf_imp_release()))
            #expect(u32(release, 4) == 0, "reserved")

            let allocator = try GrantAllocator(on: XenSystem(recording))
            _ = try allocator.share(pages: 2, with: DomainID(9), access: .readOnly)
            let alloc = try #require(recording.last(cxg_request_gntalloc_alloc_gref()))
            #expect(u16(alloc, cxg_offsetof_alloc_gref_domid()) == 9)
            #expect(u16(alloc, cxg_offsetof_alloc_gref_flags()) == 0, "read-only: no GNTALLOC_FLAG_WRITABLE")
            #expect(u32(alloc, cxg_offsetof_alloc_gref_count()) == 2)
        }

        @Test func grantCopySegmentsHaveTheKernelsLayout() throws {
            let host = try Host()
            let recording = Recording(host.backend.system.calls)
            let gntdev = try GrantDevice(on: XenSystem(recording))
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            var local = [UInt8](repeating: 0, count: 16)
            try local.withUnsafeMutableBytes { raw in
                var segments = [
                    GrantCopySegment(
                        from: .grant(ForeignGrant(domain: host.frontend.id, ref: refs[0]), offset: 100),
                        to: .local(raw.baseAddress!),
                        length: 16
                    )
                ]
                try gntdev.copy(&segments)
                let header = try #require(recording.last(cxg_request_gntdev_grant_copy()))
                #expect(u32(header, 0) == 1)
                let pointer = header.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: 8, as: UInt.self) }
                let segment = Array(UnsafeRawBufferPointer(start: UnsafeRawPointer(bitPattern: pointer), count: 24))
                #expect(u32(segment, 0) == refs[0].rawValue, "source.foreign.ref")
                #expect(u16(segment, 4) == 100, "source.foreign.offset")
                #expect(u16(segment, 6) == 1, "source.foreign.domid")
                #expect(
                    segment.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: cxg_offsetof_copy_segment_dest(), as: UInt.self) }
                        == UInt(bitPattern: raw.baseAddress)
                )
                #expect(u16(segment, cxg_offsetof_copy_segment_len()) == 16)
                #expect(u16(segment, cxg_offsetof_copy_segment_flags()) == UInt16(CXG_GNTCOPY_SOURCE_GREF))
            }
        }

        @Test func fixedArgumentsHaveTheKernelsLayout() throws {
            let host = try Host()
            let recording = Recording(host.backend.system.calls)
            let gntdev = try GrantDevice(on: XenSystem(recording))
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let port = host.backend.bindEventChannel()
            let mapping = try gntdev.map(refs, from: host.frontend.id)
            try mapping.setUnmapNotification(UnmapNotification(clearByteAt: 4097, eventChannelPort: port))
            let notify = try #require(recording.last(cxg_request_gntdev_set_unmap_notify()))
            #expect(notify.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == mapping.offset + 4097)
            #expect(u32(notify, 8) == 3)
            #expect(u32(notify, 12) == port)
            let offset = mapping.offset
            try mapping.unmap()
            let unmap = try #require(recording.last(cxg_request_gntdev_unmap_grant_ref()))
            #expect(unmap.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) } == offset)
            #expect(u32(unmap, 8) == 2)

            let exported = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id)
            let number = exported.fileDescriptor.rawValue
            let pending = try exported.release()
            _ = try pending.wait(timeout: .milliseconds(1500))
            let wait = try #require(recording.last(cxg_request_gntdev_dmabuf_exp_wait_released()))
            #expect(Int32(bitPattern: u32(wait, 0)) == number)
            #expect(u32(wait, 4) == 1500)
        }
    }
}
