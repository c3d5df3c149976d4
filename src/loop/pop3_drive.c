/* The POP3 job driven over a blocking stream (pop3_job.h, p3l_drive):
 * the same machine as on the loop, its connection half in external I/O
 * mode (lconn.h).  The driver writes what the job queued, reads what the
 * stream has, lets the job take it, and puts TLS up when the job asks
 * (STLS +OK, or implicit TLS), so every transport feature of src/net
 * (proxies, pins, CRLs, client certificates, a caller's stream, cancel
 * tokens, rate floors) is the stream's.  mw_fetch_account runs a whole
 * fetch job so (mwi_loop_pop3_drive); the blocking POP3 API a job held
 * between its commands (pop3_held.c). */
#include "loop/pop3_job.h"
#include "net/stream.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void drive_fail(p3l_drive *d, int rc, const mw_error *e)
{
    mwi_lconn_ext_fail(&d->p->c, rc, e);
}

/* A connection: the caller's stream the first time, else a new one. */
static int drive_open(p3l_drive *d)
{
    mw_error e;
    memset(&e, 0, sizeof e);
    mw_stream_free(d->s);
    d->s = NULL;
    d->p->c.ext_stream = NULL;
    if (d->given && !d->used_given) {
        d->s = d->given;
        d->used_given = 1;
    } else {
        int rc = mw_stream_tcp(&d->s, d->host, d->p->c.port, d->net, &e);
        if (rc) {
            d->s = NULL;
            drive_fail(d, rc, &e);
            return rc;
        }
    }
    if (d->cancel) mwi_stream_set_cancel(d->s, d->cancel);
    if (d->command_timeout_ms > 0) d->deadline = mw_now_ms() + d->command_timeout_ms;
    d->p->c.connecting = 0;
    if (!d->p->quiet) mwi_lconn_info(&d->p->c, "connected to %s port %u", d->host, d->p->c.port);
    d->p->c.ops->connected(d->p->c.impl);
    return 0;
}

/* The job asked for TLS: the stream is wrapped (its handshake, its checks). */
static int drive_tls(p3l_drive *d)
{
    mw_error e;
    memset(&e, 0, sizeof e);
    mw_tls_opts t;
    if (mw_tls_opts_copy(&t, d->tls_opts) != 0) {
        mwi_err_set(&e, MW_EINVAL, "mw_tls_opts version %u not supported", d->tls_opts->version);
        drive_fail(d, MW_EINVAL, &e);
        return MW_EINVAL;
    }
    if (!t.servername && d->host && *d->host) t.servername = d->host;
    int rc = mwi_lconn_ext_tls(&d->p->c, &d->s, &t, d->deadline,
                               d->tls_opts && d->tls_opts->cert_file, &e);
    if (rc) drive_fail(d, rc, &e);
    return rc;
}

static int64_t io_deadline(const p3l_drive *d)
{
    return mwi_deadline_min(d->deadline, d->io_timeout_ms);
}

/* The blocking sessions' words for a read that failed,
 * so that both engines say the same. */
static int read_failed(const p3l_drive *d, int rc, mw_error *e)
{
    const char *what = d->p->in_body ? "reading data" : "reading a line";
    if (rc == 0) return mwi_err_set(e, MW_ENET, "the server closed the connection while %s", what);
    if (rc != MW_ETIMEOUT) return rc;
    if (mwi_stream_limit_hit(d->s)) {
        char m[sizeof e->message];
        snprintf(m, sizeof m, "%s", e->message);
        char *w = strstr(m, " while ");
        if (w) *w = '\0';
        return mwi_err_set(e, MW_ETIMEOUT, "%s while %s", m, what);
    }
    if (d->deadline != MW_NO_DEADLINE && mw_now_ms() >= d->deadline)
        return mwi_err_set(e, MW_ETIMEOUT, "operation deadline passed while %s", what);
    return mwi_err_set(e, MW_ETIMEOUT, "no progress for %d ms while %s", d->io_timeout_ms, what);
}

/* One round: write what is queued, else read and process. */
static void drive_round(p3l_drive *d)
{
    mwi_lconn *c = &d->p->c;
    mw_error e;
    memset(&e, 0, sizeof e);
    if (mwi_lconn_pending(c)) {
        int rc = mwi_lconn_ext_write(c, d->s, io_deadline(d), &e);
        if (rc) drive_fail(d, rc, &e);
        return;
    }
    size_t got = 0;
    int rc = mwi_lconn_ext_read(c, d->s, io_deadline(d), &got, &e);
    if (rc || !got) rc = read_failed(d, rc, &e);
    if (rc) {
        drive_fail(d, rc, &e);
        return;
    }
    c->ops->process(c->impl);
}

void mwi_p3l_drive_resume(p3l_drive *d)
{
    mwi_lconn *c = &d->p->c;
    if (!d->p->job->done && mwi_lconn_pending(c)) drive_round(d);
    if (!d->p->job->done && c->in_len) c->ops->process(c->impl);
}

void mwi_p3l_drive(p3l_drive *d, int (*until)(const p3l *p))
{
    mw_loop_job *j = d->p->job;
    while (!j->done) {
        if (d->p->c.connecting) {
            if (d->used_given) { /* src/fetch's words for a caller-made stream */
                mwi_p3l_end(d->p, MW_ENET,
                            "cannot reconnect over a caller-made stream; the rest is left for "
                            "the next run");
                break;
            }
            if (drive_open(d)) break;
            continue;
        }
        if (d->p->c.handshaking) {
            if (drive_tls(d)) break;
            continue;
        }
        if (until && until(d->p) && !mwi_lconn_pending(&d->p->c)) break;
        /* A fetch's command deadline bounds the login and the listings,
         * as src/pop3's did (mw_pop3_opts.command_timeout_ms). */
        int st = d->p->state;
        if (d->p->mode == P3L_FETCH && (st == S_TRANSFER || st == S_TOP || st == S_QUIT))
            d->deadline = MW_NO_DEADLINE;
        drive_round(d);
    }
}

void mwi_p3l_drive_free(p3l_drive *d)
{
    if (d->given && !d->used_given) mw_stream_free(d->given);
    d->given = NULL;
    if (d->p) d->p->c.ext_stream = NULL;
    mw_stream_free(d->s);
    d->s = NULL;
}

void mwi_loop_pop3_drive(mw_loop_job *j, const char *host, const mw_pop3_opts *po, mw_stream *given)
{
    mw_net_opts ndflt = MW_NET_OPTS_INIT;
    const mw_net_opts *net = po->net ? po->net : &ndflt;
    p3l_drive d;
    memset(&d, 0, sizeof d);
    d.p = j->impl;
    d.host = host ? host : "";
    d.tls_opts = po->tls_opts;
    d.net = net;
    d.io_timeout_ms = net->io_timeout_ms;
    d.cancel = net->cancel;
    d.given = given;
    d.command_timeout_ms = po->command_timeout_ms;
    d.deadline = MW_NO_DEADLINE;
    d.p->c.connecting = 1;
    mwi_p3l_drive(&d, NULL);
    mwi_p3l_drive_free(&d);
    j->ops->destroy(j);
    j->result.code = j->err.code;
    j->result.err = &j->err;
    if (j->done_fn) j->done_fn(j, &j->result, j->userdata);
    free(j);
}
