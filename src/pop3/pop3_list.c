/* POP3 listings: LIST and UIDL, whole or of one message, and both in one
 * round trip (RFC 1939 §5 and §7, RFC 2449 §6.6), on the machine, which
 * checks each entry and bounds the listing by the message count
 * (src/loop/pop3_cmds.c). */
#include "pop3/pop3_int.h"

#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- LIST / UIDL ------------------------------------------------------------ */

/* The entries of one listing, and the failure of its command. */
typedef struct listing {
    mw_pop3_listing *items;
    mw_pop3_uid *uids;
    size_t n, cap;
    mw_error err; /* a -ERR (the session goes on) */
} listing;

static int keep_entry(listing *a, const mw_loop_pop3_reply *r)
{
    int uidl = r->op == MW_LOOP_POP3_UIDL;
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        void *ni = uidl ? realloc(a->uids, ncap * sizeof *a->uids)
                        : realloc(a->items, ncap * sizeof *a->items);
        if (!ni) return MW_ENOMEM;
        if (uidl)
            a->uids = ni;
        else
            a->items = ni;
        a->cap = ncap;
    }
    if (uidl) {
        a->uids[a->n].msg = r->msg;
        snprintf(a->uids[a->n].uid, sizeof a->uids[a->n].uid, "%s", r->uid ? r->uid : "");
    } else {
        a->items[a->n].msg = r->msg;
        a->items[a->n].size = r->value;
    }
    a->n++;
    return 0;
}

/* LIST and UIDL, one listing each. */
typedef struct listings {
    mw_pop3 *p;
    listing l[2];
    int count_from; /* LIST's entries may give the count (count_from_list) */
    int nomem;
} listings;

/* Without a STAT (mw_pop3_opts.skip_stat) the count comes from LIST: RFC
 * 1939 §5 counts in STAT exactly the messages LIST lists (neither includes
 * those marked deleted).  Only a listing numbered 1..n, as a session that
 * deleted nothing has, is taken; the count then bounds the UIDL that
 * follows as STAT's would. */
static void count_from_list(mw_pop3 *p, const listing *a)
{
    uint64_t c;
    if (mwi_pop3_have_count(p, &c)) return;
    for (size_t i = 0; i < a->n; i++)
        if (a->items[i].msg != i + 1) return;
    mwi_p3h_set_count(p->h, a->n);
}

static int on_listing(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    listings *ls = ud;
    listing *a = &ls->l[r->op == MW_LOOP_POP3_UIDL];
    if (fail) {
        a->err = *fail;
        return 0;
    }
    if (r->kind == MW_LOOP_POP3_LINE && !ls->nomem && keep_entry(a, r)) {
        ls->nomem = 1;
        return MW_ENOMEM;
    }
    if (r->kind == MW_LOOP_POP3_END && r->op == MW_LOOP_POP3_LIST && ls->count_from)
        count_from_list(ls->p, a);
    return 0;
}

static void listings_free(listings *ls)
{
    for (int i = 0; i < 2; i++) {
        free(ls->l[i].items);
        free(ls->l[i].uids);
    }
}

static int list_all(mw_pop3 *p, int uidl, void **items, size_t *n)
{
    *items = NULL;
    *n = 0;
    const char *what = uidl ? "UIDL" : "LIST";
    int rc = mwi_pop3_require(p, P3_TRANS, what);
    if (rc) return rc;
    listings ls;
    memset(&ls, 0, sizeof ls);
    ls.p = p;
    mw_loop_pop3_cmd c = {uidl ? MW_LOOP_POP3_UIDL : MW_LOOP_POP3_LIST, 0, 0, 0};
    rc = mwi_pop3_run(p, &c, 1, NULL, on_listing, &ls);
    if (!rc && ls.nomem) rc = mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    if (rc) {
        listings_free(&ls);
        return rc;
    }
    *items = uidl ? (void *)ls.l[1].uids : (void *)ls.l[0].items;
    *n = ls.l[uidl].n;
    return 0;
}

/* LIST, then UIDL: in one write when pipelining (both replies read, even
 * after a LIST -ERR, so the session stays in step), else UIDL only after
 * a LIST that succeeded. */
int mw_pop3_list_uidl(mw_pop3 *p, mw_pop3_listing **items, size_t *n, mw_pop3_uid **uids,
                      size_t *nuids, int *uidl_rc)
{
    if (!p || !items || !n || !uids || !nuids || !uidl_rc) return MW_EINVAL;
    *items = NULL;
    *uids = NULL;
    *n = *nuids = 0;
    *uidl_rc = 0;
    int rc = mwi_pop3_require(p, P3_TRANS, "LIST");
    if (rc) return rc;
    listings ls;
    memset(&ls, 0, sizeof ls);
    ls.p = p;
    ls.count_from = 1;
    mw_loop_pop3_cmd c[2] = {{MW_LOOP_POP3_LIST, 0, 0, 0}, {MW_LOOP_POP3_UIDL, 0, 0, 0}};
    mwi_p3h_opts ro = {NULL, 0, 0, 0, 0, 1};
    int piped = p->pipelining;
    rc = mwi_pop3_run(p, c, piped ? 2 : 1, &ro, on_listing, &ls);
    if (!piped && !rc && !ls.nomem) rc = mwi_pop3_run(p, &c[1], 1, &ro, on_listing, &ls);
    if (ls.nomem && mwi_p3h_alive(p->h)) rc = mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    if (p->state == P3_BROKEN || ls.nomem || ls.l[0].err.code) {
        if (ls.l[0].err.code && p->state != P3_BROKEN) p->err = ls.l[0].err;
        listings_free(&ls);
        return p->state == P3_BROKEN || ls.nomem ? rc : p->err.code;
    }
    if (ls.l[1].err.code) {
        *uidl_rc = ls.l[1].err.code; /* the detail stays in mw_pop3_error(p) */
        p->err = ls.l[1].err;
        free(ls.l[1].uids);
        ls.l[1].uids = NULL;
        ls.l[1].n = 0;
    } else {
        mw_error_clear(&p->err);
    }
    *items = ls.l[0].items;
    *n = ls.l[0].n;
    *uids = ls.l[1].uids;
    *nuids = ls.l[1].n;
    return 0;
}

int mw_pop3_list(mw_pop3 *p, mw_pop3_listing **items, size_t *n)
{
    if (!p || !items || !n) return MW_EINVAL;
    void *it;
    int rc = list_all(p, 0, &it, n);
    *items = it;
    return rc;
}

int mw_pop3_uidl(mw_pop3 *p, mw_pop3_uid **items, size_t *n)
{
    if (!p || !items || !n) return MW_EINVAL;
    void *it;
    int rc = list_all(p, 1, &it, n);
    *items = it;
    return rc;
}

void mw_pop3_list_free(mw_pop3_listing *items)
{
    free(items);
}
void mw_pop3_uidl_free(mw_pop3_uid *items)
{
    free(items);
}

/* LIST n or UIDL n: the entry is in the status line (checked by the
 * machine: a bad one ends the session). */
typedef struct entry {
    uint64_t size;
    char uid[71];
} entry;

static int on_entry(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    (void)fail;
    entry *e = ud;
    if (r->kind == MW_LOOP_POP3_STATUS) {
        e->size = r->value;
        if (r->uid) snprintf(e->uid, sizeof e->uid, "%s", r->uid);
    }
    return 0;
}

static int one(mw_pop3 *p, int op, uint64_t msg, entry *e)
{
    int rc = mwi_pop3_require(p, P3_TRANS, op == MW_LOOP_POP3_UIDL ? "UIDL" : "LIST");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    if (rc) return rc;
    memset(e, 0, sizeof *e);
    mw_loop_pop3_cmd c = {op, msg, 0, 0};
    return mwi_pop3_run(p, &c, 1, NULL, on_entry, e);
}

int mw_pop3_list_one(mw_pop3 *p, uint64_t msg, uint64_t *size)
{
    if (!p) return MW_EINVAL;
    entry e;
    int rc = one(p, MW_LOOP_POP3_LIST, msg, &e);
    if (!rc && size) *size = e.size;
    return rc;
}

int mw_pop3_uidl_one(mw_pop3 *p, uint64_t msg, char uid[71])
{
    if (!p || !uid) return MW_EINVAL;
    entry e;
    int rc = one(p, MW_LOOP_POP3_UIDL, msg, &e);
    if (!rc) memcpy(uid, e.uid, sizeof e.uid);
    return rc;
}
