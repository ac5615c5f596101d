/*
 * CDRM: the DRM uapi (libdrm-dev's <drm.h>, <drm_mode.h>, <drm_fourcc.h>) as Swift can see it,
 * and libdrm's pure functions (format and modifier names).
 *
 * XenGntDRM issues every DRM ioctl itself, through XenGnt's seam, so that the simulator sees it;
 * it uses libdrm only for its headers and for functions that touch no device
 * (drmGetFormatName, drmGetFormatModifierName). drmIoctl, drmGetDevices2 and friends call libc
 * directly and would never reach a simulated device.
 *
 * Swift cannot import function-like macros (_IOWR), so each request number is re-exported as a
 * prefixed static inline function computed from the header's own macro.
 */
#ifndef CDRM_SHIM_H
#define CDRM_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <fcntl.h>
#include <drm.h>
#include <drm_mode.h>
#include <drm_fourcc.h>
#include <xf86drm.h>

/* MARK: - Request numbers */

static inline unsigned long cdrm_request_version(void) { return DRM_IOCTL_VERSION; }
static inline unsigned long cdrm_request_get_cap(void) { return DRM_IOCTL_GET_CAP; }
static inline unsigned long cdrm_request_set_client_cap(void) { return DRM_IOCTL_SET_CLIENT_CAP; }
static inline unsigned long cdrm_request_set_master(void) { return DRM_IOCTL_SET_MASTER; }
static inline unsigned long cdrm_request_drop_master(void) { return DRM_IOCTL_DROP_MASTER; }
static inline unsigned long cdrm_request_gem_close(void) { return DRM_IOCTL_GEM_CLOSE; }
static inline unsigned long cdrm_request_prime_handle_to_fd(void) { return DRM_IOCTL_PRIME_HANDLE_TO_FD; }
static inline unsigned long cdrm_request_prime_fd_to_handle(void) { return DRM_IOCTL_PRIME_FD_TO_HANDLE; }
static inline unsigned long cdrm_request_wait_vblank(void) { return DRM_IOCTL_WAIT_VBLANK; }
static inline unsigned long cdrm_request_mode_getresources(void) { return DRM_IOCTL_MODE_GETRESOURCES; }
static inline unsigned long cdrm_request_mode_getcrtc(void) { return DRM_IOCTL_MODE_GETCRTC; }
static inline unsigned long cdrm_request_mode_setcrtc(void) { return DRM_IOCTL_MODE_SETCRTC; }
static inline unsigned long cdrm_request_mode_getencoder(void) { return DRM_IOCTL_MODE_GETENCODER; }
static inline unsigned long cdrm_request_mode_getconnector(void) { return DRM_IOCTL_MODE_GETCONNECTOR; }
static inline unsigned long cdrm_request_mode_getproperty(void) { return DRM_IOCTL_MODE_GETPROPERTY; }
static inline unsigned long cdrm_request_mode_getpropblob(void) { return DRM_IOCTL_MODE_GETPROPBLOB; }
static inline unsigned long cdrm_request_mode_rmfb(void) { return DRM_IOCTL_MODE_RMFB; }
static inline unsigned long cdrm_request_mode_page_flip(void) { return DRM_IOCTL_MODE_PAGE_FLIP; }
static inline unsigned long cdrm_request_mode_create_dumb(void) { return DRM_IOCTL_MODE_CREATE_DUMB; }
static inline unsigned long cdrm_request_mode_map_dumb(void) { return DRM_IOCTL_MODE_MAP_DUMB; }
static inline unsigned long cdrm_request_mode_destroy_dumb(void) { return DRM_IOCTL_MODE_DESTROY_DUMB; }
static inline unsigned long cdrm_request_mode_getplaneresources(void) { return DRM_IOCTL_MODE_GETPLANERESOURCES; }
static inline unsigned long cdrm_request_mode_getplane(void) { return DRM_IOCTL_MODE_GETPLANE; }
static inline unsigned long cdrm_request_mode_addfb2(void) { return DRM_IOCTL_MODE_ADDFB2; }
static inline unsigned long cdrm_request_mode_obj_getproperties(void) { return DRM_IOCTL_MODE_OBJ_GETPROPERTIES; }
static inline unsigned long cdrm_request_mode_atomic(void) { return DRM_IOCTL_MODE_ATOMIC; }
static inline unsigned long cdrm_request_mode_createpropblob(void) { return DRM_IOCTL_MODE_CREATEPROPBLOB; }
static inline unsigned long cdrm_request_mode_destroypropblob(void) { return DRM_IOCTL_MODE_DESTROYPROPBLOB; }

/* MARK: - Constants Swift does not import (macros built from other macros or casts) */

enum {
    CDRM_PRIME_CAP_IMPORT = DRM_PRIME_CAP_IMPORT,
    CDRM_PRIME_CAP_EXPORT = DRM_PRIME_CAP_EXPORT,
    CDRM_CLOEXEC = DRM_CLOEXEC,
    CDRM_RDWR = DRM_RDWR,
    CDRM_MODE_PAGE_FLIP_EVENT = DRM_MODE_PAGE_FLIP_EVENT,
    CDRM_MODE_ATOMIC_TEST_ONLY = DRM_MODE_ATOMIC_TEST_ONLY,
    CDRM_MODE_ATOMIC_NONBLOCK = DRM_MODE_ATOMIC_NONBLOCK,
    CDRM_MODE_ATOMIC_ALLOW_MODESET = DRM_MODE_ATOMIC_ALLOW_MODESET,
    CDRM_MODE_FB_MODIFIERS = DRM_MODE_FB_MODIFIERS,
    CDRM_VBLANK_RELATIVE = _DRM_VBLANK_RELATIVE,
    CDRM_VBLANK_EVENT = _DRM_VBLANK_EVENT,
    CDRM_VBLANK_HIGH_CRTC_SHIFT = _DRM_VBLANK_HIGH_CRTC_SHIFT,
    CDRM_VBLANK_HIGH_CRTC_MASK = _DRM_VBLANK_HIGH_CRTC_MASK,
};

/* Formats (fourcc_code() is a function-like macro, which Swift cannot import). */
enum {
    CDRM_FORMAT_XRGB8888 = DRM_FORMAT_XRGB8888,
    CDRM_FORMAT_ARGB8888 = DRM_FORMAT_ARGB8888,
    CDRM_FORMAT_XBGR8888 = DRM_FORMAT_XBGR8888,
    CDRM_FORMAT_ABGR8888 = DRM_FORMAT_ABGR8888,
    CDRM_FORMAT_RGBX8888 = DRM_FORMAT_RGBX8888,
    CDRM_FORMAT_BGRX8888 = DRM_FORMAT_BGRX8888,
    CDRM_FORMAT_XRGB16161616 = DRM_FORMAT_XRGB16161616,
    CDRM_FORMAT_ARGB16161616 = DRM_FORMAT_ARGB16161616,
    CDRM_FORMAT_RGB565 = DRM_FORMAT_RGB565,
    CDRM_FORMAT_BGR565 = DRM_FORMAT_BGR565,
    CDRM_FORMAT_RGB888 = DRM_FORMAT_RGB888,
    CDRM_FORMAT_BGR888 = DRM_FORMAT_BGR888,
};

static inline uint64_t cdrm_format_mod_linear(void) { return DRM_FORMAT_MOD_LINEAR; }
static inline uint64_t cdrm_format_mod_invalid(void) { return DRM_FORMAT_MOD_INVALID; }

/* MARK: - libdrm's pure functions (malloc'd strings; NULL when unknown) */

static inline char *cdrm_format_name(uint32_t format) { return drmGetFormatName(format); }
static inline char *cdrm_format_modifier_name(uint64_t modifier) { return drmGetFormatModifierName(modifier); }

#endif /* CDRM_SHIM_H */
