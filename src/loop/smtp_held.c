/* The loop's SMTP batch held between messages, over a blocking stream
 * (smtp_held.h): the machine of smtp_job.c in external I/O mode (lconn.h),
 * its batch held (smtp_batch.c, mwi_sjb_hold).  The driver writes what the
 * job queued (topping it up from the message, as lconn's do_write does),
 * reads what the stream has, lets the job take it, and puts TLS up when
 * the job asks, so proxies, pins, client certificates, a caller's stream
 * and cancel tokens are the stream's (src/net), as pop3_drive.c does for
 * POP3.
 *
 * A write that fails during the data first reads what the server said
 * before closing (salvage_read), for smtp_tx.c's salvage. */
#include "loop/smtp_held.h"
#include "loop/smtp_job.h"
#include "net/stream.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct mwi_smh {
    mw_loop_job *job;
    sj *p;
    char *host;
    mw_tls_opts tls; /* copied from src/smtp's options */
    int tls_given;
    mw_net_opts net;
    mw_stream *s;
    int64_t deadline;
    /* The message in hand and its outcome (next / done). */
    const mw_smtp_msg *pending;
    int got, rc;
    mw_error err;
    /* A batch (mwi_smh_batch): the caller's callbacks, its first index. */
    mw_smtp_next_fn bnext;
    mw_smtp_done_fn bdone;
    void *bud;
    size_t base;
    int bmore;
};

static void drive_fail(mwi_smh *h, int rc, const mw_error *e)
{
    mwi_lconn_ext_fail(&h->p->c, rc, e);
}

/* The operation's deadline: the job's (max-time, a transaction's) or the
 * open's, whichever comes first. */
static int64_t op_deadline(const mwi_smh *h)
{
    return h->p->c.total_deadline < h->deadline ? h->p->c.total_deadline : h->deadline;
}

/* The job asked for TLS: the stream is wrapped (its handshake, checks). */
static int drive_tls(mwi_smh *h)
{
    mw_error e;
    memset(&e, 0, sizeof e);
    mw_tls_opts t = h->tls;
    if (!t.servername && *h->host) t.servername = h->host;
    int rc = mwi_lconn_ext_tls(&h->p->c, &h->s, &t, op_deadline(h), h->tls.cert_file != NULL, &e);
    if (rc) {
        h->p->dead = 1;
        drive_fail(h, rc, &e);
    }
    return rc;
}

static int64_t io_deadline(const mwi_smh *h)
{
    return mwi_deadline_min(op_deadline(h), h->net.io_timeout_ms);
}

/* A write failed during the data: the server may have replied before
 * closing (RFC 5321 §4.1.1.4).  What it sent goes into the input, within
 * 2 s (a bound: such a reply is already on its way), for smtp_tx.c's
 * salvage to read. */
static void salvage_read(mwi_smh *h)
{
    mwi_lconn *c = &h->p->c;
    int64_t dl = mw_now_ms() + 2000;
    if (c->total_deadline < dl) dl = c->total_deadline;
    mw_error tmp = {0};
    while (c->in_len < c->in_cap) {
        size_t got = 0;
        if (mw_stream_read(h->s, c->in + c->in_len, c->in_cap - c->in_len, &got, dl, &tmp) || !got)
            break;
        c->in_len += got;
    }
}

/* The blocking sessions' words for a read that failed, so that both engines
 * say the same (as pop3_drive.c's read_failed). */
static int read_failed(const mwi_smh *h, int rc, mw_error *e)
{
    if (rc == 0) {
        h->p->c.eof = 1;
        return mwi_err_set(e, MW_ENET, "the server closed the connection while reading a line");
    }
    if (rc != MW_ETIMEOUT) return rc;
    char m[sizeof e->message];
    snprintf(m, sizeof m, "%s", e->message);
    char *w = strstr(m, " while ");
    if (w) *w = '\0';
    return mwi_err_set(e, MW_ETIMEOUT, "%s while reading a line", m);
}

/* One round: write what is queued (then the job tops it up), else read
 * and process. */
static void drive_round(mwi_smh *h)
{
    mwi_lconn *c = &h->p->c;
    mw_error e; /* only its code and message are read (drive_fail), once set */
    e.code = 0;
    e.message[0] = '\0';
    size_t pending = mwi_lconn_pending(c);
    if (!pending && c->ops->feed) { /* the message's next part, as do_write asks (lconn.c) */
        c->ops->feed(c->impl);
        if (h->job->done) return;
        pending = mwi_lconn_pending(c);
    }
    if (pending) {
        int rc = mwi_lconn_ext_write(c, h->s, io_deadline(h), &e);
        if (rc) {
            if (h->p->state == S_BODY) salvage_read(h);
            drive_fail(h, rc, &e);
            return;
        }
        /* A reply read ahead (the final one, held until the data went
         * out) or more input waits for this write: take it now. */
        c->ops->process(c->impl);
        return;
    }
    if (c->ops->ahead) { /* before the read blocks: the next message's work */
        c->ops->ahead(c->impl);
        if (h->job->done || mwi_lconn_pending(c)) return;
    }
    size_t got = 0;
    int rc = mwi_lconn_ext_read(c, h->s, io_deadline(h), &got, &e);
    if (rc || !got) rc = read_failed(h, rc, &e);
    if (rc) {
        if (c->in_len < c->in_cap) h->p->dead = 1; /* a read failed, not a full input */
        drive_fail(h, rc, &e);
        return;
    }
    c->ops->process(c->impl);
}

/* Drives until the job waits, held, with nothing to write, or is over. */
static void drive(mwi_smh *h)
{
    mwi_lconn *c = &h->p->c;
    while (!h->job->done) {
        if (c->handshaking) {
            if (drive_tls(h)) break;
            continue;
        }
        if (h->p->state == S_HELD && !mwi_lconn_pending(c)) break;
        drive_round(h);
    }
}

static int next_cb(mw_loop_job *job, size_t index, mw_smtp_msg *msg, void *ud)
{
    (void)job;
    (void)index;
    mwi_smh *h = ud;
    if (h->bnext) {
        if (h->bmore <= 0) return 0;
        h->bmore = h->bnext(index - h->base, msg, h->bud);
        return h->bmore > 0 ? 1 : 0; /* 0 or a failure: held, the batch returns */
    }
    if (!h->pending) return 0; /* none yet: held */
    *msg = *h->pending;
    h->pending = NULL;
    return 1;
}

static void done_cb(mw_loop_job *job, size_t index, int rc, const mw_smtp_result *r,
                    const mw_error *e, void *ud)
{
    (void)job;
    (void)index;
    (void)r; /* handed out through result_out (smtp_tx.c, mwi_sj_tx_free) */
    mwi_smh *h = ud;
    if (h->bdone) {
        h->bdone(index - h->base, rc, r, e, h->bud);
        return;
    }
    h->got = 1;
    h->rc = rc;
    h->err = *e;
}

/* The loop job's options from src/smtp's (checked there). */
static void opts_from(mw_loop_smtp_opts *lo, const mw_smtp_opts *so, const char *host,
                      unsigned port)
{
    mw_loop_smtp_opts d = MW_LOOP_SMTP_OPTS_INIT;
    *lo = d;
    lo->host = host;
    lo->port = port;
    lo->tls = so->tls;
    lo->user = so->user;
    lo->password = so->password;
    lo->token = so->token;
    lo->authzid = so->authzid;
    lo->auth = so->sasl_mechs;
    lo->allow_plaintext = so->allow_plaintext;
    lo->sasl_ir = so->sasl_ir;
    lo->queue = so->queue;
    lo->helo = so->client;
    lo->trace = so->trace;
    lo->trace_userdata = so->trace_userdata;
    lo->trace_secrets = so->trace_secrets;
    if (so->version >= 2) {
        lo->token_fn = so->token_fn;
        lo->token_userdata = so->token_userdata;
    }
}

void mwi_smh_free(mwi_smh *h)
{
    if (!h) return;
    if (h->p) h->p->c.ext_stream = NULL;
    mw_stream_free(h->s);
    mwi_sj_external_free(h->job);
    free(h->host);
    free(h);
}

int mwi_smh_open(mwi_smh **out, const char *host, unsigned port, const mw_smtp_opts *so,
                 mw_stream *given, int64_t deadline, int *stop, mw_error *err)
{
    *out = NULL;
    *stop = 0;
    mwi_smh *h = calloc(1, sizeof *h);
    if (h) h->host = strdup(host ? host : "");
    if (!h || !h->host) {
        free(h);
        mw_stream_free(given);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    mw_net_opts nd = MW_NET_OPTS_INIT;
    h->net = so->net ? *so->net : nd;
    if (mw_tls_opts_copy(&h->tls, so->tls_opts) != 0) {
        mwi_smh_free(h);
        mw_stream_free(given);
        return mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported",
                           so->tls_opts->version);
    }
    h->deadline = deadline;
    mw_loop_smtp_opts lo;
    opts_from(&lo, so, h->host, port);
    mw_loop_smtp_batch b = MW_LOOP_SMTP_BATCH_INIT;
    b.next = next_cb;
    b.done = done_cb;
    b.userdata = h;
    b.no_message_pipelining = 1; /* one message at a time, as mw_smtp_send */
    int rc = mwi_sj_external_new(&h->job, &lo, &b, err);
    if (!rc) rc = mwi_sjb_hold(h->job->impl);
    if (rc) {
        mwi_smh_free(h);
        mw_stream_free(given);
        return rc;
    }
    h->p = h->job->impl;
    h->p->tlspolicy = so->tlspolicy;
    h->p->tlspolicy_ud = so->tlspolicy_userdata;
    mwi_lconn *c = &h->p->c;
    c->io_timeout_ms = h->net.io_timeout_ms;
    if (given) {
        h->s = given;
    } else {
        mw_error e;
        memset(&e, 0, sizeof e);
        mwi_lconn_info(c, "connecting to %s port %u", h->host, port);
        if ((rc = mw_stream_tcp(&h->s, h->host, port, &h->net, &e)) != 0) {
            h->s = NULL;
            h->p->sh->err = e;
            h->p->dead = 1;
            mwi_sj_open_fail(h->p, rc);
        }
    }
    if (!h->job->done) {
        if (h->net.cancel) mwi_stream_set_cancel(h->s, h->net.cancel);
        c->connecting = 0;
        c->ops->connected(c->impl);
        drive(h);
    }
    if (h->job->done) {
        rc = h->job->err.code ? h->job->err.code : MW_EPROTO;
        if (err) *err = h->p->sh->err.code ? h->p->sh->err : h->job->err;
        *stop = h->p->in_auth;
        mwi_smh_free(h);
        return rc;
    }
    h->deadline = MW_NO_DEADLINE;
    *out = h;
    return 0;
}

int mwi_smh_send(mwi_smh *h, const mw_smtp_msg *m, int tx_max_time_ms, mw_smtp_result **result,
                 mw_error *err)
{
    if (result) *result = NULL;
    if (!mwi_smh_alive(h))
        return mwi_err_set(err, MW_ESTATE,
                           "the session is not ready to send (the connection failed earlier)");
    sj *p = h->p;
    mw_smtp_result *res = NULL;
    h->pending = m;
    h->got = 0;
    p->result_out = &res;
    p->tx_max_time_ms = tx_max_time_ms;
    h->deadline = tx_max_time_ms > 0 ? mw_now_ms() + tx_max_time_ms : MW_NO_DEADLINE;
    int rc = mwi_sjb_push(p);
    /* What arrived while held (replies read ahead) is the next command's. */
    if (!rc && !h->job->done && p->c.in_len) p->c.ops->process(p->c.impl);
    if (!rc) drive(h);
    p->result_out = NULL;
    h->pending = NULL;
    h->deadline = MW_NO_DEADLINE;
    if (!rc && !h->got) {
        rc = h->job->err.code ? h->job->err.code : MW_ESTATE;
        if (err) *err = h->job->err;
    } else if (!rc) {
        rc = h->rc;
        if (err) *err = h->err;
    }
    if (result)
        *result = res;
    else
        mw_smtp_result_free(res);
    return rc;
}

int mwi_smh_batch(mwi_smh *h, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud,
                  int tx_max_time_ms, int pipelining, mw_error *err)
{
    if (!mwi_smh_alive(h))
        return mwi_err_set(err, MW_ESTATE,
                           "the session is not ready to send (the connection failed earlier)");
    sj *p = h->p;
    h->bnext = next;
    h->bdone = done;
    h->bud = ud;
    h->bmore = 1;
    h->base = (size_t)h->job->result.messages;
    p->tx_max_time_ms = tx_max_time_ms;
    mwi_sjb_message_pipelining(p, pipelining);
    mwi_sjb_ask_ahead(p, 1);
    int rc = mwi_sjb_push(p);
    if (!rc && !h->job->done && p->c.in_len) p->c.ops->process(p->c.impl);
    if (!rc) drive(h);
    mwi_sjb_message_pipelining(p, 0);
    mwi_sjb_ask_ahead(p, 0);
    h->bnext = NULL;
    h->bdone = NULL;
    if (rc) return mwi_err_set(err, rc, "the session is not held");
    if (h->job->done && h->job->err.code) {
        if (err) *err = h->job->err;
        return h->bmore < 0 ? h->bmore : h->job->err.code;
    }
    if (h->bmore < 0)
        return mwi_err_set(err, h->bmore, "the batch's next callback ended it: %s",
                           mw_strerror(h->bmore));
    return 0;
}

int mwi_smh_quit(mwi_smh *h, mw_error *err)
{
    if (!mwi_smh_alive(h)) return mwi_err_set(err, MW_ESTATE, "the session is not ready");
    int rc = mwi_sjb_release(h->p);
    if (!rc && !h->job->done && h->p->c.in_len) h->p->c.ops->process(h->p->c.impl);
    if (!rc) drive(h);
    if (rc) return mwi_err_set(err, rc, "the session is not held");
    if (!h->job->result.quit_ok) {
        rc = h->job->err.code ? h->job->err.code : MW_EPROTO;
        if (err) *err = h->p->sh->err.code ? h->p->sh->err : h->job->err;
        return rc;
    }
    return 0;
}

int mwi_smh_alive(const mwi_smh *h)
{
    return h && h->job && mw_loop_smtp_alive(h->job);
}

int mwi_smh_tls_info(const mwi_smh *h, mw_tls_info *out)
{
    if (!h || !h->s || !h->p->c.ext_tls_up) return MW_EUNSUPPORTED;
    return mw_stream_tls_info(h->s, out);
}

const mw_smtp *mwi_smh_session(const mwi_smh *h)
{
    return h ? h->p->sh : NULL;
}
