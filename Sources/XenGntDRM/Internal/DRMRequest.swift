internal import CDRM

/// DRM request numbers, from libdrm's uapi headers through the CDRM shim (the kernel's `_IOC`
/// values, not a transcription).
package enum DRMRequest {
    package static let version = cdrm_request_version()
    package static let getCap = cdrm_request_get_cap()
    package static let setClientCap = cdrm_request_set_client_cap()
    package static let setMaster = cdrm_request_set_master()
    package static let dropMaster = cdrm_request_drop_master()
    package static let gemClose = cdrm_request_gem_close()
    package static let primeHandleToFD = cdrm_request_prime_handle_to_fd()
    package static let primeFDToHandle = cdrm_request_prime_fd_to_handle()
    package static let waitVblank = cdrm_request_wait_vblank()
    package static let getResources = cdrm_request_mode_getresources()
    package static let getCRTC = cdrm_request_mode_getcrtc()
    package static let setCRTC = cdrm_request_mode_setcrtc()
    package static let getEncoder = cdrm_request_mode_getencoder()
    package static let getConnector = cdrm_request_mode_getconnector()
    package static let getProperty = cdrm_request_mode_getproperty()
    package static let getPropertyBlob = cdrm_request_mode_getpropblob()
    package static let removeFramebuffer = cdrm_request_mode_rmfb()
    package static let pageFlip = cdrm_request_mode_page_flip()
    package static let createDumb = cdrm_request_mode_create_dumb()
    package static let mapDumb = cdrm_request_mode_map_dumb()
    package static let destroyDumb = cdrm_request_mode_destroy_dumb()
    package static let getPlaneResources = cdrm_request_mode_getplaneresources()
    package static let getPlane = cdrm_request_mode_getplane()
    package static let addFramebuffer2 = cdrm_request_mode_addfb2()
    package static let objectGetProperties = cdrm_request_mode_obj_getproperties()
    package static let atomic = cdrm_request_mode_atomic()
    package static let createPropertyBlob = cdrm_request_mode_createpropblob()
    package static let destroyPropertyBlob = cdrm_request_mode_destroypropblob()

    /// The ioctl's name as the uapi header spells it, for ``XenGnt/XenGntError/call``.
    package static func name(of request: UInt) -> String? { names[request] }

    private static let names: [UInt: String] = [
        version: "DRM_IOCTL_VERSION", getCap: "DRM_IOCTL_GET_CAP", setClientCap: "DRM_IOCTL_SET_CLIENT_CAP",
        setMaster: "DRM_IOCTL_SET_MASTER", dropMaster: "DRM_IOCTL_DROP_MASTER", gemClose: "DRM_IOCTL_GEM_CLOSE",
        primeHandleToFD: "DRM_IOCTL_PRIME_HANDLE_TO_FD", primeFDToHandle: "DRM_IOCTL_PRIME_FD_TO_HANDLE",
        waitVblank: "DRM_IOCTL_WAIT_VBLANK", getResources: "DRM_IOCTL_MODE_GETRESOURCES",
        getCRTC: "DRM_IOCTL_MODE_GETCRTC", setCRTC: "DRM_IOCTL_MODE_SETCRTC", getEncoder: "DRM_IOCTL_MODE_GETENCODER",
        getConnector: "DRM_IOCTL_MODE_GETCONNECTOR", getProperty: "DRM_IOCTL_MODE_GETPROPERTY",
        getPropertyBlob: "DRM_IOCTL_MODE_GETPROPBLOB", removeFramebuffer: "DRM_IOCTL_MODE_RMFB",
        pageFlip: "DRM_IOCTL_MODE_PAGE_FLIP", createDumb: "DRM_IOCTL_MODE_CREATE_DUMB",
        mapDumb: "DRM_IOCTL_MODE_MAP_DUMB", destroyDumb: "DRM_IOCTL_MODE_DESTROY_DUMB",
        getPlaneResources: "DRM_IOCTL_MODE_GETPLANERESOURCES", getPlane: "DRM_IOCTL_MODE_GETPLANE",
        addFramebuffer2: "DRM_IOCTL_MODE_ADDFB2", objectGetProperties: "DRM_IOCTL_MODE_OBJ_GETPROPERTIES",
        atomic: "DRM_IOCTL_MODE_ATOMIC", createPropertyBlob: "DRM_IOCTL_MODE_CREATEPROPBLOB",
        destroyPropertyBlob: "DRM_IOCTL_MODE_DESTROYPROPBLOB",
    ]
}

/// Paths of the DRM device nodes.
package enum DRMPaths {
    package static let directory = "/dev/dri"
    /// The character-device major number of every DRM node.
    package static let major: UInt32 = 226
}
