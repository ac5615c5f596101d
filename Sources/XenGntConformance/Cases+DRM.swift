import CDRM
import CXenGnt
import SystemPackage
import XenGnt
import XenGntDRM

#if canImport(Glibc)
import Glibc
#endif

/// The DRM bridge: the lab kernel's vgem and vkms, and the two backend flows between grant
/// references and a display. Every domain has its own vgem and vkms; the screen is read back
/// through vkms's writeback connector, on the kernel as on the simulator.
extension ConformanceSuite {
    /// A small mode: vkms composes with the CPU, and the lab's CPU is emulated.
    static let smallMode = DisplayMode(width: 64, height: 48)

    static let drmCases: [ConformanceCase] = [
        ConformanceCase(
            "drm-nodes",
            "vgem (primary and render) and vkms nodes: driver names, capabilities, what a render node and a render-only driver refuse, DRM master, one handle per dma-buf",
            each: LabRole.allCases
        ) { peer in
            let system = peer.system
            let nodes = try DRMDevice.list(on: system)
            for (driver, kind) in [("vkms", DRMNodeKind.primary), ("vgem", .primary), ("vgem", .render)] {
                try check(
                    nodes.contains { $0.driver.name == driver && $0.node == kind },
                    "no \(kind) node of \(driver) in \(nodes)"
                )
            }
            let vkms = try DRMDevice(driver: "vkms", on: system)
            let vkmsCaps = try vkms.capabilities()
            try check(
                vkmsCaps.primeImport && vkmsCaps.primeExport && vkmsCaps.modesetting && vkmsCaps.dumbBuffers && vkmsCaps.atomic,
                "vkms \(vkmsCaps)"
            )
            let vgem = try DRMDevice(driver: "vgem", on: system)
            let vgemCaps = try vgem.capabilities()
            try check(
                vgemCaps.primeImport && vgemCaps.primeExport && !vgemCaps.modesetting && !vgemCaps.dumbBuffers
                    && !vgemCaps.atomic,
                "vgem \(vgemCaps)"
            )
            try checkFails(code: .noModesetting, errno: .notSupported) { _ = try vgem.capability(UInt64(DRM_CAP_DUMB_BUFFER)) }
            let render = try DRMDevice(driver: "vgem", node: .render, on: system)
            try check(render.node == .render && render.path.contains("renderD"), "render node \(render.path)")
            // Render nodes: only DRM_RENDER_ALLOW ioctls (drm_ioctl_permit): EACCES.
            try checkFails(code: .renderNode, errno: .permissionDenied) {
                try render.setClientCapability(UInt64(DRM_CLIENT_CAP_ATOMIC), to: 1)
            }
            try checkFails(code: .renderNode, errno: .permissionDenied) { _ = try render.createDumbBuffer(width: 64, height: 64) }
            try checkFails(code: .renderNode, errno: .permissionDenied) { _ = try render.resources() }
            // vgem's primary node makes dumb buffers but has no KMS: EOPNOTSUPP.
            let dumb = try vgem.createDumbBuffer(width: 64, height: 48)
            try check(dumb.pitch >= 256 && dumb.byteCount >= 64 * 48 * 4, "vgem dumb \(dumb.pitch) \(dumb.byteCount)")
            try checkFails(code: .noModesetting, errno: .notSupported) { _ = try vgem.addFramebuffer(dumb) }
            try checkFails(code: .noModesetting, errno: .notSupported) { _ = try vgem.resources() }
            try checkFails(code: .noModesetting, errno: .notSupported) {
                try vgem.setClientCapability(UInt64(DRM_CLIENT_CAP_ATOMIC), to: 1)
            }
            // One handle per dma-buf: a duplicate descriptor, and this device's own export.
            let exported = try vgem.exportPrime(dumb)
            try check(try exported.size() == dumb.byteCount, "export size")
            let first = try render.importPrime(exported)
            let again = try render.importPrime(exported.duplicate())
            try check(first.rawValue == again.rawValue && first.ownerCount == 2, "handles \(first.rawValue) \(again.rawValue)")
            let own = try vgem.importPrime(exported)
            try check(
                own.rawValue == dumb.handle && own.ownerCount == 2,
                "own export: handle \(own.rawValue), dumb \(dumb.handle)"
            )
            try again.close()
            try check(first.ownerCount == 1, "owners after one close")
            let memfd = try Raw(system).calls.memfdCreate("xengnt-not-a-dmabuf", flags: UInt32(CXG_MFD_CLOEXEC))
            defer { Raw(system).close(memfd) }
            try checkFails(code: .notADmaBuf, errno: .invalidArgument) {
                _ = try render.importPrime(FileDescriptor(rawValue: memfd))
            }
            // Client caps: writeback connectors need atomic first (EINVAL), on a fresh descriptor.
            let fresh = try DRMDevice(driver: "vkms", on: system)
            try checkFails(errno: .invalidArgument) {
                try fresh.setClientCapability(UInt64(DRM_CLIENT_CAP_WRITEBACK_CONNECTORS), to: 1)
            }
            try fresh.enableWritebackConnectors()
            // Master: the first descriptor on a primary node is master; a second is not.
            try checkFails(code: .masterHeld, errno: .resourceBusy) { try fresh.becomeMaster() }
            try checkFails(code: .notMaster, errno: .invalidArgument) { try fresh.dropMaster() }
            try vkms.dropMaster()
            try fresh.becomeMaster()
            try fresh.dropMaster()
            try vkms.becomeMaster()
        },

        ConformanceCase(
            "drm-vkms-resources",
            "vkms: one CRTC, a primary plane (XR24, XR48, RG16; no AR24) and a cursor plane, a Virtual connector without EDID (1024×768 preferred, modes up to 8192×8192), and a writeback connector once asked for",
            each: LabRole.allCases
        ) { peer in
            let vkms = try DRMDevice(driver: "vkms", on: peer.system)
            try vkms.enableAtomic()
            let resources = try vkms.resources()
            try check(resources.crtcs.count == 1, "\(resources.crtcs.count) CRTCs")
            let planes = resources.planes
            let primary = try requireValue(planes.first { $0.kind == .primary }, "no primary plane in \(planes)")
            try check(Set(primary.formats) == [.xrgb8888, .xrgb16161616, .rgb565], "primary formats \(primary.formats)")
            let cursor = try requireValue(planes.first { $0.kind == .cursor }, "no cursor plane")
            try check(cursor.formats.contains(.argb8888), "cursor formats \(cursor.formats)")
            try check(
                resources.connectors.count == 1 && !resources.connectors[0].isWriteback,
                "connectors before writeback: \(resources.connectors.map(\.name))"
            )
            let display = resources.connectors[0]
            try check(display.name == "Virtual-1" && display.status == .connected, "\(display.name) \(display.status)")
            let preferred = try requireValue(display.preferredMode, "no preferred mode")
            try check(preferred.width == 1024 && preferred.height == 768 && preferred.isPreferred, "preferred \(preferred)")
            try check(display.modes.allSatisfy { $0.width <= 8192 && $0.height <= 8192 }, "modes over 8192: \(display.modes)")
            peer.note(
                "vkms Virtual-1 offers \(display.modes.count) modes, largest \(display.modes.max { $0.width * $0.height < $1.width * $1.height }.map { "\($0)" } ?? "-")"
            )
            try check(
                resources.maxWidth == 8192 && resources.minWidth == 20,
                "fb limits \(resources.minWidth)–\(resources.maxWidth)"
            )
            try vkms.enableWritebackConnectors()
            let withWriteback = try vkms.resources()
            let writeback = try requireValue(withWriteback.connectors.first(where: \.isWriteback), "no writeback connector")
            try check(withWriteback.writebackConnectors(for: withWriteback.crtcs[0]).count == 1, "writeback for the CRTC")
            let formats = try vkms.writebackFormats(of: writeback)
            try check(formats == [.xrgb8888, .xrgb16161616, .argb16161616, .rgb565], "writeback formats \(formats)")
        },

        ConformanceCase(
            "drm-vkms-scanout",
            "vkms: mode set, capture, page flip with its event, vblank event; a heap buffer shows, a udmabuf passes ADDFB2 and TEST_ONLY but not the real commit; AR24 and a second descriptor are refused",
            each: LabRole.allCases
        ) { peer in
            try await vkmsScanout(peer)
        },
    ]

    /// The body of `drm-vkms-scanout`.
    static func vkmsScanout(_ peer: Peer) async throws {
        let system = peer.system
        let vkms = try DRMDevice(driver: "vkms", on: system)
        let mode = smallMode
        let first = try vkms.createDumbBuffer(width: mode.width, height: mode.height)
        let second = try vkms.createDumbBuffer(width: mode.width, height: mode.height)
        try draw(first, seed: 1)
        try draw(second, seed: 2)
        var scanout = try Scanout(on: vkms, showing: try vkms.addFramebuffer(first), mode: mode)
        try check(scanout.usesAtomic && scanout.mode.width == mode.width, "atomic \(scanout.usesAtomic) mode \(scanout.mode)")
        try check(try await scanout.captureScreen().rgb == picture(seed: 1, mode), "the first frame on screen")
        // vkms's writeback encoder cannot clone the Virtual one (possible_clones): the atomic
        // check refuses both on the CRTC, so a capture borrows the CRTC for one commit.
        try check(scanout.captureMovesCRTC == true, "vkms's writeback shares the CRTC with Virtual-1")
        try scanout.flip(to: try vkms.addFramebuffer(second))
        try checkFails(code: .flipPending) { try scanout.flip(to: try vkms.addFramebuffer(first)) }
        let offScreen = try await scanout.waitForFlip()
        try check(offScreen.info.width == mode.width, "the frame handed back")
        try offScreen.remove()
        try check(try await scanout.captureScreen().rgb == picture(seed: 2, mode), "the second frame after the flip")
        try vkms.requestVblankEvent(crtcIndex: scanout.crtc.index, userData: 77)
        var events = vkms.events().makeAsyncIterator()
        let event = try requireValue(try await events.next(), "no vblank event")
        try check(event.kind == .vblank && event.userData == 77 && event.crtcID == scanout.crtc.id, "event \(event)")
        // AR24 is not a format of vkms's primary plane: refused before the kernel is asked.
        let alpha = try vkms.addFramebuffer(first, format: .argb8888)
        try checkFails(code: .formatNotSupported, errno: .some(nil)) { try vkms.checkScanout(of: alpha, mode: mode) }
        // A second descriptor is not the master: EACCES.
        let other = try DRMDevice(driver: "vkms", on: system)
        let otherBuffer = try other.createDumbBuffer(width: mode.width, height: mode.height)
        try checkFails(code: .notMaster, errno: .permissionDenied) {
            try other.checkScanout(of: try other.addFramebuffer(otherBuffer), mode: mode)
        }
        try scanout.turnOff().remove()
        // A system DMA-heap buffer has vmap: vkms shows it.
        let pages = (mode.width * 4 * mode.height + 4095) / 4096
        let heap = try DmaBuf.allocate(fromHeap: "system", pages: pages, on: system)
        try heap.map().withUnsafeMutableBytes { fill($0, width: mode.width, height: mode.height, pitch: mode.width * 4, seed: 3) }
        let heapFrame = try vkms.addFramebuffer(
            try vkms.importPrime(heap),
            layout: FramebufferLayout(width: mode.width, height: mode.height)
        )
        var heapScanout = try Scanout(on: vkms, showing: heapFrame, mode: mode)
        try check(try await heapScanout.captureScreen().rgb == picture(seed: 3, mode), "the heap buffer on screen")
        try heapScanout.turnOff().remove()
        // A udmabuf has no vmap in 6.1: ADDFB2 and TEST_ONLY pass, the real commit fails.
        let udmabuf = try DmaBuf.udmabuf(pages: pages, on: system)
        let udmaFrame = try vkms.addFramebuffer(
            try vkms.importPrime(udmabuf),
            layout: FramebufferLayout(width: mode.width, height: mode.height)
        )
        try vkms.checkScanout(of: udmaFrame, mode: mode, by: .testOnly)
        try checkFails(code: .displayCannotReadBuffer, errno: .invalidArgument) {
            try vkms.checkScanout(of: udmaFrame, mode: mode)
        }
        try udmaFrame.remove()
        try second.destroy()
        try first.destroy()
    }

    // MARK: Pictures

    /// Fills a dumb buffer with the picture of `seed`.
    static func draw(_ buffer: borrowing DumbBuffer, seed: UInt8) throws {
        let mapping = try buffer.map()
        mapping.withUnsafeMutableBytes { fill($0, width: buffer.width, height: buffer.height, pitch: buffer.pitch, seed: seed) }
        try mapping.unmap()
    }

    /// Writes the XR24 picture of `seed` (X = 0) into `bytes`, rows `pitch` apart.
    static func fill(_ bytes: UnsafeMutableRawBufferPointer, width: Int, height: Int, pitch: Int, seed: UInt8) {
        for y in 0..<height {
            for x in 0..<width {
                bytes.storeBytes(of: pixel(x: x, y: y, seed: seed), toByteOffset: y * pitch + x * 4, as: UInt32.self)
            }
        }
    }

    /// The RGB bits of the picture of `seed`, as a capture's ``Screenshot/rgb`` shows it.
    static func picture(seed: UInt8, _ mode: DisplayMode) -> [UInt32] {
        (0..<mode.height).flatMap { y in (0..<mode.width).map { x in pixel(x: x, y: y, seed: seed) } }
    }

    static func pixel(x: Int, y: Int, seed: UInt8) -> UInt32 {
        UInt32(truncatingIfNeeded: (x &* 4 &+ Int(seed) &* 40) & 0xFF) << 16
            | UInt32(truncatingIfNeeded: (y &* 5 &+ Int(seed) &* 16) & 0xFF) << 8
            | UInt32(truncatingIfNeeded: (x ^ y ^ Int(seed) &* 7) & 0xFF)
    }
}

/// `value`, or a failure saying `message`.
func requireValue<T>(_ value: T?, _ message: @autoclosure () -> String, line: Int = #line) throws -> T {
    guard let value else { throw ConformanceFailure("\(message()) (line \(line))") }
    return value
}
