/* The POP3 job's fetch (pop3_job.h): LIST and UIDL (LAST without UIDL),
 * the plan, RETR pipelined (RFC 2449 §6.6) into the store, DELE only after
 * the durable store (and the caller's commit), QUIT.  What a message's
 * failure costs follows src/fetch: that message only. */
#include "loop/pop3_job.h"
#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A failure that costs one message, not the session (as src/fetch's
 * blocking fetch counts them): the message is neither stored nor deleted,
 * the first such failure becomes the job's error once QUIT was said, and
 * the hook (mwi_loop_pop3_on_msg_error) hears of each. */
void mwi_p3l_msg_failed(p3l *p, uint64_t num, int code, const char *command, const char *fmt, ...)
{
    mw_error e;
    memset(&e, 0, sizeof e);
    char msg[sizeof e.message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (command) mwi_err_set_command(&e, command, strlen(command));
    mwi_err_set(&e, code, "%s", msg);
    if (!p->first_err.code) p->first_err = e;
    if (p->msg_error) p->msg_error(p->job, num, &e, p->msg_error_ud);
}
/* The store failed for message num (begin, write or commit).  With a plan,
 * as src/fetch: that message is not delivered, no more are taken (the
 * replies in flight are read and dropped), what was stored is still
 * recorded and deleted, and the store's error is the job's after QUIT.
 * Without a plan the job ends (what: the words for it).  Returns 1 when
 * the job ended. */
static int store_failed(p3l *p, uint64_t num, const char *what)
{
    const mw_error *se = mw_store_error(p->store);
    int rc = se->code ? se->code : MW_EIO;
    if (!p->plan) {
        mwi_p3l_end(p, rc, "%s%s", what, se->message);
        return 1;
    }
    mw_error e = *se;
    e.code = rc;
    if (!p->first_err.code) p->first_err = e;
    if (p->store_error) p->store_error(p->job, num, &e, p->msg_error_ud);
    p->retr_drain = 1;
    p->retr_restart = p->nmsgs;
    return 0;
}

void mwi_loop_pop3_on_store_error(mw_loop_job *job, mwi_loop_msg_error_fn fn)
{
    ((p3l *)job->impl)->store_error = fn;
}

/* With a plan callback, deletions wait until every RETR is answered and
 * the commit callback said 0 (the caller made its record durable), then
 * go in one pipeline; a message to fetch and delete is deleted only when
 * it was stored. */
static int next_deferred_dele(p3l *p, char *line, size_t cap, uint64_t *num)
{
    /* Before the commit every RETR must be answered; after it the DELEs
     * go pipelined, as src/pop3's mw_pop3_dele_msgs sends them. */
    if (!p->committed && (p->q_len || p->in_body)) return 0;
    if (!p->committed) {
        int rc = mw_store_sync(p->store);
        if (rc) {
            mwi_p3l_end(p, rc, "store: %s; nothing deleted", mw_store_error(p->store)->message);
            return -1;
        }
        rc = p->commit ? p->commit(p->job, p->plan_ud) : 0;
        if (rc) {
            mwi_p3l_end(p, rc, "%s", "stopped by the commit callback; nothing deleted");
            return -1;
        }
        p->committed = 1;
    }
    while (p->next_dele < p->nmsgs) {
        const p3l_msg *m = &p->msgs[p->next_dele++];
        if ((m->act & MW_LOOP_DELE) && (!(m->act & MW_LOOP_GET) || m->stored)) {
            snprintf(line, cap, "DELE %llu", (unsigned long long)m->num);
            *num = m->num;
            return 1;
        }
    }
    return 0;
}

/* A refused RETR (retr_reply): no RETR goes out while any is still in
 * flight; then the run starts again after the refused one, as src/fetch's
 * retrieve() does (src/pop3 reads and drops what was in flight). */
static int retr_draining(p3l *p)
{
    if (!p->retr_drain) return 0;
    for (size_t i = 0; i < p->q_len; i++)
        if (p->q[(p->q_head + i) % p->q_cap].kind == K_RETR) return 1;
    if (p->in_body) return 1;
    p->retr_drain = 0;
    p->next_retr = p->retr_restart;
    return 0;
}

/* The LIST sizes of the RETRs not answered whole yet (src/pop3's
 * retr_run counts its window so). */
static uint64_t bytes_in_flight(const p3l *p)
{
    uint64_t b = p->in_body ? p->msgs[p->body_msg].size : 0;
    for (size_t i = 0; i < p->q_len; i++) {
        const p3l_cmd *c = &p->q[(p->q_head + i) % p->q_cap];
        if (c->kind == K_RETR) b += p->msgs[c->arg].size;
    }
    return b;
}

void mwi_p3l_fill_window(p3l *p)
{
    unsigned window = p->capa_pipelining ? p->window : 1;
    if (retr_draining(p)) return;
    uint64_t flight = p->window_bytes ? bytes_in_flight(p) : 0;
    while (!p->job->done && p->q_len < window) {
        char line[40];
        if (p->next_retr < p->nmsgs) {
            const p3l_msg *m = &p->msgs[p->next_retr];
            /* With a byte window (mwi_loop_pop3_set_window_bytes): at most
             * that many octets of LIST sizes unanswered, always one. */
            if ((m->act & MW_LOOP_GET) && p->window_bytes && (p->q_len || p->in_body) &&
                (flight > p->window_bytes || m->size > p->window_bytes - flight))
                break;
            if (m->act & MW_LOOP_GET) {
                flight += m->size;
                snprintf(line, sizeof line, "RETR %llu", (unsigned long long)m->num);
                if (mwi_p3l_send(p, K_RETR, line, p->next_retr, NULL) != 0) return;
            }
            p->next_retr++;
            continue;
        }
        if (!p->plan) break;
        uint64_t num = 0;
        int more = next_deferred_dele(p, line, sizeof line, &num);
        if (more < 0) return;
        if (!more) break;
        if (mwi_p3l_send(p, K_DELE, line, num, NULL) != 0) return;
    }
    if (!p->job->done && p->next_retr >= p->nmsgs && p->q_len == 0 && !p->in_body &&
        (!p->plan || (p->committed && p->next_dele >= p->nmsgs))) {
        mwi_p3l_set_state(p, S_QUIT);
        mwi_p3l_send(p, K_QUIT, "QUIT", 0, NULL);
    }
}

/* Every listed message is fetched (and deleted unless keep), or as the
 * plan callback decides. */
static int make_plan(p3l *p)
{
    for (size_t i = 0; i < p->nmsgs; i++)
        p->msgs[i].act = MW_LOOP_GET | (p->keep ? 0 : MW_LOOP_DELE);
    if (!p->plan) return 0;
    mw_loop_msg *v = calloc(p->nmsgs ? p->nmsgs : 1, sizeof *v);
    unsigned char *act = malloc(p->nmsgs ? p->nmsgs : 1);
    int rc = 0;
    if (!v || !act) {
        mwi_p3l_end(p, MW_ENOMEM, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; !rc && i < p->nmsgs; i++) {
        v[i].num = p->msgs[i].num;
        v[i].size = p->msgs[i].size;
        v[i].uid = p->msgs[i].uid;
        act[i] = p->msgs[i].act;
    }
    if (!rc && (rc = p->plan(p->job, v, p->nmsgs, act, p->plan_ud)) != 0)
        mwi_p3l_end(p, rc, "%s", "stopped by the plan callback");
    for (size_t i = 0; !rc && i < p->nmsgs; i++)
        p->msgs[i].act = act[i] & (MW_LOOP_GET | MW_LOOP_DELE);
    free(v);
    free(act);
    return rc;
}

static void start_transfer(p3l *p)
{
    p->job->result.messages = p->nmsgs;
    if (make_plan(p)) return;
    if (p->headers)
        mwi_p3l_top_start(p); /* the filter first; then mwi_p3l_transfer */
    else
        mwi_p3l_transfer(p);
}

void mwi_p3l_transfer(p3l *p)
{
    size_t want = 0;
    for (size_t i = 0; i < p->nmsgs; i++)
        want += (p->msgs[i].act & MW_LOOP_GET) != 0;
    mwi_lconn_info(&p->c, "%zu messages listed, %zu to fetch", p->nmsgs, want);
    mwi_p3l_set_state(p, S_TRANSFER);
    mwi_p3l_fill_window(p);
}

/* The message is complete: durable store first, then DELE (never before). */
static void message_done(p3l *p)
{
    p3l_msg *m = &p->msgs[p->body_msg];
    p->in_body = 0;
    if (p->body_discard) {
        p->body_discard = 0;
        mwi_p3l_fill_window(p);
        return;
    }
    if (p->declared != UINT64_MAX && p->body.produced != p->declared) {
        /* Not as the reply announced it (RFC 1939 §5 sizes are exact): never
         * delivered, never deleted, as src/fetch does. */
        mw_store_abort(p->store);
        char what[48];
        snprintf(what, sizeof what, "RETR %llu", (unsigned long long)m->num);
        mwi_p3l_msg_failed(
            p, m->num, MW_EPROTO, what,
            "message %llu arrived incomplete or not as announced (%llu octets, server said "
            "%llu); not stored, left on the server",
            (unsigned long long)m->num, (unsigned long long)p->body.produced,
            (unsigned long long)p->declared);
        mwi_p3l_fill_window(p);
        return;
    }
    int rc = mw_store_commit(p->store);
    /* With a plan, deletions wait (next_deferred_dele), and one sync there
     * covers every message committed before it. */
    if (rc == 0 && !p->plan) rc = mw_store_sync(p->store);
    if (rc) {
        char what[48];
        snprintf(what, sizeof what, "storing message %llu: ", (unsigned long long)m->num);
        if (!store_failed(p, m->num, what)) mwi_p3l_fill_window(p);
        return;
    }
    p->job->result.stored++;
    m->stored = 1;
    mwi_lconn_info(&p->c, "message %llu stored (%llu octets)", (unsigned long long)m->num,
                   (unsigned long long)p->body.produced);
    if (p->stored) {
        rc = p->stored(p->job, m->num, m->uid ? m->uid : "", p->body.produced, p->stored_ud);
        if (rc) {
            mwi_p3l_end(p, rc, "stopped by the stored callback after message %llu",
                        (unsigned long long)m->num);
            return;
        }
    }
    if (p->job->cancel_rc) {
        mwi_p3l_end(p, p->job->cancel_rc, "cancelled after message %llu",
                    (unsigned long long)m->num);
        return;
    }
    if (!p->plan && (m->act & MW_LOOP_DELE)) {
        char line[40];
        snprintf(line, sizeof line, "DELE %llu", (unsigned long long)m->num);
        if (mwi_p3l_send(p, K_DELE, line, m->num, NULL) != 0) return;
    }
    mwi_p3l_fill_window(p);
}

static int add_msg(p3l *p, uint64_t num, uint64_t size)
{
    if (p->nmsgs >= P3L_MAX_MSGS) {
        /* src/pop3's words for it (pop3.c, list_line): the loop sends no
         * STAT either. */
        mwi_p3l_end(p, MW_ETOOBIG,
                    "LIST reply of over %u entries with no message count (STAT) to bound it; "
                    "stopped reading it",
                    P3L_MAX_MSGS);
        return -1;
    }
    if (p->nmsgs == p->msgs_cap) {
        size_t cap = p->msgs_cap ? p->msgs_cap * 2 : 16;
        p3l_msg *m = realloc(p->msgs, cap * sizeof *m);
        if (!m) {
            mwi_p3l_end(p, MW_ENOMEM, "out of memory");
            return -1;
        }
        p->msgs = m;
        p->msgs_cap = cap;
    }
    if (p->nmsgs && p->msgs[p->nmsgs - 1].num >= num) {
        mwi_p3l_end(p, MW_EPROTO, "LIST not in ascending message order at %llu",
                    (unsigned long long)num);
        return -1;
    }
    p->msgs[p->nmsgs].num = num;
    p->msgs[p->nmsgs].size = size;
    p->msgs[p->nmsgs].uid = NULL;
    p->msgs[p->nmsgs].act = 0;
    p->msgs[p->nmsgs].stored = 0; /* realloc'd memory: a DELE depends on it */
    p->nmsgs++;
    return 0;
}
/* A RETR may bring its announced size plus max(size, 64 KiB), as the
 * blocking session allows (src/pop3): past that the message is aborted in
 * the store, left on the server, and the job ends. */
static int body_too_long(p3l *p)
{
    const p3l_msg *m = &p->msgs[p->body_msg];
    uint64_t announced = m->size;
    if (p->declared != UINT64_MAX && p->declared < announced) announced = p->declared;
    uint64_t bound = mwi_p3l_bound(announced, p->max_message);
    if (p->body.produced <= bound) return 0;
    if (!p->body_discard) mw_store_abort(p->store);
    p->in_body = p->body_discard = 0;
    char why[sizeof p->job->err.message];
    mwi_p3l_past_bound(p, announced, bound, why, sizeof why);
    if (p->plan) { /* as src/fetch: a new session fetches the rest */
        mwi_p3l_msg_failed(p, m->num, MW_ETOOBIG, p->body_what,
                           "%s; not stored, left on the server", why);
        mwi_p3l_reopen_after(p, p->body_msg, 0);
        return 1;
    }
    mwi_p3l_end(p, MW_ETOOBIG, "%s; not stored, left on the server", why);
    return 1;
}
void mwi_loop_pop3_set_message_cap(mw_loop_job *job, uint64_t cap)
{
    ((p3l *)job->impl)->max_message = cap;
}

void mwi_loop_pop3_set_window_bytes(mw_loop_job *job, uint64_t bytes)
{
    ((p3l *)job->impl)->window_bytes = bytes;
}

int mwi_loop_pop3_set_max_line(mw_loop_job *job, size_t max_line)
{
    p3l *p = job->impl;
    if (max_line >= 512 && max_line + 2 > p->c.in_cap && p->c.external) {
        /* driven (pop3_drive.c): a blocking caller's line limit, as src/pop3 took it */
        char *n = realloc(p->c.in, max_line + 2);
        if (!n) return MW_ENOMEM;
        p->c.in = n;
        p->c.in_cap = max_line + 2;
    }
    if (max_line < 512 || max_line > p->c.in_cap - 1) return MW_EINVAL;
    p->max_line = max_line;
    return 0;
}
void mwi_loop_pop3_on_msg_error(mw_loop_job *job, mwi_loop_msg_error_fn fn, void *ud)
{
    p3l *p = job->impl;
    p->msg_error = fn;
    p->msg_error_ud = ud;
}

int mwi_loop_pop3_uid_mode(const mw_loop_job *job, uint64_t *last)
{
    const p3l *p = job->impl;
    *last = p->last;
    return p->uid_mode;
}

void mwi_p3l_fetch_start(p3l *p)
{
    mwi_p3l_set_state(p, S_LIST);
    mwi_p3l_send(p, K_LIST, "LIST", 0, NULL);
    if (p->capa_pipelining) mwi_p3l_send(p, K_UIDL, "UIDL", 0, NULL);
}

p3l_msg *mwi_p3l_find_msg(p3l *p, uint64_t num)
{
    size_t lo = 0, hi = p->nmsgs; /* LIST is in ascending order (add_msg) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (p->msgs[mid].num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < p->nmsgs && p->msgs[lo].num == num ? &p->msgs[lo] : NULL;
}

/* One line of a LIST or UIDL reply (dot-unstuffed already). */
void mwi_p3l_fetch_line(p3l *p, const char *l, size_t len)
{
    uint64_t a, b;
    if (p->relist) {
        mwi_p3l_relist_line(p, l, len);
        return;
    }
    if (p->ml == K_LIST) {
        if (mwi_pop3_parse_listing(l, len, &a, &b) != 0) {
            mwi_p3l_end(p, MW_EPROTO, "malformed LIST line: %.*s", (int)(len > 80 ? 80 : len), l);
            return;
        }
        add_msg(p, a, b);
    } else if (p->ml == K_UIDL) {
        const char *uid;
        size_t ul;
        if (mwi_pop3_parse_uidl(l, len, &a, &uid, &ul) != 0) return; /* a bad UID: none kept */
        p3l_msg *m = mwi_p3l_find_msg(p, a);
        if (m && !m->uid) {
            if (!(m->uid = malloc(ul + 1))) {
                mwi_p3l_end(p, MW_ENOMEM, "out of memory");
                return;
            }
            memcpy(m->uid, uid, ul);
            m->uid[ul] = 0;
        }
    }
}

void mwi_p3l_fetch_ml_end(p3l *p, int k)
{
    if (k != K_LIST && k != K_UIDL) return;
    if (p->relist) {
        mwi_p3l_relist_end(p, k);
        return;
    }
    if (k == K_LIST) p->list_done = 1;
    if (k == K_LIST && p->uidl_refused) {
        mwi_p3l_send(p, K_LAST, "LAST", 0, NULL);
        return;
    }
    if (k == K_UIDL) p->uidl_done = 1;
    if (k == K_UIDL) p->uid_mode = 2;
    /* As src/pop3's mw_pop3_list_uidl: UIDL is asked whatever CAPA says;
     * lock-step without PIPELINING. */
    if (k == K_LIST && !p->capa_pipelining) mwi_p3l_send(p, K_UIDL, "UIDL", 0, NULL);
    if (p->list_done && p->uidl_done) start_transfer(p);
}

/* Message octets from p->c.in at *pos into the store. */
void mwi_p3l_fetch_body(p3l *p, size_t *pos)
{
    if (p->in_top) {
        mwi_p3l_top_body(p, pos);
        return;
    }
    size_t used = 0, made = 0;
    int fin = mwi_pop3_body_decode(&p->body, p->c.in + *pos, p->c.in_len - *pos, &used, &made);
    if (made && !p->body_discard && mw_store_write(p->store, p->c.in + *pos, made) != 0) {
        /* The store aborted the delivery itself; the rest is dropped. */
        p->body_discard = 1;
        if (store_failed(p, p->msgs[p->body_msg].num, "store: ")) {
            p->in_body = 0;
            return;
        }
    }
    p->job->result.bytes += made;
    *pos += used;
    if (body_too_long(p)) return;
    if (fin) message_done(p);
}

static void retr_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    uint64_t num = p->msgs[c->arg].num;
    if (st->kind != MW_POP3_OK) {
        char what[48];
        snprintf(what, sizeof what, "RETR %llu", (unsigned long long)num);
        mw_error e;
        memset(&e, 0, sizeof e);
        if (p->retr_drain) { /* dropped with the rest in flight */
            mwi_p3l_fill_window(p);
            return;
        }
        int rc = mwi_pop3_status_error(&e, st, MW_ESERVER, what);
        mwi_p3l_msg_failed(p, num, rc, what, "%s", e.message);
        p->retr_drain = 1;
        p->retr_restart = (size_t)c->arg + 1;
        mwi_p3l_fill_window(p);
        return;
    }
    p->body_discard = p->retr_drain;
    if (!p->body_discard && mw_store_begin(p->store, NULL) != 0) {
        if (store_failed(p, num, "store: ")) return;
        p->body_discard = 1; /* read and dropped */
    }
    p->in_body = 1;
    p->body_msg = (size_t)c->arg;
    snprintf(p->body_what, sizeof p->body_what, "RETR %llu", (unsigned long long)num);
    /* retr_mode (pop3.h): the reply's size (none after a reply without
     * one, as src/pop3), LIST's, or none (slow) */
    p->declared = UINT64_MAX;
    if (p->retr_mode == MW_POP3_RETR_LIST) {
        p->declared = p->msgs[c->arg].size;
    } else if (p->retr_mode == MW_POP3_RETR_RETR && !p->no_retr_size &&
               !mwi_pop3_parse_retr_size(st->text, st->text_len, &p->declared)) {
        p->declared = UINT64_MAX;
        p->no_retr_size = 1;
    }
    mwi_pop3_body_init(&p->body);
}

static void dele_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    /* As src/pop3's DELE pipeline: every +OK counts, the first -ERR is the
     * job's error once QUIT was said (the rest still applies). */
    if (st->kind == MW_POP3_OK) {
        p->job->result.deleted++;
    } else if (!p->first_err.code) {
        char what[48];
        snprintf(what, sizeof what, "DELE %llu", (unsigned long long)c->arg);
        mwi_err_set_command(&p->first_err, what, strlen(what));
        mwi_pop3_status_error(&p->first_err, st, MW_ESERVER, what);
    }
    mwi_p3l_fill_window(p);
}

void mwi_p3l_fetch_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    int ok = st->kind == MW_POP3_OK;
    switch (c->kind) {
    case K_UIDL:
        if (!ok && p->relist) return mwi_p3l_refuse(p, c, st, MW_ESERVER);
        if (!ok) {
            /* No UIDL: LAST (RFC 1460) tells which messages were read, as
             * src/fetch's blocking fetch asks it. */
            p->uidl_done = p->uidl_refused = 1;
            if (p->list_done) mwi_p3l_send(p, K_LAST, "LAST", 0, NULL);
            return;
        }
        p->ml = c->kind;
        return;
    case K_LAST:
        if (ok && !mwi_pop3_parse_retr_size(st->text, st->text_len, &p->last)) {
            mwi_err_set_reply(&p->job->err, st->text, st->text_len);
            mwi_p3l_end(p, MW_EPROTO, "LAST reply is not a number: '%.200s'", p->job->err.reply);
            return;
        }
        p->uid_mode = ok ? 1 : 0;
        start_transfer(p);
        return;
    case K_LIST:
        if (!ok) return mwi_p3l_refuse(p, c, st, MW_ESERVER);
        p->ml = c->kind;
        return;
    case K_RETR:
        return retr_reply(p, c, st);
    case K_TOP:
        return mwi_p3l_top_reply(p, c, st);
    case K_DELE:
        return dele_reply(p, c, st);
    case K_QUIT:
        if (p->first_err.code) {
            p->job->result.quit_ok = ok;
            p->job->err = p->first_err;
            mwi_p3l_end(p, p->first_err.code, "%s", p->first_err.message);
            return;
        }
        if (!ok) return mwi_p3l_refuse(p, c, st, MW_ESERVER);
        p->job->result.quit_ok = 1;
        mwi_p3l_end(p, 0, "%s", "done");
        return;
    default:
        mwi_p3l_end(p, MW_EPROTO, "a reply to %s the fetch did not expect",
                    mwi_p3l_kind_name[c->kind]);
    }
}
