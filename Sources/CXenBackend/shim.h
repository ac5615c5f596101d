/*
 * CXenBackend: what XenGntBackend needs from Xen's public headers (Debian: libxen-dev), as Swift
 * can see it: the XenStore wire protocol (<xen/io/xs_wire.h>), the shared-ring macros
 * (<xen/io/ring.h>), the display protocol (<xen/io/displif.h>, the first user), XenbusState
 * (<xen/io/xenbus.h>) and the event-channel device (<xen/sys/evtchn.h>).
 *
 * Swift cannot import function-like macros (_IOC, the ring macros), so request numbers, sizes and
 * the ring operations used as a reference in tests are static inline functions here, computed by
 * the C compiler from the headers themselves.
 *
 * Shared memory: the indices of a ring live on a page another domain writes. Swift's Atomic<T>
 * cannot be laid over foreign memory, and plain loads may be hoisted out of a loop or fetched
 * twice, so every access to a shared index goes through the C11 atomics below, and ring.h's
 * barriers are defined, before it is included, as C11 fences: xen_mb() is a sequentially
 * consistent fence, xen_rmb()/xen_wmb() acquire/release fences (what Linux's virt_mb() family
 * gives on x86 and Arm).
 */
#ifndef CXENBACKEND_SHIM_H
#define CXENBACKEND_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

/* ring.h's barriers as C11 fences. The other Xen headers a program imports (libxen's, in
 * CXenTools) use the legacy interface version that xen-compat.h selects by default, so this
 * module does too (two modules must agree on the structs they share); for that version ring.h
 * defines xen_mb() as mb(), so both names are defined, identically, before it is included. */
#define mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#define xen_mb()  mb()
#define xen_rmb() rmb()
#define xen_wmb() wmb()

#include <xen/io/xs_wire.h>
#include <xen/io/ring.h>
#include <xen/io/xenbus.h>
#include <xen/io/displif.h>
#include <xen/sys/evtchn.h>

/* MARK: - Shared memory: atomics and fences */

/* The peer's index: an acquire load, so what it published before the index is seen after it. */
static inline uint32_t cxb_load_acquire(const void *address) {
    return __atomic_load_n((const uint32_t *)address, __ATOMIC_ACQUIRE);
}
/* An index this side owns, or one whose ordering a fence provides. */
static inline uint32_t cxb_load_relaxed(const void *address) {
    return __atomic_load_n((const uint32_t *)address, __ATOMIC_RELAXED);
}
/* Publishes an index: a release store, so the entries written before it are seen first. */
static inline void cxb_store_release(void *address, uint32_t value) {
    __atomic_store_n((uint32_t *)address, value, __ATOMIC_RELEASE);
}
static inline void cxb_store_relaxed(void *address, uint32_t value) {
    __atomic_store_n((uint32_t *)address, value, __ATOMIC_RELAXED);
}
/* ring.h's xen_mb(), xen_rmb(), xen_wmb(). */
static inline void cxb_mb(void) { xen_mb(); }
static inline void cxb_rmb(void) { xen_rmb(); }
static inline void cxb_wmb(void) { xen_wmb(); }

/*
 * RING_COPY_REQUEST: copies `count` bytes out of shared memory exactly once, through volatile
 * loads, so the compiler can neither re-read the shared bytes later (a double fetch the peer
 * could race) nor elide the copy.
 */
static inline void cxb_copy_from_shared(void *destination, const void *source, size_t count) {
    if (((uintptr_t)destination | (uintptr_t)source | count) % 8 == 0) {
        const volatile uint64_t *from = (const volatile uint64_t *)source;
        uint64_t *to = (uint64_t *)destination;
        for (size_t i = 0; i < count / 8; i++) to[i] = from[i];
    } else {
        const volatile uint8_t *from = (const volatile uint8_t *)source;
        uint8_t *to = (uint8_t *)destination;
        for (size_t i = 0; i < count; i++) to[i] = from[i];
    }
}
/* Writes an entry into shared memory (volatile stores: the compiler keeps every one). */
static inline void cxb_copy_to_shared(void *destination, const void *source, size_t count) {
    volatile uint8_t *to = (volatile uint8_t *)destination;
    const uint8_t *from = (const uint8_t *)source;
    for (size_t i = 0; i < count; i++) to[i] = from[i];
}

/* MARK: - XenStore wire protocol */

enum {
    CXB_XS_HEADER_SIZE = sizeof(struct xsd_sockmsg),
    CXB_XS_PAYLOAD_MAX = XENSTORE_PAYLOAD_MAX,
    CXB_XS_ABS_PATH_MAX = XENSTORE_ABS_PATH_MAX,
    CXB_XS_REL_PATH_MAX = XENSTORE_REL_PATH_MAX,
};

/* MARK: - Event channels (/dev/xen/evtchn) */

static inline unsigned long cxb_request_evtchn_bind_interdomain(void) { return IOCTL_EVTCHN_BIND_INTERDOMAIN; }
static inline unsigned long cxb_request_evtchn_bind_unbound_port(void) { return IOCTL_EVTCHN_BIND_UNBOUND_PORT; }
static inline unsigned long cxb_request_evtchn_unbind(void) { return IOCTL_EVTCHN_UNBIND; }
static inline unsigned long cxb_request_evtchn_notify(void) { return IOCTL_EVTCHN_NOTIFY; }
static inline unsigned long cxb_request_evtchn_reset(void) { return IOCTL_EVTCHN_RESET; }
static inline unsigned long cxb_request_evtchn_restrict_domid(void) { return IOCTL_EVTCHN_RESTRICT_DOMID; }

/* MARK: - Shared rings */

enum {
    /* Where the entries of every ring.h ring start: four indices, the private union, padding. */
    CXB_RING_HEADER_SIZE = offsetof(struct xen_displif_sring, ring),
    CXB_RING_REQ_PROD = offsetof(struct xen_displif_sring, req_prod),
    CXB_RING_REQ_EVENT = offsetof(struct xen_displif_sring, req_event),
    CXB_RING_RSP_PROD = offsetof(struct xen_displif_sring, rsp_prod),
    CXB_RING_RSP_EVENT = offsetof(struct xen_displif_sring, rsp_event),
    /* displif's back-to-front event page. */
    CXB_DISPL_EVENT_PAGE_HEADER = XENDISPL_IN_RING_OFFS,
    CXB_DISPL_IN_RING_LEN = XENDISPL_IN_RING_LEN,
    CXB_DISPL_IN_CONS = offsetof(struct xendispl_event_page, in_cons),
    CXB_DISPL_IN_PROD = offsetof(struct xendispl_event_page, in_prod),
};

static inline unsigned int cxb_displif_ring_size(size_t bytes) {
    return __CONST_RING_SIZE(xen_displif, bytes);
}

/*
 * A reference ring for tests and the lab's test device `vxengnt` (no kernel driver claims it):
 * 64-byte requests and 32-byte responses, so the union is 64 bytes and a one-page ring has
 * (4096 - 64) / 64 = 63 slots, rounded down to 32.
 */
struct cxb_vxengnt_request {
    uint64_t sequence;
    uint32_t operation;
    uint32_t length;
    uint8_t payload[48];
};
struct cxb_vxengnt_response {
    uint64_t sequence;
    int32_t status;
    uint32_t checksum;
    uint8_t reserved[16];
};
DEFINE_RING_TYPES(cxb_vxengnt, struct cxb_vxengnt_request, struct cxb_vxengnt_response);

static inline unsigned int cxb_vxengnt_ring_size(size_t bytes) {
    return __CONST_RING_SIZE(cxb_vxengnt, bytes);
}

/* ring.h's own front end, used in tests as the reference the Swift back end must agree with. */
static inline void cxb_vxengnt_front_init(cxb_vxengnt_front_ring_t *ring, void *page, size_t bytes) {
    XEN_FRONT_RING_INIT(ring, (cxb_vxengnt_sring_t *)page, bytes);
}
static inline void cxb_vxengnt_back_init(cxb_vxengnt_back_ring_t *ring, void *page, size_t bytes) {
    BACK_RING_INIT(ring, (cxb_vxengnt_sring_t *)page, bytes);
}
static inline struct cxb_vxengnt_request *cxb_vxengnt_front_next_request(cxb_vxengnt_front_ring_t *ring) {
    return RING_GET_REQUEST(ring, ring->req_prod_pvt++);
}
static inline int cxb_vxengnt_front_push(cxb_vxengnt_front_ring_t *ring) {
    int notify;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(ring, notify);
    return notify;
}
static inline int cxb_vxengnt_front_take_response(cxb_vxengnt_front_ring_t *ring, struct cxb_vxengnt_response *out) {
    if (!RING_HAS_UNCONSUMED_RESPONSES(ring)) return 0;
    xen_rmb();
    RING_COPY_RESPONSE(ring, ring->rsp_cons, out);
    ring->rsp_cons++;
    return 1;
}
static inline int cxb_vxengnt_front_final_check(cxb_vxengnt_front_ring_t *ring) {
    int more;
    RING_FINAL_CHECK_FOR_RESPONSES(ring, more);
    return more;
}
static inline int cxb_vxengnt_back_take_request(cxb_vxengnt_back_ring_t *ring, struct cxb_vxengnt_request *out) {
    if (!RING_HAS_UNCONSUMED_REQUESTS(ring)) return 0;
    xen_rmb();
    RING_COPY_REQUEST(ring, ring->req_cons, out);
    ring->req_cons++;
    return 1;
}
static inline int cxb_vxengnt_back_respond(cxb_vxengnt_back_ring_t *ring, const struct cxb_vxengnt_response *response) {
    int notify;
    *RING_GET_RESPONSE(ring, ring->rsp_prod_pvt) = *response;
    ring->rsp_prod_pvt++;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, notify);
    return notify;
}
static inline int cxb_vxengnt_back_final_check(cxb_vxengnt_back_ring_t *ring) {
    int more;
    RING_FINAL_CHECK_FOR_REQUESTS(ring, more);
    return more;
}

#endif /* CXENBACKEND_SHIM_H */
