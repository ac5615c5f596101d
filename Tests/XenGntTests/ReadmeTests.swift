import Testing
import XenGnt
import XenGntTesting

extension Simulated {
    /// The README's testing example, verbatim, so the README stays true.
    @Suite struct Readme {
        @Test func backendExportsTheFrontendsFrame() throws {
            let xen = XenSimulation()  // or XenSimulation(maxGrantFrames: 32)
            let frontend = try xen.addDomain(1, type: .pvh)
            let backend = try xen.addDomain(2, type: .pvh)
            let refs = try frontend.grantPages(2025, to: backend.id)  // what xen-drm-front would do
            try frontend.write(Array("pixels".utf8), toGrant: refs[0])

            let gntdev = try GrantDevice(on: backend.system)  // instead of .kernel
            let frame = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
            #expect(frame.byteCount == 2025 * 4096)
            #expect(try frame.release().wait(timeout: .zero))
        }
    }
}
