import CDRM
import CXenGnt
import SystemPackage
import Testing
import XenGnt
import XenGntConformance
import XenGntTesting

@testable import XenGntDRM

extension Simulated {
    /// PRIME, GEM handles, dumb buffers and framebuffers (lab `drm-nodes`, `drm-vkms-scanout`).
    @Suite(.noDescriptorLeaks) struct DRMBuffers {
        @Test func oneHandlePerDmaBufClosedOnceByItsLastOwner() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let vgem = try DRMDevice(driver: "vgem", on: recorder.system)
            let render = try DRMDevice(driver: "vgem", node: .render, on: recorder.system)
            let dumb = try vgem.createDumbBuffer(width: 64, height: 48)
            let exported = try vgem.exportPrime(dumb)
            #expect(try exported.size() == dumb.byteCount)
            let first = try render.importPrime(exported)
            let second = try render.importPrime(exported.duplicate())
            #expect(first.rawValue == second.rawValue && first.ownerCount == 2)
            let own = try vgem.importPrime(exported)
            #expect(own.rawValue == dumb.handle && own.ownerCount == 2, "this device's own export is the dumb buffer's handle")
            var mark = recorder.count
            try second.close()
            try own.close()
            let closes = named(recorder.since(mark))
            #expect(!closes.contains("DRM_IOCTL_GEM_CLOSE") && !closes.contains("DRM_IOCTL_MODE_DESTROY_DUMB"), "\(closes)")
            mark = recorder.count
            try first.close()
            #expect(named(recorder.since(mark)) == ["DRM_IOCTL_GEM_CLOSE"])
            mark = recorder.count
            try dumb.destroy()
            #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_DESTROY_DUMB"])
        }

        @Test func importRefusesWhatIsNotADmaBuf() throws {
            let host = try Host()
            let render = try DRMDevice(driver: "vgem", node: .render, on: host.backend.system)
            let memfd = try Raw(host.backend.system).calls.memfdCreate("not-a-dmabuf", flags: UInt32(CXG_MFD_CLOEXEC))
            defer { Raw(host.backend.system).close(memfd) }
            expectDRMError(.notADmaBuf, errno: .invalidArgument) { _ = try render.importPrime(FileDescriptor(rawValue: memfd)) }
            expectDRMError(.badFileDescriptor, errno: .badFileDescriptor) {
                _ = try render.importPrime(FileDescriptor(rawValue: 987))
            }
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            // A handle of another device file is not this one's.
            expectDRMError(.invalidArgument, errno: .some(nil)) { _ = try render.exportPrime(buffer) }
        }

        @Test func dumbBuffersAreCPUMappedAndSharedWithoutCopies() throws {
            let host = try Host()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            #expect(buffer.pitch == 128 && buffer.byteCount == 4096 && buffer.bitsPerPixel == 32)
            try draw(buffer, seed: 3)
            // The exported dma-buf maps the same pages.
            let exported = try vkms.exportPrime(buffer)
            let cpu = try exported.map(.readOnly)
            #expect(cpu.withUnsafeBytes { Array($0.prefix(12)) } == Array(bytes(of: picture(seed: 3), pitch: 128).prefix(12)))
            try cpu.unmap()
            let odd = try vkms.createDumbBuffer(width: 30, height: 20, bitsPerPixel: 16)
            #expect(odd.pitch == 60 && odd.byteCount == 4096)
            expectDRMError(.invalidArgument, errno: .some(nil)) { _ = try vkms.createDumbBuffer(width: 0, height: 10) }
            expectDRMError(.invalidArgument, errno: .some(nil)) { _ = try vkms.createDumbBuffer(width: 100_000, height: 10) }
        }

        @Test func framebuffersAreCheckedBeforeTheKernelIsAsked() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
            let handle = try vkms.importPrime(vkms.exportPrime(buffer))
            let refused = named(
                recorder.calls {
                    let pitch = expectDRMError(.pitchTooSmall, errno: .some(nil)) {
                        _ = try vkms.addFramebuffer(handle, layout: FramebufferLayout(width: 32, height: 24, pitch: 100))
                    }
                    #expect(pitch?.length == 100 && pitch?.limit == 128)
                    let size = expectDRMError(.bufferTooSmall, errno: .some(nil)) {
                        _ = try vkms.addFramebuffer(handle, layout: FramebufferLayout(width: 32, height: 48))
                    }
                    #expect(size?.length == 4096 && size?.limit == 47 * 128 + 128)
                }
            )
            #expect(!refused.contains("DRM_IOCTL_MODE_ADDFB2"))
            // What only the kernel can tell: an unknown fourcc, a size past the driver's limits.
            let unknown = expectDRMError(.invalidArgument, errno: .invalidArgument) {
                _ = try vkms.addFramebuffer(
                    width: 32,
                    height: 24,
                    format: PixelFormat(fourcc: "ZZZZ")!,
                    planes: [FramebufferPlane(handle: handle.rawValue, pitch: 128)]
                )
            }
            #expect(unknown?.call == "DRM_IOCTL_MODE_ADDFB2")
            expectDRMError(.invalidArgument, errno: .invalidArgument) {
                _ = try vkms.addFramebuffer(
                    width: 10,
                    height: 24,
                    format: .xrgb8888,
                    planes: [FramebufferPlane(handle: handle.rawValue, pitch: 128)]
                )
            }
            expectDRMError(.notFound, errno: .some(nil)) {
                _ = try vkms.addFramebuffer(
                    width: 32,
                    height: 24,
                    format: .xrgb8888,
                    planes: [FramebufferPlane(handle: 777, pitch: 128)]
                )
            }
            // ADDFB2 does not check the planes' formats: AR24 is added (the primary plane refuses it later).
            let alpha = try vkms.addFramebuffer(buffer, format: .argb8888)
            #expect(alpha.info.format == .argb8888 && alpha.id != 0)
            let linear = try vkms.addFramebuffer(handle, layout: FramebufferLayout(width: 32, height: 24, modifier: .linear))
            #expect(try vkms.resources().framebufferIDs.sorted() == [alpha.id, linear.id].sorted())
            try linear.remove()
            #expect(try vkms.resources().framebufferIDs == [alpha.id])
        }

        @Test func aFramebufferKeepsItsHandlesUntilRemoved() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let vkms = try DRMDevice(driver: "vkms", on: recorder.system)
            let heap = try DmaBuf.allocate(fromHeap: "system", pages: 1, on: host.backend.system)
            let handle = try vkms.importPrime(heap)
            let framebuffer = try vkms.addFramebuffer(handle, layout: FramebufferLayout(width: 32, height: 24))
            #expect(handle.ownerCount == 2)
            var mark = recorder.count
            try handle.close()
            #expect(recorder.since(mark).isEmpty, "the framebuffer still holds the handle")
            mark = recorder.count
            try framebuffer.remove()
            #expect(named(recorder.since(mark)) == ["DRM_IOCTL_MODE_RMFB", "DRM_IOCTL_GEM_CLOSE"])
        }

        @Test func refusedTeardownStepsAreRetried() throws {
            let host = try Host()
            do {
                let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
                let buffer = try vkms.createDumbBuffer(width: 32, height: 24)
                let framebuffer = try vkms.addFramebuffer(buffer)
                host.xen.injectFault(.ioError, on: .ioctl(.drmModeRemoveFramebuffer))
                host.xen.injectFault(.ioError, on: .ioctl(.drmModeDestroyDumb))
                do throws(XenGntError) { try framebuffer.remove() } catch {
                    #expect(error.errno == .ioError && error.call == "DRM_IOCTL_MODE_RMFB")
                }
                do throws(XenGntError) { try buffer.destroy() } catch {
                    #expect(error.errno == .ioError && error.call == "DRM_IOCTL_MODE_DESTROY_DUMB")
                }
                #expect(host.xen.census()[host.backend.id]?.framebuffers == 1)
                // The device's next call retries both.
                _ = try vkms.capabilities()
                #expect(host.xen.census()[host.backend.id]?.framebuffers == 0)
                #expect(host.xen.census()[host.backend.id]?.gemObjects == 0)
            }
            #expect(host.xen.census().isClean, "\(host.xen.census())")
        }

        @Test func vgemBuffersAreNotCPUMappedInAPVDomU() throws {
            let xen = XenSimulation()
            let dom0 = try xen.addDomain(0, type: .pv)
            let domU = try xen.addDomain(3, type: .pv)
            let pvh = try xen.addDomain(4, type: .pvh)
            let refused = try DRMDevice(driver: "vgem", on: domU.system).createDumbBuffer(width: 32, height: 24)
            let error = expectDRMError(.cpuAccessHangs, errno: .some(nil)) { _ = try refused.map() }
            #expect(error?.operation == .mapDumbBuffer && error?.advice.contains("DMA-heap") == true)
            // vkms's buffers in the PV DomU, and vgem's in Dom0 and a PVH DomU, map.
            try DRMDevice(driver: "vkms", on: domU.system).createDumbBuffer(width: 32, height: 24).map().unmap()
            try DRMDevice(driver: "vgem", on: dom0.system).createDumbBuffer(width: 32, height: 24).map().unmap()
            try DRMDevice(driver: "vgem", on: pvh.system).createDumbBuffer(width: 32, height: 24).map().unmap()
        }
    }
}
