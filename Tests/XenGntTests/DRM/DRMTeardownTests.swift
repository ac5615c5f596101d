import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntDRM

/// Every order of `steps`.
func permutations(of steps: [Int]) -> [[Int]] {
    guard steps.count > 1 else { return [steps] }
    return steps.indices.flatMap { i in
        permutations(of: Array(steps[..<i] + steps[(i + 1)...])).map { [steps[i]] + $0 }
    }
}

extension Simulated {
    /// The teardown matrix: every order the types allow releases everything, the flows tear
    /// down in order, and owners dropped early leak nothing.
    @Suite(.noDescriptorLeaks) struct DRMTeardown {
        /// Release steps of a frontend's export shown by vkms and imported by vgem: 0 releases
        /// the export, 1 closes vgem's handle, 2 vkms's, 3 removes the framebuffer.
        @Test(arguments: permutations(of: [0, 1, 2, 3]))
        func everyOrderOfTheExportsOwnersReleasesIt(order: [Int]) throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            do {
                var export: ExportedDmaBuf? = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id)
                let vgem = try DRMDevice(driver: "vgem", on: host.backend.system)
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                var inVgem: GEMHandle? = try vgem.importPrime(export!)
                var inVkms: GEMHandle? = try vkms.importPrime(export!)
                var framebuffer: Framebuffer? = try vkms.addFramebuffer(inVkms!, layout: FramebufferLayout(width: 32, height: 24))
                var pending: PendingRelease?
                for step in order {
                    switch step {
                    case 0: pending = try export.take()!.release()
                    case 1: try inVgem.take()!.close()
                    case 2: try inVkms.take()!.close()
                    default: try framebuffer.take()!.remove()
                    }
                }
                #expect(try pending!.wait(timeout: .zero), "released after \(order)")
            }
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(order): \(host.xen.census())")
        }

        /// Release steps of a display buffer shared with the frontend: 0 removes the
        /// framebuffer, 1 releases the import (and closes the dma-buf), 2 destroys the buffer.
        @Test(arguments: permutations(of: [0, 1, 2]))
        func everyOrderOfTheSharedBuffersOwnersReleasesIt(order: [Int]) throws {
            let host = try displayHost()
            do {
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                var buffer: DumbBuffer? = try vkms.createDumbBuffer(width: 32, height: 24)
                var framebuffer: Framebuffer? = try vkms.addFramebuffer(buffer!)
                var share: DmaBufImport? = try host.gntdev().importDmaBuf(vkms.exportPrime(buffer!), to: host.frontend.id)
                for step in order {
                    switch step {
                    case 0: try framebuffer.take()!.remove()
                    case 1: try share.take()!.release().close()
                    default: try buffer.take()!.destroy()
                    }
                }
            }
            #expect(host.xen.census().isClean, "\(order): \(host.xen.census())")
        }

        @Test func theFrontendFlowTearsDownInOrder() throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            let recorder = SeamRecorder(host.backend.system)
            do {
                let gntdev = try GrantDevice(on: recorder.system)
                let display = try DRMDevice(driver: "xengnt-dma-scanout", on: recorder.system)
                let layout = FramebufferLayout(width: 32, height: 24)
                let scanout = try Scanout(
                    on: display,
                    showing: try FrontendFramebuffer(
                        refs: refs,
                        from: host.frontend.id,
                        through: gntdev,
                        on: display,
                        layout: layout
                    ),
                    mode: smallMode
                )
                var mark = recorder.count
                let frame = try scanout.turnOff()
                #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_ATOMIC"])
                mark = recorder.count
                let export = try frame.remove()
                #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_RMFB", "DRM_IOCTL_GEM_CLOSE"])
                let pending = try export.release()
                #expect(try pending.wait(timeout: .zero))
                // Dropped while on screen: off screen, RMFB, GEM_CLOSE, then the dma-buf closed.
                let again = try Scanout(
                    on: display,
                    showing: try FrontendFramebuffer(
                        refs: refs,
                        from: host.frontend.id,
                        through: gntdev,
                        on: display,
                        layout: layout
                    ),
                    mode: smallMode
                )
                mark = recorder.count
                _ = consume again
                #expect(
                    named(recorder.since(mark)) == [
                        "DRM_IOCTL_MODE_ATOMIC", "DRM_IOCTL_MODE_RMFB", "DRM_IOCTL_GEM_CLOSE", "close",
                    ]
                )
            }
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func theDisplayFlowTearsDownInOrder() throws {
            let host = try displayHost()
            let recorder = SeamRecorder(host.backend.system)
            do {
                let gntdev = try GrantDevice(on: recorder.system)
                let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
                let scanout = try Scanout(
                    on: vkms,
                    showing: try SharedDisplayBuffer(
                        vkms.createDumbBuffer(width: 32, height: 24),
                        sharingWith: host.frontend.id,
                        through: gntdev
                    ),
                    mode: smallMode
                )
                var mark = recorder.count
                let shared = try scanout.turnOff()
                let buffer = try shared.remove()
                #expect(
                    named(recorder.since(mark)) == [
                        "DRM_IOCTL_MODE_ATOMIC", "DRM_IOCTL_MODE_RMFB", "IOCTL_GNTDEV_DMABUF_IMP_RELEASE", "close",
                    ]
                )
                mark = recorder.count
                try buffer.destroy()
                #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_DESTROY_DUMB"])
                // Dropped while on screen: the same order.
                let again = try Scanout(
                    on: vkms,
                    showing: try SharedDisplayBuffer(
                        vkms.createDumbBuffer(width: 32, height: 24),
                        sharingWith: host.frontend.id,
                        through: gntdev
                    ),
                    mode: smallMode
                )
                mark = recorder.count
                _ = consume again
                #expect(
                    named(recorder.since(mark)) == [
                        "DRM_IOCTL_MODE_ATOMIC", "DRM_IOCTL_MODE_RMFB", "IOCTL_GNTDEV_DMABUF_IMP_RELEASE", "close",
                        "DRM_IOCTL_MODE_DESTROY_DUMB",
                    ]
                )
            }
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func ownersDroppedEarlyLeakNothing() async throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            do {
                let gntdev = try host.gntdev()
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                let dma = try DRMDevice(driver: "xengnt-dma-scanout", on: host.backend.system)
                // A handle dropped under its framebuffer; the framebuffer dropped.
                do {
                    let handle = try vkms.importPrime(DmaBuf.allocate(fromHeap: "system", pages: 1, on: host.backend.system))
                    _ = try vkms.addFramebuffer(handle, layout: FramebufferLayout(width: 32, height: 24))
                }
                // A dumb buffer destroyed while its export lives: the export keeps it.
                do {
                    let exported = try { () throws -> DmaBuf in
                        let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
                        return try vkms.exportPrime(buffer)
                    }()
                    #expect(host.xen.census()[host.backend.id]?.gemObjects == 1)
                    _ = try exported.map()
                }
                // A scanout dropped with a flip pending, and a mapping of a shared buffer.
                do {
                    host.backend.displayClock = .manual
                    var scanout = try Scanout(
                        on: dma,
                        showing: try FrontendFramebuffer(
                            refs: refs,
                            from: host.frontend.id,
                            through: gntdev,
                            on: dma,
                            layout: FramebufferLayout(width: 32, height: 24)
                        ),
                        mode: smallMode
                    )
                    try scanout.flip(
                        to: try FrontendFramebuffer(
                            refs: refs,
                            from: host.frontend.id,
                            through: gntdev,
                            on: dma,
                            layout: FramebufferLayout(width: 32, height: 24)
                        )
                    )
                    let shared = try SharedDisplayBuffer(
                        vkms.createDumbBuffer(width: 32, height: 24),
                        sharingWith: host.frontend.id,
                        through: gntdev
                    )
                    _ = try shared.map()
                    _ = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.backend.id)
                    host.backend.displayClock = .automatic
                }
                // Devices dropped before what they made: the owners keep the file open.
                let orphan = try DRMDevice(driver: "vkms", on: host.backend.system).createDumbBuffer(width: 32, height: 24)
                try orphan.map().unmap()
                #expect(host.xen.census()[host.backend.id]?.gemObjects == 1)
            }
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }
    }
}
