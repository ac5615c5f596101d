import CDRM
import SystemPackage
import Testing
import XenGnt
import XenGntTesting

@testable import XenGntDRM

extension Simulated {
    /// DRM devices: finding them, what they offer, what they refuse, and DRM master (lab
    /// `drm-nodes`, `drm-vkms-resources`).
    @Suite(.noDescriptorLeaks) struct DRMDevices {
        @Test func theLabsNodesAndTheDMADisplay() throws {
            let host = try displayHost()
            let nodes = try DRMDevice.list(on: host.backend.system)
            #expect(nodes.map(\.path) == ["/dev/dri/card0", "/dev/dri/card1", "/dev/dri/card2", "/dev/dri/renderD128"])
            #expect(nodes.map(\.driver.name) == ["vgem", "vkms", "xengnt-dma-scanout", "vgem"])
            #expect(nodes.map(\.node) == [.primary, .primary, .primary, .render])
            #expect(nodes[1].driver.description == "vkms 1.0.0" && nodes[1].driver.date == "20180514")
            // The lab's kernel has no DMA-scanout display.
            let lab = try Host()
            #expect(try DRMDevice.list(on: lab.backend.system).count == 3)
            // No DRM at all: an empty list, and a search that names what it looked for.
            let none = try Host { $0.devices.subtract([.vgem, .vkms]) }
            #expect(try DRMDevice.list(on: none.backend.system).isEmpty)
            let error = expectDRMError(.drmDeviceNotFound, errno: .some(nil)) {
                _ = try DRMDevice(driver: "vkms", on: none.backend.system)
            }
            #expect(error?.detail?.contains("'vkms'") == true && error?.path == "/dev/dri")
            expectDRMError(.drmDeviceNotFound) { _ = try DRMDevice(driver: "vkms", node: .render, on: lab.backend.system) }
            expectDRMError(.deviceMissing, errno: .noSuchFileOrDirectory) {
                _ = try DRMDevice(path: "/dev/dri/card9", on: lab.backend.system)
            }
        }

        @Test func findingADeviceGoesThroughTheSeam() throws {
            let host = try Host()
            let recorder = SeamRecorder(host.backend.system)
            let render = try DRMDevice(driver: "vgem", node: .render, on: recorder.system)
            #expect(render.path == "/dev/dri/renderD128" && render.node == .render)
            let calls = named(recorder.calls)
            #expect(calls.first == "list /dev/dri")
            #expect(calls.filter { $0 == "DRM_IOCTL_VERSION" }.count == 2 * 4)  // lengths, then strings; 3 nodes listed, 1 opened
            #expect(calls.filter { $0.hasPrefix("open /dev/dri/") }.count == 4 && calls.contains("fstat"))
        }

        @Test func capabilitiesOfEachDriver() throws {
            let host = try displayHost()
            let system = host.backend.system
            let vkms = try DRMDevice(driver: "vkms", on: system).capabilities()
            #expect(
                vkms
                    == DRMCapabilities(
                        primeImport: true,
                        primeExport: true,
                        modesetting: true,
                        dumbBuffers: true,
                        framebufferModifiers: true,
                        atomic: true
                    )
            )
            let vgem = try DRMDevice(driver: "vgem", on: system).capabilities()
            #expect(
                vgem
                    == DRMCapabilities(
                        primeImport: true,
                        primeExport: true,
                        modesetting: false,
                        dumbBuffers: false,
                        framebufferModifiers: false,
                        atomic: false
                    )
            )
            let render = try DRMDevice(driver: "vgem", node: .render, on: system).capabilities()
            #expect(render.primeImport && !render.modesetting && !render.atomic)
            #expect(try DRMDevice(driver: "xengnt-dma-scanout", on: system).capabilities().atomic)
            let device = try DRMDevice(driver: "vkms", on: system)
            #expect(try device.capability(UInt64(DRM_CAP_DUMB_PREFERRED_DEPTH)) == 24)
            expectDRMError(.kernel, errno: .invalidArgument) { _ = try device.capability(0xFFFF) }
        }

        @Test func renderNodesAndRenderOnlyDriversRefuseKMS() throws {
            let host = try Host()
            let system = host.backend.system
            let render = try DRMDevice(driver: "vgem", node: .render, on: system)
            let refusals = [
                expectDRMError(.renderNode, errno: .permissionDenied) {
                    try render.setClientCapability(UInt64(DRM_CLIENT_CAP_ATOMIC), to: 1)
                },
                expectDRMError(.renderNode, errno: .permissionDenied) { _ = try render.createDumbBuffer(width: 64, height: 64) },
                expectDRMError(.renderNode, errno: .permissionDenied) { _ = try render.resources() },
                expectDRMError(.renderNode, errno: .permissionDenied) { try render.becomeMaster() },
            ]
            #expect(refusals.allSatisfy { $0?.advice.contains("render node") == true })
            let vgem = try DRMDevice(driver: "vgem", on: system)
            let buffer = try vgem.createDumbBuffer(width: 64, height: 48)
            #expect(buffer.pitch == 256 && buffer.byteCount == 12288)
            let kmsRefusals = [
                expectDRMError(.noModesetting, errno: .notSupported) { _ = try vgem.addFramebuffer(buffer) },
                expectDRMError(.noModesetting, errno: .notSupported) { _ = try vgem.resources() },
                expectDRMError(.noModesetting, errno: .notSupported) {
                    try vgem.setClientCapability(UInt64(DRM_CLIENT_CAP_ATOMIC), to: 1)
                },
                expectDRMError(.noModesetting, errno: .notSupported) { _ = try vgem.capability(UInt64(DRM_CAP_DUMB_BUFFER)) },
            ]
            #expect(kmsRefusals.allSatisfy { $0?.detail == "vgem" }, "the driver is named")
        }

        @Test func clientCapabilitiesInTheKernelsOrder() throws {
            let host = try Host()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            expectDRMError(.kernel, errno: .invalidArgument) {
                try vkms.setClientCapability(UInt64(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS), to: 1)
            }
            #expect(!vkms.isAtomic && !vkms.isWritebackEnabled)
            #expect(try vkms.resources().planes.isEmpty, "no universal planes without atomic")
            try vkms.enableWritebackConnectors()
            #expect(vkms.isAtomic && vkms.isWritebackEnabled)
            #expect(try vkms.resources().connectors.map(\.name) == ["Virtual-1", "Writeback-1"])
        }

        @Test func theFirstDescriptorIsMaster() throws {
            let host = try Host()
            let first = try DRMDevice(driver: "vkms", on: host.backend.system)
            let second = try DRMDevice(driver: "vkms", on: host.backend.system)
            try first.becomeMaster()  // already: success
            expectDRMError(.masterHeld, errno: .resourceBusy) { try second.becomeMaster() }
            expectDRMError(.notMaster, errno: .invalidArgument) { try second.dropMaster() }
            let frame = try second.addFramebuffer(second.createDumbBuffer(width: 32, height: 24))
            let error = expectDRMError(.notMaster, errno: .permissionDenied) {
                try second.checkScanout(of: frame, mode: smallMode)
            }
            #expect(error?.call == "DRM_IOCTL_MODE_ATOMIC")
            try first.dropMaster()
            try second.becomeMaster()
            try second.checkScanout(of: frame, mode: smallMode)
            // Other domains have their own vkms, with their own master.
            let elsewhere = try DRMDevice(driver: "vkms", on: host.frontend.system)
            try elsewhere.becomeMaster()
        }

        @Test func aClosedMasterFreesMaster() throws {
            let host = try Host()
            let second: DRMDevice
            do {
                let first = try DRMDevice(driver: "vkms", on: host.backend.system)
                second = try DRMDevice(driver: "vkms", on: host.backend.system)
                expectDRMError(.masterHeld) { try second.becomeMaster() }
                _ = first
            }
            try second.becomeMaster()
        }

        @Test func interruptedCallsAreRetried() throws {
            let host = try Host()
            host.xen.injectFault(.interrupted, on: .ioctl(.drmVersion), times: 2)
            host.xen.injectFault(.interrupted, on: .ioctl(.drmModeCreateDumb))
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            #expect(vkms.driver.name == "vkms")
            _ = try vkms.createDumbBuffer(width: 32, height: 24)
        }

        @Test func resourcesOfVkms() throws {
            let host = try Host()
            let vkms = try DRMDevice(driver: "vkms", on: host.backend.system)
            try vkms.enableAtomic()
            let resources = try vkms.resources()
            #expect(resources.crtcs.count == 1 && resources.crtcs[0].index == 0 && resources.crtcs[0].mode == nil)
            let primary = try #require(resources.planes.first { $0.kind == .primary })
            #expect(primary.formats == [.xrgb8888, .xrgb16161616, .rgb565])
            #expect(resources.planes.first { $0.kind == .cursor }?.formats.contains(.argb8888) == true)
            let display = try #require(resources.firstConnectedDisplay)
            #expect(display.name == "Virtual-1" && display.modes.count == 34)
            #expect(display.preferredMode?.name == "1024x768" && display.modes.first?.isPreferred == true)
            #expect(display.modes.max { $0.width * $0.height < $1.width * $1.height }?.name == "4096x2160")
            #expect(
                resources.crtcs(for: display) == resources.crtcs && resources.primaryPlane(for: resources.crtcs[0]) == primary
            )
            #expect(resources.minWidth == 20 && resources.maxWidth == 8192)
            let properties = try vkms.properties(of: primary.id, type: .plane)
            #expect(Set(properties.keys).isSuperset(of: ["type", "FB_ID", "CRTC_ID", "SRC_W", "CRTC_H"]))
            try vkms.enableWritebackConnectors()
            let writeback = try #require(try vkms.resources().connectors.first(where: \.isWriteback))
            #expect(try vkms.writebackFormats(of: writeback) == [.xrgb8888, .xrgb16161616, .argb16161616, .rgb565])
            expectDRMError(.notFound, errno: .noSuchFileOrDirectory) { _ = try vkms.properties(of: 9999, type: .crtc) }
            expectDRMError(.notFound, errno: .noSuchFileOrDirectory) { _ = try vkms.propertyBlob(9999) }
        }
    }
}
