/* mailwire fetch: one POP3 account into a store, in the order that never
 * loses mail (see include/mailwire/fetch.h and docs/ARCHITECTURE.md).
 * mw_fetch_account runs the loop's POP3 fetch machine through a blocking
 * driver (src/loop/fetch_job.c, pop3_drive.c); this session over the
 * blocking POP3 API is what it still runs for what the machine lacks
 * (no login, retr_mode list/slow, a command timeout, opportunistic TLS). */
#include "mailwire/fetch.h"

#include "fetch/fetch_int.h"
#include "pop3/pop3_int.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- state ------------------------------------------------------------------ */

/* ---- sessions ---------------------------------------------------------------- */

/* Logs in (again): the caller's pop3 options, no STAT (the count comes
 * from LIST), the size limit as the cap on every message read. */
static int open_session(fctx *c)
{
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    if (c->o->pop3) po = *c->o->pop3;
    po.skip_stat = 1;
    mw_error e;
    int rc = mw_pop3_open(&c->p, c->o->host, &po, &e);
    if (rc) return mwi_fetch_fail(c, rc, "pop3", &e, NULL);
    mwi_pop3_set_message_cap(c->p, c->o->size_limit);
    return 0;
}

/* A new session after one was ended on purpose (a message running past its
 * size).  Message numbers hold only within a session (RFC 1939 §5), so the
 * new session's LIST and UIDL must give every planned message the same
 * number, size and UID; otherwise (or without UIDs to compare) the run ends
 * here and what is left waits for the next run. */
static int reopen(fctx *c)
{
    mw_pop3_free(c->p);
    c->p = NULL;
    if (c->o->pop3 && c->o->pop3->stream)
        return mwi_fetch_fail(
            c, MW_ENET, "pop3", NULL,
            "cannot reconnect over a caller-made stream; the rest is left for the next "
            "run");
    if (c->res->uid_mode != 2)
        return mwi_fetch_fail(
            c, MW_EPROTO, "pop3", NULL,
            "without UIDL the messages of a new session cannot be matched to this one's; "
            "the rest is left for the next run");
    int rc = open_session(c);
    if (rc) return rc;
    mw_pop3_listing *sizes = NULL;
    mw_pop3_uid *uids = NULL;
    size_t ns = 0, nu = 0;
    int urc = 0;
    rc = mw_pop3_list_uidl(c->p, &sizes, &ns, &uids, &nu, &urc);
    if (!rc && urc) rc = urc;
    int same = !rc;
    size_t k = 0, u = 0;
    for (size_t i = 0; same && i < c->n; i++) {
        const plan *pl = &c->pl[i];
        while (k < ns && sizes[k].msg < pl->num)
            k++;
        while (u < nu && uids[u].msg < pl->num)
            u++;
        const char *nuid = u < nu && uids[u].msg == pl->num ? uids[u].uid : NULL;
        const char *ouid = pl->bad_uid ? "" : pl->uid;
        same = k < ns && sizes[k].msg == pl->num && sizes[k].size == pl->size &&
               (ouid && nuid ? !strcmp(ouid, nuid) : !ouid && !nuid);
    }
    mw_pop3_list_free(sizes);
    mw_pop3_uidl_free(uids);
    if (rc) return mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
    if (!same) {
        mw_pop3_free(c->p);
        c->p = NULL;
        return mwi_fetch_fail(
            c, MW_EPROTO, "pop3", NULL,
            "the mailbox changed between sessions; the rest is left for the next run");
    }
    return 0;
}

/* ---- filter ----------------------------------------------------------------- */

/* TOP n 0 (RFC 1939 §7) for each candidate, then the filter's decision. */
/* The filter's view of one run of TOPs: the headers of the message being
 * received, and how far the run got. */
typedef struct filter_run {
    fctx *c;
    size_t base;       /* c->pl index of the run's first message */
    uint64_t first;    /* its number (the run's numbers are contiguous) */
    mw_buf hdr;        /* headers only; a bound on what we hold */
    uint64_t last_end; /* last message whose headers came whole (0: none) */
    uint64_t too_big;  /* a message whose headers passed the bound */
    int stopped;       /* the run failed: what is still in flight is ignored */
} filter_run;

/* mw_pop3_retr_range's callback for TOP n 0: a piece of headers, or (data
 * NULL) the end of a message's, when the filter decides it. */
static int filter_top(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                      void *ud)
{
    (void)info;
    filter_run *f = ud;
    if (f->stopped) return 0;
    if (msg != (f->last_end ? f->last_end + 1 : f->first)) {
        /* Data of a later message: the one before it was refused (-ERR),
         * and the run is stopping; the replies in flight are ignored. */
        f->stopped = 1;
        return 0;
    }
    if (data) {
        int rc = mwi_buf_append(&f->hdr, data, len);
        if (rc) {
            f->too_big = msg; /* stops the run; this message is left */
            f->stopped = 1;
        }
        return rc;
    }
    f->last_end = msg;
    mwi_fetch_filter_one(f->c, &f->c->pl[f->base + (size_t)(msg - f->first)],
                         f->hdr.data ? f->hdr.data : "", f->hdr.len);
    mwi_buf_reset(&f->hdr);
    return 0;
}

/* The filter decides every A_GET message from its headers.  The TOPs of a
 * run of consecutive messages are pipelined (RFC 2449 §6.6), so while the
 * filter judges one message the next headers are already on their way: a
 * high-latency link costs one round trip per run, not one per message.
 * A message whose TOP is refused, or whose headers pass 256 KiB, is left
 * on the server and the run goes on after it. */
static int apply_filter(fctx *c)
{
    size_t i = 0;
    while (i < c->n && !c->stop) {
        if (c->pl[i].action != A_GET) {
            i++;
            continue;
        }
        size_t j = i;
        while (j + 1 < c->n && c->pl[j + 1].action == A_GET && c->pl[j + 1].num == c->pl[j].num + 1)
            j++;
        filter_run f = {c, i, c->pl[i].num, MW_BUF_INIT(256 * 1024), 0, 0, 0};
        /* The LIST sizes bound each TOP reply (mwi_pop3_top_msgs). */
        mw_pop3_listing *run = calloc(j - i + 1, sizeof *run);
        if (!run) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
        for (size_t k = i; k <= j; k++) {
            run[k - i].msg = c->pl[k].num;
            run[k - i].size = c->pl[k].size;
        }
        int rc = mwi_pop3_top_msgs(c->p, run, j - i + 1, 0, filter_top, &f);
        free(run);
        mwi_buf_free(&f.hdr);
        if (!rc) {
            i = j + 1;
            continue;
        }
        uint64_t over = mwi_pop3_overflow_msg(c->p);
        if (rc == MW_ETOOBIG && over >= c->pl[i].num && over <= c->pl[j].num) {
            /* A TOP reply far past the message's size: that message is
             * left on the server, a new session goes on after it. */
            char m[sizeof c->err->message + 64];
            snprintf(m, sizeof m, "%s; message left on the server", mw_pop3_error(c->p)->message);
            mwi_fetch_fail(c, rc, "filter: TOP", NULL, m);
            size_t k = i + (size_t)(over - c->pl[i].num);
            c->pl[k].action = A_SKIP;
            c->res->errors++;
            if (reopen(c)) return c->first_rc;
            i = k + 1;
            continue;
        }
        if (rc != MW_ESERVER && rc != MW_ETEMP && rc != MW_ETOOBIG)
            return mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
        /* The message the run stopped at: its headers were too big, or its
         * TOP was the reply after the last one that ended. */
        uint64_t bad = f.too_big ? f.too_big : f.last_end ? f.last_end + 1 : c->pl[i].num;
        size_t k = i + (size_t)(bad - c->pl[i].num);
        if (k > j) return mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
        mwi_fetch_fail(c, rc, "filter: TOP", rc == MW_ETOOBIG ? NULL : mw_pop3_error(c->p),
                       "headers over 256 KiB; message left on the server");
        c->pl[k].action = A_SKIP;
        c->res->errors++;
        i = k + 1;
    }
    return 0;
}

/* ---- retrieval -------------------------------------------------------------- */

static plan *find_plan(fctx *c, uint64_t msg)
{
    while (c->cursor < c->n && c->pl[c->cursor].num < msg)
        c->cursor++;
    return c->cursor < c->n && c->pl[c->cursor].num == msg ? &c->pl[c->cursor] : NULL;
}

static void abort_open(fctx *c)
{
    if (c->open) {
        mw_store_abort(c->s);
        c->open = 0;
    }
}

/* Store failure: this message is not delivered; no more are taken. */
static int store_failed(fctx *c, int rc)
{
    abort_open(c);
    c->stop = 1;
    c->res->errors++;
    mwi_fetch_fail(c, rc, "store", mw_store_error(c->s), NULL);
    return rc;
}

static int on_msg(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                  void *ud)
{
    fctx *c = ud;
    if (c->stop) return MW_ECANCELED;
    if (c->open && c->cur != msg) abort_open(c); /* cannot happen: the last one ended */
    if (!c->open) {
        int rc = mw_store_begin(c->s, NULL);
        if (rc) return store_failed(c, rc);
        c->open = 1;
        c->cur = msg;
    }
    if (!info) {
        int rc = mw_store_write(c->s, data, len);
        if (rc) return store_failed(c, rc);
        c->prog.bytes_done += len;
        if (c->prog.bytes_done - c->last_progress_bytes >= 256 * 1024) mwi_fetch_progress(c, 2);
        return 0;
    }
    c->done = msg;
    plan *pl = find_plan(c, msg);
    if (!info->complete || (info->size_known && info->size_mismatch) || !pl) {
        /* Not whole: never delivered, never deleted. */
        abort_open(c);
        c->res->errors++;
        char m[200];
        snprintf(m, sizeof m,
                 "message %llu arrived incomplete or not as announced (%llu octets, server said "
                 "%llu); not stored, left on the server",
                 (unsigned long long)msg, (unsigned long long)info->octets,
                 (unsigned long long)info->declared);
        mwi_fetch_fail(c, MW_EPROTO, "pop3", NULL, m);
        return 0;
    }
    int rc = mw_store_commit(c->s);
    c->open = 0;
    if (rc) return store_failed(c, rc);
    pl->stored = 1;
    c->res->fetched++;
    c->res->bytes += info->octets;
    c->prog.msgs_done++;
    if (pl->uid) {
        if ((rc = mw_state_add(c->st, pl->uid, c->now))) {
            c->stop = 1;
            return mwi_fetch_fail(c, rc, "state", NULL, "cannot record a UID");
        }
        c->state_dirty = 1;
        if (++c->unsaved >= (c->o->batch ? c->o->batch : 100) && (rc = mwi_fetch_save_state(c)))
            return rc;
    }
    mwi_fetch_progress(c, 2);
    return 0;
}

/* RETR every A_GET message in one pipeline (RFC 2449 §6.6), the window
 * counted in bytes of their LIST sizes (mw_pop3_retr_msgs): gaps left by
 * skipped messages do not drain it. */
static int retrieve(fctx *c)
{
    mw_pop3_listing *want = calloc(c->n ? c->n : 1, sizeof *want);
    if (!want) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    size_t i = 0;
    int ret = 0;
    while (i < c->n && !c->stop) {
        size_t k = 0;
        for (size_t j = i; j < c->n; j++)
            if (c->pl[j].action == A_GET) {
                want[k].msg = c->pl[j].num;
                want[k].size = c->pl[j].size;
                k++;
            }
        if (!k) break;
        c->cursor = i;
        c->done = 0;
        int rc = mw_pop3_retr_msgs(c->p, want, k, 0, on_msg, c);
        /* A message cut short (connection dropped) must not be delivered. */
        abort_open(c);
        if (rc && !c->stop) {
            if (rc == MW_ESERVER || rc == MW_ETEMP) {
                /* -ERR for one message: go on after it.  Replies end in
                 * order, so the refused one is the first wanted message
                 * after the last reply that ended. */
                c->res->errors++;
                mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
                while (i < c->n && (c->pl[i].action != A_GET || c->pl[i].num <= c->done))
                    i++;
                i++; /* the one refused */
                continue;
            }
            c->res->errors++; /* the message in flight is lost to this run */
            uint64_t over = mwi_pop3_overflow_msg(c->p);
            if (rc == MW_ETOOBIG && over) {
                char m[sizeof c->err->message + 64];
                snprintf(m, sizeof m, "%s; not stored, left on the server",
                         mw_pop3_error(c->p)->message);
                mwi_fetch_fail(c, rc, "pop3", NULL, m);
                /* A reply far past its announced size: that message stays
                 * on the server, and a new session fetches the rest. */
                while (i < c->n && c->pl[i].num <= over)
                    i++;
                if ((ret = reopen(c))) break;
                continue;
            }
            ret = mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
        }
        break;
    }
    free(want);
    return ret;
}

static int deletable(const fctx *c, const plan *p)
{
    return p->action == A_DELE ||
           (!c->o->keep && p->action == A_GET && (p->uid ? p->saved : p->stored));
}

/* DELE (RFC 1939 §6) for every message whose deletion is safe now, in one
 * pipeline.  A refused DELE does not stop the others, and every +OK counts,
 * also those before and after a refusal. */
static int delete_marked(fctx *c)
{
    uint64_t *nums = calloc(c->n ? c->n : 1, sizeof *nums);
    if (!nums) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++)
        if (deletable(c, &c->pl[i])) nums[k++] = c->pl[i].num;
    size_t done = 0;
    int rc = k ? mw_pop3_dele_msgs(c->p, nums, k, &done) : 0;
    free(nums);
    c->res->deleted += done;
    if (rc) {
        mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
        if (rc != MW_ESERVER && rc != MW_ETEMP) return rc;
    }
    return 0;
}

/* ---- deciding --------------------------------------------------------------- */

typedef struct uid_list {
    mw_pop3_uid *items;
    size_t n;
} uid_list;

/* LIST and UIDL (RFC 1939 §7) in one round trip when pipelining; without
 * UIDL, LAST (RFC 1460); without either, every message is new.  LIST's
 * count is the number of messages (no STAT is sent). */
static int list_and_uids(fctx *c, uid_list *ul, uint64_t *last)
{
    *last = 0;
    mw_pop3_listing *sizes = NULL;
    size_t nsizes = 0;
    int urc = 0;
    int rc = mw_pop3_list_uidl(c->p, &sizes, &nsizes, &ul->items, &ul->n, &urc);
    if (rc) return mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
    c->res->messages = nsizes;
    c->pl = calloc(nsizes ? nsizes : 1, sizeof *c->pl);
    if (!c->pl) {
        mw_pop3_list_free(sizes);
        return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    }
    c->n = nsizes;
    for (size_t i = 0; i < nsizes; i++) {
        c->pl[i].num = sizes[i].msg;
        c->pl[i].size = sizes[i].size;
    }
    mw_pop3_list_free(sizes);
    if (!urc) {
        c->res->uid_mode = 2;
        size_t k = 0;
        for (size_t i = 0; i < c->n; i++) {
            while (k < ul->n && ul->items[k].msg < c->pl[i].num)
                k++;
            if (k < ul->n && ul->items[k].msg == c->pl[i].num) {
                if (ul->items[k].uid[0])
                    c->pl[i].uid = ul->items[k].uid;
                else
                    c->pl[i].bad_uid = 1; /* RFC 1939 §7 broken: see mwi_fetch_decide() */
            }
        }
        return 0;
    }
    if (urc != MW_ESERVER && urc != MW_EUNSUPPORTED)
        return mwi_fetch_fail(c, urc, "pop3", mw_pop3_error(c->p), NULL);
    rc = mw_pop3_last(c->p, last);
    if (!rc) {
        c->res->uid_mode = 1;
        return 0;
    }
    if (rc != MW_ESERVER && rc != MW_EUNSUPPORTED)
        return mwi_fetch_fail(c, rc, "pop3", mw_pop3_error(c->p), NULL);
    c->res->uid_mode = 0;
    return 0;
}

static int prune_listed(fctx *c, const uid_list *ul)
{
    const char **uids = calloc(ul->n ? ul->n : 1, sizeof *uids);
    if (!uids) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    for (size_t i = 0; i < ul->n; i++)
        uids[i] = ul->items[i].uid;
    int rc = mwi_fetch_prune(c, uids, ul->n);
    free(uids);
    return rc;
}

/* ---- the whole account ------------------------------------------------------ */

int mwi_fetch_account_session(mw_fetch_result *res, const mw_fetch_opts *o, mw_error *err)
{
    mw_fetch_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    if (err) mw_error_clear(err);
    int rc = mwi_fetch_check_opts(o, err);
    if (rc) {
        if (o && o->pop3 && o->pop3->stream) mw_stream_free(o->pop3->stream);
        return rc;
    }

    fctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.res = res;
    c.err = err;
    c.now = o->now ? o->now : (int64_t)time(NULL);
    uid_list ul = {NULL, 0};
    uint64_t last = 0;
    int opened = 0;
    mw_error tmp;
    memset(&tmp, 0, sizeof tmp);

    mwi_fetch_progress(&c, 0);
    /* The lock first: a second fetch of this account stops before it
     * touches the server. */
    rc = mw_state_open(&c.st, o->state_path, o->state_opts, &tmp);
    if (rc) {
        mwi_fetch_fail(&c, rc, "state", &tmp, NULL);
        goto out;
    }
    if (mwi_fetch_open_store(&c)) goto out;
    /* The number of messages comes from LIST (list_and_uids): STAT after
     * login would cost a round trip for nothing. */
    opened = 1; /* the session owns the caller's stream from here on */
    if (open_session(&c)) goto out;
    mwi_fetch_progress(&c, 1);
    if (list_and_uids(&c, &ul, &last)) goto out;
    if (c.res->uid_mode == 2 && (rc = prune_listed(&c, &ul))) goto out;
    mwi_fetch_decide(&c, last);
    if (o->filter && *o->filter && apply_filter(&c)) goto out;
    for (size_t i = 0; i < c.n; i++) {
        if (c.pl[i].action == A_GET) {
            c.prog.msgs_total++;
            c.prog.bytes_total += c.pl[i].size;
        } else if (c.pl[i].action == A_SKIP) {
            res->skipped++;
        }
    }
    mwi_fetch_progress(&c, 2);
    if (retrieve(&c)) goto out;
    /* Durable record before any DELE (the heart of it). */
    if (mwi_fetch_save_state(&c)) goto out;
    mwi_fetch_progress(&c, 3);
    if (delete_marked(&c)) goto out;
    int confirmed = 0;
    rc = mw_pop3_quit(c.p, &confirmed);
    res->quit_confirmed = confirmed;
    if (rc) mwi_fetch_fail(&c, rc, "pop3", mw_pop3_error(c.p), NULL);
out:
    /* A caller-made stream is ours from the call on (as mw_pop3_open's). */
    if (!opened && o->pop3 && o->pop3->stream) mw_stream_free(o->pop3->stream);
    abort_open(&c);
    /* Whatever happened, what was stored is recorded. */
    if (c.st) mwi_fetch_save_state(&c);
    if (c.res && c.pl)
        for (size_t i = 0; i < c.n; i++)
            if (c.pl[i].action == A_GET && !c.pl[i].stored && c.stop) res->skipped++;
    mwi_fetch_progress(&c, 4);
    mw_pop3_free(c.p); /* closes without QUIT if we did not get there */
    mw_pop3_uidl_free(ul.items);
    mw_store_free(c.s);
    mw_state_free(c.st);
    free(c.pl);
    return c.first_rc;
}
