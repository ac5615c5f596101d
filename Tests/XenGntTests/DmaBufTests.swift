import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    @Suite struct Export {
        @Test(arguments: DmaBufAllocation.allCases)
        func exportsGrantsAsADmaBufOfTheRightSize(allocation: DmaBufAllocation) throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(4, to: host.backend.id)
            let buffer = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id, allocation: allocation)
            #expect(buffer.pageCount == 4)
            #expect(buffer.byteCount == 4 * 4096)
            #expect(buffer.domain == host.frontend.id)
            #expect(lseek(buffer.fileDescriptor.rawValue, 0, SEEK_END) == 4 * 4096)
            #expect(host.frontend.mapCount(of: refs[3]) == 1)
        }

        @Test func armExportsToo() throws {
            let host = try Host()
            let arm = try host.xen.addDomain(5, type: .arm)
            let refs = try host.frontend.grantPages(2, to: arm.id)
            let gntdev = try GrantDevice(on: arm.system)
            #expect(gntdev.guestType == .arm)
            let buffer = try gntdev.exportDmaBuf(refs: refs[...], from: host.frontend.id)
            #expect(buffer.pageCount == 2)
        }

        @Test func exportFromAPVDomainIsRefusedWithTheReason() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.dom0.id)
            let gntdev = try GrantDevice(on: host.dom0.system)
            #expect(gntdev.guestType == .pv)
            for allocation in DmaBufAllocation.allCases {
                let error = #expect(throws: XenGntError.self) {
                    _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id, allocation: allocation)
                }
                #expect(error?.errno == .invalidArgument)
                #expect(error?.code == .exportRefusedInPV)
                #expect(error?.description.contains("Import instead") == true)
            }
        }

        @Test func anX86KernelWithoutTheExportFixIsNamedAsAPossibleCause() throws {
            let host = try Host { $0.x86ExportFix = false }
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            let error = #expect(throws: XenGntError.self) {
                _ = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id)
            }
            #expect(error?.code == .exportRejected && error?.guestType == .pvh)
            #expect(error?.description.contains("GNTMAP_device_map") == true)
        }

        @Test func aKernelWithoutDmaBufSupportSaysSo() throws {
            let host = try Host { $0.dmaBufIoctls = false }
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            let gntdev = try host.gntdev()
            let export = #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id) }
            #expect(export?.errno == .inappropriateIOCTLForDevice)
            #expect(export?.code == .dmaBufUnsupported)
            let importError = #expect(throws: XenGntError.self) {
                _ = try gntdev.importDmaBuf(DmaBuf.udmabuf(pages: 1, on: host.backend.system), to: host.frontend.id)
            }
            #expect(importError?.code == .dmaBufUnsupported)
            #expect(host.xen.census().grants == 1)
        }

        enum BadExport: CaseIterable, Sendable {
            case invalidRef, wrongDomain, unknownDomain, oneBadOfTwo, notGrantedToUs, readOnlyGrant
        }

        @Test(arguments: BadExport.allCases)
        func badReferencesAreRejectedAllOrNothing(_ variant: BadExport) throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let third = try host.xen.addDomain(3, type: .pvh)
            let gntdev = try host.gntdev()
            let error = #expect(throws: XenGntError.self) {
                switch variant {
                case .invalidRef: _ = try gntdev.exportDmaBuf(refs: [GrantRef(5000)], from: host.frontend.id)
                case .wrongDomain: _ = try gntdev.exportDmaBuf(refs: refs, from: third.id)
                case .unknownDomain: _ = try gntdev.exportDmaBuf(refs: refs, from: DomainID(99))
                case .oneBadOfTwo: _ = try gntdev.exportDmaBuf(refs: [refs[0], GrantRef(5000)], from: host.frontend.id)
                case .notGrantedToUs:
                    _ = try gntdev.exportDmaBuf(refs: try host.frontend.grantPages(1, to: third.id), from: host.frontend.id)
                case .readOnlyGrant:
                    _ = try gntdev.exportDmaBuf(
                        refs: try host.frontend.grantPages(1, to: host.backend.id, access: .readOnly),
                        from: host.frontend.id
                    )
                }
            }
            #expect(error?.errno == .invalidArgument)
            #expect(error?.code == .exportRejected && error?.guestType == .pvh)
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
            #expect(host.xen.census().exports == 0)
        }

        @Test func requestsTheKernelWouldAnswerWithEINVALAreRefusedFirst() throws {
            let host = try Host { $0.gntdevLimit = 4 }
            let gntdev = try host.gntdev()
            #expect(
                #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: [GrantRef](), from: host.frontend.id) }?
                    .code == .emptyRequest
            )
            let refs = try host.frontend.grantPages(5, to: host.backend.id)
            let tooMany = #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id) }
            #expect(
                tooMany?.code == .tooManyPages && tooMany?.count == 5 && tooMany?.limit == 4 && tooMany?.errno == .invalidArgument
            )
            #expect(
                #expect(throws: XenGntError.self) { _ = try gntdev.exportDmaBuf(refs: [GrantRef(8)], from: DomainID(0xFFFF)) }?
                    .domain == DomainID(0xFFFF)
            )
        }

        @Test func rawFlagsAreCheckedBeforeTheKernelWhichWouldIgnoreOrRefuseThem() throws {
            #expect(try DmaBufAllocation(flags: 0) == .balloon)
            #expect(try DmaBufAllocation(flags: 1) == .contiguousWriteCombined)
            #expect(try DmaBufAllocation(flags: 2) == .contiguousCoherent)
            let both = #expect(throws: XenGntError.self) { _ = try DmaBufAllocation(flags: 3) }
            #expect(both?.code == .conflictingAllocationFlags && both?.flags == 3)
            let unknown = #expect(throws: XenGntError.self) { _ = try DmaBufAllocation(flags: 4) }
            #expect(unknown?.code == .unknownAllocationFlags && unknown?.flags == 4)
            #expect(unknown?.description.contains("silently ignore") == true)
        }

        @Test func theSameRefsCanBeExportedTwiceAtOnce() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let gntdev = try host.gntdev()
            let first = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id)
            let second = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id)
            #expect(first.fileDescriptor != second.fileDescriptor)
            #expect(host.frontend.mapCount(of: refs[0]) == 2)
        }

        @Test func anExportedBufferCannotBeCPUMapped() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            let exported = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id)
            let copy = try exported.duplicate()
            let error = #expect(throws: XenGntError.self) { _ = try copy.map() }
            #expect(error?.errno == .invalidArgument)
            #expect(error?.code == .notMappable)
            #expect(try copy.size() == 4096)
            try copy.sync(.start, .readWrite)
            try copy.sync(.end, .readWrite)
            try copy.setName("scanout-0")
        }
    }

    @Suite struct WaitReleased {
        @Test func timesOutWhileAnyHolderRemainsAndSucceedsAfterTheLast() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            let exported = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id)
            let importer = try exported.duplicate()  // a driver that imported the buffer
            let secondImporter = try importer.duplicate()
            let pending = try exported.release()
            #expect(try pending.wait(timeout: .milliseconds(30)) == false)
            try importer.close()
            #expect(try pending.wait(timeout: .zero) == false)
            #expect(host.frontend.mapCount(of: refs[0]) == 1)
            try secondImporter.close()
            #expect(try pending.wait(timeout: .milliseconds(30)) == true)
            #expect(try pending.wait(timeout: .zero) == true, "released stays released (ENOENT)")
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
        }

        @Test func aBlockedWaitReturnsWhenAnotherThreadLetsGo() async throws {
            let host = try Host()
            let exported = try host.gntdev().exportDmaBuf(
                refs: host.frontend.grantPages(1, to: host.backend.id),
                from: host.frontend.id
            )
            let importer = try exported.duplicate().take()
            let pending = try exported.release()
            let calls = host.backend.system.calls
            let closer = Task {
                try await Task.sleep(for: .milliseconds(20))
                try calls.close(importer.rawValue)
            }
            let started = ContinuousClock.now
            #expect(try pending.wait(timeout: .seconds(5)) == true)
            #expect(ContinuousClock.now - started < .seconds(4))
            try await closer.value
        }

        @Test func theAsyncWaitPollsAndHonoursCancellation() async throws {
            let host = try Host()
            let exported = try host.gntdev().exportDmaBuf(
                refs: host.frontend.grantPages(1, to: host.backend.id),
                from: host.frontend.id
            )
            let importer = try exported.duplicate().take()
            let calls = host.backend.system.calls
            let pending = try exported.release()
            #expect(try await pending.waitUntilReleased(timeout: .milliseconds(20)) == false)
            let waiter = Task { try await pending.waitUntilReleased(pollInterval: .milliseconds(1)) }
            try await Task.sleep(for: .milliseconds(10))
            waiter.cancel()
            let result = await waiter.result
            guard case .failure(let error) = result else {
                Issue.record("a cancelled wait must throw")
                return
            }
            #expect((error as? XenGntError)?.code == .cancelled)
            let closer = Task {
                try await Task.sleep(for: .milliseconds(10))
                try calls.close(importer.rawValue)
            }
            try await pending.waitUntilReleased()
            try await closer.value
        }

        @Test func releaseAndWaitReportsATimeout() async throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let held = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            let holder = try held.duplicate()
            do {
                try held.releaseAndWait(timeout: .milliseconds(10))
                Issue.record("a held buffer cannot be released")
            } catch {
                #expect(error.code == .timedOut)
                #expect(error.errno == .timedOut)
            }
            // The held buffer's number must stay taken while the kernel still records it: a new
            // export that reused it would, once released, find the held record and time out.
            let free = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            try free.releaseAndWait(timeout: .seconds(1))
            let free2 = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            try await free2.releaseAndWait()
            try holder.close()
            let later = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            try later.releaseAndWait(timeout: .seconds(1))
            #expect(host.xen.census().exports == 0)
        }

        @Test func aNumberStaysReservedUntilTheKernelLetsGoOfIt() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let exported = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            let number = exported.fileDescriptor.rawValue
            let holder = try exported.duplicate()
            do {
                let pending = try exported.release()
                #expect(try pending.wait(timeout: .zero) == false)
            }  // stop waiting while the holder remains
            #expect(isOpen(number), "the kernel still records the buffer under this number")
            try holder.close()
            let next = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            #expect(next.fileDescriptor.rawValue == number, "freed once released, so the next export may take it")
        }

        /// Documentation/KernelFacts.md, "found by descriptor number": closing the fd and then waiting on its number can watch another buffer
        /// once a concurrent export reuses the number. XenGnt keeps the number reserved.
        @Test func theFdNumberReuseTrapIsAvoided() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let raw = Raw(host.backend.system)
            let refsA = try host.frontend.grantPages(1, to: host.backend.id)
            let refsB = try host.frontend.grantPages(1, to: host.backend.id)

            // The trap, shown with raw calls on a device of its own: close A, export B (which
            // reuses A's number), wait on the number: it watches B, which is held, and times out
            // although A is long gone.
            let device = try raw.open("/dev/xen/gntdev")
            defer { raw.close(device) }
            let a = try raw.export(device, domid: 1, refs: [refsA[0].rawValue]).get()
            raw.close(a)
            let b = try raw.export(device, domid: 1, refs: [refsB[0].rawValue]).get()
            #expect(b == a, "the kernel hands out the lowest free number")
            #expect(raw.waitReleased(device, exported: a, milliseconds: 10) == .timedOut)
            raw.close(b)

            // XenGnt: releasing A keeps its number taken, so B gets another, and the wait on A's
            // number sees A released.
            let exportedA = try gntdev.exportDmaBuf(refs: refsA, from: host.frontend.id)
            let numberA = exportedA.fileDescriptor.rawValue
            let pendingA = try exportedA.release()
            let exportedB = try gntdev.exportDmaBuf(refs: refsB, from: host.frontend.id)
            #expect(exportedB.fileDescriptor.rawValue != numberA)
            #expect(isOpen(numberA), "the placeholder keeps the number reserved")
            #expect(try pendingA.wait(timeout: .milliseconds(10)) == true)
            _ = consume pendingA
            #expect(!isOpen(numberA))
        }
    }
}
