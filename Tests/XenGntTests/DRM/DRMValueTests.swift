import CDRM
import Testing
import XenGnt

@testable import XenGntDRM

/// The DRM uapi as XenGntDRM sees it, and the values it builds without a device.
@Suite struct DRMValues {
    /// `_IOC(direction, 'd', number, size)` of `asm-generic/ioctl.h`.
    static func ioc(_ direction: UInt, _ number: UInt, _ size: Int) -> UInt {
        direction << 30 | UInt(size) << 16 | UInt(Character("d").asciiValue!) << 8 | number
    }
    static let readWrite: UInt = 3, write: UInt = 1

    @Test func requestNumbersAreTheKernels() {
        // Four known by heart (Linux 6.1, x86_64), then every one from its struct's size.
        #expect(DRMRequest.atomic == 0xC038_64BC)
        #expect(DRMRequest.addFramebuffer2 == 0xC068_64B8)
        #expect(DRMRequest.createDumb == 0xC020_64B2)
        #expect(DRMRequest.primeFDToHandle == 0xC00C_642E)
        #expect(DRMRequest.version == Self.ioc(Self.readWrite, 0x00, MemoryLayout<drm_version>.size))
        #expect(DRMRequest.getCap == Self.ioc(Self.readWrite, 0x0C, MemoryLayout<drm_get_cap>.size))
        #expect(DRMRequest.setClientCap == Self.ioc(Self.write, 0x0D, MemoryLayout<drm_set_client_cap>.size))
        #expect(DRMRequest.setMaster == 0x641E && DRMRequest.dropMaster == 0x641F)
        #expect(DRMRequest.gemClose == Self.ioc(Self.write, 0x09, MemoryLayout<drm_gem_close>.size))
        #expect(DRMRequest.primeHandleToFD == Self.ioc(Self.readWrite, 0x2D, MemoryLayout<drm_prime_handle>.size))
        #expect(DRMRequest.waitVblank == Self.ioc(Self.readWrite, 0x3A, MemoryLayout<drm_wait_vblank>.size))
        #expect(DRMRequest.getResources == Self.ioc(Self.readWrite, 0xA0, MemoryLayout<drm_mode_card_res>.size))
        #expect(DRMRequest.getCRTC == Self.ioc(Self.readWrite, 0xA1, MemoryLayout<drm_mode_crtc>.size))
        #expect(DRMRequest.setCRTC == Self.ioc(Self.readWrite, 0xA2, MemoryLayout<drm_mode_crtc>.size))
        #expect(DRMRequest.getEncoder == Self.ioc(Self.readWrite, 0xA6, MemoryLayout<drm_mode_get_encoder>.size))
        #expect(DRMRequest.getConnector == Self.ioc(Self.readWrite, 0xA7, MemoryLayout<drm_mode_get_connector>.size))
        #expect(DRMRequest.getProperty == Self.ioc(Self.readWrite, 0xAA, MemoryLayout<drm_mode_get_property>.size))
        #expect(DRMRequest.getPropertyBlob == Self.ioc(Self.readWrite, 0xAC, MemoryLayout<drm_mode_get_blob>.size))
        #expect(DRMRequest.removeFramebuffer == Self.ioc(Self.readWrite, 0xAF, 4))
        #expect(DRMRequest.pageFlip == Self.ioc(Self.readWrite, 0xB0, MemoryLayout<drm_mode_crtc_page_flip>.size))
        #expect(DRMRequest.mapDumb == Self.ioc(Self.readWrite, 0xB3, MemoryLayout<drm_mode_map_dumb>.size))
        #expect(DRMRequest.destroyDumb == Self.ioc(Self.readWrite, 0xB4, MemoryLayout<drm_mode_destroy_dumb>.size))
        #expect(DRMRequest.getPlaneResources == Self.ioc(Self.readWrite, 0xB5, MemoryLayout<drm_mode_get_plane_res>.size))
        #expect(DRMRequest.getPlane == Self.ioc(Self.readWrite, 0xB6, MemoryLayout<drm_mode_get_plane>.size))
        #expect(DRMRequest.objectGetProperties == Self.ioc(Self.readWrite, 0xB9, MemoryLayout<drm_mode_obj_get_properties>.size))
        #expect(DRMRequest.createPropertyBlob == Self.ioc(Self.readWrite, 0xBD, MemoryLayout<drm_mode_create_blob>.size))
        #expect(DRMRequest.destroyPropertyBlob == Self.ioc(Self.readWrite, 0xBE, MemoryLayout<drm_mode_destroy_blob>.size))
        #expect(DRMRequest.name(of: DRMRequest.atomic) == "DRM_IOCTL_MODE_ATOMIC")
    }

    @Test func structSizesAreTheKernels() {
        #expect(MemoryLayout<drm_version>.size == 64)
        #expect(MemoryLayout<drm_mode_atomic>.size == 56)
        #expect(MemoryLayout<drm_mode_fb_cmd2>.size == 104)
        #expect(MemoryLayout<drm_mode_create_dumb>.size == 32)
        #expect(MemoryLayout<drm_mode_modeinfo>.size == 68)
        #expect(MemoryLayout<drm_mode_crtc>.size == 104)
        #expect(MemoryLayout<drm_event_vblank>.size == 32)
    }

    @Test func formatsAreTheHeadersFourccs() {
        #expect(PixelFormat.xrgb8888.rawValue == 0x3432_5258)
        #expect(PixelFormat.xrgb8888.fourcc == "XR24" && PixelFormat.argb8888.fourcc == "AR24")
        #expect(PixelFormat(fourcc: "RG16") == .rgb565 && PixelFormat(fourcc: "XR48") == .xrgb16161616)
        #expect(PixelFormat(fourcc: "TOOLONG") == nil)
        // libdrm's names.
        #expect(PixelFormat.xrgb8888.name == "XR24")
        #expect(PixelFormat.rgb565.description == "RG16")
        #expect(
            PixelFormat.xrgb8888.bytesPerPixel == 4 && PixelFormat.rgb565.bytesPerPixel == 2
                && PixelFormat.xrgb16161616.bytesPerPixel == 8
        )
        #expect(PixelFormat(rawValue: 0).bytesPerPixel == nil)
        #expect(FormatModifier.linear.rawValue == 0 && FormatModifier.linear.name == "LINEAR")
        #expect(FormatModifier.invalid.rawValue == 0x00FF_FFFF_FFFF_FFFF)
    }

    @Test func aCustomModeHasConsistentTimings() {
        let mode = DisplayMode(width: 64, height: 48, refreshRate: 60)
        #expect(mode.width == 64 && mode.height == 48 && mode.name == "64x48")
        #expect(mode.hdisplay < mode.hsyncStart && mode.hsyncStart < mode.hsyncEnd && mode.hsyncEnd < mode.htotal)
        #expect(mode.vdisplay < mode.vsyncStart && mode.vsyncStart < mode.vsyncEnd && mode.vsyncEnd < mode.vtotal)
        // clock (kHz) = htotal × vtotal × refresh / 1000, rounded up.
        #expect(mode.clock == UInt32((Int(mode.htotal) * Int(mode.vtotal) * 60 + 999) / 1000))
        #expect(!mode.isPreferred)
        let roundTrip = DisplayMode(mode.modeInfo)
        #expect(roundTrip == mode)
    }

    @Test func eventsAreDecodedWholeAndOnlyWhole() {
        var bytes: [UInt8] = []
        func append<T>(_ value: T) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
        // A flip-complete event: header, user_data, tv_sec, tv_usec, sequence, crtc_id.
        append(UInt32(DRM_EVENT_FLIP_COMPLETE))
        append(UInt32(32))
        append(UInt64(0xABCD))
        append(UInt32(12))
        append(UInt32(500))
        append(UInt32(7))
        append(UInt32(41))
        // A vblank event.
        append(UInt32(DRM_EVENT_VBLANK))
        append(UInt32(32))
        append(UInt64(77))
        append(UInt32(13))
        append(UInt32(0))
        append(UInt32(8))
        append(UInt32(41))
        // A truncated one: ignored.
        append(UInt32(DRM_EVENT_VBLANK))
        append(UInt32(32))
        append(UInt64(1))
        let events = bytes.withUnsafeBytes { DRMEvent.decode($0) }
        #expect(events.count == 2)
        #expect(
            events[0]
                == DRMEvent(
                    kind: .flipComplete,
                    userData: 0xABCD,
                    crtcID: 41,
                    sequence: 7,
                    timestamp: .seconds(12) + .microseconds(500)
                )
        )
        #expect(events[1].kind == .vblank && events[1].userData == 77 && events[1].sequence == 8)
        // A length shorter than the header cannot loop forever.
        let hostile: [UInt8] = [1, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0]
        #expect(hostile.withUnsafeBytes { DRMEvent.decode($0) }.isEmpty)
    }

    @Test func nodesAreOrderedAndKnownByName() {
        let names = ["renderD128", "card10", "by-path", "card2", "card", "renderD"]
        #expect(names.filter(DRMNode.isNode).sorted(by: DRMNodeInfo.nameOrder) == ["card2", "card10", "renderD128"])
        #expect(DRMNode.kind(ofName: "/dev/dri/renderD128") == .render && DRMNode.kind(ofName: "/dev/dri/card0") == .primary)
    }

    @Test func layoutsNeedWhatTheKernelChecks() {
        let layout = FramebufferLayout(width: 64, height: 48)
        #expect(layout.pitch == 256 && layout.format == .xrgb8888)
        #expect(layout.requiredByteCount == 47 * 256 + 256)
        #expect(FramebufferLayout(width: 10, height: 2, format: .rgb565, pitch: 32, offset: 8).requiredByteCount == 8 + 32 + 20)
    }

    @Test func everyCodeExplainsItself() {
        let codes: [XenGntError.Code] = [
            .drmDeviceNotFound, .renderNode, .noModesetting, .notMaster, .masterHeld, .primeUnsupported, .formatNotSupported,
            .pitchTooSmall, .bufferTooSmall, .displayCannotReadBuffer, .noDisplay, .atomicRequired, .noWriteback,
            .writebackTarget, .flipPending, .cpuAccessHangs, .displayTimedOut,
        ]
        #expect(Set(codes.map(\.name)).count == codes.count)
        for code in codes {
            let error = XenGntError(code, .setMode)
            #expect(error.advice.count > 20, "\(code)")
            #expect(!error.description.isEmpty)
        }
        let format = XenGntError(.formatNotSupported, .setMode, flags: PixelFormat.argb8888.rawValue, detail: "XR24, XR48, RG16")
        #expect(format.advice.hasPrefix("the plane does not take AR24; it takes XR24, XR48, RG16."))
    }
}
