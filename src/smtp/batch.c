/* mw_smtp_send_batch: messages one after another on one session, run by
 * the loop's batch job held between messages (src/loop/smtp_held.c,
 * smtp_batch.c): each message is taken when its turn comes and, with
 * PIPELINING, the next envelope goes in the same write as the previous
 * message's end (RFC 2920 §3.1). */
#include "smtp/smtp_int.h"
#include "loop/smtp_held.h"
#include "util/err.h"

int mw_smtp_send_batch(mw_smtp *s, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud)
{
    if (!s) return MW_EINVAL;
    mw_error_clear(&s->err);
    if (!next || !done) return mwi_err_set(&s->err, MW_EINVAL, "next and done are both needed");
    if (s->state != ST_READY || !s->held) return mwi_smtp_not_ready(s);
    int rc =
        mwi_smh_batch(s->held, next, done, ud, s->maxtime_ms, !s->no_message_pipelining, &s->err);
    if (!mwi_smh_alive(s->held)) mwi_smtp_set_state(s, ST_DEAD);
    return rc;
}

void mw_smtp_set_message_pipelining(mw_smtp *s, int on)
{
    if (s) s->no_message_pipelining = !on;
}
