/* A fetch of one account on the loop (loop.h, mw_loop_add_fetch): the
 * POP3 job of pop3_job.c with the plan and records of src/fetch (the UIDL
 * state, keep rules, size limit), in the order of include/mailwire/fetch.h:
 * each message durable in the store, its UID in a saved state, then DELE,
 * then QUIT.  The steps that do not talk to the server are the blocking
 * fetch's own (src/fetch/plan.c). */
#include "mailwire/loop.h"

#include "fetch/fetch_int.h"
#include "fetch/filter.h"
#include "loop/lchild.h"
#include "loop/loop_int.h"
#include "loop/pop3_held.h"
#include "loop/pop3_job.h"
#include "store/store_defer.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef struct lfetch {
    fctx c;
    mw_fetch_opts o; /* the caller's, with only what the run reads later */
    mw_fetch_result res;
    mw_error err;
    mw_loop_fetch_done_fn done;
    void *userdata;
    char *filter;     /* the caller's o->filter, copied */
    mwi_lchild child; /* the filter running on the loop (child_plan: for whom) */
    plan *child_plan;
} lfetch;

static void lfetch_free(lfetch *f)
{
    if (f->child_plan) mwi_lchild_free(&f->child, NULL);
    if (f->c.s) {
        mw_store_abort(f->c.s); /* a delivery cut short is removed */
        mw_store_free(f->c.s);
    }
    mw_state_free(f->c.st);
    free(f->c.pl);
    free(f->filter);
    free(f);
}

/* The loop is freed while the fetch runs (mw_loop_free): no done
 * callback, but the store (a delivery cut short removed), the state and its
 * lock go.  Nothing was deleted that is not recorded (the order of
 * on_commit). */
static void lfetch_abandon(void *ud)
{
    lfetch_free(ud);
}

/* After LIST and UIDL: the plan of src/fetch (state, keep, size limit). */
static int on_plan(mw_loop_job *job, const mw_loop_msg *msgs, size_t n, unsigned char *act,
                   void *ud)
{
    lfetch *f = ud;
    fctx *c = &f->c;
    c->res->messages = n;
    if (!(c->pl = calloc(n ? n : 1, sizeof *c->pl)))
        return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    c->n = n;
    const char **uids = calloc(n ? n : 1, sizeof *uids);
    if (!uids) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    size_t nu = 0;
    for (size_t i = 0; i < n; i++) {
        c->pl[i].num = msgs[i].num;
        c->pl[i].size = msgs[i].size;
        c->pl[i].uid = msgs[i].uid;
        if (msgs[i].uid) uids[nu++] = msgs[i].uid;
    }
    /* The job keeps no unique-id that breaks RFC 1939 §7: with UIDs for
     * the others, such a message is left alone, as the blocking fetch does. */
    uint64_t last = 0;
    c->res->uid_mode = mwi_loop_pop3_uid_mode(job, &last);
    for (size_t i = 0; c->res->uid_mode == 2 && i < n; i++)
        if (!c->pl[i].uid) c->pl[i].bad_uid = 1;
    int rc = c->res->uid_mode == 2 ? mwi_fetch_prune(c, uids, nu) : 0;
    free(uids);
    if (rc) return rc;
    mwi_fetch_decide(c, last);
    for (size_t i = 0; i < n; i++) {
        const plan *p = &c->pl[i];
        if (p->action == A_GET) {
            act[i] = MW_LOOP_GET | (f->o.keep ? 0 : MW_LOOP_DELE);
            c->prog.msgs_total++;
            c->prog.bytes_total += p->size;
        } else {
            act[i] = p->action == A_DELE ? MW_LOOP_DELE : 0;
            if (p->action == A_SKIP) c->res->skipped++;
        }
    }
    mwi_fetch_progress(c, 2);
    return 0;
}

static plan *find_plan(fctx *c, uint64_t num)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->pl[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n && c->pl[lo].num == num ? &c->pl[lo] : NULL;
}

/* A message is durable in the store: its UID goes into the state, saved
 * every batch messages. */
static int on_stored(mw_loop_job *job, uint64_t msg, const char *uid, uint64_t size, void *ud)
{
    (void)job;
    (void)uid;
    lfetch *f = ud;
    fctx *c = &f->c;
    plan *p = find_plan(c, msg);
    if (!p) return mwi_fetch_fail(c, MW_EPROTO, "fetch", NULL, "a message that was not planned");
    p->stored = 1;
    c->res->fetched++;
    c->res->bytes += size;
    c->prog.msgs_done++;
    c->prog.bytes_done += size;
    if (p->uid) {
        if (mw_state_add(c->st, p->uid, c->now) != 0)
            return mwi_fetch_fail(c, mw_state_error(c->st)->code, "state", mw_state_error(c->st),
                                  NULL);
        c->state_dirty = 1;
        c->unsaved++;
    }
    if (c->unsaved >= (f->o.batch ? f->o.batch : 100)) {
        int rc = mwi_fetch_save_state(c);
        if (rc) return rc;
    }
    mwi_fetch_progress(c, 2);
    return 0;
}

/* A message the job could not take: an error of the run, as the blocking
 * fetch counts it; the run goes on. */
static void on_msg_error(mw_loop_job *job, uint64_t msg, const mw_error *err, void *ud)
{
    (void)job;
    lfetch *f = ud;
    plan *p = find_plan(&f->c, msg);
    if (p) p->failed = 1;
    f->c.res->errors++;
    mwi_fetch_fail(&f->c, err->code, "pop3", err, NULL);
}

/* A message the filter took from the fetch: off the totals; a skipped
 * one counted (src/fetch counts them after its apply_filter).  Returns
 * the job's action for it. */
static int filtered(lfetch *f, plan *p)
{
    fctx *c = &f->c;
    if (p->action != A_GET) {
        c->prog.msgs_total--;
        c->prog.bytes_total -= p->size;
    }
    if (p->action == A_SKIP) c->res->skipped++;
    if (p->action == A_GET) return MW_LOOP_GET | (f->o.keep ? 0 : MW_LOOP_DELE);
    return p->action == A_DELE ? MW_LOOP_DELE : 0;
}

/* The headers of a message to get (TOP n 0): the filter decides it, as in
 * the blocking fetch (src/fetch/filter.h).  Driven over a blocking stream
 * (no loop) it runs there and then (filter_run.c); on a loop it is
 * started and the job waits for it (on_filter_wait), the loop's other
 * jobs going on. */
static int on_headers(mw_loop_job *job, uint64_t msg, const char *hdr, size_t len, void *ud)
{
    lfetch *f = ud;
    plan *p = find_plan(&f->c, msg);
    if (!p || p->action != A_GET) return 0;
    if (!job->loop) {
        mwi_fetch_filter_one(&f->c, p, hdr, len);
        return filtered(f, p);
    }
    mwi_proc pr;
    char why[200];
    int rc = mwi_filter_spawn(&pr, f->o.filter, why, sizeof why);
    if (rc) {
        mwi_filter_apply(&f->c, p, rc, MW_FETCH_GET, why);
        return filtered(f, p);
    }
    mwi_lchild_start(&f->child, &pr, hdr, len, mwi_filter_timeout_ms(&f->o));
    f->child_plan = p;
    return MWI_LOOP_HDR_WAIT;
}

/* The filter on the loop: its stdin, its exit and its deadline as events
 * of the job (lchild.h); once it ended, the verdict of the blocking
 * runner's rules (filter.c). */
static int on_filter_wait(mw_loop_job *job, uint64_t msg, int64_t *deadline, void *ud)
{
    (void)msg;
    lfetch *f = ud;
    mwi_lchild *ch = &f->child;
    if (!f->child_plan) return 0;
    if (!mwi_lchild_step(ch, job)) {
        *deadline = mwi_lchild_deadline(ch);
        return MWI_LOOP_HDR_WAIT;
    }
    mwi_filter_end e;
    memset(&e, 0, sizeof e);
    e.waited = ch->ended < 0 ? -1 : ch->killed ? 0 : 1;
    e.status = ch->status;
    e.wait_errno = ch->wait_errno;
    e.input_late = ch->input_late;
    e.timeout_ms = mwi_filter_timeout_ms(&f->o);
    int decision = MW_FETCH_GET;
    char why[200];
    int rc = mwi_filter_verdict(&e, &decision, why, sizeof why);
    mwi_lchild_free(ch, job);
    plan *p = f->child_plan;
    f->child_plan = NULL;
    mwi_filter_apply(&f->c, p, rc, decision, why);
    return filtered(f, p);
}

/* The job ends while the filter runs: it is killed, the message left. */
static void on_filter_drop(mw_loop_job *job, void *ud)
{
    lfetch *f = ud;
    if (!f->child_plan) return;
    mwi_lchild_free(&f->child, job);
    f->child_plan = NULL;
}

/* A TOP that failed: the message is left on the server, an error of the
 * run, in src/fetch's words ("filter: TOP: ..."). */
static void on_top_fail(mw_loop_job *job, uint64_t msg, int code, const mw_error *err,
                        const char *why, void *ud)
{
    (void)job;
    lfetch *f = ud;
    fctx *c = &f->c;
    mwi_fetch_fail(c, code, "filter: TOP", err, why);
    c->res->errors++;
    plan *p = find_plan(c, msg);
    if (p && p->action == A_GET) {
        p->action = A_SKIP;
        filtered(f, p);
    }
}

/* The store failed: no more messages are taken (src/fetch's store_failed);
 * what was stored is still recorded and deleted. */
static void on_store_error(mw_loop_job *job, uint64_t msg, const mw_error *err, void *ud)
{
    (void)job;
    (void)msg;
    lfetch *f = ud;
    f->c.stop = 1;
    f->c.res->errors++;
    mwi_fetch_fail(&f->c, err->code, "store", err, NULL);
}

/* Before the first DELE: every stored message recorded durably. */
static int on_commit(mw_loop_job *job, void *ud)
{
    lfetch *f = ud;
    int rc = mwi_fetch_save_state(&f->c);
    if (!rc) mwi_fetch_progress(&f->c, 3);
    return rc;
}

static void on_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    lfetch *f = ud;
    fctx *c = &f->c;
    f->res.deleted = r->deleted;
    f->res.quit_confirmed = r->quit_ok;
    if (r->code) mwi_fetch_fail(c, r->code, "pop3", r->err, NULL);
    /* Whatever happened, what was stored is recorded. */
    mwi_fetch_save_state(c);
    for (size_t i = 0; c->pl && i < c->n; i++)
        if (c->pl[i].action == A_GET && !c->pl[i].stored && !c->pl[i].failed) f->res.skipped++;
    mwi_fetch_progress(c, 4);
    if (f->done) f->done(job, &f->res, &f->err, f->userdata);
    lfetch_free(f);
}

/* What the loop's POP3 job cannot do yet is refused, never ignored. */
static int check_loop_opts(const mw_fetch_opts *o, mw_error *err)
{
    const mw_pop3_opts *po = o->pop3;
    if (!po) return mwi_err_set(err, MW_EINVAL, "fetch: no POP3 options (user, password)");
    if (po->stream || po->auth == MW_POP3_AUTH_NONE)
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "fetch: a caller's stream, or no login, is not on the loop");
    if (po->tls < MW_TLS_STARTTLS || po->tls > MW_TLS_IMPLICIT)
        return mwi_err_set(err, MW_EINVAL, "pop3: unknown TLS mode %d", po->tls);
    return 0;
}

static void pop3_opts_from(mw_loop_pop3_opts *lo, const mw_pop3_opts *po, const char *host,
                           mw_tls_opts *tls)
{
    mwi_loop_pop3_opts_from(lo, po, host);
    lo->tls_opts = tls;
    if (po->net) {
        if (po->net->connect_timeout_ms > 0) lo->connect_timeout_ms = po->net->connect_timeout_ms;
        if (po->net->io_timeout_ms > 0) lo->io_timeout_ms = po->net->io_timeout_ms;
        lo->max_time_ms = po->net->max_time_ms;
        lo->proxy = po->net->proxy;
    }
    /* The blocking fetch's window (mw_pop3_retr_msgs): 1024 commands and
     * 16 MiB of LIST sizes; mw_pop3_opts.window is not used for it. */
    lo->window = po->pipelining == 0 ? 1 : MW_POP3_WINDOW_MAX;
}

/* The run's part that is not the session: the state's lock (first: a
 * second fetch of this account stops before it touches the server), the
 * store, and the POP3 job's options with this file's hooks into *lo
 * (tls: its TLS options' storage).  On failure err is set and nothing is
 * left. */
static int lfetch_new(lfetch **out, const mw_fetch_opts *o, mw_loop_pop3_opts *lo, mw_tls_opts *tls,
                      mw_error *err)
{
    *out = NULL;
    lfetch *f = calloc(1, sizeof *f);
    if (!f) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    f->o = *o;
    if (o->filter && *o->filter && !(f->filter = strdup(o->filter))) {
        free(f);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    f->o.filter = f->filter;
    f->c.o = &f->o;
    f->c.res = &f->res;
    f->c.err = &f->err;
    f->c.now = o->now ? o->now : (int64_t)time(NULL);
    mwi_fetch_progress(&f->c, 0);
    mw_error tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = mw_state_open(&f->c.st, o->state_path, o->state_opts, &tmp);
    if (rc) mwi_fetch_fail(&f->c, rc, "state", &tmp, NULL);
    if (!rc) rc = mwi_fetch_open_store(&f->c);
    if (rc) {
        if (err) *err = f->err;
        lfetch_free(f);
        return rc;
    }
    /* Its version's fields only (a version 1 struct ends before crl_file);
     * another version is refused by the POP3 job with its words. */
    if (mw_tls_opts_copy(tls, o->pop3->tls_opts) != 0) tls->version = o->pop3->tls_opts->version;
    if (!tls->servername) tls->servername = o->host;
    *lo = (mw_loop_pop3_opts)MW_LOOP_POP3_OPTS_INIT;
    pop3_opts_from(lo, o->pop3, o->host, tls);
    lo->store = f->c.s;
    lo->stored = on_stored;
    lo->stored_userdata = f;
    lo->plan = on_plan;
    lo->commit = on_commit;
    lo->plan_userdata = f;
    *out = f;
    return 0;
}

static void lfetch_hooks(lfetch *f, mw_loop_job *lj, const mw_fetch_opts *o)
{
    mwi_loop_pop3_on_msg_error(lj, on_msg_error, f);
    mwi_loop_pop3_on_store_error(lj, on_store_error);
    mwi_loop_pop3_set_message_cap(lj, o->size_limit);
    const mw_pop3_opts *po = o->pop3;
    if (po->max_line) mwi_loop_pop3_set_max_line(lj, po->max_line);
    mwi_loop_pop3_set_window_bytes(lj, MW_POP3_WINDOW_BYTES);
    mwi_loop_pop3_set_login(lj, po->version >= 2 ? po->token_fn : NULL,
                            po->version >= 2 ? po->token_userdata : NULL, po->msex);
    if (f->filter) mwi_loop_pop3_on_headers(lj, on_headers, on_top_fail, f);
    if (f->filter && lj->loop) mwi_loop_pop3_on_headers_wait(lj, on_filter_wait, on_filter_drop);
}

int mw_loop_add_fetch(mw_loop *loop, mw_loop_job **out, const mw_fetch_opts *o,
                      mw_loop_fetch_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (err) mw_error_clear(err);
    int rc = mwi_fetch_check_opts(o, err);
    if (!rc) rc = check_loop_opts(o, err);
    if (rc) return rc;
    lfetch *f;
    mw_loop_pop3_opts lo;
    mw_tls_opts tls;
    if ((rc = lfetch_new(&f, o, &lo, &tls, err)) != 0) return rc;
    /* The deferred files of all the loop's fetches under one bound. */
    mwi_store_defer_files(f->c.s, mwi_loop_store_budget(loop));
    f->done = done;
    f->userdata = userdata;
    mw_error tmp;
    memset(&tmp, 0, sizeof tmp);
    mw_loop_job *lj = NULL;
    rc = mw_loop_add_pop3_fetch(loop, &lj, &lo, on_done, f, &tmp);
    if (rc) {
        mwi_fetch_fail(&f->c, rc, "pop3", &tmp, NULL);
        if (err) *err = f->err;
        lfetch_free(f);
        return rc;
    }
    lj->ud_free = lfetch_abandon;
    lfetch_hooks(f, lj, o);
    /* A name is looked up at the job's first step (lconn.h), for the
     * family asked. */
    if (o->pop3->net) lj->family = o->pop3->net->family;
    mw_net_opts no = MW_NET_OPTS_INIT; /* net's rate floor, its default one too */
    if (!o->pop3->net || mw_net_opts_copy(&no, o->pop3->net) == 0)
        mw_loop_set_speed_limit(loop, lj, no.speed_limit, no.speed_time_ms);
    if (out) *out = lj;
    /* Only the scalars, the filter (copied) and the progress callback are
     * read from here on. */
    f->o.host = f->o.store_target = f->o.state_path = NULL;
    f->o.pop3 = NULL;
    f->o.store_opts = NULL;
    f->o.state_opts = NULL;
    return 0;
}

/* ---- the same machine, driven over a blocking stream ------------------------ */

typedef struct driven {
    mw_fetch_result *res;
    mw_error *err;
    int rc;
} driven;

static void driven_done(mw_loop_job *job, const mw_fetch_result *res, const mw_error *err, void *ud)
{
    (void)job;
    driven *d = ud;
    *d->res = *res;
    if (d->err) *d->err = *err;
    d->rc = err->code;
}

/* The POP3 options the machine refuses, in src/pop3's words (pop3.c,
 * validate_opts); the transport's are src/net's. */
static int check_driven_opts(const mw_fetch_opts *o, mw_error *err)
{
    const mw_pop3_opts *po = o->pop3;
    if (!po) return mwi_err_set(err, MW_EINVAL, "fetch: no POP3 options (user, password)");
    if (po->tls < MW_TLS_STARTTLS || po->tls > MW_TLS_IMPLICIT)
        return mwi_err_set(err, MW_EINVAL, "pop3: unknown TLS mode %d", po->tls);
    if (po->retr_mode < MW_POP3_RETR_RETR || po->retr_mode > MW_POP3_RETR_SLOW)
        return mwi_err_set(err, MW_EINVAL, "pop3: unknown retr mode %d", po->retr_mode);
    if (po->max_line && po->max_line < 512)
        return mwi_err_set(err, MW_EINVAL, "pop3: max_line %zu under 512", po->max_line);
    return 0;
}

int mwi_fetch_account_driven(mw_fetch_result *res, const mw_fetch_opts *o, mw_error *err)
{
    mw_fetch_result dummy;
    if (!res) res = &dummy;
    memset(res, 0, sizeof *res);
    if (err) mw_error_clear(err);
    mw_stream *given = o && o->pop3 ? o->pop3->stream : NULL;
    int rc = mwi_fetch_check_opts(o, err);
    if (!rc) rc = check_driven_opts(o, err);
    lfetch *f = NULL;
    mw_loop_pop3_opts lo;
    mw_tls_opts tls;
    if (!rc) rc = lfetch_new(&f, o, &lo, &tls, err);
    mw_loop_job *lj = NULL;
    mw_error tmp;
    memset(&tmp, 0, sizeof tmp);
    lo.tls_opts = NULL; /* the stream's TLS is src/net's, from o->pop3 */
    if (!rc && (rc = mwi_loop_pop3_fetch_new(&lj, &lo, &tmp)) != 0) {
        mwi_fetch_fail(&f->c, rc, "pop3", &tmp, NULL);
        if (err) *err = f->err;
        lfetch_free(f);
    }
    if (rc) {
        if (given) mw_stream_free(given);
        return rc;
    }
    driven d = {res, err, 0};
    f->done = driven_done;
    f->userdata = &d;
    lj->done_fn = on_done;
    lj->userdata = f;
    lfetch_hooks(f, lj, o);
    mwi_loop_pop3_drive(lj, o->host, o->pop3, given);
    return d.rc;
}

/* mw_fetch_account (fetch.h): the loop's POP3 fetch machine driven over a
 * blocking stream, one engine for both APIs. */
int mw_fetch_account(mw_fetch_result *res, const mw_fetch_opts *o, mw_error *err)
{
    return mwi_fetch_account_driven(res, o, err);
}
