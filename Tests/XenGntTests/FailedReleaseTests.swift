import SystemPackage
import Testing
import XenGnt
import XenGntTesting

/// A consuming release that fails still finishes the teardown: every step is attempted, what the
/// kernel refused is kept by the device and retried at its next call and at its close, and the
/// first failure is reported. Nothing is left unreachable.
extension Simulated {
    @Suite(.noDescriptorLeaks) struct FailedRelease {
        @Test func aRefusedMunmapIsRetriedAtTheDevicesNextCall() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let refs = try host.frontend.grantPages(2, to: host.backend.id)
            var mapping: GrantMapping? = try gntdev.map(refs, from: host.frontend.id)
            host.xen.injectFault(.noMemory, on: .munmap, domain: host.backend.id)
            let error = #expect(throws: XenGntError.self) { try mapping.take()!.unmap() }
            #expect(error?.call == "munmap" && error?.errno == .noMemory && error?.operation == .unmapGrants)
            #expect(host.xen.census().memoryMappings == 1, "the memory is still mapped")
            #expect(host.frontend.mapCount(of: refs[0]) == 1)
            let second = try gntdev.map(refs, from: host.frontend.id)  // the device's next call retries
            #expect(host.frontend.mapCount(of: refs[0]) == 1, "only the second mapping maps the page")
            let census = host.xen.census()
            #expect(census.memoryMappings == 1 && census.grantMaps == 1, "only the second mapping: \(census)")
            try second.unmap()
            host.frontend.endAccess(refs)
        }

        @Test func aRefusedUnmapIoctlIsRetriedWhenTheDeviceCloses() throws {
            let host = try Host()
            let refs = try host.frontend.grantPages(1, to: host.backend.id)
            do {
                let gntdev = try host.gntdev()
                var mapping: GrantMapping? = try gntdev.map(refs, from: host.frontend.id)
                host.xen.injectFault(.noMemory, on: .ioctl(.unmapGrantRef))
                let error = #expect(throws: XenGntError.self) { try mapping.take()!.unmap() }
                #expect(error?.call == "IOCTL_GNTDEV_UNMAP_GRANT_REF" && error?.code == .outOfMemory)
                #expect(host.xen.census().grantMaps == 1)
            }
            #expect(host.xen.census().grantMaps == 0)
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
        }

        @Test func aRefusedDeallocIsRetriedAndTheGntallocPagesComeBack() throws {
            let host = try Host()
            let allocator = try GrantAllocator(on: host.dom0.system)
            var shared: SharedPages? = try allocator.share(pages: 3, with: host.frontend.id)
            host.xen.injectFault(.noMemory, on: .ioctl(.deallocGref))
            #expect(throws: XenGntError.self) { try shared.take()!.unshare() }
            #expect(host.xen.census().gntallocPages == 3)
            let next = try allocator.share(pages: 1, with: host.frontend.id)  // the next call retries
            #expect(host.xen.census().gntallocPages == 1)
            try next.unshare()
        }

        @Test func aRefusedImportReleaseKeepsTheBufferUntilTheRetrySucceeds() throws {
            let host = try Host()
            do {
                let gntdev = try host.gntdev()
                let first = try gntdev.importDmaBuf(DmaBuf.udmabuf(pages: 2, on: host.backend.system), to: host.frontend.id)
                let number = first.fileDescriptor.rawValue
                var imported: DmaBufImport? = consume first
                host.xen.injectFault(.noMemory, on: .ioctl(.importRelease))
                let error = #expect(throws: XenGntError.self) { _ = try imported.take()!.release() }
                #expect(error?.code == .outOfMemory && error?.call == "IOCTL_GNTDEV_DMABUF_IMP_RELEASE")
                #expect(isOpen(number), "the number still names the buffer the kernel imported")
                #expect(host.xen.census().imports == 1)
                _ = try gntdev.setMaxGrants(1)  // the next call retries
                #expect(host.xen.census().imports == 0)
                #expect(!isOpen(number))
            }
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func anImportDroppedWhileTheKernelRefusesIsReleasedAtClose() throws {
            let host = try Host()
            do {
                let gntdev = try host.gntdev()
                do {
                    let imported = try gntdev.importDmaBuf(
                        DmaBuf.udmabuf(pages: 1, on: host.backend.system),
                        to: host.frontend.id
                    )
                    host.xen.injectFault(.noMemory, on: .ioctl(.importRelease))
                    _ = imported.pageCount
                }
                #expect(host.xen.census().imports == 1)
            }
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func theNotFoundReleaseOfAnImportClosesItsBuffer() throws {
            let host = try Host()
            let gntdev = try host.gntdev()
            let first = try gntdev.importDmaBuf(DmaBuf.udmabuf(pages: 1, on: host.backend.system), to: host.frontend.id)
            let number = first.fileDescriptor.rawValue
            var imported: DmaBufImport? = consume first
            host.xen.injectFault(.noSuchFileOrDirectory, on: .ioctl(.importRelease))
            #expect(#expect(throws: XenGntError.self) { _ = try imported.take()!.release() }?.code == .notFound)
            #expect(!isOpen(number))
        }
    }
}
