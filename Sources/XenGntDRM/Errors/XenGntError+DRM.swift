public import XenGnt

extension XenGntError.Code {
    /// No DRM device of the driver and node kind asked for: `XenGntError.path` (the
    /// directory searched), `XenGntError.detail` (what was asked for, what was found).
    public static var drmDeviceNotFound: Self {
        Self("drmDeviceNotFound") { e in
            "no DRM device matches in \(e.path ?? "/dev/dri") (\(e.detail ?? "nothing found")); load the driver (vkms, vgem: CONFIG_DRM_VKMS, CONFIG_DRM_VGEM) or open the node by path."
        }
    }
    /// A KMS, dumb-buffer or client-capability call on a render node (`renderD128`), which the
    /// kernel answers with `EACCES` (`drm_ioctl_permit`): `XenGntError.path`.
    public static var renderNode: Self {
        Self("renderNode") { e in
            "\(e.path ?? "this device") is a render node, which allows only rendering and PRIME ioctls (the kernel answers EACCES); open the primary node (/dev/dri/cardN) for dumb buffers, framebuffers and mode setting."
        }
    }
    /// A KMS call (framebuffers, resources, capabilities, mode setting) on a driver without
    /// modesetting, such as vgem (`EOPNOTSUPP`): `XenGntError.detail` (the driver).
    public static var noModesetting: Self {
        Self("noModesetting") { e in
            "the driver \(e.detail.map { "'\($0)' " } ?? "")has no modesetting (KMS), so it has no framebuffers, planes or CRTCs (the kernel answers EOPNOTSUPP); vgem is render-only: use a KMS driver (vkms, a display controller, xendrm-du) to put buffers on screen."
        }
    }
    /// A master-only call (mode setting, page flip, atomic commit) from a descriptor that is not
    /// the DRM master (`EACCES`).
    public static var notMaster: Self {
        Self("notMaster") { e in
            "only the DRM master may change what \(e.path ?? "the device") shows, and this descriptor is not it (the kernel answers EACCES); call becomeMaster() (as root, or the process that first opened the node) after the current master (another process, or another DRMDevice on the same node) has dropped it."
        }
    }
    /// `DRM_IOCTL_SET_MASTER` while another descriptor holds master (`EBUSY`).
    public static var masterHeld: Self {
        Self("masterHeld") { e in
            "another descriptor is the DRM master of \(e.path ?? "the device") (a compositor, another process, or another DRMDevice on the same node); it must drop master (or close) first."
        }
    }
    /// The driver cannot import or export dma-bufs (`DRM_CAP_PRIME`; the kernel answers
    /// `ENOSYS`).
    public static var primeUnsupported: Self {
        Self("primeUnsupported") { e in
            "the driver \(e.detail.map { "'\($0)' " } ?? "")does not share buffers as dma-bufs in this direction (DRM_CAP_PRIME); use another device for \(e.operation)."
        }
    }
    /// A pixel format the plane does not scan out: `XenGntError.flags` (the fourcc),
    /// `XenGntError.detail` (the formats the plane takes).
    public static var formatNotSupported: Self {
        Self("formatNotSupported") { e in
            "the plane does not take \(PixelFormat(rawValue: e.flags ?? 0)); it takes \(e.detail ?? "other formats"). Create the framebuffer in one of those (vkms's primary plane: XR24, XR48, RG16 — no AR24)."
        }
    }
    /// A framebuffer pitch below width × bytes per pixel: `XenGntError.length` (the
    /// pitch), `XenGntError.limit` (the smallest pitch).
    public static var pitchTooSmall: Self {
        Self("pitchTooSmall") { e in
            "a pitch of \(e.length ?? 0) bytes is smaller than one row of pixels (\(e.limit ?? 0) bytes); pass the buffer's real pitch (a dumb buffer's pitch, or the frontend's stride)."
        }
    }
    /// A buffer too small for the framebuffer it should back: `XenGntError.length`
    /// (its bytes), `XenGntError.limit` (the bytes needed).
    public static var bufferTooSmall: Self {
        Self("bufferTooSmall") { e in
            "the buffer has \(e.length ?? 0) bytes but the framebuffer needs \(e.limit ?? 0) (offset + (height − 1) × pitch + one row); check width, height, pitch and offset against what the buffer's owner allocated."
        }
    }
    /// A buffer the display cannot put on screen: a CPU-composing display (vkms) vmaps the
    /// framebuffer's buffer at the real commit, and gntdev exports and Linux 6.1 udmabufs have
    /// no vmap. `XenGntError.detail` names the driver.
    public static var displayCannotReadBuffer: Self {
        Self("displayCannotReadBuffer") { e in
            "the display \(e.detail.map { "'\($0)' " } ?? "")reads framebuffers with the CPU (vkms composes planes in software and vmaps each buffer when the commit prepares it), and this buffer cannot be vmapped: gntdev's dma-buf exporter (a frontend's buffer) has no vmap, nor has Linux 6.1's udmabuf. ADDFB2 and a TEST_ONLY commit accept it; the real commit does not. Show it on a display that scans out by DMA (a hardware display controller takes a gntdev export), copy the frame into a buffer of the display's own, or reverse the flow: allocate the buffer on the display and share it with the frontend (SharedDisplayBuffer). See Documentation/DisplayPath.md."
        }
    }
    /// No connected connector, CRTC or plane to show a framebuffer on, or a mode the connector
    /// does not offer: `XenGntError.detail`.
    public static var noDisplay: Self {
        Self("noDisplay") { e in
            "\(e.detail ?? "there is no connected connector with a CRTC and a primary plane"); list the device's resources() to choose one."
        }
    }
    /// A call that needs atomic mode setting on a driver without it (writeback capture).
    public static var atomicRequired: Self {
        Self("atomicRequired") { e in
            "\(e.detail ?? "this") needs atomic mode setting (DRM_CLIENT_CAP_ATOMIC), which the driver does not offer; legacy SETCRTC and PAGE_FLIP cannot capture."
        }
    }
    /// The device has no writeback connector for this CRTC.
    public static var noWriteback: Self {
        Self("noWriteback") { e in
            "the device has no writeback connector for this CRTC, so what it shows cannot be read back (vkms has one unless loaded with enable_writeback=0)."
        }
    }
    /// A capture target that is not exactly the mode's size in a format the writeback
    /// connector writes: `XenGntError.detail`.
    public static var writebackTarget: Self {
        Self("writebackTarget") { e in
            "\(e.detail ?? "the capture framebuffer does not fit the writeback connector"); a capture framebuffer must be exactly the mode's size, in a format of the connector's WRITEBACK_PIXEL_FORMATS (XR24 on vkms)."
        }
    }
    /// A page flip while the previous one has not completed (`EBUSY`).
    public static var flipPending: Self {
        Self("flipPending") { e in
            "a page flip is still pending on this CRTC; wait for its flip-complete event (waitForFlip) before the next flip."
        }
    }
}

extension XenGntError.Operation {
    /// Finding a DRM device by driver name (`DRMDevice(driver:node:on:)`, `DRMDevice.list(on:)`).
    public static let findDRMDevice = Self("findDRMDevice")
    /// `DRM_IOCTL_VERSION`.
    public static let drmVersion = Self("drmVersion")
    /// `DRM_IOCTL_GET_CAP`.
    public static let drmCapability = Self("drmCapability")
    /// `DRM_IOCTL_SET_CLIENT_CAP`.
    public static let setClientCapability = Self("setClientCapability")
    /// `DRM_IOCTL_SET_MASTER`.
    public static let becomeMaster = Self("becomeMaster")
    /// `DRM_IOCTL_DROP_MASTER`.
    public static let dropMaster = Self("dropMaster")
    /// `DRM_IOCTL_PRIME_FD_TO_HANDLE`.
    public static let primeImport = Self("primeImport")
    /// `DRM_IOCTL_PRIME_HANDLE_TO_FD`.
    public static let primeExport = Self("primeExport")
    /// `DRM_IOCTL_GEM_CLOSE` of the last owner of a handle.
    public static let closeGEMHandle = Self("closeGEMHandle")
    /// `DRM_IOCTL_MODE_CREATE_DUMB`.
    public static let createDumbBuffer = Self("createDumbBuffer")
    /// `DRM_IOCTL_MODE_MAP_DUMB`, then `mmap`.
    public static let mapDumbBuffer = Self("mapDumbBuffer")
    /// `munmap` of a dumb-buffer mapping.
    public static let unmapDumbBuffer = Self("unmapDumbBuffer")
    /// `DRM_IOCTL_MODE_DESTROY_DUMB`.
    public static let destroyDumbBuffer = Self("destroyDumbBuffer")
    /// `DRM_IOCTL_MODE_ADDFB2`.
    public static let addFramebuffer = Self("addFramebuffer")
    /// `DRM_IOCTL_MODE_RMFB`.
    public static let removeFramebuffer = Self("removeFramebuffer")
    /// Reading connectors, encoders, CRTCs, planes and properties.
    public static let displayResources = Self("displayResources")
    /// Setting a mode with a framebuffer (atomic commit or `SETCRTC`).
    public static let setMode = Self("setMode")
    /// An atomic `TEST_ONLY` commit.
    public static let testCommit = Self("testCommit")
    /// `DRM_IOCTL_MODE_PAGE_FLIP`, or an atomic commit with `PAGE_FLIP_EVENT`.
    public static let pageFlip = Self("pageFlip")
    /// Waiting for a page flip's completion event.
    public static let waitForFlip = Self("waitForFlip")
    /// Taking a CRTC off screen.
    public static let turnOff = Self("turnOff")
    /// `DRM_IOCTL_WAIT_VBLANK` with an event.
    public static let requestVblank = Self("requestVblank")
    /// Reading DRM events.
    public static let readEvents = Self("readEvents")
    /// A writeback capture of what a CRTC shows.
    public static let capture = Self("capture")
}

extension XenGntError.Code {
    /// CPU access to a vgem buffer in an x86 PV DomU, refused because it hangs:
    /// `XenGntError.detail` names the driver.
    public static var cpuAccessHangs: Self {
        Self("cpuAccessHangs") { e in
            "in an x86 PV DomU the first CPU access through a mapping of a \(e.detail ?? "vgem") buffer never returns (vgem maps its buffers write-combined; measured on Xen 4.17 with Linux 6.1, where a PV Dom0 and a PVH DomU are not affected), so XenGntDRM does not map it. Sharing the buffer still works (PRIME export, IMP_TO_REFS, the peer maps and draws); to draw into it here, use a vkms dumb buffer or a system DMA-heap buffer (DmaBuf.allocate(fromHeap: \"system\", ...)) instead."
        }
    }
    /// The display did not answer in time: no flip-complete event, or a writeback fence that
    /// did not signal.
    public static var displayTimedOut: Self {
        Self("displayTimedOut") { e in
            "the display did not answer in time (\(e.detail ?? "no event")); is the CRTC on, and is vblank running?"
        }
    }
}
