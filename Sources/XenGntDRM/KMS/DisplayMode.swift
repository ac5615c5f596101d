internal import CDRM

/// A display mode (`struct drm_mode_modeinfo`): resolution, timings and refresh rate.
public struct DisplayMode: Sendable, Hashable, CustomStringConvertible {
    /// Pixel clock in kHz.
    public var clock: UInt32
    public var hdisplay: UInt16, hsyncStart: UInt16, hsyncEnd: UInt16, htotal: UInt16, hskew: UInt16
    public var vdisplay: UInt16, vsyncStart: UInt16, vsyncEnd: UInt16, vtotal: UInt16, vscan: UInt16
    /// Refresh rate in Hz.
    public var refreshRate: UInt32
    /// `DRM_MODE_FLAG_*`.
    public var flags: UInt32
    /// `DRM_MODE_TYPE_*`.
    public var type: UInt32
    /// The mode's name (`1024x768`).
    public var name: String

    /// Visible pixels per row.
    public var width: Int { Int(hdisplay) }
    /// Visible rows.
    public var height: Int { Int(vdisplay) }
    /// Whether the connector prefers this mode (`DRM_MODE_TYPE_PREFERRED`).
    public var isPreferred: Bool { type & UInt32(DRM_MODE_TYPE_PREFERRED) != 0 }

    public var description: String { "\(name)@\(refreshRate)" }

    /// A mode of `width × height` at `refreshRate` Hz with simple blanking timings, for a
    /// display that takes any mode (vkms). Small modes keep CPU composition cheap.
    public init(width: Int, height: Int, refreshRate: Int = 60) {
        let w = UInt16(clamping: width)
        let h = UInt16(clamping: height)
        hdisplay = w
        hsyncStart = w &+ 8
        hsyncEnd = w &+ 40
        htotal = w &+ 80
        hskew = 0
        vdisplay = h
        vsyncStart = h &+ 3
        vsyncEnd = h &+ 6
        vtotal = h &+ 20
        vscan = 0
        self.refreshRate = UInt32(clamping: refreshRate)
        clock = UInt32(clamping: (Int(htotal) * Int(vtotal) * refreshRate + 999) / 1000)
        flags = UInt32(DRM_MODE_FLAG_NHSYNC | DRM_MODE_FLAG_NVSYNC)
        type = UInt32(DRM_MODE_TYPE_USERDEF)
        name = "\(width)x\(height)"
    }

    init(_ info: drm_mode_modeinfo) {
        clock = info.clock
        hdisplay = info.hdisplay
        hsyncStart = info.hsync_start
        hsyncEnd = info.hsync_end
        htotal = info.htotal
        hskew = info.hskew
        vdisplay = info.vdisplay
        vsyncStart = info.vsync_start
        vsyncEnd = info.vsync_end
        vtotal = info.vtotal
        vscan = info.vscan
        refreshRate = info.vrefresh
        flags = info.flags
        type = info.type
        var copy = info
        name = withUnsafeBytes(of: &copy.name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    /// The kernel's struct.
    var modeInfo: drm_mode_modeinfo {
        var info = drm_mode_modeinfo()
        info.clock = clock
        info.hdisplay = hdisplay
        info.hsync_start = hsyncStart
        info.hsync_end = hsyncEnd
        info.htotal = htotal
        info.hskew = hskew
        info.vdisplay = vdisplay
        info.vsync_start = vsyncStart
        info.vsync_end = vsyncEnd
        info.vtotal = vtotal
        info.vscan = vscan
        info.vrefresh = refreshRate
        info.flags = flags
        info.type = type
        withUnsafeMutableBytes(of: &info.name) { raw in
            let bytes = Array(name.utf8.prefix(raw.count - 1))
            raw.copyBytes(from: bytes)
        }
        return info
    }
}
