import SystemPackage
import Testing
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

extension Simulated {
    /// Owners release what they hold when they go away, consuming releases report errors, and
    /// nothing leaks: the process has the same descriptors before and after.
    @Suite struct Ownership {
        @Test(.noDescriptorLeaks) func everyOwnerReleasesOnDeinitAndNoDescriptorLeaks() throws {
            do {
                let host = try Host()
                let frontendRefs = try host.frontend.grantPages(5, to: host.backend.id)
                do {
                    let gntdev = try host.gntdev()
                    let dom0 = try GrantDevice(on: host.dom0.system)
                    let mapping = try gntdev.map(frontendRefs[0..<2], from: host.frontend.id)
                    let exported = try gntdev.exportDmaBuf(refs: frontendRefs[2..<4], from: host.frontend.id)
                    let duplicate = try exported.duplicate()
                    let held = try gntdev.exportDmaBuf(refs: frontendRefs[4...], from: host.frontend.id)
                    let holder = try held.duplicate()
                    let pending = try held.release()
                    let buffer = try DmaBuf.udmabuf(pages: 2, on: host.dom0.system)
                    let cpu = try buffer.map()
                    let imported = try dom0.importDmaBuf(buffer, to: host.frontend.id)
                    let shared = try GrantAllocator(on: host.dom0.system).share(pages: 2, with: host.frontend.id)
                    let census = host.xen.census()
                    #expect(census.grantMaps == 1 && census.exports == 2 && census.imports == 1 && census.gntallocPages == 2)
                    #expect(census.memoryMappings == 3)
                    _ = (
                        mapping.pageCount, duplicate.fileDescriptor, holder.fileDescriptor, imported.refs, cpu.byteCount,
                        shared.refs
                    )
                    #expect(try pending.wait(timeout: .zero) == false)
                }
                #expect(frontendRefs.allSatisfy { host.frontend.mapCount(of: $0) == 0 })
                host.frontend.endAccess(frontendRefs)
                let census = host.xen.census()
                #expect(census.isClean, "\(census)")
                #expect(host.frontend.mapCount(of: GrantRef(8)) == 0)
            }
        }

        @Test(.noDescriptorLeaks) func consumingReleasesReportErrorsAndStillReleaseTheRest() throws {
            do {
                let host = try Host()
                let gntdev = try host.gntdev()
                let refs = try host.frontend.grantPages(1, to: host.backend.id)
                let mapping = try gntdev.map(refs, from: host.frontend.id)
                host.xen.injectFault(.resourceBusy, on: .munmap, domain: host.backend.id)
                do {
                    try mapping.unmap()
                    Issue.record("the injected munmap failure must be reported")
                } catch {
                    #expect(error.operation == .unmapGrants && error.call == "munmap")
                    #expect(error.errno == .resourceBusy)
                }
                #expect(host.xen.census().grantMaps == 0, "the grant map was still released")

                let shared = try GrantAllocator(on: host.dom0.system).share(pages: 1, with: host.frontend.id)
                host.xen.injectFault(.noMemory, on: .ioctl(.deallocGref))
                do {
                    try shared.unshare()
                    Issue.record("the injected dealloc failure must be reported")
                } catch {
                    #expect(error.operation == .unshare)
                }

                let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
                let imported = try gntdev.importDmaBuf(buffer, to: host.frontend.id)
                host.xen.injectFault(.noSuchFileOrDirectory, on: .ioctl(.importRelease))
                do {
                    try imported.release()
                    Issue.record("the injected release failure must be reported")
                } catch {
                    #expect(error.code == .notFound)
                }
            }
        }

        @Test func aDeviceStaysOpenWhileItsOwnersLive() throws {
            let host = try Host()
            var mapping: GrantMapping?
            do {
                let gntdev = try host.gntdev()
                mapping = try gntdev.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            }
            #expect(host.xen.census().openFiles >= 1)
            try mapping.take()!.unmap()
            #expect(host.xen.census().openFiles == 0)
        }
    }

    @Suite struct Faults {
        @Test func interruptedCallsAreRetried() throws {
            let host = try Host()
            host.xen.injectFault(.interrupted, on: .open, times: 2)
            let gntdev = try host.gntdev()
            host.xen.injectFault(.interrupted, on: .ioctl(nil), times: 3)
            host.xen.injectFault(.interrupted, on: .mmap, times: 1)
            let mapping = try gntdev.map(host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            #expect(mapping.pageCount == 1)
            host.xen.injectFault(.interrupted, on: .ioctl(.exportFromRefs), times: 2)
            let exported = try gntdev.exportDmaBuf(refs: host.frontend.grantPages(1, to: host.backend.id), from: host.frontend.id)
            #expect(exported.pageCount == 1)
        }

        @Test func outOfMemoryIsExplained() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            host.xen.injectFault(.noMemory, on: .ioctl(.exportFromRefs))
            let error = #expect(throws: XenGntError.self) {
                _ = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id, allocation: .contiguousCoherent)
            }
            #expect(error?.code == .outOfMemory)
            #expect(error?.description.contains("cma=") == true)
            host.xen.injectFault(.noMemory, on: .ioctl(.mapGrantRef))
            #expect(#expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }?.code == .outOfMemory)
            host.xen.injectFault(.noMemory, on: .mmap)
            #expect(#expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }?.code == .outOfMemory)
            #expect(host.xen.census().grantMaps == 0, "a failed mmap withdraws the grant map")
            let allocator = try GrantAllocator(on: host.dom0.system)
            host.xen.injectFault(.noMemory, on: .ioctl(.allocGref))
            #expect(
                #expect(throws: XenGntError.self) { _ = try allocator.share(pages: 1, with: host.frontend.id) }?.code
                    == .outOfMemory
            )
            host.xen.injectFault(.noMemory, on: .mmap)
            #expect(
                #expect(throws: XenGntError.self) { _ = try allocator.share(pages: 1, with: host.frontend.id) }?.call == "mmap"
            )
            #expect(host.xen.census().gntallocPages == 0, "a failed mmap deallocates the share")
        }

        @Test func faultsCanTargetOneDomain() throws {
            let host = try Host()
            host.xen.injectFault(.noMemory, on: .open, domain: host.frontend.id)
            _ = try host.gntdev()
            #expect(#expect(throws: XenGntError.self) { _ = try GrantDevice(on: host.frontend.system) }?.code == .outOfMemory)
        }

        @Test(.noDescriptorLeaks) func everyOwnerTearsDownCleanlyWhenThePeerIsDestroyed() throws {
            do {
                let host = try Host()
                let gntdev = try host.gntdev()
                let refs = try host.frontend.grantPages(3, to: host.backend.id)
                try host.frontend.write([1, 2, 3], toGrant: refs[0])
                let mapping = try gntdev.map(refs, from: host.frontend.id)
                let exported = try gntdev.exportDmaBuf(refs: refs, from: host.frontend.id)
                let buffer = try DmaBuf.udmabuf(pages: 1, on: host.backend.system)
                let imported = try gntdev.importDmaBuf(buffer, to: host.frontend.id)
                let frontendMapsOurs = try GrantDevice(on: host.frontend.system).map(imported.refs, from: host.backend.id)

                host.xen.destroyDomain(host.frontend.id)

                #expect(mapping.withUnsafeBytes { Array($0.prefix(3)) } == [1, 2, 3], "pages stay valid until unmapped")
                #expect(
                    #expect(throws: XenGntError.self) { _ = try gntdev.map(refs, from: host.frontend.id) }?.code == .badGrants
                )
                #expect(
                    !host.backend.isGranted(imported.refs[0]) || host.backend.mapCount(of: imported.refs[0]) == 0,
                    "the dead domain's mappings of our pages are gone"
                )
                try mapping.unmap()
                try exported.releaseAndWait(timeout: .seconds(1))
                try imported.release()
                #expect(!host.backend.isGranted(GrantRef(8)))
                _ = frontendMapsOurs.pageCount
            }
        }
    }

    @Suite struct Concurrency {
        @Test func manyTasksExportAndImportOnOneDevice() async throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let frontend = host.frontend
            let backendID = host.backend.id
            let system = host.backend.system
            try await withThrowingTaskGroup(of: Void.self) { group in
                for task in 0..<16 {
                    group.addTask {
                        for round in 0..<20 {
                            let pages = 1 + (task + round) % 7
                            let refs = try frontend.grantPages(pages, to: backendID)
                            let exported = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
                            #expect(exported.pageCount == pages)
                            let buffer = try DmaBuf.udmabuf(pages: pages, on: system)
                            let imported = try gntdev.importDmaBuf(buffer, to: frontend.id)
                            #expect(imported.refs.count == pages)
                            try imported.release()
                            #expect(try exported.release().wait(timeout: .seconds(5)))
                            frontend.endAccess(refs)
                        }
                    }
                }
                try await group.waitForAll()
            }
            let census = host.xen.census()
            #expect(census.exports == 0 && census.imports == 0 && census.grants == 0)
        }
    }
}
