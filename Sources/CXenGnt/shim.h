/*
 * CXenGnt: the Linux uapi of the Xen grant devices, as Swift can see it.
 *
 * The uapi headers (Debian: libxen-dev for the xen/sys headers, linux-libc-dev for the linux ones) use
 * fixed-width types and _IOC without including what defines them, so <stdint.h> and
 * <sys/ioctl.h> come first. Swift cannot import function-like macros (_IOC, _IOW), so every
 * request number is re-exported as a prefixed static inline function, and the structs that end
 * in a flexible array (`refs[1]`, `gref_ids[1]`) get size and element accessors here, computed
 * from the headers themselves.
 */
#ifndef CXENGNT_SHIM_H
#define CXENGNT_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <xen/sys/gntdev.h>
#include <xen/sys/gntalloc.h>
/* evtchn.h uses domid_t without defining it (xenctrl does). */
typedef uint16_t domid_t;
#include <xen/sys/evtchn.h>
#include <linux/dma-buf.h>
#include <linux/udmabuf.h>
#include <linux/dma-heap.h>

/* MARK: - Request numbers */

static inline unsigned long cxg_request_gntdev_map_grant_ref(void) { return IOCTL_GNTDEV_MAP_GRANT_REF; }
static inline unsigned long cxg_request_gntdev_unmap_grant_ref(void) { return IOCTL_GNTDEV_UNMAP_GRANT_REF; }
static inline unsigned long cxg_request_gntdev_get_offset_for_vaddr(void) { return IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR; }
static inline unsigned long cxg_request_gntdev_set_max_grants(void) { return IOCTL_GNTDEV_SET_MAX_GRANTS; }
static inline unsigned long cxg_request_gntdev_set_unmap_notify(void) { return IOCTL_GNTDEV_SET_UNMAP_NOTIFY; }
static inline unsigned long cxg_request_gntdev_grant_copy(void) { return IOCTL_GNTDEV_GRANT_COPY; }
static inline unsigned long cxg_request_gntdev_dmabuf_exp_from_refs(void) { return IOCTL_GNTDEV_DMABUF_EXP_FROM_REFS; }
static inline unsigned long cxg_request_gntdev_dmabuf_exp_wait_released(void) { return IOCTL_GNTDEV_DMABUF_EXP_WAIT_RELEASED; }
static inline unsigned long cxg_request_gntdev_dmabuf_imp_to_refs(void) { return IOCTL_GNTDEV_DMABUF_IMP_TO_REFS; }
static inline unsigned long cxg_request_gntdev_dmabuf_imp_release(void) { return IOCTL_GNTDEV_DMABUF_IMP_RELEASE; }
static inline unsigned long cxg_request_gntalloc_alloc_gref(void) { return IOCTL_GNTALLOC_ALLOC_GREF; }
static inline unsigned long cxg_request_gntalloc_dealloc_gref(void) { return IOCTL_GNTALLOC_DEALLOC_GREF; }
static inline unsigned long cxg_request_gntalloc_set_unmap_notify(void) { return IOCTL_GNTALLOC_SET_UNMAP_NOTIFY; }
static inline unsigned long cxg_request_dma_buf_sync(void) { return DMA_BUF_IOCTL_SYNC; }
static inline unsigned long cxg_request_dma_buf_set_name(void) { return DMA_BUF_SET_NAME; }
static inline unsigned long cxg_request_udmabuf_create(void) { return UDMABUF_CREATE; }
static inline unsigned long cxg_request_dma_heap_alloc(void) { return DMA_HEAP_IOCTL_ALLOC; }
static inline unsigned long cxg_request_evtchn_bind_unbound_port(void) { return IOCTL_EVTCHN_BIND_UNBOUND_PORT; }
static inline unsigned long cxg_request_evtchn_bind_interdomain(void) { return IOCTL_EVTCHN_BIND_INTERDOMAIN; }
static inline unsigned long cxg_request_evtchn_unbind(void) { return IOCTL_EVTCHN_UNBIND; }
static inline unsigned long cxg_request_evtchn_notify(void) { return IOCTL_EVTCHN_NOTIFY; }

/* MARK: - Constants (plain #defines Swift already imports are not repeated) */

enum {
    CXG_PAGE_SIZE = 4096,
    CXG_DMA_BUF_NAME_LEN = 32,
    /* Grant-copy segment flags, from Xen's public grant_table.h (not in the uapi headers). */
    CXG_GNTCOPY_SOURCE_GREF = 1 << 0,
    CXG_GNTCOPY_DEST_GREF = 1 << 1,
    /* memfd and sealing (glibc declares these only under _GNU_SOURCE). */
    CXG_MFD_CLOEXEC = 0x0001,
    CXG_MFD_ALLOW_SEALING = 0x0002,
    CXG_F_ADD_SEALS = 1024 + 9,
    CXG_F_GET_SEALS = 1024 + 10,
    CXG_F_SEAL_SEAL = 0x0001,
    CXG_F_SEAL_SHRINK = 0x0002,
    CXG_F_SEAL_GROW = 0x0004,
    CXG_F_SEAL_WRITE = 0x0008,
};

/* MARK: - Flexible-array sizes and accessors */

#define CXG_FLEX_SIZE(type, member, count) \
    ((offsetof(type, member) + (size_t)(count) * sizeof(((type *)0)->member[0])) < sizeof(type) \
        ? sizeof(type) \
        : (offsetof(type, member) + (size_t)(count) * sizeof(((type *)0)->member[0])))

static inline size_t cxg_map_grant_ref_size(uint32_t count) {
    return CXG_FLEX_SIZE(struct ioctl_gntdev_map_grant_ref, refs, count);
}
static inline struct ioctl_gntdev_grant_ref *cxg_map_grant_ref_refs(struct ioctl_gntdev_map_grant_ref *op) {
    return op->refs;
}
static inline size_t cxg_exp_from_refs_size(uint32_t count) {
    return CXG_FLEX_SIZE(struct ioctl_gntdev_dmabuf_exp_from_refs, refs, count);
}
static inline uint32_t *cxg_exp_from_refs_refs(struct ioctl_gntdev_dmabuf_exp_from_refs *op) {
    return op->refs;
}
static inline size_t cxg_imp_to_refs_size(uint32_t count) {
    return CXG_FLEX_SIZE(struct ioctl_gntdev_dmabuf_imp_to_refs, refs, count);
}
static inline uint32_t *cxg_imp_to_refs_refs(struct ioctl_gntdev_dmabuf_imp_to_refs *op) {
    return op->refs;
}
static inline size_t cxg_alloc_gref_size(uint32_t count) {
    return CXG_FLEX_SIZE(struct ioctl_gntalloc_alloc_gref, gref_ids, count);
}
static inline uint32_t *cxg_alloc_gref_ids(struct ioctl_gntalloc_alloc_gref *op) {
    return op->gref_ids;
}

/* Offsets the tests compare against, straight from the headers. */
static inline size_t cxg_offsetof_map_grant_ref_refs(void) { return offsetof(struct ioctl_gntdev_map_grant_ref, refs); }
static inline size_t cxg_offsetof_map_grant_ref_index(void) { return offsetof(struct ioctl_gntdev_map_grant_ref, index); }
static inline size_t cxg_offsetof_exp_from_refs_flags(void) { return offsetof(struct ioctl_gntdev_dmabuf_exp_from_refs, flags); }
static inline size_t cxg_offsetof_exp_from_refs_count(void) { return offsetof(struct ioctl_gntdev_dmabuf_exp_from_refs, count); }
static inline size_t cxg_offsetof_exp_from_refs_fd(void) { return offsetof(struct ioctl_gntdev_dmabuf_exp_from_refs, fd); }
static inline size_t cxg_offsetof_exp_from_refs_domid(void) { return offsetof(struct ioctl_gntdev_dmabuf_exp_from_refs, domid); }
static inline size_t cxg_offsetof_exp_from_refs_refs(void) { return offsetof(struct ioctl_gntdev_dmabuf_exp_from_refs, refs); }
static inline size_t cxg_offsetof_imp_to_refs_fd(void) { return offsetof(struct ioctl_gntdev_dmabuf_imp_to_refs, fd); }
static inline size_t cxg_offsetof_imp_to_refs_count(void) { return offsetof(struct ioctl_gntdev_dmabuf_imp_to_refs, count); }
static inline size_t cxg_offsetof_imp_to_refs_domid(void) { return offsetof(struct ioctl_gntdev_dmabuf_imp_to_refs, domid); }
static inline size_t cxg_offsetof_imp_to_refs_reserved(void) { return offsetof(struct ioctl_gntdev_dmabuf_imp_to_refs, reserved); }
static inline size_t cxg_offsetof_imp_to_refs_refs(void) { return offsetof(struct ioctl_gntdev_dmabuf_imp_to_refs, refs); }
static inline size_t cxg_offsetof_alloc_gref_domid(void) { return offsetof(struct ioctl_gntalloc_alloc_gref, domid); }
static inline size_t cxg_offsetof_alloc_gref_flags(void) { return offsetof(struct ioctl_gntalloc_alloc_gref, flags); }
static inline size_t cxg_offsetof_alloc_gref_count(void) { return offsetof(struct ioctl_gntalloc_alloc_gref, count); }
static inline size_t cxg_offsetof_alloc_gref_index(void) { return offsetof(struct ioctl_gntalloc_alloc_gref, index); }
static inline size_t cxg_offsetof_alloc_gref_ids(void) { return offsetof(struct ioctl_gntalloc_alloc_gref, gref_ids); }
static inline size_t cxg_offsetof_copy_segment_status(void) { return offsetof(struct ioctl_gntdev_grant_copy_segment, status); }
static inline size_t cxg_offsetof_copy_segment_flags(void) { return offsetof(struct ioctl_gntdev_grant_copy_segment, flags); }
static inline size_t cxg_offsetof_copy_segment_len(void) { return offsetof(struct ioctl_gntdev_grant_copy_segment, len); }
static inline size_t cxg_offsetof_copy_segment_dest(void) { return offsetof(struct ioctl_gntdev_grant_copy_segment, dest); }

/* MARK: - System calls Swift cannot call directly (variadic, or _GNU_SOURCE-only in glibc) */

static inline int cxg_ioctl(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}
static inline int cxg_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}
static inline int cxg_dup3(int oldfd, int newfd, int flags) {
    return (int)syscall(SYS_dup3, oldfd, newfd, flags);
}
static inline int cxg_fcntl_int(int fd, int cmd, int arg) {
    return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
static inline int cxg_eventfd(unsigned int initval, int flags) {
    return (int)syscall(SYS_eventfd2, initval, flags);
}
/* connect(2) to a Unix socket path; -1 with errno ENAMETOOLONG when the path does not fit. */
static inline int cxg_connect_unix(int fd, const char *path) {
    struct sockaddr_un address;
    size_t length = strlen(path);
    if (length >= sizeof(address.sun_path)) { errno = ENAMETOOLONG; return -1; }
    memset(&address, 0, sizeof(address));
    address.sun_family = AF_UNIX;
    memcpy(address.sun_path, path, length + 1);
    return connect(fd, (const struct sockaddr *)&address, (socklen_t)sizeof(address));
}

#endif /* CXENGNT_SHIM_H */
