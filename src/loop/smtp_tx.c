/* The SMTP transaction (smtp_job.h): MAIL, RCPT, DATA and the message,
 * without blocking, on a loop or under the blocking API (smtp_held.c).
 * The transaction is prepared by mwi_smtp_tx_prepare
 * (src/smtp/transaction.c) on the session shell (the MAIL line, the
 * envelope, the result) and the message encoded by src/smtp/message.c's
 * encoder; here are the order of the commands and what each reply does
 * (RFC 5321 §3.3, RFC 2920 §3.1). */
#include "loop/smtp_job.h"
#include "loop/loop_tls.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SJ_OUT_LOW                                                                                 \
    (64 * 1024) /* refill the DATA stream below this: a chunk (MWI_SMTP_CHUNK) and its end in one  \
                   write */
#define SJ_WHOLE_MAX (256u * 1024 * 1024) /* --downgrade: the message in memory */

static int send_rcpt(sj *p, size_t i)
{
    char line[MWI_SMTP_RCPT_LINE];
    size_t len =
        mwi_smtp_rcpt_line(line, sizeof line, &p->t.m, p->t.dsn, p->t.res->rcpt[i].address);
    if (!len) {
        p->dead = 1;
        mwi_err_set(&p->sh->err, MW_ETOOBIG, "the RCPT command for <%s> would be over %zu octets",
                    p->t.res->rcpt[i].address, sizeof line - 1);
        mwi_sj_finish(p, MW_ETOOBIG, 0);
        return -1;
    }
    return mwi_sj_send(p, S_ENVELOPE, line, len, NULL, "RCPT");
}

/* Queues one BDAT chunk (RFC 3030 §2): the command, then the octets of
 * x->out as they are. */
static int put_bdat(sj *p, int last)
{
    mw_buf *b = &p->t.xf.out;
    char line[64];
    int n = snprintf(line, sizeof line, "BDAT %zu%s", b->len, last ? " LAST" : "");
    if (mwi_sj_send(p, p->state, line, (size_t)n, NULL, "BDAT")) return -1;
    if (b->len && mwi_buf_append(&p->c.out, b->data, b->len)) {
        mwi_err_set(&p->sh->err, MW_ETOOBIG, "the BDAT chunk does not fit the output");
        p->dead = 1;
        mwi_sj_finish(p, MW_ETOOBIG, 0);
        return -1;
    }
    p->job->result.bytes += b->len;
    b->len = 0;
    p->bdat_owed++;
    return 0;
}

/* RFC 3030 §4.2, as transaction.c's bdat_with_envelope: a message that
 * fits one chunk goes with its envelope as BDAT LAST.  1 when it went. */
static int bdat_whole(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    mwi_smtp_xfer *x = &t->xf;
    mwi_smtp_xfer_ahead(x, &t->r, &t->env, t->skip, t->forbid8, p->chunk, t->chunking);
    int whole = !x->rc && !mwi_smtp_src_in_memory(&t->r) && (t->r.eof || t->m.data);
    if (!whole) return 0;
    if ((x->rc = mwi_smtp_data_finish(&x->enc, &x->out, &p->sh->err)) != 0) {
        mwi_sj_finish(p, x->rc, 0);
        return 1;
    }
    t->res->octets = x->enc.out_octets;
    if (put_bdat(p, 1)) return 1;
    t->pipe_bdat = 1;
    p->bdat_owed = 0;
    p->owed++;
    p->waiting = "MAIL";
    return 1;
}

/* The whole message from the caller's source into p->whole (a message
 * in memory is used where it is); NULL, or why not. */
static const char *read_whole(sj *p, const char **data, size_t *len)
{
    const mw_smtp_msg *m = p->msg;
    if (m->data) {
        *data = m->data;
        *len = m->len;
        return NULL;
    }
    size_t cap = 0;
    for (;;) {
        if (p->whole_len + MWI_SMTP_CHUNK > cap) {
            if (cap >= SJ_WHOLE_MAX) return "over 256 MiB (--downgrade holds it in memory)";
            size_t nc = cap ? cap * 2 : 2 * MWI_SMTP_CHUNK;
            char *nb = realloc(p->whole, nc);
            if (!nb) return "out of memory";
            p->whole = nb;
            cap = nc;
        }
        long n = m->read ? m->read(p->whole + p->whole_len, MWI_SMTP_CHUNK, m->read_userdata)
                         : (long)read(m->fd, p->whole + p->whole_len, MWI_SMTP_CHUNK);
        if (n < 0 && !m->read && errno == EINTR) continue;
        if (n < 0) return "cannot read the message";
        if (n == 0) break;
        p->whole_len += (size_t)n;
    }
    *data = p->whole;
    *len = p->whole_len;
    return NULL;
}

/* opts.downgrade: a binary message the server cannot take as it is
 * (no BINARYMIME and CHUNKING) goes re-encoded as 7-bit, BODY=7BIT, as
 * cli/cmd_send.c's --downgrade does it over the blocking session.  0, or
 * -1 when the job ends (QUIT follows). */
static int downgrade(sj *p)
{
    unsigned need = MW_SMTP_CAP_BINARYMIME | MW_SMTP_CAP_CHUNKING;
    if (!p->downgrade || p->msg->body != MW_SMTP_BODY_BINARYMIME ||
        (p->sh->caps.flags & need) == need)
        return 0;
    const char *data = NULL;
    size_t len = 0;
    mw_error derr;
    mw_error_clear(&derr);
    const char *why = read_whole(p, &data, &len);
    if (!why && mw_smtp_downgrade_7bit(data, len, &p->seven, &p->seven_len, &derr) != 0)
        why = derr.message;
    if (why) {
        mwi_err_set(&p->sh->err, MW_EFORMAT, "cannot downgrade the message to 7-bit: %.200s", why);
        mwi_sj_finish(p, MW_EFORMAT, 0);
        return -1;
    }
    if (p->msg != &p->own) p->own = *p->msg;
    p->own.data = p->seven;
    p->own.len = p->seven_len;
    p->own.read = NULL;
    p->own.read_userdata = NULL;
    p->own.fd = -1;
    p->own.size_hint = 0;
    p->own.body = MW_SMTP_BODY_7BIT;
    p->msg = &p->own;
    mwi_lconn_info(&p->c, "the server does not offer BINARYMIME: the message goes re-encoded as "
                          "7-bit (base64)");
    return 0;
}

void mwi_sj_tx_start(sj *p)
{
    if (downgrade(p)) return;
    mwi_smtp_tx *t = &p->t;
    int rc = mwi_smtp_tx_prepare(p->sh, t, p->msg);
    if (rc) {
        mwi_sj_finish(p, rc, 0);
        return;
    }
    mwi_sj_tx_send(p);
}

/* MAIL, and with PIPELINING the RCPTs, DATA or the whole message as BDAT
 * LAST, in one group. */
static void send_group(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    p->owed = 1;
    if (mwi_sj_send(p, S_ENVELOPE, t->mail, t->ml, NULL, "MAIL")) return;
    if (!t->pipelining) return;
    for (size_t i = 0; i < t->res->nrcpt; i++)
        if (send_rcpt(p, i)) return;
    p->rcpt_sent = t->res->nrcpt;
    p->owed += t->res->nrcpt;
    if (t->pipe_data) {
        if (mwi_sj_send(p, S_ENVELOPE, "DATA", 4, NULL, "DATA")) return;
        p->owed++;
    }
    if (t->chunking && (t->m.atleastone || t->res->nrcpt == 1) && bdat_whole(p)) return;
    p->waiting = p->rset_owed ? "RSET" : "MAIL";
}

void mwi_sj_tx_send(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    /* RFC 2920: MAIL, every RCPT and DATA in one write, DATA only when no
     * RCPT outcome could make us stop (transaction.c says why). */
    t->pipe_data = t->pipelining && !t->chunking && (t->m.atleastone || t->res->nrcpt == 1);
    p->rcpt_got = p->rcpt_sent = 0;
    if (p->bdat_dirty) {
        /* A batch after a failed BDAT transfer: RSET first (RFC 3030 §2),
         * in the group with PIPELINING, as transaction.c sends it. */
        p->bdat_dirty = 0;
        p->rset_owed = 1;
        if (mwi_sj_send(p, S_ENVELOPE, "RSET", 4, NULL, "RSET")) return;
        if (!t->pipelining) return; /* MAIL once it is answered */
    }
    send_group(p);
}

static void keep_final(sj *p)
{
    free(p->t.res->final_text);
    p->t.res->final_code = p->reply->code;
    p->t.res->final_text = mwi_smtp_reply_text_dup(p->reply);
}

static void final_reply(sj *p);

/* BDAT after the envelope's replies: the message in chunks (mwi_sj_tx_feed). */
static void start_bdat(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    if (!t->xf.started)
        mwi_smtp_xfer_ahead(&t->xf, &t->r, &t->env, t->skip, t->forbid8, p->chunk, t->chunking);
    p->body_queued = 0;
    p->bdat_owed = p->bdat_chunks = 0;
    p->bdat_rc = 0;
    p->waiting = "BDAT";
    mwi_sj_set_state(p, S_BODY);
    mwi_smtp_reply_init(p->reply);
}

/* After DATA's reply (pipelined or alone): the message, or the refusal. */
static void data_reply(sj *p)
{
    if (p->reply->code != 354) {
        int rc = mwi_smtp_reply_error(p->sh, "DATA refused");
        keep_final(p);
        mwi_sj_finish(p, rc, p->reply->code != 421);
        return;
    }
    mwi_smtp_tx *t = &p->t;
    if (!t->xf.started) /* else encoded while the replies came (mwi_sjb_ahead) */
        mwi_smtp_xfer_ahead(&t->xf, &t->r, &t->env, t->skip, t->forbid8, p->chunk, 0);
    p->body_queued = 0;
    p->waiting = "end of data (.)";
    mwi_sj_set_state(p, S_BODY);
    mwi_smtp_reply_init(p->reply);
}

/* Every RCPT answered: the count and what follows. */
static void after_rcpts(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    mw_smtp_result *res = t->res;
    size_t nacc = 0, nperm = 0;
    if (mwi_smtp_tally_rcpts(res, &nacc, &nperm)) {
        mwi_sj_finish(p, mwi_smtp_reply_error(p->sh, "server closing the connection"), 0);
        return;
    }
    if (nacc == 0 || (res->nrejected && !t->m.atleastone)) {
        int rc = mwi_smtp_rcpt_refusal(p->sh, res, nperm);
        /* A server that took DATA anyway leaves no way out but hanging up. */
        if (t->pipe_data && p->reply->code == 354) p->dead = 1;
        mwi_sj_finish(p, rc, 1);
        return;
    }
    if (t->pipe_bdat) {
        final_reply(p); /* the last reply read was BDAT LAST's */
        return;
    }
    if (t->pipe_data) {
        data_reply(p);
        return;
    }
    if (t->chunking) {
        start_bdat(p);
        return;
    }
    mwi_sj_send(p, S_DATA, "DATA", 4, NULL, "DATA");
}

/* One reply of the envelope, in the order the commands went. */
static void envelope_reply(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    if (p->rset_owed) { /* its outcome does not count, as transaction.c reads it */
        p->rset_owed = 0;
        if (p->reply->code == 421) {
            mwi_sj_finish(p, mwi_smtp_reply_error(p->sh, "server closing the connection"), 0);
        } else if (!t->pipelining) {
            send_group(p);
        } else {
            p->waiting = "MAIL";
            mwi_smtp_reply_init(p->reply);
        }
        return;
    }
    mw_smtp_result *res = t->res;
    size_t idx = p->rcpt_got++;
    int code = p->reply->code;
    p->owed--;
    if (idx == 0) {
        p->mail_code = code;
        if (code != 250) {
            mwi_smtp_reply_error(p->sh, "sender refused");
            p->mail_err = p->sh->err;
            keep_final(p);
            if (!t->pipelining) {
                mwi_sj_finish(p, p->mail_err.code, 1);
                return;
            }
        }
    } else if (idx <= res->nrcpt) {
        mwi_smtp_rcpt_reply(p->sh, &res->rcpt[idx - 1]);
        if (!t->pipelining && code == 421) {
            mwi_sj_finish(p, mwi_smtp_reply_error(p->sh, "server closing the connection"), 0);
            return;
        }
    }
    if (!t->pipelining) {
        if (p->rcpt_sent < res->nrcpt) {
            p->owed++;
            send_rcpt(p, p->rcpt_sent++);
            return;
        }
        after_rcpts(p);
        return;
    }
    if (p->owed) {
        p->waiting = p->rcpt_got <= res->nrcpt ? "RCPT" : "DATA";
        mwi_smtp_reply_init(p->reply);
        return;
    }
    if (p->mail_code != 250) {
        /* DATA taken although MAIL failed: only hanging up ends it. */
        if (t->pipe_data && code == 354) p->dead = 1;
        p->sh->err = p->mail_err;
        mwi_sj_finish(p, p->mail_err.code, 1);
        return;
    }
    after_rcpts(p);
}

/* The reply to the end of the data (RFC 5321 §4.1.1.4). */
static void final_reply(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    keep_final(p);
    if (p->reply->code / 100 != 2) {
        p->bdat_dirty = t->chunking != 0; /* RFC 3030 §2 */
        mwi_sj_finish(p, mwi_smtp_reply_error(p->sh, "message data refused"), 0);
        return;
    }
    t->res->sent = 1;
    for (size_t i = 0; i < t->res->nrcpt; i++)
        t->res->rcpt[i].delivered = t->res->rcpt[i].accepted;
    if (p->b) {
        p->job->result.sent++; /* a batch: messages accepted */
    } else {
        p->job->result.sent = 1;
        p->job->result.messages = 1;
    }
    mwi_sj_finish(p, 0, 0);
}

/* One reply to BDAT, as message.c reads them: the first refusal counts;
 * every reply owed is read; after a refusal no more chunks go (RFC 3030
 * §2: the rest would fail too). */
static void bdat_reply(sj *p)
{
    p->bdat_owed--;
    if (p->reply->code / 100 != 2 && !p->bdat_rc) {
        p->bdat_rc = mwi_smtp_reply_error(p->sh, "message data refused");
        p->bdat_err = p->sh->err;
        p->bdat_dirty = 1;
    }
    if (p->bdat_owed > 0 || (!p->bdat_rc && !p->body_queued)) {
        mwi_smtp_reply_init(p->reply);
        return;
    }
    if (p->body_queued) keep_final(p);
    if (!p->bdat_rc) {
        final_reply(p);
        return;
    }
    p->sh->err = p->bdat_err;
    mwi_sj_finish(p, p->bdat_rc, 0);
}

void mwi_sj_tx_reply(sj *p)
{
    switch (p->state) {
    case S_ENVELOPE:
        envelope_reply(p);
        return;
    case S_DATA:
        data_reply(p);
        return;
    case S_BODY:
        if (p->t.chunking) {
            if (p->bdat_owed) bdat_reply(p); /* else it waits for its BDAT */
            return;
        }
        /* A reply before the end of the data is read as the blocking
         * session reads it: after the whole message went out. */
        if (p->body_queued) final_reply(p);
        return;
    default:
        return;
    }
}

/* A failure of our own in the middle of DATA (the source, 8-bit data for
 * a server without 8BITMIME): the data cannot be aborted (RFC 5321
 * §4.1.1.4), so the connection is dropped and the server discards it. */
static void abort_transfer(sj *p)
{
    mwi_smtp_xfer *x = &p->t.xf;
    if (x->local.code) p->sh->err = x->local;
    if (p->t.chunking && p->bdat_chunks == 0) {
        /* Before any BDAT: nothing reached the server, the session lives. */
        mwi_lconn_info(&p->c, "not sending the message: %s", p->sh->err.message);
        p->bdat_dirty = 1; /* the envelope is open: RSET before the next */
        mwi_sj_finish(p, x->rc, 0);
        return;
    }
    p->dead = 1;
    mwi_lconn_info(&p->c, "aborting the transfer: %s", p->sh->err.message);
    mwi_sj_finish(p, x->rc, 0);
}

/* The message in BDAT chunks of at least MWI_SMTP_CHUNK octets, as
 * message.c cuts them, with at most 16 replies owed under PIPELINING
 * (none without: each chunk waits for its reply). */
static void feed_bdat(sj *p)
{
    mwi_smtp_xfer *x = &p->t.xf;
    size_t window = p->t.pipelining ? 16 : 0;
    while (p->state == S_BODY && !p->body_queued && !p->job->done && !p->bdat_rc &&
           p->bdat_owed <= window && mwi_lconn_pending(&p->c) < SJ_OUT_LOW) {
        if (x->rc < 0) { /* met while encoding ahead */
            abort_transfer(p);
            return;
        }
        if (x->rc == 1) {
            p->t.res->octets = x->enc.out_octets;
            if (put_bdat(p, 1) == 0) p->body_queued = 1;
            return;
        }
        x->rc = mwi_smtp_xfer_more(x, &p->t.r, p->t.forbid8, p->chunk);
        if (x->rc < 0) {
            abort_transfer(p);
            return;
        }
        if (x->rc == 0 && x->out.len >= MWI_SMTP_CHUNK) {
            if (put_bdat(p, 0)) return;
            p->bdat_chunks++;
        }
    }
}

void mwi_sj_tx_feed(sj *p)
{
    if (p->t.chunking) {
        feed_bdat(p);
        return;
    }
    mwi_smtp_xfer *x = &p->t.xf;
    /* Below SJ_OUT_LOW the output is topped up; the end, once encoded and
     * queued, is noted at once (whatever is pending) so that a batch's
     * next envelope goes in the same write (RFC 2920 §3.1). */
    while (p->state == S_BODY && !p->body_queued && !p->job->done &&
           (mwi_lconn_pending(&p->c) < SJ_OUT_LOW || (x->rc == 1 && !x->out.len))) {
        if (x->rc < 0) { /* met while encoding ahead: nothing of it goes */
            abort_transfer(p);
            return;
        }
        if (x->out.len) {
            size_t n = x->out.len;
            if (mwi_lconn_queue_buf(&p->c, &x->out)) {
                mwi_err_set(&p->sh->err, MW_ENOMEM, "out of memory");
                p->dead = 1;
                mwi_sj_finish(p, MW_ENOMEM, 0);
                return;
            }
            p->job->result.bytes += n;
            continue;
        }
        if (x->rc == 1) {
            p->body_queued = 1;
            p->t.res->octets = x->enc.out_octets;
            mwi_lconn_info(&p->c, "(%llu octets of message data)",
                           (unsigned long long)x->enc.out_octets);
            if (p->b) mwi_sjb_cross(p); /* a batch: the next envelope behind it */
            return;
        }
        /* 1: the end is encoded, sent with what is in x->out */
        x->rc = mwi_smtp_xfer_more(x, &p->t.r, p->t.forbid8, p->chunk);
    }
}

/* The transaction's envelope, source and output go (not its result). */
static void tx_release(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    if (!t->built) return;
    free(t->r.pre);
    t->r.pre = NULL;
    mwi_smtp_xout_release(p->sh, &t->xf.out);
    mwi_smtp_env_free(&t->env);
    t->built = 0;
}

/* The Bcc copy (bcc.c's two halves around a transaction of the job's):
 * 1 when it started. */
static int bcc_start(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    if (p->bcc_state || !t->built || !t->res || !t->m.bcc_digest || t->env.nbcc == 0) return 0;
    p->bcc_state = 1;
    mw_error keep = p->sh->err;
    int rc = mwi_smtp_bcc_msg(p->sh, &t->m, &t->env, t->skip, t->res, &p->bcc_msg, &p->bcc_built);
    if (rc) {
        p->bcc_state = 2;
        if (!p->end_rc) {
            p->end_rc = rc;
            p->end_err = p->sh->err;
        } else {
            p->sh->err = keep;
        }
        return 0;
    }
    p->main_res = t->res;
    t->res = NULL;
    p->main_rc = p->end_rc;
    p->bcc_sent = p->job->result.sent; /* the copy does not count (bcc_done) */
    p->main_err = p->end_err;
    p->main_env = t->env; /* bcc_msg's recipients are its Bcc list */
    memset(&t->env, 0, sizeof t->env);
    tx_release(p);
    p->msg = &p->bcc_msg;
    p->body_queued = 0;
    p->bdat_owed = p->bdat_chunks = 0;
    p->bdat_rc = 0;
    mwi_lconn_info(&p->c, "sending the Bcc copy (multipart/digest) to %zu recipients",
                   p->bcc_msg.nrecipients);
    mwi_sj_tx_start(p);
    return 1;
}

/* The Bcc copy's recipients join the first result; the first's failure
 * is the one reported (transaction.c's tx_end). */
static void bcc_done(sj *p)
{
    int keep_sent = p->b ? p->bcc_sent : p->main_res->sent;
    int rc = mwi_smtp_bcc_merge(p->sh, p->main_res, p->t.res, p->end_rc);
    p->t.res = p->main_res;
    p->main_res = NULL;
    p->bcc_state = 2;
    p->job->result.sent = keep_sent;
    if (p->main_rc) {
        p->end_rc = p->main_rc;
        p->end_err = p->main_err;
    } else if (rc != p->end_rc) {
        p->end_rc = rc;
        p->end_err = p->sh->err;
    }
    p->sh->err = p->end_err;
}

void mwi_sj_tx_after(sj *p)
{
    if (p->bcc_state == 1)
        bcc_done(p);
    else if (bcc_start(p))
        return;
    if (p->job->done) return;
    if (p->b) /* a batch: this message reported, the next one */
        mwi_sjb_after(p);
    else
        mwi_sj_send(p, S_QUIT, "QUIT", 4, NULL, "QUIT");
}

void mwi_sj_tx_free(sj *p)
{
    mwi_smtp_tx *t = &p->t;
    tx_release(p);
    if (p->main_res) { /* ended during the Bcc copy */
        mwi_smtp_bcc_merge(p->sh, p->main_res, t->res, 0);
        t->res = p->main_res;
        p->main_res = NULL;
    }
    if (p->result_out && !*p->result_out) {
        *p->result_out = t->res;
    } else {
        mw_smtp_result_free(t->res);
    }
    t->res = NULL;
}

/* The reply in p->reply is the outcome: the job ends with it. */
static int salvaged(sj *p, const char *why)
{
    char label[sizeof p->sh->err.message + 64];
    snprintf(label, sizeof label, "message data refused (the server replied, then %.120s)", why);
    int rc = mwi_smtp_reply_error(p->sh, label);
    p->dead = 1;
    if (p->t.res) {
        p->t.res->final_code = p->reply->code;
        free(p->t.res->final_text);
        p->t.res->final_text = mwi_smtp_reply_text_dup(p->reply);
    }
    mwi_sj_finish(p, rc, 0);
    return 1;
}

/* The server may reply in the middle of the data and close (RFC 5321
 * §4.1.1.4): a write fails, and the reply, already received, is the real
 * reason.  Reads what is there without waiting (under the blocking API,
 * smtp_held.c's salvage_read has put it in the input); 1 when it held a
 * complete reply (the job ends). */
int mwi_sj_salvage_reply(sj *p, const char *why)
{
    /* Read already, held until the end of the data went out (process()). */
    if (p->reply->complete) return salvaged(p, why);
    char buf[4096];
    size_t have = p->c.in_len < sizeof buf ? p->c.in_len : sizeof buf, start = 0;
    memcpy(buf, p->c.in, have);
    for (int eof = 0; have < sizeof buf && !eof;) {
        size_t n = 0;
        int want = 0;
        mw_error tmp = {0};
        int rc = p->c.tls
                     ? mwi_ltls_read(p->c.tls, buf + have, sizeof buf - have, &n, &want, &eof, &tmp)
                     : mwi_lplain_read(p->job->fd, buf + have, sizeof buf - have, &n, &eof, &tmp);
        if (rc || !n) break;
        have += n;
    }
    /* p->reply goes on from the lines process() fed it already. */
    char *nl;
    while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
        size_t len = (size_t)(nl - (buf + start));
        if (len > 0 && buf[start + len - 1] == '\r') len--;
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, buf + start, len);
        mw_error tmp = {0};
        int fr = mwi_smtp_reply_feed(p->reply, buf + start, len, &tmp);
        start = (size_t)(nl - buf) + 1;
        if (fr < 0) return 0;
        if (fr == 1) return salvaged(p, why);
    }
    return 0;
}
