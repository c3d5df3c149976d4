/* A POP3 fetch as a non-blocking state machine on the loop (loop.h):
 * connect, greeting, CAPA, STLS (RFC 2595), USER/PASS (RFC 1939 §7),
 * LIST and UIDL, RETR pipelined (RFC 2449 §6.6), store, DELE after the
 * durable store, QUIT (RFC 1939 §6).  The replies go through the I/O-free
 * codecs of src/proto; TLS is OpenSSL over the non-blocking socket, its
 * WANT_READ / WANT_WRITE becoming the events the job waits for. */
#include "loop/lconn.h"
#include "loop/loop_int.h"
#include "proto/pop3_codec.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define P3L_IN_CAP      (32 * 1024) /* input buffer: a few reads' worth */
#define P3L_IDLE_IN_CAP 2048        /* an idle session's input buffer */
#define P3L_LINE_MAX    8192        /* a status or listing line */
#define P3L_CMD_MAX     255         /* RFC 2449 §4 */
#define P3L_WINDOW_MAX  1024
#define P3L_MAX_MSGS    (1000u * 1000)
#define P3L_READ_BUDGET (256 * 1024) /* bytes per step before yielding to other jobs */

enum p3l_state {
    S_CONNECTING,
    S_HANDSHAKE,
    S_GREETING,
    S_CAPA,
    S_STLS,
    S_USER,
    S_PASS,
    S_LIST,
    S_TRANSFER,
    S_QUIT,
    S_IDLE,
    S_DONE,
};
static const char *const state_name[] = {"connecting", "TLS handshake", "greeting", "CAPA",
                                         "STLS",       "USER",          "PASS",     "LIST/UIDL",
                                         "transfer",   "QUIT",          "idle",     "done"};

enum p3l_kind {
    K_GREET,
    K_CAPA,
    K_STLS,
    K_USER,
    K_PASS,
    K_LIST,
    K_UIDL,
    K_RETR,
    K_DELE,
    K_QUIT,
    K_NOOP,
    K_LAST
};
static const char *const kind_name[] = {"greeting", "CAPA", "STLS", "USER", "PASS", "LIST",
                                        "UIDL",     "RETR", "DELE", "QUIT", "NOOP", "LAST"};

typedef struct p3l_msg {
    uint64_t num, size;
    char *uid;
    unsigned char act; /* MW_LOOP_GET | MW_LOOP_DELE */
    unsigned char stored;
} p3l_msg;

typedef struct p3l_cmd {
    int kind;
    uint64_t arg;
} p3l_cmd;

typedef struct p3l {
    mw_loop_job *job;
    int state;
    mwi_lconn c; /* the connection half: socket, TLS, buffers, deadlines */
    char *user, *password;
    int tls_mode, allow_plaintext, keep;
    int connect_timeout_ms;
    int idle_noop_ms; /* > 0: an idle session (loop.h) */
    unsigned window;
    mw_store *store;
    mw_loop_stored_fn stored;
    void *stored_ud;
    mw_loop_plan_fn plan;     /* set: deletions deferred until commit (below) */
    mw_loop_commit_fn commit; /* called once before the first deferred DELE */
    void *plan_ud;
    int committed;    /* the commit callback said 0 */
    size_t next_dele; /* deferred DELE cursor into msgs */
    int capa_stls, capa_pipelining, capa_uidl;
    int ml;      /* in a multi-line reply of this kind (K_CAPA, K_LIST, K_UIDL), or -1 */
    int in_body; /* in a RETR body */
    mw_pop3_body body;
    size_t body_msg; /* index into msgs */
    p3l_cmd *q;      /* commands in flight, a ring of q_cap */
    size_t q_cap, q_head, q_len;
    p3l_msg *msgs;
    size_t nmsgs, msgs_cap;
    size_t next_retr;
    int list_done, uidl_done;
    mw_error first_err; /* the first message-level failure (below) */
    mwi_loop_msg_error_fn msg_error;
    void *msg_error_ud;
    int uid_mode;  /* 2: UIDL answered, 1: LAST instead, 0: neither (RFC 1460) */
    uint64_t last; /* LAST's answer */
    int uidl_refused;
    /* The size a RETR reply announced ("+OK 120 octets"), checked against
     * what came; UINT64_MAX: none.  After a reply without one, no more
     * checks: src/pop3 then switches to LIST sizes for good (retr_mode). */
    uint64_t declared;
    int no_retr_size;
} p3l;

static void set_state(p3l *p, int st)
{
    if (p->state == st || p->state == S_DONE) return;
    mwi_lconn_info(&p->c, "state %s -> %s", state_name[p->state], state_name[st]);
    p->state = st;
}

/* Ends the job: the connection is closed without QUIT unless QUIT was
 * answered already.  The code goes into the job's error as it is. */
static void end_job(p3l *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void end_job(p3l *p, int code, const char *fmt, ...)
{
    if (p->job->done) return;
    char msg[sizeof p->job->err.message] = "";
    if (code) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (p->in_body && p->store) mw_store_abort(p->store);
    p->in_body = 0;
    mwi_lconn_end(&p->c, code, msg);
    set_state(p, S_DONE);
}

/* Queues a command line (CR LF added); arg is the number for RETR/DELE. */
static int send_cmd(p3l *p, int kind, const char *line, uint64_t arg)
{
    size_t len = strlen(line);
    if (len > P3L_CMD_MAX - 2 || strpbrk(line, "\r\n")) {
        end_job(p, MW_EINVAL, "command %s refused: too long or holding CR/LF", kind_name[kind]);
        return -1;
    }
    if (p->q_len >= p->q_cap || mwi_lconn_queue_line(&p->c, line) != 0) {
        end_job(p, MW_ETOOBIG, "too many commands queued");
        return -1;
    }
    size_t slot = (p->q_head + p->q_len) % p->q_cap;
    p->q[slot].kind = kind;
    p->q[slot].arg = arg;
    p->q_len++;
    if (kind == K_PASS)
        mwi_lconn_trace(&p->c, MW_TRACE_SEND, "PASS ****", 9);
    else
        mwi_lconn_trace(&p->c, MW_TRACE_SEND, line, len);
    return 0;
}

static void err_command(p3l *p, const p3l_cmd *c)
{
    char buf[64];
    int n;
    if (c->kind == K_RETR || c->kind == K_DELE)
        n = snprintf(buf, sizeof buf, "%s %llu", kind_name[c->kind],
                     (unsigned long long)(c->kind == K_RETR ? p->msgs[c->arg].num : c->arg));
    else if (c->kind == K_PASS)
        n = snprintf(buf, sizeof buf, "PASS ****");
    else if (c->kind == K_USER)
        n = snprintf(buf, sizeof buf, "USER %.40s", p->user);
    else
        n = snprintf(buf, sizeof buf, "%s", kind_name[c->kind]);
    if (n > 0) mwi_err_set_command(&p->job->err, buf, strlen(buf));
}

/* A failure that costs one message, not the session (as src/fetch's
 * blocking fetch counts them): the message is neither stored nor deleted,
 * the first such failure becomes the job's error once QUIT was said, and
 * the hook (mwi_loop_pop3_on_msg_error) hears of each. */
static void msg_failed(p3l *p, uint64_t num, int code, const char *command, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void msg_failed(p3l *p, uint64_t num, int code, const char *command, const char *fmt, ...)
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

/* A -ERR ends the job with the error the blocking session gives for it
 * (mwi_pop3_status_error, src/proto/pop3_reply.c), named as src/pop3 names
 * it: "RETR 2: server said -ERR ...", a refused login "PASS refused: ...". */
static void refuse(p3l *p, const p3l_cmd *c, const mw_pop3_status *st, int code)
{
    char what[48];
    if (c->kind == K_RETR || c->kind == K_DELE)
        snprintf(what, sizeof what, "%s %llu", kind_name[c->kind],
                 (unsigned long long)(c->kind == K_RETR ? p->msgs[c->arg].num : c->arg));
    else
        snprintf(what, sizeof what, "%s", kind_name[c->kind]);
    mw_error *e = &p->job->err;
    if (c->kind != K_GREET) err_command(p, c);
    char cmd[sizeof e->command];
    memcpy(cmd, e->command, sizeof cmd);
    int rc = mwi_pop3_status_error(e, st, code, what);
    memcpy(e->command, cmd, sizeof cmd);
    if (c->kind == K_USER || c->kind == K_PASS)
        end_job(p, rc, "%s refused: -ERR %.200s", what, e->reply);
    else
        end_job(p, rc, "%.300s", e->message);
}

static void start_login(p3l *p)
{
    if (!p->c.tls && !p->allow_plaintext) {
        end_job(p, MW_EPOLICY,
                "login over an unencrypted connection not allowed "
                "(allow_plaintext)");
        return;
    }
    char line[P3L_CMD_MAX + 1];
    snprintf(line, sizeof line, "USER %s", p->user);
    set_state(p, S_USER);
    send_cmd(p, K_USER, line, 0);
}

static void after_capa(p3l *p)
{
    if (!p->c.tls && p->tls_mode == MW_TLS_STARTTLS) {
        if (!p->capa_stls) {
            end_job(p, MW_ETLS, "the server does not offer STLS (RFC 2595) and TLS is required");
            return;
        }
        set_state(p, S_STLS);
        send_cmd(p, K_STLS, "STLS", 0);
        return;
    }
    start_login(p);
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
            end_job(p, rc, "store: %s; nothing deleted", mw_store_error(p->store)->message);
            return -1;
        }
        rc = p->commit ? p->commit(p->job, p->plan_ud) : 0;
        if (rc) {
            end_job(p, rc, "%s", "stopped by the commit callback; nothing deleted");
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

static void fill_window(p3l *p)
{
    unsigned window = p->capa_pipelining ? p->window : 1;
    while (!p->job->done && p->q_len < window) {
        char line[40];
        if (p->next_retr < p->nmsgs) {
            const p3l_msg *m = &p->msgs[p->next_retr];
            if (m->act & MW_LOOP_GET) {
                snprintf(line, sizeof line, "RETR %llu", (unsigned long long)m->num);
                if (send_cmd(p, K_RETR, line, p->next_retr) != 0) return;
            }
            p->next_retr++;
            continue;
        }
        if (!p->plan) break;
        uint64_t num = 0;
        int more = next_deferred_dele(p, line, sizeof line, &num);
        if (more < 0) return;
        if (!more) break;
        if (send_cmd(p, K_DELE, line, num) != 0) return;
    }
    if (!p->job->done && p->next_retr >= p->nmsgs && p->q_len == 0 && !p->in_body &&
        (!p->plan || (p->committed && p->next_dele >= p->nmsgs))) {
        set_state(p, S_QUIT);
        send_cmd(p, K_QUIT, "QUIT", 0);
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
        end_job(p, MW_ENOMEM, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; !rc && i < p->nmsgs; i++) {
        v[i].num = p->msgs[i].num;
        v[i].size = p->msgs[i].size;
        v[i].uid = p->msgs[i].uid;
        act[i] = p->msgs[i].act;
    }
    if (!rc && (rc = p->plan(p->job, v, p->nmsgs, act, p->plan_ud)) != 0)
        end_job(p, rc, "%s", "stopped by the plan callback");
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
    size_t want = 0;
    for (size_t i = 0; i < p->nmsgs; i++)
        want += (p->msgs[i].act & MW_LOOP_GET) != 0;
    mwi_lconn_info(&p->c, "%zu messages listed, %zu to fetch", p->nmsgs, want);
    set_state(p, S_TRANSFER);
    fill_window(p);
}

/* The message is complete: durable store first, then DELE (never before). */
static void message_done(p3l *p)
{
    p3l_msg *m = &p->msgs[p->body_msg];
    p->in_body = 0;
    if (p->declared != UINT64_MAX && p->body.produced != p->declared) {
        /* Not as the reply announced it (RFC 1939 §5 sizes are exact): never
         * delivered, never deleted, as src/fetch does. */
        mw_store_abort(p->store);
        char what[48];
        snprintf(what, sizeof what, "RETR %llu", (unsigned long long)m->num);
        msg_failed(p, m->num, MW_EPROTO, what,
                   "message %llu arrived incomplete or not as announced (%llu octets, server said "
                   "%llu); not stored, left on the server",
                   (unsigned long long)m->num, (unsigned long long)p->body.produced,
                   (unsigned long long)p->declared);
        fill_window(p);
        return;
    }
    int rc = mw_store_commit(p->store);
    /* With a plan, deletions wait (next_deferred_dele), and one sync there
     * covers every message committed before it. */
    if (rc == 0 && !p->plan) rc = mw_store_sync(p->store);
    if (rc) {
        end_job(p, rc, "storing message %llu: %s", (unsigned long long)m->num,
                mw_store_error(p->store)->message);
        return;
    }
    p->job->result.stored++;
    m->stored = 1;
    mwi_lconn_info(&p->c, "message %llu stored (%llu octets)", (unsigned long long)m->num,
                   (unsigned long long)p->body.produced);
    if (p->stored) {
        rc = p->stored(p->job, m->num, m->uid ? m->uid : "", p->body.produced, p->stored_ud);
        if (rc) {
            end_job(p, rc, "stopped by the stored callback after message %llu",
                    (unsigned long long)m->num);
            return;
        }
    }
    if (p->job->cancel_rc) {
        end_job(p, p->job->cancel_rc, "cancelled after message %llu", (unsigned long long)m->num);
        return;
    }
    if (!p->plan && (m->act & MW_LOOP_DELE)) {
        char line[40];
        snprintf(line, sizeof line, "DELE %llu", (unsigned long long)m->num);
        if (send_cmd(p, K_DELE, line, m->num) != 0) return;
    }
    fill_window(p);
}

static int add_msg(p3l *p, uint64_t num, uint64_t size)
{
    if (p->nmsgs >= P3L_MAX_MSGS) {
        /* src/pop3's words for it (pop3.c, list_line): the loop sends no
         * STAT either. */
        end_job(p, MW_ETOOBIG,
                "LIST reply of over %u entries with no message count (STAT) to bound it; "
                "stopped reading it",
                P3L_MAX_MSGS);
        return -1;
    }
    if (p->nmsgs == p->msgs_cap) {
        size_t cap = p->msgs_cap ? p->msgs_cap * 2 : 16;
        p3l_msg *m = realloc(p->msgs, cap * sizeof *m);
        if (!m) {
            end_job(p, MW_ENOMEM, "out of memory");
            return -1;
        }
        p->msgs = m;
        p->msgs_cap = cap;
    }
    if (p->nmsgs && p->msgs[p->nmsgs - 1].num >= num) {
        end_job(p, MW_EPROTO, "LIST not in ascending message order at %llu",
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

/* One line of a multi-line reply (dot-unstuffed already). */
static void ml_line(p3l *p, const char *l, size_t len)
{
    uint64_t a, b;
    if (p->ml == K_CAPA) {
        /* The line is not NUL-terminated: the keyword ends at a space
         * within len, or at len. */
        const char *sp = memchr(l, ' ', len);
        size_t w = sp ? (size_t)(sp - l) : len;
        if (w == 4 && !memcmp(l, "STLS", 4)) p->capa_stls = 1;
        if (w == 10 && !memcmp(l, "PIPELINING", 10)) p->capa_pipelining = 1;
        if (w == 4 && !memcmp(l, "UIDL", 4)) p->capa_uidl = 1;
    } else if (p->ml == K_LIST) {
        if (mwi_pop3_parse_listing(l, len, &a, &b) != 0) {
            end_job(p, MW_EPROTO, "malformed LIST line: %.*s", (int)(len > 80 ? 80 : len), l);
            return;
        }
        add_msg(p, a, b);
    } else if (p->ml == K_UIDL) {
        const char *uid;
        size_t ul;
        if (mwi_pop3_parse_uidl(l, len, &a, &uid, &ul) != 0) return; /* a bad UID: none kept */
        size_t lo = 0, hi = p->nmsgs; /* LIST is in ascending order (add_msg) */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (p->msgs[mid].num < a)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < p->nmsgs && p->msgs[lo].num == a && !p->msgs[lo].uid) {
            if (!(p->msgs[lo].uid = malloc(ul + 1))) {
                end_job(p, MW_ENOMEM, "out of memory");
                return;
            }
            memcpy(p->msgs[lo].uid, uid, ul);
            p->msgs[lo].uid[ul] = 0;
        }
    }
}

static void ml_end(p3l *p)
{
    int k = p->ml;
    p->ml = -1;
    if (k == K_CAPA) {
        after_capa(p);
    } else if (k == K_LIST || k == K_UIDL) {
        if (k == K_LIST) p->list_done = 1;
        if (k == K_LIST && p->uidl_refused) {
            send_cmd(p, K_LAST, "LAST", 0);
            return;
        }
        if (k == K_UIDL) p->uidl_done = 1;
        if (k == K_UIDL) p->uid_mode = 2;
        /* As src/pop3's mw_pop3_list_uidl: UIDL is asked whatever CAPA
         * says; lock-step without PIPELINING. */
        if (k == K_LIST && !p->capa_pipelining) send_cmd(p, K_UIDL, "UIDL", 0);
        if (p->list_done && p->uidl_done) start_transfer(p);
    }
}

/* A status line, the answer to the oldest command in flight. */
static void status_line(p3l *p, const char *l, size_t len)
{
    mw_pop3_status st;
    if (p->q_len == 0) {
        end_job(p, MW_EPROTO, "the server sent a line no command asked for");
        return;
    }
    p3l_cmd c = p->q[p->q_head];
    p->q_head = (p->q_head + 1) % p->q_cap;
    p->q_len--;
    if (mwi_pop3_parse_status(&st, l, len) != 0 || st.kind == MW_POP3_CONT) {
        err_command(p, &c);
        mwi_err_set_reply(&p->job->err, l, len);
        end_job(p, MW_EPROTO, "neither +OK nor -ERR in answer to %s",
                c.kind == K_GREET ? "the greeting" : kind_name[c.kind]);
        return;
    }
    int ok = st.kind == MW_POP3_OK;
    switch (c.kind) {
    case K_GREET:
        if (!ok) return refuse(p, &c, &st, MW_ESERVER);
        set_state(p, S_CAPA);
        send_cmd(p, K_CAPA, "CAPA", 0);
        return;
    case K_CAPA:
        p->capa_stls = p->capa_pipelining = p->capa_uidl = 0;
        if (ok)
            p->ml = K_CAPA;
        else
            after_capa(p); /* no CAPA (RFC 2449 is optional): nothing offered */
        return;
    case K_STLS:
        if (!ok) return refuse(p, &c, &st, MW_ETLS);
        set_state(p, S_HANDSHAKE);
        p->c.tls_pending = 1; /* process() checks that nothing follows the +OK */
        return;
    case K_USER:
        if (!ok) return refuse(p, &c, &st, MW_EAUTH);
        set_state(p, S_PASS);
        {
            char line[P3L_CMD_MAX + 1];
            snprintf(line, sizeof line, "PASS %s", p->password);
            send_cmd(p, K_PASS, line, 0);
            explicit_bzero(line, sizeof line);
        }
        return;
    case K_PASS:
        if (!ok) return refuse(p, &c, &st, MW_EAUTH);
        if (p->idle_noop_ms > 0) { /* an idle session: logged in, waiting */
            set_state(p, S_IDLE);
            p->c.step_deadline = mw_now_ms() + p->idle_noop_ms;
            return;
        }
        set_state(p, S_LIST);
        send_cmd(p, K_LIST, "LIST", 0);
        if (p->capa_pipelining) send_cmd(p, K_UIDL, "UIDL", 0);
        return;
    case K_UIDL:
        if (!ok) {
            /* No UIDL: LAST (RFC 1460) tells which messages were read, as
             * src/fetch's blocking fetch asks it. */
            p->uidl_done = p->uidl_refused = 1;
            if (p->list_done) send_cmd(p, K_LAST, "LAST", 0);
            return;
        }
        p->ml = c.kind;
        return;
    case K_LAST:
        if (ok && !mwi_pop3_parse_retr_size(st.text, st.text_len, &p->last)) {
            mwi_err_set_reply(&p->job->err, st.text, st.text_len);
            end_job(p, MW_EPROTO, "LAST reply is not a number: '%.200s'", p->job->err.reply);
            return;
        }
        p->uid_mode = ok ? 1 : 0;
        start_transfer(p);
        return;
    case K_LIST:
        if (!ok) return refuse(p, &c, &st, MW_ESERVER);
        p->ml = c.kind;
        return;
    case K_RETR:
        if (!ok) {
            char what[48];
            snprintf(what, sizeof what, "RETR %llu", (unsigned long long)p->msgs[c.arg].num);
            mw_error e;
            memset(&e, 0, sizeof e);
            int rc = mwi_pop3_status_error(&e, &st, MW_ESERVER, what);
            msg_failed(p, p->msgs[c.arg].num, rc, what, "%s", e.message);
            fill_window(p);
            return;
        }
        if (mw_store_begin(p->store, NULL) != 0) {
            end_job(p, mw_store_error(p->store)->code ? mw_store_error(p->store)->code : MW_EIO,
                    "store: %s", mw_store_error(p->store)->message);
            return;
        }
        p->in_body = 1;
        p->body_msg = (size_t)c.arg;
        p->declared = UINT64_MAX;
        if (!p->no_retr_size && !mwi_pop3_parse_retr_size(st.text, st.text_len, &p->declared)) {
            p->declared = UINT64_MAX;
            p->no_retr_size = 1;
        }
        mwi_pop3_body_init(&p->body);
        return;
    case K_DELE:
        /* As src/pop3's DELE pipeline: every +OK counts, the first -ERR is
         * the job's error once QUIT was said (the rest still applies). */
        if (ok) {
            p->job->result.deleted++;
        } else if (!p->first_err.code) {
            char what[48];
            snprintf(what, sizeof what, "DELE %llu", (unsigned long long)c.arg);
            mwi_err_set_command(&p->first_err, what, strlen(what));
            mwi_pop3_status_error(&p->first_err, &st, MW_ESERVER, what);
        }
        fill_window(p);
        return;
    case K_NOOP:
        if (!ok) return refuse(p, &c, &st, MW_ESERVER);
        p->c.step_deadline = mw_now_ms() + p->idle_noop_ms;
        return;
    case K_QUIT:
        if (p->first_err.code) {
            p->job->result.quit_ok = ok;
            p->job->err = p->first_err;
            end_job(p, p->first_err.code, "%s", p->first_err.message);
            return;
        }
        if (!ok) return refuse(p, &c, &st, MW_ESERVER);
        p->job->result.quit_ok = 1;
        end_job(p, 0, "%s", "done");
        return;
    }
}

/* A RETR may bring its announced size plus max(size, 64 KiB), as the
 * blocking session allows (src/pop3): past that the message is aborted in
 * the store, left on the server, and the job ends. */
static int body_too_long(p3l *p)
{
    const p3l_msg *m = &p->msgs[p->body_msg];
    uint64_t slack = m->size > 65536 ? m->size : 65536;
    if (p->body.produced <= m->size + slack) return 0;
    mw_store_abort(p->store);
    p->in_body = 0;
    end_job(p, MW_ETOOBIG,
            "RETR %llu: the server sent over %llu octets for a message announced as %llu octets; "
            "not stored, left on the server",
            (unsigned long long)m->num, (unsigned long long)(m->size + slack),
            (unsigned long long)m->size);
    return 1;
}

/* Takes what is in p->c.in as far as it goes. */
static void process(p3l *p)
{
    size_t pos = 0;
    while (!p->job->done && p->state != S_HANDSHAKE) {
        if (p->in_body) {
            size_t used = 0, made = 0;
            if (pos == p->c.in_len) break;
            int fin =
                mwi_pop3_body_decode(&p->body, p->c.in + pos, p->c.in_len - pos, &used, &made);
            if (made && mw_store_write(p->store, p->c.in + pos, made) != 0) {
                int sc = mw_store_error(p->store)->code;
                p->in_body = 0; /* the store aborted the delivery itself */
                end_job(p, sc ? sc : MW_EIO, "store: %s", mw_store_error(p->store)->message);
                break;
            }
            p->job->result.bytes += made;
            pos += used;
            if (body_too_long(p)) break;
            if (fin) {
                message_done(p);
                continue;
            }
            if (used == 0) break; /* a CR kept for the next read */
            continue;
        }
        char *nl = memchr(p->c.in + pos, '\n', p->c.in_len - pos);
        if (!nl) {
            /* Bounded by the line limit and by the input buffer (smaller
             * for an idle session). */
            size_t maxl = p->c.in_cap - 1 < P3L_LINE_MAX ? p->c.in_cap - 1 : P3L_LINE_MAX;
            if (p->c.in_len - pos > maxl)
                end_job(p, MW_ETOOBIG, "a reply line is longer than %zu octets", maxl);
            break;
        }
        char *l = p->c.in + pos;
        size_t len = (size_t)(nl - l);
        pos += len + 1;
        if (len && l[len - 1] == '\r') len--;
        if (len > P3L_LINE_MAX) {
            end_job(p, MW_ETOOBIG, "a reply line is longer than %d octets", P3L_LINE_MAX);
            break;
        }
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, l, len);
        if (p->ml >= 0) {
            if (len == 1 && l[0] == '.')
                ml_end(p);
            else if (len && l[0] == '.')
                ml_line(p, l + 1, len - 1);
            else
                ml_line(p, l, len);
        } else {
            status_line(p, l, len);
        }
        /* RFC 2595 §4 leaves no room for bytes between +OK and the
         * handshake: they would be taken as said under TLS. */
        if (p->c.tls_pending && mwi_lconn_after_line(&p->c, pos)) break;
    }
    if (pos) {
        memmove(p->c.in, p->c.in + pos, p->c.in_len - pos);
        p->c.in_len -= pos;
    }
}

/* ---- the connection half's hooks (lconn.h) ---------------------------------- */

static void on_connected(void *impl)
{
    p3l *p = impl;
    p->q[0].kind = K_GREET;
    p->q_head = 0;
    p->q_len = 1;
    if (p->tls_mode == MW_TLS_IMPLICIT) {
        set_state(p, S_HANDSHAKE);
        mwi_lconn_start_tls(&p->c);
    } else {
        set_state(p, S_GREETING);
    }
}

static void on_tls_up(void *impl)
{
    p3l *p = impl;
    if (p->q_len) {
        set_state(p, S_GREETING); /* implicit TLS: the greeting comes now */
    } else {
        set_state(p, S_CAPA); /* RFC 2595 §4: capabilities again after STLS */
        send_cmd(p, K_CAPA, "CAPA", 0);
    }
}

static void on_process(void *impl)
{
    process(impl);
}

static void on_fail(void *impl, int code, const char *msg)
{
    p3l *p = impl;
    if (p->in_body && !p->job->done) {
        /* Cut off inside a message: src/pop3's words for it. */
        const p3l_msg *m = &p->msgs[p->body_msg];
        char what[48];
        snprintf(what, sizeof what, "RETR %llu", (unsigned long long)m->num);
        msg_failed(p, m->num, code, what, "%s: %s after %llu octets; the message is incomplete",
                   what, msg, (unsigned long long)p->body.produced);
        end_job(p, code, "%s", p->first_err.message);
        return;
    }
    end_job(p, code, "%s", msg);
}

static const char *on_state(void *impl)
{
    return state_name[((p3l *)impl)->state];
}

/* An idle session's timer: a NOOP (RFC 1939 §5) keeps it alive; a NOOP
 * still unanswered when the next is due is a timeout. */
static int on_deadline(void *impl)
{
    p3l *p = impl;
    if (p->state != S_IDLE || p->q_len) return 0;
    send_cmd(p, K_NOOP, "NOOP", 0);
    if (p->job->done) return 1;
    p->c.step_deadline = mw_now_ms() + (p->c.io_timeout_ms > 0 ? p->c.io_timeout_ms : 60000);
    return 1;
}

static const mwi_lconn_ops conn_ops = {on_connected, on_tls_up, on_process, NULL,
                                       on_fail,      on_state,  on_deadline};

static void step(mw_loop_job *j, int events)
{
    mwi_lconn_step(&((p3l *)j->impl)->c, events);
}

static void destroy(mw_loop_job *j)
{
    p3l *p = j->impl;
    if (!p) return;
    if (p->in_body && p->store) mw_store_abort(p->store);
    mwi_lconn_free(&p->c);
    for (size_t i = 0; i < p->nmsgs; i++)
        free(p->msgs[i].uid);
    free(p->msgs);
    free(p->q);
    free(p->user);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p);
    j->impl = NULL;
}

static const mwi_job_ops pop3_ops = {step, destroy};

static int bad_arg(const char *s)
{
    return !s || !*s || strpbrk(s, "\r\n") || strlen(s) > P3L_CMD_MAX - 7;
}

static char *dup_or_null(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

/* Checks opts and builds the job (not attached, no socket yet). */
static int build(mw_loop_job **out, const mw_loop_pop3_opts *o, int with_host, mw_error *err)
{
    *out = NULL;
    if (!o || o->version != MW_LOOP_POP3_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_loop_pop3_opts missing or of another version");
    if (bad_arg(o->user) || bad_arg(o->password))
        return mwi_err_set(err, MW_EINVAL,
                           "user and password must be given, without CR or LF, at most %d "
                           "octets",
                           P3L_CMD_MAX - 7);
    if (!o->store && o->idle_noop_ms <= 0)
        return mwi_err_set(err, MW_EINVAL, "no store to fetch into");
    if (with_host && (!o->host || !*o->host))
        return mwi_err_set(err, MW_EINVAL, "no host to connect to");
    if (o->tls != MW_TLS_STARTTLS && o->tls != MW_TLS_IMPLICIT && o->tls != MW_TLS_NONE)
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "TLS mode %d not on the loop yet (STARTTLS, IMPLICIT or NONE)", o->tls);
    if (o->window > P3L_WINDOW_MAX)
        return mwi_err_set(err, MW_EINVAL, "window %u over %d", o->window, P3L_WINDOW_MAX);
    mw_loop_job *j = calloc(1, sizeof *j);
    p3l *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    j->impl = p;
    j->ops = &pop3_ops;
    j->fd = -1;
    p->job = j;
    p->ml = -1;
    int fail = 0;
    p->c.host = dup_or_null(o->host, &fail);
    p->user = dup_or_null(o->user, &fail);
    p->password = dup_or_null(o->password, &fail);
    p->tls_mode = o->tls;
    p->c.port = o->port ? o->port : (o->tls == MW_TLS_IMPLICIT ? 995 : 110);
    p->allow_plaintext = o->allow_plaintext;
    p->keep = o->keep;
    p->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    p->c.io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 60000;
    p->c.total_deadline =
        o->max_time_ms > 0 ? mw_now_ms() + o->max_time_ms : (int64_t)MW_NO_DEADLINE;
    p->c.trace = o->trace;
    p->c.trace_ud = o->trace_userdata;
    p->window = o->window ? o->window : 16;
    /* In flight at most: the window's RETRs, one DELE, LIST and UIDL. */
    p->q_cap = p->window + 8;
    p->q = calloc(p->q_cap, sizeof *p->q);
    p->idle_noop_ms = o->idle_noop_ms;
    /* An idle session reads only short status lines (RFC 2449 §4: 512
     * octets): a small input buffer keeps thousands of them cheap. */
    size_t in_cap = p->idle_noop_ms > 0 ? P3L_IDLE_IN_CAP : P3L_IN_CAP;
    if (mwi_lconn_init(&p->c, j, &conn_ops, p, in_cap, p->q_cap * (P3L_CMD_MAX + 2),
                       P3L_READ_BUDGET) != 0 ||
        !p->q)
        fail = 1;
    p->c.connecting = 1;
    p->store = o->store;
    p->stored = o->stored;
    p->stored_ud = o->stored_userdata;
    p->plan = o->plan;
    p->commit = o->commit;
    p->plan_ud = o->plan_userdata;
    int rc = fail ? mwi_err_set(err, MW_ENOMEM, "out of memory") : 0;
    if (!rc && o->tls != MW_TLS_NONE) rc = mwi_ltls_cfg_init(&p->c.tlscfg, o->tls_opts, err);
    if (rc) {
        destroy(j);
        free(j);
        return rc;
    }
    *out = j;
    return 0;
}

static int attach(mw_loop *loop, mw_loop_job *j, int fd, mw_loop_done_fn done, void *ud,
                  mw_error *err)
{
    int rc = mwi_loop_attach(loop, j, err);
    if (rc) {
        if (fd >= 0) close(fd);
        destroy(j);
        free(j);
        return rc;
    }
    j->done_fn = done;
    j->userdata = ud;
    if ((rc = mwi_loop_set_fd(j, fd)) != 0) {
        close(fd);
        mwi_err_set(&j->err, rc, "descriptor %d cannot be watched", fd);
        end_job(j->impl, rc, "descriptor %d cannot be watched", fd);
    }
    return 0;
}

int mw_loop_add_pop3_fetch(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                           mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
    mw_loop_job *j;
    int rc = build(&j, opts, 1, err);
    if (rc) return rc;
    p3l *p = j->impl;
    int fd = -1, cr = 0, ce = 0;
    if ((rc = mwi_loop_tcp_socket(p->c.host, p->c.port, &fd, &cr, &ce, err)) != 0) {
        destroy(j);
        free(j);
        return rc;
    }
    if ((rc = attach(loop, j, fd, done, userdata, err)) != 0) return rc;
    p->c.step_deadline = mw_now_ms() + p->connect_timeout_ms;
    if (!j->done && cr != 0 && ce != EINPROGRESS)
        end_job(p, MW_ENET, "connect to %s port %u: %s", p->c.host, p->c.port, MW_ERRNO_TEXT(ce));
    /* Connected already or not: the first OUT event (or the deadline) says. */
    if (!j->done) mwi_lconn_arm(&p->c);
    if (out) *out = j;
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

int mwi_loop_add_pop3_fetch_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                               int fd, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    mw_loop_job *j;
    int rc = build(&j, opts, 0, err);
    if (rc) {
        close(fd);
        return rc;
    }
    p3l *p = j->impl;
    if (!p->c.host && !(p->c.host = strdup("peer"))) {
        close(fd);
        destroy(j);
        free(j);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    if ((rc = attach(loop, j, fd, done, userdata, err)) != 0) return rc;
    p->c.step_deadline = mw_now_ms() + p->connect_timeout_ms;
    if (!j->done) mwi_lconn_arm(&p->c);
    if (out) *out = j;
    return 0;
}
