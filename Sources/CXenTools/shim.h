/*
 * CXenTools: Xen's own C libraries (Debian: libxen-dev), for the lab and the conformance suite
 * only: libxenstore (the channel between domains), libxenevtchn (event channels) and
 * libxengnttab (the C reference API XenGnt must interoperate with). XenGnt itself does not use
 * them.
 */
#ifndef CXENTOOLS_SHIM_H
#define CXENTOOLS_SHIM_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
#include <xenstore.h>
#include <xenevtchn.h>
#include <xengnttab.h>

static inline uint32_t cxt_xbt_null(void) { return XBT_NULL; }
static inline unsigned int cxt_perm_read(void) { return XS_PERM_READ; }
static inline unsigned int cxt_perm_write(void) { return XS_PERM_WRITE; }
static inline unsigned int cxt_perm_none(void) { return XS_PERM_NONE; }

#endif
