import CXenGnt
import SystemPackage
import Testing
import XenGnt

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    /// The production seam against this machine's kernel, with what any Linux has (memfd,
    /// /dev/null, procfs); the Xen devices themselves are exercised in the lab.
    @Suite struct KernelSeam {
        let kernel = XenSystem.kernel.calls

        @Test(.noDescriptorLeaks) func descriptorsAndMemory() throws {
            let memfd = try kernel.memfdCreate("xengnt-test", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
            try kernel.ftruncate(memfd, length: 8192)
            _ = try kernel.fcntl(memfd, command: Int32(CXG_F_ADD_SEALS), argument: Int32(CXG_F_SEAL_SHRINK))
            #expect(try kernel.fcntl(memfd, command: Int32(CXG_F_GET_SEALS), argument: 0) & Int32(CXG_F_SEAL_SHRINK) != 0)
            #expect(try kernel.lseek(memfd, offset: 0, whence: SEEK_END) == 8192)
            #expect(try kernel.fstat(memfd).st_size == 8192)
            let address = try kernel.mmap(
                length: 8192,
                protection: PROT_READ | PROT_WRITE,
                flags: MAP_SHARED,
                fd: memfd,
                offset: 0
            )
            address.storeBytes(of: 0x42, toByteOffset: 4096, as: UInt8.self)
            let copy = try kernel.dup(memfd)
            #expect(fcntl(copy, F_GETFD) & FD_CLOEXEC != 0)
            let second = try kernel.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: copy, offset: 4096)
            #expect(second.load(as: UInt8.self) == 0x42)
            try kernel.munmap(second, length: 4096)
            try kernel.munmap(address, length: 8192)
            let null = try kernel.open("/dev/null", flags: O_RDWR | O_CLOEXEC, mode: 0)
            try kernel.dup3(null, copy, flags: O_CLOEXEC)
            #expect(throws: Errno.inappropriateIOCTLForDevice) {
                _ = try kernel.ioctl(copy, cxg_request_gntdev_map_grant_ref(), nil)
            }
            try kernel.close(copy)
            try kernel.close(null)
            try kernel.close(memfd)
        }

        @Test func failuresCarryTheErrno() {
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try kernel.open("/nonexistent/xengnt", flags: O_RDONLY, mode: 0) }
            #expect(throws: Errno.badFileDescriptor) { try kernel.close(-1) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.dup(-1) }
            #expect(throws: Errno.badFileDescriptor) { try kernel.dup3(-1, 1000, flags: 0) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.lseek(-1, offset: 0, whence: SEEK_SET) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.fstat(-1) }
            #expect(throws: Errno.badFileDescriptor) {
                _ = try kernel.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: -1, offset: 0)
            }
            #expect(throws: Errno.invalidArgument) { try kernel.munmap(UnsafeMutableRawPointer(bitPattern: 0x1001)!, length: 1) }
            #expect(throws: Errno.badFileDescriptor) { try kernel.ftruncate(-1, length: 0) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.fcntl(-1, command: F_GETFD, argument: 0) }
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try kernel.readSmallFile("/nonexistent/xengnt") }
        }

        @Test func smallFilesAndTheMachine() throws {
            #expect(try kernel.readSmallFile("/proc/self/comm").isEmpty == false)
            #expect(["x86_64", "aarch64"].contains(kernel.machine()))
        }
    }

    @Suite struct Values {
        @Test func domainIDs() {
            #expect(DomainID.dom0.rawValue == 0)
            #expect(DomainID(0x7FEF).isReserved == false)
            #expect(DomainID(0x7FF0).isReserved)
            #expect(DomainID(rawValue: 3) < DomainID(4))
            #expect(DomainID(5).description == "dom5")
            let literal: DomainID = 9
            #expect(literal == DomainID(9))
            #expect(GrantRef(rawValue: 8) == 8)
            #expect(GrantRef(12).description == "gref 12")
        }

        @Test(arguments: [Int16(0), -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -99])
        func grantStatusesAreNamed(raw: Int16) {
            let status = GrantStatus(rawValue: raw)
            #expect(status.description.hasPrefix("GNTST"))
            #expect(status.isOkay == (raw == 0))
        }

        static let everyCode: [XenGntError.Code] = [
            .emptyRequest, .tooManyPages, .countMismatch, .reservedDomain, .ownGrants, .unknownAllocationFlags,
            .conflictingAllocationFlags, .pageCountMismatch, .deviceMissing, .permissionDenied, .dmaBufUnsupported,
            .exportRefusedInPV, .exportRejected, .badGrants, .gntallocLimit, .udmabufLimit, .grantTableFull, .notADmaBuf,
            .badFileDescriptor, .timedOut, .cancelled, .notFound, .readOnlyMapping, .notifyNeedsWritableMapping,
            .eventChannelNotBound, .outOfRange, .notMappable, .outOfMemory, .invalidArgument, .kernel,
        ]

        @Test(arguments: everyCode)
        func everyCodeSaysWhatToDoWithAndWithoutItsValues(code: XenGntError.Code) {
            let bare = XenGntError(code, .probe)
            let full = XenGntError(
                code,
                .exportDmaBuf,
                call: "IOCTL_X",
                errno: .invalidArgument,
                path: "/dev/x",
                count: 3,
                actualCount: 2,
                limit: 2,
                offset: 1,
                length: 4096,
                domain: 5,
                flags: 4,
                port: 3,
                guestType: .pvh,
                allocation: .contiguousCoherent,
                detail: "the detail."
            )
            for error in [bare, full] {
                #expect(error.advice.count > 5)
                #expect(error.advice.hasSuffix("."), "\(error.advice)")
                #expect(error.description.hasSuffix(error.advice))
            }
            #expect(code.description != "")
            #expect(Set(Self.everyCode).count == Self.everyCode.count)
        }

        @Test func adviceNamesWhatTheValuesPointTo() {
            #expect(!XenGntError(.exportRejected, .exportDmaBuf, guestType: .arm).advice.contains("GNTMAP_device_map"))
            #expect(XenGntError(.exportRejected, .exportDmaBuf, guestType: .pvh).advice.contains("GNTMAP_device_map"))
            #expect(XenGntError(.outOfMemory, .exportDmaBuf, allocation: .contiguousWriteCombined).advice.contains("cma="))
            #expect(!XenGntError(.outOfMemory, .share).advice.contains("CMA"))
            #expect(!XenGntError(.outOfMemory, .exportDmaBuf, allocation: .balloon).advice.contains("cma"))
            for (path, option) in [
                ("/dev/xen/gntdev", "CONFIG_XEN_GNTDEV"), ("/dev/xen/gntalloc", "CONFIG_XEN_GRANT_DEV_ALLOC"),
                ("/dev/udmabuf", "CONFIG_UDMABUF"), ("/dev/dma_heap/system", "CONFIG_DMABUF_HEAPS_SYSTEM"),
            ] {
                let advice = XenGntError(.deviceMissing, .openDevice, path: path).advice
                #expect(advice.contains(option) && advice.contains(path))
                #expect(advice.contains("Xen") == path.hasPrefix("/dev/xen"), "\(advice)")
            }
            #expect(
                XenGntError(.gntallocLimit, .share, count: 2025, limit: 1024).advice.contains(
                    "/sys/module/xen_gntalloc/parameters/limit"
                )
            )
            #expect(XenGntError(.udmabufLimit, .createDmaBuf, limit: 64, length: 1 << 27).advice.contains("size_limit_mb"))
            #expect(XenGntError(.readOnlyMapping, .writeMapping).advice.contains("read-only"))
            #expect(!XenGntError(.readOnlyMapping, .writeMapping).advice.contains("notification"))
        }

        @Test func descriptionsNameTheOperationTheFailingCallAndTheErrnoByName() {
            #expect(
                XenGntError(.kernel, .exportDmaBuf, call: "IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS", errno: .invalidArgument)
                    .description
                    == "exportDmaBuf: IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS failed with EINVAL: the kernel gave no further explanation."
            )
            #expect(
                XenGntError(.notADmaBuf, .importDmaBuf, call: "lseek", errno: .illegalSeek).description.hasPrefix(
                    "importDmaBuf: lseek failed with ESPIPE: "
                )
            )
            #expect(
                XenGntError(.emptyRequest, .probe).description
                    == "probe: refused before calling the kernel: the request names no pages; pass at least one grant reference or page."
            )
            #expect(
                XenGntError(.cancelled, .waitReleased).description.hasPrefix("waitReleased: refused before calling the kernel")
            )
            // Every errno Linux defines has its symbolic name; others their number.
            for number in Int32(1)...133 where ![41, 58].contains(number) {
                #expect(Errno(rawValue: number).symbolicName.hasPrefix("E"), "errno \(number)")
            }
            #expect(Errno.illegalSeek.symbolicName == "ESPIPE")
            #expect(Errno.canceled.symbolicName == "ECANCELED")
            #expect(Errno(rawValue: 41).symbolicName == "errno 41")
            #expect(Errno(rawValue: 9999).symbolicName == "errno 9999")
            #expect(XenGntError.Operation.exportDmaBuf == XenGntError.Operation.exportDmaBuf)
            #expect(XenGntError.Operation.exportDmaBuf.description == "exportDmaBuf")
        }
    }
}
