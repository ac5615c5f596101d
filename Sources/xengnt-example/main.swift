// A display backend in miniature, on the simulated Xen: a frontend in DomU 1 grants the pages
// of a 1080p XRGB8888 frame; the backend in a PVH driver domain turns them into a dma-buf
// (zero copy) that a display driver would import, then gives them back the safe way. In a PV
// backend domain, where export is refused, it shares a local dma-buf with the frontend instead.
import XenGnt
import XenGntTesting

#if canImport(Glibc)
import Glibc
#endif

let framePages = (1920 * 1080 * 4 + xenPageSize - 1) / xenPageSize  // 2025 pages

func run() throws -> XenSimulation {
    let xen = XenSimulation()
    let frontend = try xen.addDomain(1, type: .pvh)
    let backend = try xen.addDomain(2, type: .pvh)
    let dom0 = try xen.addDomain(0, type: .pv)

    // The frontend grants its frame buffer and draws into it.
    let refs = try frontend.grantPages(framePages, to: backend.id)
    try frontend.write(Array("frame 1 from dom1".utf8), toGrant: refs[0])
    print("dom1 granted \(refs.count) pages (\(refs.count * xenPageSize) bytes) to dom2")

    // The backend exports them as one dma-buf: what a KMS driver imports with PRIME.
    let gntdev = try GrantDevice(on: backend.system)
    let frame = try gntdev.exportDmaBuf(refs: refs, from: frontend.id)
    print("dom2 exported them as dma-buf fd \(frame.fileDescriptor.rawValue), \(frame.byteCount) bytes, no copy")

    // A second view of the same pages, to show the bytes are the frontend's own.
    let view = try gntdev.map(refs.prefix(1), from: frontend.id, access: .readOnly)
    let text = view.withUnsafeBytes { String(decoding: $0.prefix(17), as: UTF8.self) }
    print("dom2 reads through its mapping: \"\(text)\"")
    try view.unmap()

    // The frontend wants its pages back: release, wait for every user, then end access.
    let pending = try frame.release()
    let released = try pending.wait(timeout: .milliseconds(100))
    print("export released by every user: \(released)")
    frontend.endAccess(refs)
    print("dom1 ended access; grants left in dom1: \(frontend.isGranted(refs[0]) ? "some" : "none")")

    // Dom0 is PV: export is refused, and the error says what to do instead.
    let dom0Device = try GrantDevice(on: dom0.system)
    let dom0Refs = try frontend.grantPages(4, to: dom0.id)
    do {
        _ = try dom0Device.exportDmaBuf(refs: dom0Refs, from: frontend.id)
    } catch {
        print("dom0 export: \(error)")
    }

    // ... so Dom0 allocates the buffer itself and shares it: import a local dma-buf to refs.
    let buffer = try DmaBuf.udmabuf(pages: 4, on: dom0.system)
    let shared = try dom0Device.importDmaBuf(buffer, to: frontend.id)
    print("dom0 shared a 4-page udmabuf with dom1 as refs \(shared.refs.map(\.rawValue))")
    try shared.release()
    frontend.endAccess(dom0Refs)
    return xen
}

do {
    let xen = try run()  // every device and owner of the run is gone now
    print("census after teardown: \(xen.census())")
} catch {
    print("xengnt-example: \(error)")
    exit(1)
}
