/* The loop's cache of name lookups (lcache.h). */
#include "loop/lcache.h"
#include "mailwire/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { E_FREE, E_PENDING, E_OK, E_FAILED };

typedef struct entry {
    char name[254];
    int family, state;
    unsigned gen;    /* which lookup: a waiting job's result is its gen's */
    int64_t expires; /* E_OK: kept until then */
    mwi_raddr addrs[MWI_RSLV_ADDRS_MAX];
    size_t n;
    int code; /* E_FAILED */
    char msg[256];
} entry;

struct mwi_lcache {
    entry e[MWI_LCACHE_MAX];
    unsigned gen;
};

static entry *find(mwi_lcache *c, const char *name, int family)
{
    for (size_t i = 0; c && i < MWI_LCACHE_MAX; i++)
        if (c->e[i].state != E_FREE && c->e[i].family == family && !strcasecmp(c->e[i].name, name))
            return &c->e[i];
    return NULL;
}

int mwi_lcache_get(mwi_lcache *c, const char *name, int family, int64_t now, unsigned *gen,
                   mwi_raddr *out, size_t *n, int *code, char *msg, size_t msgcap)
{
    entry *e = find(c, name, family);
    unsigned waited = *gen;
    *gen = 0;
    if (!e) return MWI_LCACHE_MISS;
    if (e->state == E_PENDING) {
        *gen = e->gen;
        return MWI_LCACHE_PENDING;
    }
    int mine = waited && waited == e->gen; /* the answer this job waited for */
    if (e->state == E_FAILED) {
        if (!mine) return MWI_LCACHE_MISS;
        *code = e->code;
        snprintf(msg, msgcap, "%s", e->msg);
        return MWI_LCACHE_FAILED;
    }
    if (now >= e->expires && !mine) {
        e->state = E_FREE;
        return MWI_LCACHE_MISS;
    }
    memcpy(out, e->addrs, e->n * sizeof *out);
    *n = e->n;
    return MWI_LCACHE_HIT;
}

int mwi_lcache_claim(mwi_lcache **cp, const char *name, int family)
{
    if (strlen(name) >= sizeof((entry *)0)->name) return MW_ETOOBIG;
    if (!*cp && !(*cp = calloc(1, sizeof **cp))) return MW_ENOMEM;
    mwi_lcache *c = *cp;
    entry *e = find(c, name, family), *room = NULL;
    for (size_t i = 0; !e && i < MWI_LCACHE_MAX; i++) {
        entry *x = &c->e[i];
        if (x->state == E_PENDING) continue;
        if (x->state == E_FREE) {
            room = x;
            break;
        }
        /* Else the one that expires first (a failure: at once). */
        int64_t xe = x->state == E_FAILED ? INT64_MIN : x->expires;
        int64_t re = !room ? 0 : room->state == E_FAILED ? INT64_MIN : room->expires;
        if (!room || xe < re) room = x;
    }
    if (!e) e = room;
    if (!e) return MW_ETOOBIG; /* every name is being looked up */
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->family = family;
    e->state = E_PENDING;
    e->gen = ++c->gen ? c->gen : ++c->gen; /* never 0 */
    return 0;
}

void mwi_lcache_end(mwi_lcache *c, const char *name, int family, const mwi_raddr *a, size_t n,
                    uint32_t ttl_s, int code, const char *msg, int64_t now)
{
    entry *e = find(c, name, family);
    if (!e || e->state != E_PENDING) return;
    if (!code && !n) { /* abandoned */
        e->state = E_FREE;
        return;
    }
    if (code) {
        e->state = E_FAILED;
        e->code = code;
        snprintf(e->msg, sizeof e->msg, "%s", msg ? msg : "");
        return;
    }
    if (n > MWI_RSLV_ADDRS_MAX) n = MWI_RSLV_ADDRS_MAX;
    memcpy(e->addrs, a, n * sizeof *a);
    e->n = n;
    e->state = E_OK;
    e->expires =
        now + (int64_t)(ttl_s < MWI_LCACHE_TTL_MAX_S ? ttl_s : MWI_LCACHE_TTL_MAX_S) * 1000;
}

void mwi_lcache_free(mwi_lcache *c)
{
    free(c);
}
