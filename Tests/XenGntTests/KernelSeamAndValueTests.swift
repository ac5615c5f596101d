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

        @Test func descriptorsAndMemory() throws {
            let before = openDescriptors()
            let memfd = try kernel.memfdCreate("xengnt-test", flags: UInt32(CXG_MFD_CLOEXEC | CXG_MFD_ALLOW_SEALING))
            try kernel.ftruncate(memfd, length: 8192)
            _ = try kernel.fcntl(memfd, command: Int32(CXG_F_ADD_SEALS), argument: Int32(CXG_F_SEAL_SHRINK))
            #expect(try kernel.fcntl(memfd, command: Int32(CXG_F_GET_SEALS), argument: 0) & Int32(CXG_F_SEAL_SHRINK) != 0)
            #expect(try kernel.lseek(memfd, offset: 0, whence: SEEK_END) == 8192)
            #expect(try kernel.fstat(memfd).st_size == 8192)
            let address = try kernel.mmap(length: 8192, protection: PROT_READ | PROT_WRITE, flags: MAP_SHARED, fd: memfd, offset: 0)
            address.storeBytes(of: 0x42, toByteOffset: 4096, as: UInt8.self)
            let copy = try kernel.dup(memfd)
            #expect(fcntl(copy, F_GETFD) & FD_CLOEXEC != 0)
            let second = try kernel.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: copy, offset: 4096)
            #expect(second.load(as: UInt8.self) == 0x42)
            try kernel.munmap(second, length: 4096)
            try kernel.munmap(address, length: 8192)
            let null = try kernel.open("/dev/null", flags: O_RDWR | O_CLOEXEC, mode: 0)
            try kernel.dup3(null, copy, flags: O_CLOEXEC)
            #expect(throws: Errno.inappropriateIOCTLForDevice) { _ = try kernel.ioctl(copy, cxg_request_gntdev_map_grant_ref(), nil) }
            try kernel.close(copy)
            try kernel.close(null)
            try kernel.close(memfd)
            #expect(openDescriptors() == before)
        }

        @Test func failuresCarryTheErrno() {
            #expect(throws: Errno.noSuchFileOrDirectory) { _ = try kernel.open("/nonexistent/xengnt", flags: O_RDONLY, mode: 0) }
            #expect(throws: Errno.badFileDescriptor) { try kernel.close(-1) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.dup(-1) }
            #expect(throws: Errno.badFileDescriptor) { try kernel.dup3(-1, 1000, flags: 0) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.lseek(-1, offset: 0, whence: SEEK_SET) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.fstat(-1) }
            #expect(throws: Errno.badFileDescriptor) { _ = try kernel.mmap(length: 4096, protection: PROT_READ, flags: MAP_SHARED, fd: -1, offset: 0) }
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

        @Test func everyCauseSaysWhatToDo() {
            let causes: [XenGntError.Cause] = [
                .emptyRequest, .tooManyPages(count: 3, limit: 2), .reservedDomain(0x7FF0), .unknownAllocationFlags(4),
                .conflictingAllocationFlags(3), .pageCountMismatch(pages: 2, bufferBytes: 4096), .deviceMissing(path: "/dev/x"),
                .permissionDenied(path: "/dev/x"), .dmaBufUnsupported, .exportRefusedInPV, .exportRejected(guest: .pvh),
                .exportRejected(guest: .arm), .exportRejected(guest: nil), .badGrants, .gntallocLimit(limit: 1024),
                .gntallocLimit(limit: nil), .grantTableFull, .notADmaBuf, .badFileDescriptor, .timedOut, .cancelled, .notFound,
                .readOnlyMapping, .eventChannelNotBound(port: 3), .outOfRange(offset: 1, length: 0), .notMappable, .outOfMemory,
                .notImplemented, .invalidArgument("detail."), .kernel,
            ]
            for cause in causes {
                #expect(cause.advice.count > 5)
                #expect(cause.advice.hasSuffix("."))
            }
            #expect(XenGntError.Cause.exportRejected(guest: .arm).advice.contains("GNTMAP_device_map") == false)
        }

        @Test func descriptionsNameTheOperationTheIoctlAndTheErrno() {
            let errnos: [Errno] = [.invalidArgument, .noSuchFileOrDirectory, .badFileDescriptor, .timedOut, .noSpace, .noMemory,
                                   .permissionDenied, .notPermitted, .inappropriateIOCTLForDevice, .interrupted, .badAddress,
                                   .operationNotSupportedByDevice, .noSuchAddressOrDevice, .tooManyOpenFiles, .tooManyOpenFilesInSystem,
                                   .resourceBusy, .resourceTemporarilyUnavailable, .canceled, .notSupported, .ioError]
            for errno in errnos {
                let text = XenGntError(.exportDmaBuf, errno: errno, cause: .kernel).description
                #expect(text.hasPrefix("exportDmaBuf (IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS) failed with "))
            }
            #expect(XenGntError(.waitReleased, errno: .ioError, cause: .kernel).description.contains("errno 5"))
            #expect(XenGntError(.probe, cause: .emptyRequest).description == "probe refused before calling the kernel: the request names no pages; pass at least one grant reference or page.")
            for operation in XenGntError.Operation.allCases {
                _ = operation.request
            }
            #expect(XenGntError.Operation.allCases.compactMap(\.request).count == XenGntError.Operation.allCases.count - 2)
        }
    }
}
