/* Internal: the loop's cache of name lookups, for lconn.c.  The jobs of
 * one loop that connect to the same name (and address family) look it up
 * once: the first asks src/resolve, the others wait for its answer, and
 * the addresses are kept for the TTL of the records they came from (RFC
 * 1035 §3.2.1), at most MWI_LCACHE_TTL_MAX_S; a failure is given to the
 * jobs that waited for it and not kept.  At most MWI_LCACHE_MAX names, the
 * one that expires first making room.  No clock of its own: `now` is the
 * caller's mw_now_ms(). */
#ifndef MW_LOOP_LCACHE_H
#define MW_LOOP_LCACHE_H

#include "resolve/resolve.h"

#include <stddef.h>
#include <stdint.h>

#define MWI_LCACHE_MAX       64
#define MWI_LCACHE_TTL_MAX_S 3600

typedef struct mwi_lcache mwi_lcache;

enum { MWI_LCACHE_MISS, MWI_LCACHE_HIT, MWI_LCACHE_PENDING, MWI_LCACHE_FAILED };

/* What is known of name for family at now.  *gen: 0, or what an earlier
 * PENDING answer gave this job (its result is then the job's even when it
 * is not kept); set on PENDING.  HIT: the addresses into out (n of them,
 * MWI_RSLV_ADDRS_MAX at most); PENDING: another job is looking it up;
 * FAILED: its lookup failed for the waiting job (*code, msg); MISS: look
 * it up (and mwi_lcache_claim it). */
int mwi_lcache_get(mwi_lcache *c, const char *name, int family, int64_t now, unsigned *gen,
                   mwi_raddr *out, size_t *n, int *code, char *msg, size_t msgcap);
/* The caller looks name up now; others asking wait for it.  Returns 0, or
 * MW_ENOMEM / MW_ETOOBIG (no room: the lookup goes on uncached).  *c is
 * made on first use. */
int mwi_lcache_claim(mwi_lcache **c, const char *name, int family);
/* The claimed lookup ended: with n addresses kept for ttl_s (0: given to
 * the waiting jobs only), or failed with code and msg (given to them), or
 * abandoned (code 0, n 0: they look it up themselves). */
void mwi_lcache_end(mwi_lcache *c, const char *name, int family, const mwi_raddr *a, size_t n,
                    uint32_t ttl_s, int code, const char *msg, int64_t now);
void mwi_lcache_free(mwi_lcache *c);

#endif
