/* The loop's SMTP batch (loop.h, mw_loop_add_smtp_batch; smtp_job.h):
 * the send job's session kept after each transaction for the next
 * message (mw_smtp_send_batch runs it too, over smtp_held.c).
 * A message is taken from the caller's next callback when its turn comes;
 * with PIPELINING, the next one is taken as soon as the end of the
 * current message's data is queued, and its envelope goes out behind it
 * (RFC 2920 §3.1: message content may be followed by the next group), so
 * the server answers both at once.  Each message's outcome goes to the
 * caller's done callback, in order, exactly once. */
#include "loop/loop_tls.h"
#include "loop/smtp_job.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

typedef struct sjb {
    mw_loop_smtp_batch cb;
    mw_smtp_msg m[2]; /* the caller's: m[slot] is p->t's message, the other nt's */
    int slot;
    size_t index; /* of p->t's message */
    size_t asked; /* messages taken from next */
    int more;     /* next may have more: 1; none: 0; its failure: < 0 */
    int in_hand;  /* p->t's message is not reported yet */
    int crossed;  /* nt holds message nt_index */
    int nt_sent;  /* its envelope went out behind the data (nt_owed replies) */
    size_t nt_index, nt_owed;
    mwi_smtp_tx nt;   /* the next message, prepared */
    int depth, again; /* run()'s trampoline: no recursion message after message */
    int ending;       /* the job is ending (mw_loop_smtp_alive) */
    int64_t deadline; /* the session's own (max_time_ms), between messages */
    int max_time_ms;
    int held; /* next's 0: none yet, wait in S_HELD (mwi_sjb_hold) */
    /* The message after nt (index asked - 1), taken from next and its
     * transaction prepared in at while the server answers
     * (mwi_sjb_ahead): the next take() gives it. */
    mw_smtp_msg ahead;
    int have_ahead;
    mwi_smtp_tx at;
    int ask_ahead; /* the next message also asked for ahead when not crossed */
} sjb;

int mwi_sjb_new(sj *p, const mw_loop_smtp_batch *b, mw_error *err)
{
    if (!b || b->version != MW_LOOP_SMTP_BATCH_VERSION || !b->next || !b->done)
        return mwi_err_set(err, MW_EINVAL,
                           "mw_loop_smtp_batch missing, of another version, or without next "
                           "and done");
    if (!(p->b = calloc(1, sizeof *p->b))) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    p->b->cb = *b;
    p->b->more = 1;
    return 0;
}

/* A prepared transaction that will not be sent: its memory goes. */
static void tx_drop(sj *p, mwi_smtp_tx *t)
{
    mwi_smtp_tx_discard(p->sh, t);
    mw_smtp_result_free(t->res);
    t->res = NULL;
}

void mwi_sjb_free(sj *p)
{
    if (!p->b) return;
    if (p->b->crossed) tx_drop(p, &p->b->nt);
    if (p->b->have_ahead) tx_drop(p, &p->b->at);
    free(p->b);
    p->b = NULL;
}

int mwi_sjb_ending(const sj *p)
{
    return p->b && p->b->ending;
}

/* The transaction prepared ahead moves to *to (its one pointer into
 * itself set again); at owns nothing after. */
static void at_move(sjb *b, mwi_smtp_tx *to)
{
    *to = b->at;
    to->r.m = &to->m;
    b->at.built = 0;
    b->at.res = NULL;
    b->at.r.pre = NULL;
}

/* Asks next for message `asked` into *m: 1 when it gave one (asked is
 * then past it). */
static int ask(sj *p, mw_smtp_msg *m)
{
    sjb *b = p->b;
    if (b->more <= 0 || p->job->cancel_rc) return 0;
    mw_smtp_msg got = MW_SMTP_MSG_INIT; /* *m untouched unless one came */
    int more = b->cb.next(p->job, b->asked, &got, b->cb.userdata);
    if (more == 0 && b->held) return 0; /* none yet: more stays 1 */
    b->more = more;
    if (b->more <= 0) return 0;
    *m = got;
    b->asked++;
    p->job->result.messages++;
    return 1;
}

/* The next message (index asked - 1) into m[k]: 0 none, 1 taken now, 2
 * taken ahead (its transaction in at, for at_move). */
static int take(sj *p, int k)
{
    sjb *b = p->b;
    if (b->have_ahead) {
        b->have_ahead = 0;
        b->m[k] = b->ahead;
        return 2;
    }
    return ask(p, &b->m[k]);
}

/* mwi_smtp_tx_prepare into t, its outcome kept in t (prep_rc, prep_err)
 * and the session's error left as it was: a message prepared before its
 * turn. */
static int prepare(sj *p, mwi_smtp_tx *t, const mw_smtp_msg *m)
{
    mw_error keep = p->sh->err;
    mw_error_clear(&p->sh->err);
    int rc = mwi_smtp_tx_prepare(p->sh, t, m);
    t->prep_rc = rc;
    t->prep_err = p->sh->err;
    p->sh->err = keep;
    return rc;
}

/* The deadline of the transaction starting now: the session's, or
 * tx_max_time_ms from now when that comes first (mw_smtp_set_maxtime). */
static void tx_deadline(sj *p)
{
    sjb *b = p->b;
    p->c.total_deadline = b->deadline;
    p->c.max_time_ms = b->max_time_ms;
    if (p->tx_max_time_ms > 0) {
        int64_t d = mw_now_ms() + p->tx_max_time_ms;
        if (d < p->c.total_deadline) {
            p->c.total_deadline = d;
            p->c.max_time_ms = 0; /* what runs out now is not the session's max-time */
        }
    }
}

/* What one message left in sj, cleared for the next. */
static void tx_reset(sj *p)
{
    p->body_queued = p->end_rc = p->bdat_rc = p->mail_code = 0;
    p->bdat_owed = p->bdat_chunks = 0;
    mw_error_clear(&p->end_err);
    mw_error_clear(&p->mail_err);
    mw_error_clear(&p->bdat_err);
    p->bcc_state = 0;
    free(p->bcc_built);
    p->bcc_built = NULL;
    mwi_smtp_env_free(&p->main_env);
    free(p->whole);
    free(p->seven);
    p->whole = p->seven = NULL;
    p->whole_len = p->seven_len = 0;
    if (p->msg == &p->own) p->msg = NULL;
}

/* p->t's message to done() with rc and e; then its transaction goes. */
static void report(sj *p, int rc, const mw_error *e)
{
    sjb *b = p->b;
    mwi_smtp_tx *t = &p->t;
    if (p->main_res) { /* ended during the Bcc copy: its recipients join */
        mwi_smtp_bcc_merge(p->sh, p->main_res, t->res, 0);
        t->res = p->main_res;
        p->main_res = NULL;
    }
    mw_error er;
    mw_error_clear(&er);
    if (rc) {
        er = *e;
        if (er.code == 0) mwi_err_set(&er, rc, "%s", mw_strerror(rc));
    }
    b->in_hand = 0;
    b->cb.done(p->job, b->index, rc, t->res, &er, b->cb.userdata);
    mwi_sj_tx_free(p); /* result_out is NULL: the result is freed */
    tx_reset(p);
}

/* No more messages (or next failed, or a cancel is pending): QUIT, with
 * the batch's outcome. */
static void quit(sj *p)
{
    sjb *b = p->b;
    p->c.total_deadline = b->deadline;
    p->c.max_time_ms = b->max_time_ms;
    p->end_rc = b->more < 0 ? b->more : 0;
    mw_error_clear(&p->end_err);
    if (p->end_rc)
        mwi_err_set(&p->end_err, p->end_rc, "the batch's next callback ended it: %s",
                    mw_strerror(p->end_rc));
    mwi_sj_send(p, S_QUIT, "QUIT", 4, NULL, "QUIT");
}

/* A held batch with no message: nothing in flight, no io deadline (the
 * session's max-time still counts) until push or release. */
static void hold(sj *p)
{
    sjb *b = p->b;
    p->c.total_deadline = b->deadline;
    p->c.max_time_ms = b->max_time_ms;
    p->c.step_deadline = MW_NO_DEADLINE;
    p->waiting = NULL;
    mw_error_clear(&p->sh->err);
    mwi_smtp_reply_init(p->reply);
    mwi_sj_set_state(p, S_HELD);
}

/* The crossed message becomes p->t: its replies are the next to come. */
static void switch_to_next(sj *p)
{
    sjb *b = p->b;
    b->crossed = 0;
    b->slot ^= 1;
    b->index = b->nt_index;
    b->in_hand = 1;
    p->t = b->nt;
    p->t.r.m = &p->t.m; /* the one pointer into itself */
    /* What nt owned is p->t's now; nt is read again only once crossed,
     * after mwi_smtp_tx_prepare has zeroed it (not twice per message). */
    b->nt.built = 0;
    b->nt.res = NULL;
    b->nt.r.pre = NULL;
    p->msg = &b->m[b->slot];
    mw_error_clear(&p->sh->err);
    tx_deadline(p);
    if (p->t.prep_rc) {
        p->sh->err = p->t.prep_err;
        mwi_sj_finish(p, p->t.prep_rc, 0);
        return;
    }
    if (!b->nt_sent) {
        mwi_sj_tx_send(p);
        return;
    }
    p->rcpt_got = 0;
    p->rcpt_sent = p->t.res->nrcpt;
    p->owed = b->nt_owed;
    p->waiting = "MAIL";
    mwi_sj_set_state(p, S_ENVELOPE);
    mwi_smtp_reply_init(p->reply);
}

/* The next message: the crossed one, or one taken now; else QUIT. */
static void advance(sj *p)
{
    sjb *b = p->b;
    if (b->crossed) {
        switch_to_next(p);
        return;
    }
    int got = take(p, b->slot);
    if (!got) {
        if (b->held && b->more > 0 && !p->job->cancel_rc)
            hold(p);
        else
            quit(p);
        return;
    }
    b->index = b->asked - 1;
    b->in_hand = 1;
    p->msg = &b->m[b->slot];
    mw_error_clear(&p->sh->err);
    tx_deadline(p);
    if (got == 1) {
        mwi_sj_tx_start(p);
        return;
    }
    at_move(b, &p->t);
    if (p->t.prep_rc) {
        p->sh->err = p->t.prep_err;
        mwi_sj_finish(p, p->t.prep_rc, 0);
        return;
    }
    mwi_sj_tx_send(p);
}

/* advance() until a message waits for the server: a message that fails
 * before anything is sent is reported from inside advance(), which asks
 * for the next one here instead of recursing. */
static void run(sj *p)
{
    sjb *b = p->b;
    if (b->depth) {
        b->again = 1;
        return;
    }
    b->depth = 1;
    do {
        b->again = 0;
        advance(p);
    } while (b->again && !p->job->done);
    b->depth = 0;
}

void mwi_sjb_start(sj *p)
{
    p->b->deadline = p->c.total_deadline;
    p->b->max_time_ms = p->c.max_time_ms;
    run(p);
}

void mwi_sjb_after(sj *p)
{
    report(p, p->end_rc, &p->end_err);
    if (!p->job->done) run(p);
}

/* Queues the prepared nt's MAIL, RCPTs and DATA behind the data (the
 * state stays S_BODY, awaiting the final reply).  0, or -1 when the job
 * ended. */
static int send_crossed(sj *p, mwi_smtp_tx *n)
{
    sjb *b = p->b;
    char line[MWI_SMTP_RCPT_LINE];
    for (size_t i = 0; i < n->res->nrcpt; i++) /* a line over the cap: sent in its turn */
        if (!mwi_smtp_rcpt_line(line, sizeof line, &n->m, n->dsn, n->res->rcpt[i].address))
            return 0;
    mw_error keep = p->sh->err;
    const char *waiting = p->waiting;
    n->pipe_data = n->m.atleastone || n->res->nrcpt == 1;
    if (mwi_sj_send(p, S_BODY, n->mail, n->ml, NULL, "MAIL")) return -1;
    for (size_t i = 0; i < n->res->nrcpt; i++) {
        size_t len = mwi_smtp_rcpt_line(line, sizeof line, &n->m, n->dsn, n->res->rcpt[i].address);
        if (mwi_sj_send(p, S_BODY, line, len, NULL, "RCPT")) return -1;
    }
    if (n->pipe_data && mwi_sj_send(p, S_BODY, "DATA", 4, NULL, "DATA")) return -1;
    p->sh->err = keep;
    p->waiting = waiting;
    b->nt_sent = 1;
    b->nt_owed = 1 + n->res->nrcpt + (size_t)n->pipe_data;
    return 0;
}

void mwi_sjb_cross(sj *p)
{
    sjb *b = p->b;
    mwi_smtp_tx *t = &p->t;
    if (b->crossed || b->cb.no_message_pipelining || !t->pipelining || t->chunking ||
        p->downgrade || p->bcc_state || (t->m.bcc_digest && t->env.nbcc > 0))
        return;
    int k = b->slot ^ 1;
    int got = take(p, k);
    if (!got) return;
    b->crossed = 1;
    b->nt_sent = 0;
    b->nt_index = b->asked - 1;
    mwi_smtp_tx *n = &b->nt;
    int rc;
    if (got == 2) { /* prepared while the last replies came (mwi_sjb_ahead) */
        at_move(b, n);
        rc = n->prep_rc;
    } else {
        rc = prepare(p, n, &b->m[k]);
    }
    /* Only a message as the current one (pipelined, DATA) goes behind it;
     * BDAT or a refusal waits for its turn. */
    if (rc || n->chunking || !n->pipelining) return;
    send_crossed(p, n);
}

/* A message taken but never begun goes to done with MW_ESTATE. */
static void not_sent(sj *p, size_t index)
{
    mw_error e;
    mw_error_clear(&e);
    mwi_err_set(&e, MW_ESTATE, "the session is not ready to send (the connection failed earlier)");
    p->b->cb.done(p->job, index, MW_ESTATE, NULL, &e, p->b->cb.userdata);
}

void mwi_sjb_abandon(sj *p, int code)
{
    sjb *b = p->b;
    b->ending = 1;
    if (b->in_hand) report(p, code ? code : MW_ESTATE, &p->sh->err);
    if (b->crossed) {
        b->crossed = 0;
        tx_drop(p, &b->nt);
        not_sent(p, b->nt_index);
    }
    if (b->have_ahead) { /* taken and prepared, never begun */
        b->have_ahead = 0;
        tx_drop(p, &b->at);
        not_sent(p, b->asked - 1);
    }
}

/* A prepared DATA transaction's first chunk encoded before its 354. */
static void encode_ahead(sj *p, mwi_smtp_tx *t)
{
    if (t->built && !t->prep_rc && !t->chunking && !t->xf.started)
        mwi_smtp_xfer_ahead(&t->xf, &t->r, &t->env, t->skip, t->forbid8, p->chunk, 0);
}

/* The session waits for the replies to a message's end (and to the next
 * one's envelope, when crossed), with nothing to write: what can be done
 * before they come is done now, off the round trip (what the server sees
 * is unchanged).  The crossed message's data is encoded ahead (its 354
 * then sends at once) and the message after it taken from next and
 * prepared (its file opened, its header read, its envelope built), so
 * that the reply is followed by the next write with no file I/O between.
 * Not crossed, only under mw_smtp_send_batch (ask_ahead): a loop batch
 * asks next only to cross, which send -bs relies on. */
void mwi_sjb_ahead(void *impl)
{
    sj *p = impl;
    sjb *b = p->b;
    if (!b || p->job->done || p->downgrade || p->bcc_state) return;
    if (b->crossed) {
        if (!b->nt_sent) return;
        encode_ahead(p, &b->nt);
    } else if (!b->ask_ahead || p->state != S_BODY || !p->body_queued) {
        return; /* not crossed: only while a final reply is awaited */
    }
    if (!b->have_ahead && ask(p, &b->ahead)) {
        b->have_ahead = 1;
        prepare(p, &b->at, &b->ahead); /* its header read, its envelope built */
    }
    /* Not crossed: its data encoded now too (crossed, it is when it is nt). */
    if (!b->crossed && b->have_ahead) encode_ahead(p, &b->at);
}

int mwi_sjb_hold(sj *p)
{
    if (p->ready) return MW_ESTATE; /* next may have been asked already */
    p->b->held = 1;
    return 0;
}

int mwi_sjb_push(sj *p)
{
    if (!p->b->held || p->state != S_HELD) return MW_ESTATE;
    mwi_lconn_progress(&p->c); /* the io deadline counts again */
    run(p);
    return 0;
}

int mwi_sjb_release(sj *p)
{
    sjb *b = p->b;
    if (!b->held) return MW_ESTATE;
    b->held = 0; /* next's 0 now means QUIT */
    if (p->state == S_HELD) {
        b->more = 0;
        quit(p);
    }
    return 0;
}

void mwi_sjb_message_pipelining(sj *p, int on)
{
    p->b->cb.no_message_pipelining = !on;
}

void mwi_sjb_ask_ahead(sj *p, int on)
{
    p->b->ask_ahead = on;
}

/* ---- the job's calls from outside (loop.h, loop_int.h) ---- */

const mw_smtp *mw_loop_smtp_session(mw_loop_job *job)
{
    sj *p = mwi_sj_of(job);
    if (!p) return NULL;
    mw_smtp *s = p->sh;
    const mw_tls_peer *peer = mwi_ltls_peer(p->c.tls);
    if (peer && !s->tls_info && (s->tls_info = malloc(sizeof *s->tls_info)) != NULL)
        mwi_tls_info_of_peer(peer, s->tls_info);
    return s;
}

int mw_loop_smtp_alive(const mw_loop_job *job)
{
    const sj *p = mwi_sj_of(job);
    if (!p || job->done) return 0;
    if (p->dead || mwi_sjb_ending(p)) return 0;
    return p->ready && p->state != S_QUIT && p->state != S_BYE && p->state != S_DONE;
}

/* After a call from outside the loop's step: the job's events again. */
static int rearm(sj *p, int rc)
{
    if (!rc && !p->job->done && !p->c.external) mwi_lconn_arm(&p->c);
    return rc;
}

static sj *batch_of(mw_loop_job *job)
{
    sj *p = mwi_sj_of(job);
    return p && !job->done && p->b ? p : NULL;
}

int mwi_loop_smtp_hold(mw_loop_job *job)
{
    sj *p = batch_of(job);
    return p ? mwi_sjb_hold(p) : MW_ESTATE;
}

int mwi_loop_smtp_push(mw_loop_job *job)
{
    sj *p = batch_of(job);
    return p ? rearm(p, mwi_sjb_push(p)) : MW_ESTATE;
}

int mwi_loop_smtp_release(mw_loop_job *job)
{
    sj *p = batch_of(job);
    return p ? rearm(p, mwi_sjb_release(p)) : MW_ESTATE;
}
