/* The fetch filter's part of the POP3 job (pop3_job.h): TOP n 0 (RFC 1939
 * §7) of every message the plan gets, as src/fetch's apply_filter sends
 * them: runs of consecutive numbers, each pipelined in the window (RFC
 * 2449 §6.6), the filter deciding a message as soon as its headers came.
 * A TOP refused, or headers over 256 KiB, leave that message on the
 * server: what is in flight is read and dropped and the run goes on after
 * it.  A TOP reply far past the message's LIST size ends the session.
 * The filter is the caller's hook (src/loop/fetch_job.c): it decides at
 * once, or later (MWI_LOOP_HDR_WAIT, loop_int.h) while its command runs
 * as events of the job; meanwhile the job takes no reply and its socket
 * rests, the TOPs in flight (the window) waiting in the buffers. */
#include "loop/pop3_job.h"
#include "util/err.h"

#include <stdio.h>
#include <string.h>

#define P3L_HDR_MAX (256 * 1024) /* as src/fetch: the headers held for the filter */

void mwi_loop_pop3_on_headers(mw_loop_job *job, mwi_loop_headers_fn headers,
                              mwi_loop_top_fail_fn fail, void *ud)
{
    p3l *p = job->impl;
    p->headers = headers;
    p->top_fail = fail;
    p->headers_ud = ud;
}

/* The run from top_lo: its first message to get and the consecutive
 * numbers after it.  Returns 0 when no message is left to decide. */
static int next_run(p3l *p)
{
    size_t i = p->top_lo;
    while (i < p->nmsgs && !(p->msgs[i].act & MW_LOOP_GET))
        i++;
    if (i >= p->nmsgs) return 0;
    size_t j = i;
    while (j + 1 < p->nmsgs && (p->msgs[j + 1].act & MW_LOOP_GET) &&
           p->msgs[j + 1].num == p->msgs[j].num + 1)
        j++;
    p->top_next = p->top_got = i;
    p->top_hi = j;
    p->top_end = j + 1;
    p->top_stopped = 0;
    return 1;
}

/* Sends what the window allows; a run that is over gives way to the
 * next, and after the last the RETRs start (mwi_p3l_transfer). */
static void top_fill(p3l *p)
{
    unsigned window = p->capa_pipelining ? p->window : 1;
    while (!p->job->done) {
        while (p->top_next < p->top_end && p->top_next - p->top_got < window) {
            char line[48];
            snprintf(line, sizeof line, "TOP %llu 0", (unsigned long long)p->msgs[p->top_next].num);
            if (mwi_p3l_send(p, K_TOP, line, p->top_next, NULL) != 0) return;
            p->top_next++;
        }
        if (p->top_got < p->top_next || p->in_body) return;
        p->top_lo = p->top_stopped ? p->top_bad + 1 : p->top_hi + 1;
        if (!next_run(p)) {
            mwi_p3l_transfer(p);
            return;
        }
    }
}

void mwi_p3l_top_resume(p3l *p, size_t from)
{
    mwi_p3l_set_state(p, S_TOP);
    p->top_lo = from;
    if (!next_run(p)) {
        mwi_p3l_transfer(p);
        return;
    }
    top_fill(p);
}

void mwi_p3l_top_start(p3l *p)
{
    mw_buf b = MW_BUF_INIT(P3L_HDR_MAX);
    p->hdr = b;
    mwi_p3l_set_state(p, S_TOP);
    p->top_lo = 0;
    if (!next_run(p)) {
        mwi_p3l_transfer(p);
        return;
    }
    top_fill(p);
}

/* A message's TOP failed: it is left alone, nothing more is asked in this
 * run, and what is in flight is dropped. */
static void top_failed(p3l *p, size_t idx, int code, const mw_error *err, const char *why)
{
    p->msgs[idx].act = 0;
    if (p->top_fail) p->top_fail(p->job, p->msgs[idx].num, code, err, why, p->headers_ud);
    p->top_stopped = 1;
    p->top_bad = idx;
    p->top_end = p->top_next;
}

void mwi_p3l_top_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    size_t idx = (size_t)c->arg;
    uint64_t num = p->msgs[idx].num;
    if (st->kind != MW_POP3_OK) {
        p->top_got++;
        if (!p->top_stopped) {
            char what[48], cmd[48];
            snprintf(what, sizeof what, "TOP %llu", (unsigned long long)num);
            snprintf(cmd, sizeof cmd, "TOP %llu 0", (unsigned long long)num);
            mw_error e;
            memset(&e, 0, sizeof e);
            int rc = mwi_pop3_status_error(&e, st, MW_ESERVER, what);
            mwi_err_set_command(&e, cmd, strlen(cmd));
            top_failed(p, idx, rc, &e, NULL);
        }
        top_fill(p);
        return;
    }
    p->in_body = p->in_top = 1;
    p->body_msg = idx;
    p->body_discard = p->top_stopped;
    snprintf(p->body_what, sizeof p->body_what, "TOP %llu", (unsigned long long)num);
    mwi_pop3_body_init(&p->body);
    mwi_buf_reset(&p->hdr);
}

/* TOP brings a part of the message: its LIST size bounds the reply as a
 * RETR's (src/pop3, read_message_reply); past it the session ends. */
static int top_too_long(p3l *p)
{
    const p3l_msg *m = &p->msgs[p->body_msg];
    uint64_t bound = mwi_p3l_bound(m->size, 0);
    if (p->body.produced <= bound) return 0;
    char why[sizeof p->job->err.message], msg[sizeof why];
    mwi_p3l_past_bound(p, m->size, bound, why, sizeof why);
    snprintf(msg, sizeof msg, "%.*s; message left on the server", (int)sizeof why - 40, why);
    p->in_body = p->in_top = p->body_discard = 0;
    if (!p->top_stopped || p->top_bad != p->body_msg)
        top_failed(p, p->body_msg, MW_ETOOBIG, NULL, msg);
    if (p->plan)
        mwi_p3l_reopen_after(p, p->body_msg, 1); /* as src/fetch: a new session */
    else
        mwi_p3l_end(p, MW_ETOOBIG, "%s", msg);
    return 1;
}

/* Header octets from p->c.in at *pos; at the end of the reply the filter
 * decides the message. */
void mwi_loop_pop3_on_headers_wait(mw_loop_job *job, mwi_loop_hdr_wait_fn wait,
                                   mwi_loop_hdr_drop_fn drop)
{
    p3l *p = job->impl;
    p->headers_wait = wait;
    p->headers_drop = drop;
}

/* The message of the TOP just read is decided: the next reply. */
static void top_next_reply(p3l *p)
{
    p->body_discard = 0;
    mwi_buf_reset(&p->hdr);
    p->top_got++;
    top_fill(p);
}

/* Asks the filter for its decision.  Returns 1 when it came (the run
 * goes on), 0 while it waits: the socket rests (no event asked for), the
 * job wakes on the filter's descriptors or deadline, or the session's
 * max-time. */
static int top_wait_poll(p3l *p)
{
    mw_loop_job *j = p->job;
    p3l_msg *m = &p->msgs[p->body_msg];
    int64_t dl = MW_NO_DEADLINE;
    int act = p->headers_wait(j, m->num, &dl, p->headers_ud);
    if (act == MWI_LOOP_HDR_WAIT) {
        j->want = 0;
        j->deadline = dl < p->c.total_deadline ? dl : p->c.total_deadline;
        return 0;
    }
    m->act = (unsigned char)(act & (MW_LOOP_GET | MW_LOOP_DELE));
    p->top_wait = 0;
    /* As after the blocking fetch's filter: the server's time counts
     * again from now (the io timeout, the rate floor). */
    mwi_lconn_progress(&p->c);
    p->c.rate_mark = 0;
    top_next_reply(p);
    return 1;
}

void mwi_p3l_top_step(p3l *p, int events)
{
    mw_loop_job *j = p->job;
    /* Cancelled or past the max-time while waiting: lconn.c ends the job
     * in its words, no reply taken; freeing it stops the filter. */
    if (p->top_wait && !j->cancel_rc && mw_now_ms() < p->c.total_deadline && !top_wait_poll(p))
        return;
    if (j->done) return;
    mwi_lconn_step(&p->c, events);
    /* A decision just asked for: the filter's first look (its stdin
     * written as far as the pipe takes it); one that came at once goes
     * on at the next step. */
    if (p->top_wait && !j->done && top_wait_poll(p)) j->again = 1;
}

void mwi_p3l_top_body(p3l *p, size_t *pos)
{
    size_t used = 0, made = 0;
    int fin = mwi_pop3_body_decode(&p->body, p->c.in + *pos, p->c.in_len - *pos, &used, &made);
    if (top_too_long(p)) return;
    if (made && !p->body_discard) {
        int rc = mwi_buf_append(&p->hdr, p->c.in + *pos, made);
        if (rc) {
            top_failed(p, p->body_msg, rc, NULL,
                       "headers over 256 KiB; message left on the server");
            p->body_discard = 1;
        }
    }
    *pos += used;
    if (!fin) return;
    p->in_body = p->in_top = 0;
    if (!p->body_discard && p->headers) {
        p3l_msg *m = &p->msgs[p->body_msg];
        int act =
            p->headers(p->job, m->num, p->hdr.data ? p->hdr.data : "", p->hdr.len, p->headers_ud);
        if (act == MWI_LOOP_HDR_WAIT && p->headers_wait) {
            p->top_wait = 1; /* process() stops here; mwi_p3l_top_step goes on */
            return;
        }
        if (act == MWI_LOOP_HDR_WAIT) act = 0; /* no one to ask later: left alone */
        m->act = (unsigned char)(act & (MW_LOOP_GET | MW_LOOP_DELE));
    }
    top_next_reply(p);
}
