import CDRM
import SystemPackage
import XenGnt
import XenGntDRM

/// The two backend flows of the DRM bridge between domains.
extension ConformanceSuite {
    static let drmFlowCases: [ConformanceCase] = [
        ConformanceCase(
            "drm-export-to-display",
            "PVH DomU: Dom0's refs exported, PRIME-imported into vgem and vkms, ADDFB2 on vkms; TEST_ONLY passes, the real vkms commit fails (no vmap); wait-released stays pending until the framebuffer and every GEM handle are gone",
            parts: [
                .dom0: sharePagesUntilDone(count: framePages, with: .pvh),
                .pvh: { peer in
                    let refs = try await peer.refs("refs", from: .dom0)
                    let gntdev = try GrantDevice(on: peer.system)
                    let export = try gntdev.exportDmaBuf(refs: refs, from: peer.id(of: .dom0))
                    let vgem = try DRMDevice(driver: "vgem", on: peer.system)
                    let vkms = try DRMDevice(driver: "vkms", on: peer.system)
                    let inVgem = try vgem.importPrime(export)
                    let inVkms = try vkms.importPrime(export)
                    let layout = FramebufferLayout(width: smallMode.width, height: smallMode.height)
                    let framebuffer = try vkms.addFramebuffer(inVkms, layout: layout)
                    try vkms.checkScanout(of: framebuffer, mode: smallMode, by: .testOnly)
                    try checkFails(
                        code: .displayCannotReadBuffer,
                        errno: .invalidArgument,
                        operation: .setMode,
                        call: "DRM_IOCTL_MODE_ATOMIC"
                    ) {
                        try vkms.checkScanout(of: framebuffer, mode: smallMode)
                    }
                    let pending = try export.release()
                    try check(try pending.wait(timeout: .zero) == false, "released while a framebuffer and two handles hold it")
                    try framebuffer.remove()
                    try check(try pending.wait(timeout: .zero) == false, "released while two handles hold it")
                    try inVkms.close()
                    try check(try pending.wait(timeout: .zero) == false, "released while vgem's handle holds it")
                    try inVgem.close()
                    try check(try pending.wait(timeout: .seconds(5)), "not released after the last handle closed")
                    // The flow type: the same refusal, and the same order of teardown.
                    let frame = try FrontendFramebuffer(
                        refs: refs,
                        from: peer.id(of: .dom0),
                        through: gntdev,
                        on: vkms,
                        layout: layout
                    )
                    try checkFails(code: .displayCannotReadBuffer, errno: .invalidArgument) {
                        try vkms.checkScanout(of: frame, mode: smallMode)
                    }
                    try check(try frame.release().wait(timeout: .seconds(5)), "the flow's export not released")
                    try await peer.publish("done")
                },
            ]
        ),
        displayToFrontendCase("drm-display-to-frontend-dom0", owner: .dom0, frontend: .pvh),
        displayToFrontendCase("drm-display-to-frontend-pvh", owner: .pvh, frontend: .dom0),
        displayToFrontendCase("drm-display-to-frontend-pv", owner: .pv, frontend: .dom0),

        ConformanceCase(
            "drm-vgem-share-pv",
            "the PV DomU shares an untouched vgem dumb buffer (PRIME export, IMP_TO_REFS) and Dom0 maps and writes it; XenGntDRM refuses to map it in the PV DomU, where CPU access hangs",
            parts: [
                .pv: { peer in
                    let vgem = try DRMDevice(driver: "vgem", on: peer.system)
                    let dumb = try vgem.createDumbBuffer(width: 64, height: 48)
                    try checkFails(code: .cpuAccessHangs, errno: .some(nil), operation: .mapDumbBuffer) { _ = try dumb.map() }
                    let imported = try GrantDevice(on: peer.system).importDmaBuf(vgem.exportPrime(dumb), to: peer.id(of: .dom0))
                    try check(imported.refs.count == dumb.byteCount / 4096, "\(imported.refs.count) refs")
                    try await peer.publish(refs: imported.refs, as: "refs")
                    try await peer.wait(for: "done", from: .dom0)
                    try imported.release().close()
                    try dumb.destroy()
                },
                .dom0: { peer in
                    let mapping = try GrantDevice(on: peer.system).map(
                        try await peer.refs("refs", from: .pv),
                        from: peer.id(of: .pv)
                    )
                    try mapping.withUnsafeMutableBytes { $0.storeBytes(of: UInt32(0x00C0_FFEE), as: UInt32.self) }
                    try check(mapping.withUnsafeBytes { $0.load(as: UInt32.self) } == 0x00C0_FFEE, "Dom0's write")
                    try mapping.unmap()
                    try await peer.publish("done")
                },
            ]
        ),
    ]

    /// The pages of one small-mode XR24 frame.
    static var framePages: Int { (smallMode.width * 4 * smallMode.height + 4095) / 4096 }

    /// `owner` shares two vkms dumb buffers with `frontend`, which maps one, sees the owner's
    /// picture and draws its own; a mode set shows the other, a page flip (with its event)
    /// shows the frontend's picture, and a writeback capture equals it.
    static func displayToFrontendCase(_ name: String, owner: LabRole, frontend: LabRole) -> ConformanceCase {
        ConformanceCase(
            name,
            "\(owner) shares vkms dumb buffers with \(frontend) (PRIME export, IMP_TO_REFS); \(frontend) sees the picture and draws another; mode set, page flip with its event, and a writeback capture shows \(frontend)'s picture",
            parts: [
                owner: { peer in
                    let gntdev = try GrantDevice(on: peer.system)
                    let vkms = try DRMDevice(driver: "vkms", on: peer.system)
                    let mode = smallMode
                    let shown = try vkms.createDumbBuffer(width: mode.width, height: mode.height)
                    try draw(shown, seed: 4)
                    let drawn = try vkms.createDumbBuffer(width: mode.width, height: mode.height)
                    try draw(drawn, seed: 5)
                    let first = try SharedDisplayBuffer(shown, sharingWith: peer.id(of: frontend), through: gntdev)
                    let second = try SharedDisplayBuffer(drawn, sharingWith: peer.id(of: frontend), through: gntdev)
                    try await peer.publish(refs: second.refs, as: "refs")
                    try await peer.publish("pitch", String(second.pitch))
                    var scanout = try Scanout(on: vkms, showing: first, mode: mode)
                    try check(try await scanout.captureScreen().rgb == picture(seed: 4, mode), "the first buffer on screen")
                    try await peer.wait(for: "drawn", from: frontend)
                    try scanout.flip(to: second)
                    let offScreen = try await scanout.waitForFlip()
                    try check(try await scanout.captureScreen().rgb == picture(seed: 6, mode), "the frontend's picture on screen")
                    try offScreen.remove().destroy()
                    try await peer.wait(for: "unmapped", from: frontend)
                    try scanout.turnOff().remove().destroy()
                },
                frontend: { peer in
                    let refs = try await peer.refs("refs", from: owner)
                    guard let pitch = Int(try await peer.value(of: "pitch", from: owner)) else {
                        throw ConformanceFailure("bad pitch")
                    }
                    let mapping = try GrantDevice(on: peer.system).map(refs, from: peer.id(of: owner))
                    let mode = smallMode
                    let seen = mapping.withUnsafeBytes { raw in
                        (0..<mode.height).flatMap { y in
                            (0..<mode.width).map { x in raw.loadUnaligned(fromByteOffset: y * pitch + x * 4, as: UInt32.self) }
                        }
                    }
                    try check(seen == picture(seed: 5, mode), "the owner's picture is not in the mapped refs")
                    try mapping.withUnsafeMutableBytes { fill($0, width: mode.width, height: mode.height, pitch: pitch, seed: 6) }
                    try await peer.publish("drawn")
                    try mapping.unmap()
                    try await peer.publish("unmapped")
                },
            ]
        )
    }
}
