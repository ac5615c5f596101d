internal import CXenGnt

/// Request numbers, taken from the uapi headers through the shim (so they are the kernel's
/// `_IOC` values, not a transcription).
enum Request {
    static let mapGrantRef = cxg_request_gntdev_map_grant_ref()
    static let unmapGrantRef = cxg_request_gntdev_unmap_grant_ref()
    static let getOffsetForVaddr = cxg_request_gntdev_get_offset_for_vaddr()
    static let setMaxGrants = cxg_request_gntdev_set_max_grants()
    static let gntdevSetUnmapNotify = cxg_request_gntdev_set_unmap_notify()
    static let grantCopy = cxg_request_gntdev_grant_copy()
    static let expFromRefs = cxg_request_gntdev_dmabuf_exp_from_refs()
    static let expWaitReleased = cxg_request_gntdev_dmabuf_exp_wait_released()
    static let impToRefs = cxg_request_gntdev_dmabuf_imp_to_refs()
    static let impRelease = cxg_request_gntdev_dmabuf_imp_release()
    static let allocGref = cxg_request_gntalloc_alloc_gref()
    static let deallocGref = cxg_request_gntalloc_dealloc_gref()
    static let gntallocSetUnmapNotify = cxg_request_gntalloc_set_unmap_notify()
    static let dmaBufSync = cxg_request_dma_buf_sync()
    static let dmaBufSetName = cxg_request_dma_buf_set_name()
    static let udmabufCreate = cxg_request_udmabuf_create()
    static let dmaHeapAlloc = cxg_request_dma_heap_alloc()
}

/// Device and sysfs paths.
enum Paths {
    static let gntdev = "/dev/xen/gntdev"
    static let gntalloc = "/dev/xen/gntalloc"
    static let udmabuf = "/dev/udmabuf"
    static let dmaHeaps = "/dev/dma_heap/"
    static let devNull = "/dev/null"
    static let hypervisorType = "/sys/hypervisor/type"
    static let guestType = "/sys/hypervisor/guest_type"
    static let gntdevLimit = "/sys/module/xen_gntdev/parameters/limit"
    static let gntallocLimit = "/sys/module/xen_gntalloc/parameters/limit"
}

/// gntdev's default per-call page limit (`limit` module parameter) since Linux 5.5.
let defaultGntdevLimit = 65536
