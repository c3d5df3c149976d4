/* mw_smtp_send_batch: messages one after another on one session, the
 * next prepared while the server answers, and with PIPELINING the next
 * envelope in the same write as the previous message's end (RFC 2920 §3.1). */
#include "smtp/smtp_int.h"
#include "loop/smtp_held.h"
#include "util/err.h"

#include <stdlib.h>

/* mw_smtp_send_batch's state: up to three messages are in hand at once —
 * one whose final reply is still owed (fin), the one being sent (cur) and
 * the next, prepared (pre). */
typedef struct batch {
    mw_smtp *s;
    mw_smtp_next_fn next;
    mw_smtp_done_fn done;
    void *ud;
    mwi_smtp_tx slot[3];
    int used[3];
    size_t asked; /* messages taken from next() */
    int more;     /* next() may have more: 1, none: 0, its failure: < 0 */
} batch;

/* Takes the next message and prepares it (no network); NULL when there
 * are no more.  A failed preparation is kept for the message's turn. */
static mwi_smtp_tx *batch_take(batch *b)
{
    if (b->more <= 0) return NULL;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    b->more = b->next(b->asked, &m, b->ud);
    if (b->more <= 0) return NULL;
    b->asked++;
    int k = 0;
    while (b->used[k])
        k++;
    b->used[k] = 1;
    mwi_smtp_tx *t = &b->slot[k];
    mw_smtp *s = b->s;
    mw_error keep = s->err;
    mw_error_clear(&s->err);
    t->prep_rc = 0; /* mwi_smtp_tx_prepare clears the rest */
    int rc = mwi_smtp_tx_prepare(s, t, &m);
    t->prep_rc = rc;
    t->prep_err = s->err;
    s->err = keep;
    return t;
}

/* Reports a message to done() with rc, and frees its slot. */
static void batch_report(batch *b, mwi_smtp_tx *t, size_t index, int rc)
{
    mw_smtp *s = b->s;
    if (rc && s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
    b->done(index, rc, t->res, &s->err, b->ud);
    mw_smtp_result_free(t->res);
    t->res = NULL;
    b->used[t - b->slot] = 0;
}

/* Reads the final reply of a message whose data went out, and reports it. */
static int batch_finish(batch *b, mwi_smtp_tx *t, size_t index, int rc)
{
    if (t->built) rc = mwi_smtp_tx_end(b->s, t, rc);
    batch_report(b, t, index, rc);
    return rc;
}

/* The session died: messages in hand were not sent. */
static void batch_abandon(batch *b, mwi_smtp_tx *t, size_t index)
{
    mw_smtp *s = b->s;
    mwi_smtp_tx_discard(s, t);
    mw_smtp_result_free(t->res);
    t->res = NULL;
    mw_error_clear(&s->err);
    mwi_smtp_not_ready(s);
    b->done(index, MW_ESTATE, NULL, &s->err, b->ud);
    b->used[t - b->slot] = 0;
}

static batch *batch_new(mw_smtp *s, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud)
{
    batch *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->s = s;
    b->next = next;
    b->done = done;
    b->ud = ud;
    b->more = 1;
    return b;
}

/* The deadline of the transaction that starts now (mw_smtp_set_maxtime). */
static void start_deadline(mw_smtp *s)
{
    s->tx_deadline = s->maxtime_ms > 0 ? mw_now_ms() + s->maxtime_ms : MW_NO_DEADLINE;
    mwi_conn_set_deadline(s->c, s->tx_deadline);
}

/* RFC 2920 §3.1: message content may be followed in the same group by the
 * next MAIL and RCPTs (and DATA, as the group's last command).  The end
 * of a DATA transfer closes the transaction whatever its reply, so the
 * next envelope needs no RSET and goes out in the same write as the final
 * dot: one round trip per message instead of two, and the server answers
 * both at once.  Not after BDAT (a refused chunk asks for RSET) nor before
 * a Bcc digest (another transaction follows this one). */
static int can_cross(const mw_smtp *s, const mwi_smtp_tx *cur, const mwi_smtp_tx *pre)
{
    return pre && !pre->prep_rc && pre->built && cur->pipelining && !cur->chunking &&
           !(cur->m.bcc_digest && cur->env.nbcc > 0) && !s->no_message_pipelining;
}

/* The next envelope, out with the held end of this message's data; 1 when
 * it went. */
static int cross_envelope(mw_smtp *s, mwi_smtp_tx *pre)
{
    int crossed = 0;
    mw_error keep = s->err;
    s->dirty = 0;
    int erc = mwi_smtp_tx_envelope(s, pre); /* flushes the held data with it */
    if (erc) {
        /* Only a dead connection fails here (the lines are bounded): the
         * next message's outcome, in its turn. */
        pre->prep_rc = erc;
        pre->prep_err = s->err;
    } else {
        crossed = 1;
    }
    s->err = keep;
    return crossed;
}

/* Reports a message whose final reply was read earlier, with its error. */
static void report_late(batch *b, mwi_smtp_tx *t, size_t index, int rc, const mw_error *e)
{
    mw_smtp *s = b->s;
    mw_error keep = s->err;
    s->err = *e;
    batch_report(b, t, index, rc);
    s->err = keep;
}

int mw_smtp_send_batch(mw_smtp *s, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud)
{
    if (!s) return MW_EINVAL;
    mw_error_clear(&s->err);
    if (!next || !done) return mwi_err_set(&s->err, MW_EINVAL, "next and done are both needed");
    if (s->state != ST_READY) return mwi_smtp_not_ready(s);
    if (s->held) {
        int rc = mwi_smh_batch(s->held, next, done, ud, s->maxtime_ms, !s->no_message_pipelining,
                               &s->err);
        if (!mwi_smh_alive(s->held)) mwi_smtp_set_state(s, ST_DEAD);
        return rc;
    }
    batch *b = batch_new(s, next, done, ud);
    if (!b) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    mwi_smtp_tx *fin = NULL, *cur = batch_take(b), *pre = NULL;
    size_t i = 0; /* index of cur; fin is i - 1 */
    int last = 0, fin_crossed = 0;
    while (cur) {
        mw_error_clear(&s->err);
        if (!fin) start_deadline(s);
        int rc = cur->prep_rc;
        if (rc) s->err = cur->prep_err;
        if (!rc && cur->built && !cur->env_sent) rc = mwi_smtp_tx_envelope(s, cur);
        mw_error cur_err = s->err;
        /* The envelope's replies (and, crossed, the previous message's
         * final reply) are on their way: take and prepare the next
         * message meanwhile, so opening and reading it costs no time. */
        if (!pre) pre = batch_take(b);
        /* The previous message's final reply: read now, reported to done()
         * only after this message's data went out, so that the caller's
         * work (closing a file, printing) is not between a reply and the
         * write it allows. */
        mwi_smtp_tx *fin_unreported = NULL;
        mw_error fin_err;
        int fin_rc = 0;
        if (fin) {
            mw_error_clear(&s->err);
            fin_rc = last = mwi_smtp_tx_end(s, fin, 0);
            fin_err = s->err;
            if (fin_crossed && s->state == ST_READY) s->dirty = 1; /* cur's envelope is open */
            fin_crossed = 0;
            if (s->state != ST_READY) {
                batch_report(b, fin, i - 1, fin_rc);
                batch_abandon(b, cur, i);
                if (pre) batch_abandon(b, pre, i + 1);
                free(b);
                return last ? last : MW_ESTATE;
            }
            fin_unreported = fin;
            fin = NULL;
            start_deadline(s);
        }
        s->err = cur_err;
        cur->xf.hold = can_cross(s, cur, pre);
        if (!rc && cur->built) rc = mwi_smtp_tx_rest(s, cur);
        int crossed = cur->xf.held && cross_envelope(s, pre);
        if (fin_unreported) report_late(b, fin_unreported, i - 1, fin_rc, &fin_err);
        if (crossed) {
            fin = cur;
            fin_crossed = 1;
        } else {
            last = batch_finish(b, cur, i, rc);
            if (s->state != ST_READY) {
                if (pre) batch_abandon(b, pre, i + 1);
                free(b);
                return last ? last : MW_ESTATE;
            }
        }
        if (s->c && !fin) mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
        cur = pre;
        pre = NULL;
        i++;
    }
    if (fin) {
        /* Cannot happen: a message is crossed only with a next one. */
        last = batch_finish(b, fin, i - 1, 0);
    }
    if (s->c) mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
    int more = b->more;
    free(b);
    return more < 0 ? more : 0;
}

void mw_smtp_set_message_pipelining(mw_smtp *s, int on)
{
    if (s) s->no_message_pipelining = !on;
}
