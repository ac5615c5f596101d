import XenGnt
import XenGntDRM

extension ConformanceSuite {
    /// Cases run by hand only, by name (`--case NAME`), never in the suite: each hangs or
    /// crashes a domain, and documents a finding (Documentation/DisplayPath.md).
    public static let handRunCases: [ConformanceCase] = [
        ConformanceCase(
            "drm-vgem-map-pv",
            "by hand only: the PV DomU maps a vgem dumb buffer (raw MAP_DUMB and mmap, around XenGntDRM's refusal) and reads it; the read never returns",
            parts: [
                .pv: { peer in
                    let vgem = try DRMDevice(driver: "vgem", on: peer.system)
                    let dumb = try vgem.createDumbBuffer(width: 64, height: 48)
                    try checkFails(code: .cpuAccessHangs, errno: .some(nil)) { _ = try dumb.map() }
                    let mapping = try dumb.mapIgnoringKnownHangs()
                    peer.note("mapped; reading the first byte")
                    let first = mapping.withUnsafeBytes { $0[0] }
                    peer.note("read \(first)")
                    try mapping.unmap()
                }
            ]
        )
    ]
}
