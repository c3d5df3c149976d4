/* A queue run: each due entry's pending recipients tried over a session
 * per account and sender, the outcome recorded in env/ID before the next
 * step, the entry removed only when nothing is left pending. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mailwire/queue.h"

#include "queue/queue_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static long backoff(const mw_queue *q, unsigned attempts)
{
    long b = q->backoff_min_s;
    for (unsigned i = 1; i < attempts && b < q->backoff_max_s; i++)
        b *= 2;
    return b < q->backoff_max_s ? b : q->backoff_max_s;
}

static void set_rcpt(mw_queue_rcpt *r, int state, int code, const char *enh, const char *text)
{
    r->state = state;
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enh ? enh : "");
    char *t = mwi_queue_one_line(text);
    if (t) {
        free(r->text);
        r->text = t;
    }
}

static int same_key(const mw_queue_entry *a, const char *acct, const char *sender)
{
    const char *x = a->account ? a->account : "";
    return !strcmp(x, acct ? acct : "") && !strcmp(a->sender, sender ? sender : "");
}

/* The outcome of one transaction, onto the entry's pending recipients. */
static void apply_result(mw_queue_entry *e, const size_t *idx, size_t npend, int rc,
                         const mw_smtp_result *r, const mw_error *err)
{
    for (size_t k = 0; k < npend; k++) {
        mw_queue_rcpt *q = &e->rcpt[idx[k]];
        const mw_smtp_rcpt *p = NULL;
        if (r)
            for (size_t j = 0; j < r->nrcpt && !p; j++)
                if (!strcmp(r->rcpt[j].address, q->address)) p = &r->rcpt[j];
        if (p && p->code && !p->accepted) {
            set_rcpt(q, p->permanent ? MW_QUEUE_FAILED : MW_QUEUE_PENDING, p->code, p->enhanced,
                     p->text);
        } else if (p && p->accepted && r->sent) {
            set_rcpt(q, MW_QUEUE_SENT, r->final_code, "", r->final_text);
        } else if (r && r->final_code >= 400) {
            /* MAIL or the data refused: for every recipient of the transaction. */
            set_rcpt(q, r->final_code >= 500 ? MW_QUEUE_FAILED : MW_QUEUE_PENDING, r->final_code,
                     err ? err->enhanced : "",
                     r->final_text ? r->final_text
                     : err         ? err->message
                                   : "");
        } else if (rc == MW_EFORMAT || rc == MW_EINVAL || rc == MW_ETOOBIG ||
                   rc == MW_EUNSUPPORTED) {
            /* The message itself cannot go: no later attempt would differ. */
            set_rcpt(q, MW_QUEUE_FAILED, 554, rc == MW_ETOOBIG ? "5.3.4" : "5.6.0",
                     err ? err->message : mw_strerror(rc));
        } else {
            set_rcpt(q, MW_QUEUE_PENDING, err ? err->reply_code : 0, err ? err->enhanced : "",
                     err && err->message[0] ? err->message : mw_strerror(rc));
        }
    }
}

/* One attempt at e's pending recipients over *s with the message on fd
 * (or, when trc is set, the failure to get that far: terr), recorded in
 * e's recipients, attempts and next attempt.  A session left unusable is
 * freed (*s = NULL).  Returns how many recipients are still pending. */
size_t mwi_queue_attempt(const mw_queue *q, mw_queue_entry *e, mw_smtp **s, int fd, int trc,
                         mw_error *terr, int maxtime_ms)
{
    size_t npend = 0;
    size_t *idx = calloc(e->nrcpt, sizeof *idx);
    const char **rl = calloc(e->nrcpt, sizeof *rl);
    mw_smtp_result *r = NULL;
    if (!idx || !rl) {
        trc = mwi_err_set(terr, MW_ENOMEM, "out of memory");
        for (size_t k = 0; k < e->nrcpt; k++)
            npend += e->rcpt[k].state == MW_QUEUE_PENDING;
        goto out;
    }
    for (size_t k = 0; k < e->nrcpt; k++)
        if (e->rcpt[k].state == MW_QUEUE_PENDING) {
            rl[npend] = e->rcpt[k].address;
            idx[npend++] = k;
        }
    if (*s && !trc && fd >= 0) {
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.fd = fd;
        m.originator = e->sender;
        m.recipients = rl;
        m.nrecipients = npend;
        /* The queued message already holds what sendmail mode adds
         * (cli/cmd_send.c); Bcc goes. */
        m.rewrite_headers = e->raw ? 0 : MW_SMTP_REWRITE_SENDMAIL;
        m.atleastone = 1;
        m.body = e->body;
        m.dsn_notify = e->dsn_notify;
        m.dsn_ret = e->dsn_ret;
        m.dsn_envid = e->dsn_envid;
        mw_smtp_set_maxtime(*s, maxtime_ms);
        trc = mw_smtp_send(*s, &m, &r);
        if (trc) *terr = *mw_smtp_error(*s);
        if (!mw_smtp_alive(*s)) {
            mw_smtp_free(*s);
            *s = NULL;
        }
    }
    apply_result(e, idx, npend, trc, r, terr);
    npend = 0;
    for (size_t k = 0; k < e->nrcpt; k++)
        npend += e->rcpt[k].state == MW_QUEUE_PENDING;
out:
    e->attempts++;
    e->next_attempt = time(NULL) + backoff(q, e->attempts);
    mw_smtp_result_free(r);
    free(rl);
    free(idx);
    return npend;
}

static size_t count_state(const mw_queue_entry *e, int state)
{
    size_t n = 0;
    for (size_t k = 0; k < e->nrcpt; k++)
        n += e->rcpt[k].state == state;
    return n;
}

/* Past the queue's lifetime: what is still pending fails, with its last
 * reason.  Returns the new number pending: 0. */
static size_t give_up(mw_queue_entry *e)
{
    for (size_t k = 0; k < e->nrcpt; k++) {
        mw_queue_rcpt *r = &e->rcpt[k];
        if (r->state != MW_QUEUE_PENDING) continue;
        char why[Q_MAX_TEXT + 80];
        snprintf(why, sizeof why, "gave up after %u attempts; last: %s", e->attempts,
                 r->text && r->text[0] ? r->text : "no reply");
        set_rcpt(r, MW_QUEUE_FAILED, r->code ? r->code : 0, "4.4.7", why);
    }
    return 0;
}

/* The run's session: one at a time, for one account and sender.  A
 * connection that failed is not tried again for the same key in this
 * run: the entries behind it are deferred with the same error. */
typedef struct {
    mw_smtp *s;
    const char *acct, *sender;
    int failed, rc;
    mw_error err;
} run_conn;

static void conn_close(run_conn *c)
{
    if (c->s) {
        mw_smtp_quit(c->s);
        mw_smtp_free(c->s);
        c->s = NULL;
    }
}

/* c->s made a session for e's key; 0, or the connection's failure (then
 * in *terr too). */
static int conn_for(run_conn *c, const mw_queue_entry *e, const mw_queue_run_opts *ro,
                    mw_error *terr)
{
    if (c->s && !same_key(e, c->acct, c->sender)) {
        conn_close(c);
        c->failed = 0;
    }
    if (c->failed && same_key(e, c->acct, c->sender)) {
        *terr = c->err;
        return c->rc;
    }
    if (c->s) return 0;
    c->acct = e->account;
    c->sender = e->sender;
    mw_error_clear(&c->err);
    c->rc = ro->connect(e, &c->s, &c->err, ro->connect_userdata);
    c->failed = c->rc || !c->s;
    if (!c->failed) return 0;
    if (!c->rc) c->rc = MW_ENET;
    c->s = NULL;
    *terr = c->err;
    return c->rc;
}

/* One attempt at a due entry over the run's session, msg/ID opened for
 * it.  Returns how many recipients are still pending. */
static size_t try_entry(const mw_queue *q, mw_queue_entry *e, run_conn *c,
                        const mw_queue_run_opts *ro, mw_error *terr)
{
    int trc = conn_for(c, e, ro, terr);
    int fd = -1;
    if (c->s && !trc) {
        char p[Q_PATH];
        mwi_queue_path(q, p, "msg", e->id);
        if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
            trc = mwi_queue_sys_err(terr, "open", p, errno);
    }
    size_t npend = mwi_queue_attempt(q, e, &c->s, fd, trc, terr, ro->maxtime_ms);
    if (fd >= 0) close(fd);
    return npend;
}

/* The entry's outcome on disk and to the caller.  Still pending: env/ID
 * rewritten before anything else happens.  Done: the report first (a
 * crash then repeats it, never loses it), then the entry leaves the
 * queue. */
static int record(const mw_queue *q, mw_queue_entry *e, size_t npend, mw_error *terr,
                  const mw_queue_run_opts *ro, mw_queue_stats *stats, mw_error *err)
{
    size_t nfail = count_state(e, MW_QUEUE_FAILED);
    mw_queue_event ev = {0, e, terr->code, terr->code ? terr : NULL};
    int rc;
    if (npend > 0) {
        if ((rc = mwi_queue_save_entry(q, e, err)) != 0) return rc;
        stats->deferred++;
        ev.kind = MW_QUEUE_EV_DEFERRED;
        if (ro->event) ro->event(&ev, ro->event_userdata);
        return 0;
    }
    ev.kind = nfail ? MW_QUEUE_EV_FAILED : MW_QUEUE_EV_SENT;
    if (nfail) {
        if ((rc = mwi_queue_save_entry(q, e, err)) != 0) return rc;
        stats->failed++;
    } else {
        stats->sent++;
    }
    if (ro->event) ro->event(&ev, ro->event_userdata);
    return mwi_queue_remove(q, e->id, err);
}

int mw_queue_run(mw_queue *q, const mw_queue_run_opts *ro, mw_queue_stats *stats, mw_error *err)
{
    mw_queue_stats st0;
    if (!stats) stats = &st0;
    memset(stats, 0, sizeof *stats);
    if (!q || !ro || !ro->connect)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_run: bad arguments");
    if (ro->only && !mwi_queue_valid_id(ro->only))
        return mwi_err_set(err, MW_EINVAL, "queue: bad ID '%s'", ro->only);
    int lk = -1;
    int rc = mwi_queue_lock(q, ro->wait_lock, &lk, err);
    if (rc) return rc;
    mwi_queue_clean_orphans(q);
    mw_queue_entry *v = NULL;
    size_t n = 0;
    if ((rc = mw_queue_list(q, &v, &n, err)) != 0) {
        close(lk);
        return rc;
    }
    run_conn c;
    memset(&c, 0, sizeof c);
    mw_error_clear(&c.err);
    time_t now = time(NULL);
    for (size_t i = 0; i < n && !rc; i++) {
        mw_queue_entry *e = &v[i];
        if (ro->only && strcmp(ro->only, e->id)) continue;
        if (!ro->only && !ro->flush && e->next_attempt > now) continue;
        stats->tried++;
        mw_error terr;
        mw_error_clear(&terr);
        size_t npend = count_state(e, MW_QUEUE_PENDING);
        if (npend > 0 && now - e->created >= q->lifetime_s) npend = give_up(e);
        if (npend > 0) npend = try_entry(q, e, &c, ro, &terr);
        rc = record(q, e, npend, &terr, ro, stats, err);
    }
    conn_close(&c);
    mw_queue_entries_free(v, n);
    /* What is left, counted after the run. */
    mw_queue_entry *left = NULL;
    size_t nleft = 0;
    mw_error lerr;
    if (mw_queue_list(q, &left, &nleft, &lerr) == 0) stats->left = nleft;
    mw_queue_entries_free(left, nleft);
    close(lk);
    return rc;
}
