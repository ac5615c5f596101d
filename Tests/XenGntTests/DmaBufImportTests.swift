import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    @Suite struct Import {
        @Test func aUdmabufBecomesRefsThePeerMapsWithBytesBothWays() throws {
            let host = try Host()
            let buffer = try DmaBuf.udmabuf(pages: 3, on: host.dom0.system)
            #expect(try buffer.size() == 3 * 4096)
            let cpu = try buffer.map()
            try buffer.withCPUAccess(.readWrite) { () throws(XenGntError) in
                try cpu.withUnsafeMutableBytes { $0[2 * 4096 + 5] = 0x5A }
            }
            let gntdev = try GrantDevice(on: host.dom0.system)
            let shared = try gntdev.importDmaBuf(buffer, to: host.frontend.id, pageCount: 3)
            #expect(shared.pageCount == 3)
            #expect(shared.domain == host.frontend.id)
            #expect(host.dom0.grantee(of: shared.refs[0]) == host.frontend.id)
            let peer = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.dom0.id)
            #expect(peer.withUnsafeBytes { $0[2 * 4096 + 5] } == 0x5A)
            try peer.withUnsafeMutableBytes { $0[17] = 0xC3 }
            #expect(cpu.withUnsafeBytes { $0[17] } == 0xC3)
            try peer.unmap()
            try shared.release()
            #expect(host.xen.census().grants == 0)
            try cpu.unmap()
        }

        @Test func aDMAHeapBufferIsImportedToo() throws {
            let host = try Host()
            let buffer = try DmaBuf.allocate(fromHeap: "system", pages: 2, on: host.backend.system)
            let number = buffer.fileDescriptor.rawValue
            let shared = try host.gntdev().importDmaBuf(buffer, to: host.frontend.id)
            #expect(shared.refs.count == 2)
            #expect(shared.fileDescriptor.rawValue == number, "the import holds the buffer itself, no duplicate")
            let peer = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.backend.id, access: .readOnly)
            #expect(peer.pageCount == 2)
            let heapError = #expect(throws: XenGntError.self) {
                _ = try DmaBuf.allocate(fromHeap: "../etc", pages: 1, on: host.backend.system)
            }
            #expect(heapError?.operation == .createDmaBuf)
            let missing = #expect(throws: XenGntError.self) {
                _ = try DmaBuf.allocate(fromHeap: "cma", pages: 1, on: host.backend.system)
            }
            #expect(missing?.code == .deviceMissing && missing?.path == "/dev/dma_heap/cma")
            #expect(
                missing?.description.contains("CONFIG_DMABUF_HEAPS_CMA") == true && missing?.description.contains("Xen") == false
            )
        }

        @Test(.noDescriptorLeaks)
        func aPageCountThatDoesNotMatchTheBufferIsExplainedByItsSizeReadThen() throws {
            let host = try Host()
            let error = #expect(throws: XenGntError.self) {
                _ = try host.gntdev().importDmaBuf(
                    DmaBuf.udmabuf(pages: 2, on: host.backend.system),
                    to: host.frontend.id,
                    pageCount: 3
                )
            }
            #expect(error?.errno == .invalidArgument && error?.call == "IOCTL_GNTDEV_DMABUF_IMP_TO_REFS")
            #expect(error?.code == .pageCountMismatch && error?.count == 3 && error?.length == 8192)
        }

        @Test func aDescriptorThatIsNotADmaBufIsNamedAsSuch() throws {
            let host = try Host()
            let memfd = try host.backend.system.calls.memfdCreate("not-a-dmabuf", flags: 1)
            defer { close(memfd) }
            _ = ftruncate(memfd, 4096)
            let error = #expect(throws: XenGntError.self) {
                _ = try host.gntdev().importDmaBuf(fileDescriptor: FileDescriptor(rawValue: memfd), to: host.frontend.id)
            }
            #expect(error?.errno == .invalidArgument)
            #expect(error?.code == .notADmaBuf)
            let closed = #expect(throws: XenGntError.self) {
                _ = try host.gntdev().importDmaBuf(fileDescriptor: FileDescriptor(rawValue: 9999), to: host.frontend.id)
            }
            #expect(closed?.code == .badFileDescriptor)
            let empty = try host.backend.system.calls.memfdCreate("empty", flags: 1)
            defer { close(empty) }
            #expect(
                #expect(throws: XenGntError.self) {
                    _ = try host.gntdev().importDmaBuf(fileDescriptor: FileDescriptor(rawValue: empty), to: host.frontend.id)
                }?.code == .emptyRequest
            )
            #expect(
                #expect(throws: XenGntError.self) {
                    _ = try host.gntdev().importDmaBuf(fileDescriptor: FileDescriptor(rawValue: memfd), to: DomainID(0x7FF4))
                }?.domain == DomainID(0x7FF4)
            )
        }

        @Test func importingToADomainThatDoesNotExistSucceeds() throws {
            let host = try Host()
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            let shared = try host.gntdev().importDmaBuf(buffer, to: DomainID(321))
            #expect(host.backend.grantee(of: shared.refs[0]) == DomainID(321))
        }

        @Test func releasingWhileThePeerStillMapsDefersTheEndOfAccess() throws {
            let host = try Host()
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            let shared = try host.gntdev().importDmaBuf(buffer, to: host.frontend.id)
            let ref = shared.refs[0]
            let peer = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.backend.id)
            try shared.release()
            #expect(host.backend.isGranted(ref), "still mapped: the end of access is deferred")
            try peer.unmap()
            #expect(!host.backend.isGranted(ref))
        }

        @Test func aFullGrantTableIsReported() throws {
            let host = try Host(maxGrantFrames: 1)  // 512 entries, 504 past Linux's reserved 8
            let error = #expect(throws: XenGntError.self) {
                _ = try host.gntdev().importDmaBuf(DmaBuf.udmabuf(pages: 505, on: host.backend.system), to: host.frontend.id)
            }
            #expect(error?.errno == .noSpace)
            #expect(error?.code == .grantTableFull)
            #expect(host.xen.census().grants == 0)
        }
    }

    @Suite struct DmaBufOwner {
        @Test func namesSyncAndDuplicates() throws {
            let host = try Host()
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            try buffer.setName("xengnt-frame")
            let long = #expect(throws: XenGntError.self) { try buffer.setName(String(repeating: "x", count: 32)) }
            #expect(long?.operation == .dmaBufSetName)
            let copy = try buffer.duplicate()
            #expect(copy.fileDescriptor != buffer.fileDescriptor)
            #expect(try copy.size() == 4096)
            let mapped = try copy.map(.readOnly)
            #expect(
                #expect(throws: XenGntError.self) { try mapped.withUnsafeMutableBytes { $0[0] = 1 } }?.code == .readOnlyMapping
            )
            try mapped.unmap()
            let value = try buffer.withCPUAccess(.readOnly) { 7 }
            #expect(value == 7)
            let failing = #expect(throws: XenGntError.self) {
                try buffer.withCPUAccess(.readOnly) { () throws(XenGntError) in throw XenGntError(.kernel, .dmaBufSync) }
            }
            #expect(failing?.code == .kernel)
        }

        @Test func takingTheDescriptorOutHandsOwnershipOver() throws {
            let host = try Host()
            let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
            let fd = buffer.take()
            #expect(isOpen(fd.rawValue))
            let adopted = DmaBuf(adopting: fd, on: host.backend.system)
            #expect(try adopted.size() == 4096)
            try adopted.close()
            #expect(!isOpen(fd.rawValue))
            let closedTwice = DmaBuf(adopting: fd, on: host.backend.system)
            do {
                try closedTwice.close()
                Issue.record("closing a closed descriptor must fail")
            } catch {
                #expect(error.code == .badFileDescriptor)
            }
        }

        @Test func udmabufNeedsPagesAndTheDevice() throws {
            let host = try Host { $0.devices = [.gntdev] }
            #expect(
                #expect(throws: XenGntError.self) { _ = try DmaBuf.udmabuf(pages: 0, on: host.backend.system) }?.code
                    == .emptyRequest
            )
            #expect(
                #expect(throws: XenGntError.self) { _ = try DmaBuf.udmabuf(pages: 1, on: host.backend.system) }?.path
                    == "/dev/udmabuf"
            )
        }
    }
}
