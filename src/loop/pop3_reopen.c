/* The POP3 fetch job's next session (pop3_job.h), as src/fetch's reopen
 * does it.  A RETR or TOP reply far past its bound is not read to its
 * end: that message is left on the server, the session is closed without
 * QUIT (nothing of it is deleted, RFC 1939 §6; with a plan no DELE was
 * sent yet), and a new session of the same job logs in again.  Message
 * numbers hold only within a session (RFC 1939 §5), so its LIST and UIDL
 * must give every message of the plan the same number, size and UID;
 * then the job goes on after the cut message, else it ends there and the
 * rest waits for the next run. */
#include "loop/pop3_job.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* As src/pop3's mwi_pop3_message_bound: the size announced plus
 * max(size, 64 KiB), within the caller's cap. */
uint64_t mwi_p3l_bound(uint64_t announced, uint64_t cap)
{
    uint64_t slack = announced > 65536 ? announced : 65536;
    uint64_t b = announced > UINT64_MAX - slack ? UINT64_MAX : announced + slack;
    return cap && cap < b ? cap : b;
}

void mwi_p3l_past_bound(const p3l *p, uint64_t announced, uint64_t bound, char *why, size_t cap)
{
    if (bound < mwi_p3l_bound(announced, 0))
        snprintf(why, cap,
                 "%s: the message runs past the %llu-octet size limit; stopped reading it, the "
                 "message is incomplete",
                 p->body_what, (unsigned long long)bound);
    else
        snprintf(why, cap,
                 "%s: the server sent over %llu octets for a message announced as %llu octets "
                 "(RFC 1939 §5); stopped reading it, the message is incomplete",
                 p->body_what, (unsigned long long)bound, (unsigned long long)announced);
}

void mwi_p3l_reopen_after(p3l *p, size_t idx, int top)
{
    p->msgs[idx].act = 0;
    if (p->given_fd) { /* src/fetch's words for a caller-made stream */
        mwi_p3l_end(p, MW_ENET,
                    "cannot reconnect over a caller-made connection; the rest is left for the "
                    "next run");
        return;
    }
    if (p->uid_mode != 2) {
        mwi_p3l_end(p, MW_EPROTO,
                    "without UIDL the messages of a new session cannot be matched to this one's; "
                    "the rest is left for the next run");
        return;
    }
    p->reopen_pending = 1; /* process() stops, then mwi_p3l_reopen */
    p->reopen_top = top;
    p->reopen_after = idx + 1;
}

/* Forgets the session: what was in flight, the capabilities, the login. */
static void forget_session(p3l *p)
{
    p->q_head = p->q_len = 0;
    p->ml = -1;
    p->in_body = p->in_top = p->body_discard = p->retr_drain = 0;
    p->capa_stls = p->capa_pipelining = p->capa_uidl = p->capa_resp_codes = 0;
    p->capa_known = p->capa_lines = 0;
    free(p->sasl_offered);
    p->sasl_offered = NULL;
    mwi_p3l_login_free(p);
    p->in_auth = 0;
    p->timestamp[0] = p->greeting[0] = '\0';
    p->list_done = p->uidl_done = p->uidl_refused = 0;
    p->declared = UINT64_MAX;
    p->no_retr_size = 0;
    for (size_t i = 0; i < p->nmsgs; i++)
        p->msgs[i].seen = 0;
}

void mwi_p3l_reopen(p3l *p)
{
    p->reopen_pending = 0;
    forget_session(p);
    p->relist = 1;
    mwi_lconn_info(&p->c, "a new session for the rest (the last reply was cut)");
    mwi_p3l_set_state(p, S_CONNECTING);
    int rc = mwi_lconn_reconnect(&p->c, p->connect_timeout_ms);
    if (rc) {
        char m[sizeof p->job->err.message];
        snprintf(m, sizeof m, "%s", p->job->err.message);
        mwi_p3l_end(p, rc, "%s", m);
    }
}

/* seen: 1 listed with its size, 2 its UID again, 4 something differs. */
void mwi_p3l_relist_line(p3l *p, const char *l, size_t len)
{
    uint64_t a, b;
    if (p->ml == K_LIST) {
        if (mwi_pop3_parse_listing(l, len, &a, &b) != 0) {
            mwi_p3l_end(p, MW_EPROTO, "malformed LIST line: %.*s", (int)(len > 80 ? 80 : len), l);
            return;
        }
        p3l_msg *m = mwi_p3l_find_msg(p, a);
        if (m) m->seen |= m->size == b ? 1 : 4;
        return;
    }
    const char *uid;
    size_t ul;
    if (p->ml != K_UIDL || mwi_pop3_parse_uidl(l, len, &a, &uid, &ul) != 0) return;
    p3l_msg *m = mwi_p3l_find_msg(p, a);
    if (m) m->seen |= m->uid && strlen(m->uid) == ul && !memcmp(m->uid, uid, ul) ? 2 : 4;
}

void mwi_p3l_relist_end(p3l *p, int k)
{
    if (k == K_LIST) {
        p->list_done = 1;
        /* lock-step without PIPELINING, as mwi_p3l_fetch_ml_end */
        if (!p->capa_pipelining) mwi_p3l_send(p, K_UIDL, "UIDL", 0, NULL);
    } else {
        p->uidl_done = 1;
    }
    if (!p->list_done || !p->uidl_done) return;
    p->relist = 0;
    int same = 1;
    for (size_t i = 0; same && i < p->nmsgs; i++) {
        const p3l_msg *m = &p->msgs[i];
        same = (m->seen & 1) && !(m->seen & 4) && (!m->uid || (m->seen & 2));
    }
    if (!same) {
        mwi_p3l_end(p, MW_EPROTO,
                    "the mailbox changed between sessions; the rest is left for the next run");
        return;
    }
    mwi_lconn_info(&p->c, "the new session lists the same messages: going on");
    if (p->reopen_top) {
        mwi_p3l_top_resume(p, p->reopen_after);
    } else {
        p->next_retr = p->reopen_after;
        mwi_p3l_transfer(p);
    }
}
