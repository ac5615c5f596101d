import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntDRM

extension Simulated {
    /// The two backend flows, end to end (lab `drm-export-to-display`,
    /// `drm-display-to-frontend-*`).
    @Suite(.noDescriptorLeaks) struct DRMFlows {
        @Test func aFrontendBufferReachesTheScreenOfADMADisplay() async throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            try draw(refs, of: host.frontend, seed: 7)
            do {
                let gntdev = try host.gntdev()
                let display = try DRMDevice(driver: "xengnt-dma-scanout", on: host.backend.system)
                let frame = try FrontendFramebuffer(
                    refs: refs,
                    from: host.frontend.id,
                    through: gntdev,
                    on: display,
                    layout: FramebufferLayout(width: 32, height: 24)
                )
                #expect(frame.domain == host.frontend.id && frame.framebuffer.width == 32)
                var scanout = try Scanout(on: display, showing: frame, mode: smallMode)
                #expect(try await scanout.captureScreen().rgb == picture(seed: 7))
                // Zero copy: the frontend draws, the next frame on screen shows it.
                try draw(refs, of: host.frontend, seed: 8)
                #expect(try await scanout.captureScreen().rgb == picture(seed: 8))
                let pending = try scanout.turnOff().release()
                #expect(try pending.wait(timeout: .seconds(5)))
            }
            #expect(host.frontend.mapCount(of: refs[0]) == 0)
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func aFrontendBufferIsRefusedByVkmsAtTheRealCommit() throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            do {
                let gntdev = try host.gntdev()
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                let layout = FramebufferLayout(width: 32, height: 24)
                let frame = try FrontendFramebuffer(refs: refs, from: host.frontend.id, through: gntdev, on: vkms, layout: layout)
                try vkms.checkScanout(of: frame, mode: smallMode, by: .testOnly)
                expectDRMError(.displayCannotReadBuffer, errno: .invalidArgument) {
                    try vkms.checkScanout(of: frame, mode: smallMode)
                }
                // A scanout of it fails the same way and releases it, in order.
                do {
                    _ = try Scanout(on: vkms, showing: frame, mode: smallMode)
                    Issue.record("vkms showed a frontend's export")
                } catch {
                    #expect(error.code == .displayCannotReadBuffer && error.errno == .invalidArgument)
                }
                #expect(host.xen.census()[host.backend.id]?.exports == 0)
                #expect(host.xen.census()[host.backend.id]?.framebuffers == 0)
            }
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func waitReleasedStaysPendingUntilTheLastHandle() throws {
            let host = try displayHost()
            let refs = try host.frontend.grantPages(framePages, to: host.backend.id)
            do {
                let export = try host.gntdev().exportDmaBuf(refs: refs, from: host.frontend.id)
                let vgem = try DRMDevice(driver: "vgem", on: host.backend.system)
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                let inVgem = try vgem.importPrime(export)
                let inVkms = try vkms.importPrime(export)
                let framebuffer = try vkms.addFramebuffer(inVkms, layout: FramebufferLayout(width: 32, height: 24))
                let pending = try export.release()
                #expect(try !pending.wait(timeout: .zero))
                try framebuffer.remove()
                #expect(try !pending.wait(timeout: .zero))
                try inVkms.close()
                #expect(try !pending.wait(timeout: .zero))
                try inVgem.close()
                #expect(try pending.wait(timeout: .zero))
            }
            host.frontend.endAccess(refs)
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test(arguments: [true, false])
        func aDisplayBufferReachesTheFrontend(ownerIsDom0: Bool) async throws {
            let host = try displayHost()
            let owner = ownerIsDom0 ? host.dom0 : host.backend
            do {
                let gntdev = try GrantDevice(on: owner.system)
                let vkms = try DRMDevice(driver: "vkms", on: owner.system)
                let shown = try vkms.createDumbBuffer(width: 32, height: 24)
                try draw(shown, seed: 1)
                let first = try SharedDisplayBuffer(shown, sharingWith: host.frontend.id, through: gntdev)
                let second = try SharedDisplayBuffer(
                    vkms.createDumbBuffer(width: 32, height: 24),
                    sharingWith: host.frontend.id,
                    through: gntdev
                )
                #expect(second.refs.count == framePages && second.pitch == 128 && second.domain == host.frontend.id)
                var scanout = try Scanout(on: vkms, showing: first, mode: smallMode)
                #expect(try await scanout.captureScreen().rgb == picture(seed: 1))
                // The frontend maps the refs and draws.
                let mapping = try GrantDevice(on: host.frontend.system).map(second.refs, from: owner.id)
                try mapping.withUnsafeMutableBytes { $0.copyBytes(from: bytes(of: picture(seed: 9), pitch: 128)) }
                // The backend sees it through its own mapping too (zero copy).
                let own = try second.map()
                #expect(own.withUnsafeBytes { $0.load(as: UInt32.self) } == picture(seed: 9)[0])
                try own.unmap()
                try scanout.flip(to: second)
                try await scanout.waitForFlip().remove().destroy()
                #expect(try await scanout.captureScreen().rgb == picture(seed: 9))
                try mapping.unmap()
                try scanout.turnOff().remove().destroy()
            }
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func aFrontendThatStillMapsDefersTheEndOfAccess() throws {
            let host = try displayHost()
            let mapping: GrantMapping
            do {
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                let shared = try SharedDisplayBuffer(
                    vkms.createDumbBuffer(width: 32, height: 24),
                    sharingWith: host.frontend.id,
                    through: host.gntdev()
                )
                mapping = try GrantDevice(on: host.frontend.system).map(shared.refs, from: host.backend.id)
                try shared.remove().destroy()
                #expect(host.xen.grants(from: host.backend.id, to: host.frontend.id) == framePages, "deferred while mapped")
            }
            try mapping.withUnsafeMutableBytes { $0[0] = 1 }  // still mapped, still writable
            try mapping.unmap()
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }
    }
}
