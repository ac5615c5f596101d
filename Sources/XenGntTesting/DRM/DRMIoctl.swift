internal import CDRM

/// The DRM request numbers the simulated drivers serve, from libdrm's uapi headers.
enum DRMIoctl {
    static let version = cdrm_request_version()
    static let getCap = cdrm_request_get_cap()
    static let setClientCap = cdrm_request_set_client_cap()
    static let setMaster = cdrm_request_set_master()
    static let dropMaster = cdrm_request_drop_master()
    static let gemClose = cdrm_request_gem_close()
    static let primeHandleToFD = cdrm_request_prime_handle_to_fd()
    static let primeFDToHandle = cdrm_request_prime_fd_to_handle()
    static let waitVblank = cdrm_request_wait_vblank()
    static let getResources = cdrm_request_mode_getresources()
    static let getCRTC = cdrm_request_mode_getcrtc()
    static let setCRTC = cdrm_request_mode_setcrtc()
    static let getEncoder = cdrm_request_mode_getencoder()
    static let getConnector = cdrm_request_mode_getconnector()
    static let getProperty = cdrm_request_mode_getproperty()
    static let getPropertyBlob = cdrm_request_mode_getpropblob()
    static let removeFramebuffer = cdrm_request_mode_rmfb()
    static let pageFlip = cdrm_request_mode_page_flip()
    static let createDumb = cdrm_request_mode_create_dumb()
    static let mapDumb = cdrm_request_mode_map_dumb()
    static let destroyDumb = cdrm_request_mode_destroy_dumb()
    static let getPlaneResources = cdrm_request_mode_getplaneresources()
    static let getPlane = cdrm_request_mode_getplane()
    static let addFramebuffer2 = cdrm_request_mode_addfb2()
    static let objectGetProperties = cdrm_request_mode_obj_getproperties()
    static let atomic = cdrm_request_mode_atomic()
    static let createPropertyBlob = cdrm_request_mode_createpropblob()
    static let destroyPropertyBlob = cdrm_request_mode_destroypropblob()
}

extension SimulatedIoctl {
    /// The DRM ioctl `request` is, for fault injection.
    static func drm(_ request: UInt) -> SimulatedIoctl? {
        allCases.first { $0.isDRM && $0.request == request }
    }
}
