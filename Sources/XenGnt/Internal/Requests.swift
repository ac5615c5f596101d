internal import CXenGnt

/// Request numbers, taken from the uapi headers through the shim (so they are the kernel's
/// `_IOC` values, not a transcription).
package enum Request {
    package static let mapGrantRef = cxg_request_gntdev_map_grant_ref()
    package static let unmapGrantRef = cxg_request_gntdev_unmap_grant_ref()
    package static let getOffsetForVaddr = cxg_request_gntdev_get_offset_for_vaddr()
    package static let setMaxGrants = cxg_request_gntdev_set_max_grants()
    package static let gntdevSetUnmapNotify = cxg_request_gntdev_set_unmap_notify()
    package static let grantCopy = cxg_request_gntdev_grant_copy()
    package static let expFromRefs = cxg_request_gntdev_dmabuf_exp_from_refs()
    package static let expWaitReleased = cxg_request_gntdev_dmabuf_exp_wait_released()
    package static let impToRefs = cxg_request_gntdev_dmabuf_imp_to_refs()
    package static let impRelease = cxg_request_gntdev_dmabuf_imp_release()
    package static let allocGref = cxg_request_gntalloc_alloc_gref()
    package static let deallocGref = cxg_request_gntalloc_dealloc_gref()
    package static let gntallocSetUnmapNotify = cxg_request_gntalloc_set_unmap_notify()
    package static let dmaBufSync = cxg_request_dma_buf_sync()
    package static let dmaBufSetName = cxg_request_dma_buf_set_name()
    package static let udmabufCreate = cxg_request_udmabuf_create()
    package static let dmaHeapAlloc = cxg_request_dma_heap_alloc()
}

/// Device and sysfs paths.
package enum Paths {
    package static let gntdev = "/dev/xen/gntdev"
    package static let gntalloc = "/dev/xen/gntalloc"
    package static let udmabuf = "/dev/udmabuf"
    package static let dmaHeaps = "/dev/dma_heap/"
    package static let devNull = "/dev/null"
    package static let hypervisorType = "/sys/hypervisor/type"
    package static let guestType = "/sys/hypervisor/guest_type"
    package static let gntdevLimit = "/sys/module/xen_gntdev/parameters/limit"
    package static let gntallocLimit = "/sys/module/xen_gntalloc/parameters/limit"
    package static let udmabufSizeLimit = "/sys/module/udmabuf/parameters/size_limit_mb"
    package static let udmabufListLimit = "/sys/module/udmabuf/parameters/list_limit"
}

/// gntdev's default per-call page limit (`limit` module parameter) since Linux 5.5.
let defaultGntdevLimit = 65536
