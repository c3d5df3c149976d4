/* A POP3 session as a non-blocking state machine on the loop (loop.h):
 * connect, greeting, CAPA, STLS (RFC 2595), the login (pop3_login.c), then
 * a fetch into a store (pop3_fetch.c), an idle session, or the caller's
 * commands (pop3_cmds.c), and QUIT (RFC 1939 §6).  The replies go through
 * the I/O-free codecs of src/proto; TLS is OpenSSL over the non-blocking
 * socket, its WANT_READ / WANT_WRITE becoming the events the job waits
 * for (lconn.c). */
#include "loop/lproxy.h"
#include "loop/pop3_job.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

static const char *const state_name[] = {
    "connecting", "TLS handshake", "greeting", "CAPA",         "STLS", "USER",
    "PASS",       "LIST/UIDL",     "transfer", "QUIT",         "idle", "done",
    "AUTH",       "STAT",          "commands", "TOP (filter)", "held",
};
const char *const mwi_p3l_kind_name[] = {"greeting", "CAPA", "STLS", "USER",    "PASS", "LIST",
                                         "UIDL",     "RETR", "DELE", "QUIT",    "NOOP", "LAST",
                                         "AUTH",     "APOP", "STAT", "command", "TOP"};

void mwi_p3l_set_state(p3l *p, int st)
{
    if (p->state == st || p->state == S_DONE) return;
    /* A held job traces what src/pop3 traced: the lines, TLS, SASL notes. */
    if (!p->quiet) mwi_lconn_info(&p->c, "state %s -> %s", state_name[p->state], state_name[st]);
    p->state = st;
}

/* Ends the job: the connection is closed without QUIT unless QUIT was
 * answered already.  The code goes into the job's error as it is. */
void mwi_p3l_end(p3l *p, int code, const char *fmt, ...)
{
    if (p->job->done) return;
    char msg[sizeof p->job->err.message] = "";
    if (code) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    if (p->in_body && p->store && !p->body_discard) mw_store_abort(p->store);
    p->in_body = 0;
    mw_trace_fn trace = p->c.trace;
    if (p->quiet) p->c.trace = NULL; /* src/pop3 did not trace its errors */
    mwi_lconn_end(&p->c, code, msg);
    p->c.trace = trace;
    mwi_p3l_set_state(p, S_DONE);
}

int mwi_p3l_send(p3l *p, int kind, const char *line, uint64_t arg, const char *shown)
{
    size_t len = strlen(line);
    /* The lines of a SASL exchange are not commands (RFC 5034 §4 bounds
     * only the AUTH line). */
    size_t most = kind == K_AUTH && p->in_auth ? 16384 : P3L_CMD_MAX - 2;
    if (len > most || strpbrk(line, "\r\n")) {
        mwi_p3l_end(p, MW_EINVAL, "command %s refused: too long or holding CR/LF",
                    mwi_p3l_kind_name[kind]);
        return -1;
    }
    if (p->q_len >= p->q_cap || mwi_lconn_queue_line(&p->c, line) != 0) {
        mwi_p3l_end(p, MW_ETOOBIG, "too many commands queued");
        return -1;
    }
    size_t slot = (p->q_head + p->q_len) % p->q_cap;
    p->q[slot].kind = kind;
    p->q[slot].arg = arg;
    p->q_len++;
    if (shown && !p->trace_secrets)
        mwi_lconn_trace(&p->c, MW_TRACE_SEND, shown, strlen(shown));
    else
        mwi_lconn_trace(&p->c, MW_TRACE_SEND, line, len);
    return 0;
}

void mwi_p3l_trace_recv(p3l *p, const char *l, size_t len)
{
    if (p->in_auth && !p->trace_secrets && len && l[0] == '+' && (len == 1 || l[1] == ' '))
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, "+ ****", 6);
    else
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, l, len);
}

void mwi_p3l_err_command(p3l *p, const p3l_cmd *c)
{
    char buf[64];
    int n;
    if (c->kind == K_RETR || c->kind == K_DELE)
        n = snprintf(buf, sizeof buf, "%s %llu", mwi_p3l_kind_name[c->kind],
                     (unsigned long long)(c->kind == K_RETR ? p->msgs[c->arg].num : c->arg));
    else if (c->kind == K_TOP)
        n = snprintf(buf, sizeof buf, "TOP %llu 0", (unsigned long long)p->msgs[c->arg].num);
    else if (c->kind == K_PASS)
        n = snprintf(buf, sizeof buf, "PASS ****");
    else if (c->kind == K_CMD || c->kind == K_APOP || c->kind == K_AUTH)
        n = snprintf(buf, sizeof buf, "%s", p->cur_cmd);
    else if (c->kind == K_USER)
        n = snprintf(buf, sizeof buf, "USER %.40s", p->user);
    else
        n = snprintf(buf, sizeof buf, "%s", mwi_p3l_kind_name[c->kind]);
    if (n > 0) mwi_err_set_command(&p->job->err, buf, strlen(buf));
}

/* A -ERR ends the job with the error the blocking session gives for it
 * (mwi_pop3_status_error, src/proto/pop3_reply.c), named as src/pop3 names
 * it: "RETR 2: server said -ERR ...", a refused login "PASS refused: ...". */
void mwi_p3l_refuse(p3l *p, const p3l_cmd *c, const mw_pop3_status *st, int code)
{
    char what[48];
    if (c->kind == K_RETR || c->kind == K_DELE)
        snprintf(what, sizeof what, "%s %llu", mwi_p3l_kind_name[c->kind],
                 (unsigned long long)(c->kind == K_RETR ? p->msgs[c->arg].num : c->arg));
    else
        snprintf(what, sizeof what, "%s", mwi_p3l_kind_name[c->kind]);
    mw_error *e = &p->job->err;
    if (c->kind != K_GREET) mwi_p3l_err_command(p, c);
    char cmd[sizeof e->command];
    memcpy(cmd, e->command, sizeof cmd);
    int rc = mwi_pop3_status_error(e, st, code, what);
    memcpy(e->command, cmd, sizeof cmd);
    if (c->kind == K_USER || c->kind == K_PASS || c->kind == K_APOP)
        mwi_p3l_end(p, rc, "%s refused: -ERR %.200s", what, e->reply);
    else
        mwi_p3l_end(p, rc, "%.300s", e->message);
}

static void after_capa(p3l *p)
{
    /* Opportunistic TLS (net.h): STLS when offered, else on in plain
     * text, where a login then needs allow_plaintext (pop3_login.c). */
    int opp = p->tls_mode == MW_TLS_OPPORTUNISTIC && p->capa_known && p->capa_stls;
    if (!MWI_LCONN_SECURE(&p->c) && (p->tls_mode == MW_TLS_STARTTLS || opp)) {
        if (!p->capa_stls) {
            mwi_p3l_end(p, MW_ETLS,
                        "STLS was asked for but the server does not offer it%s; not going on in "
                        "plain text",
                        p->capa_known ? "" : " (CAPA failed)");
            return;
        }
        mwi_p3l_set_state(p, S_STLS);
        mwi_p3l_send(p, K_STLS, "STLS", 0, NULL);
        return;
    }
    mwi_p3l_login(p);
}

/* One line of a multi-line reply (dot-unstuffed already). */
static void ml_line(p3l *p, const char *l, size_t len)
{
    if (p->ml != K_CAPA) {
        if (p->mode == P3L_CMDS)
            mwi_p3l_cmds_line(p, l, len);
        else
            mwi_p3l_fetch_line(p, l, len);
        return;
    }
    /* A CAPA reply longer than this is not a capability list: src/pop3's
     * bound (pop3.c, capa_line). */
    if (++p->capa_lines > 1000) {
        mwi_p3l_end(p, MW_ETOOBIG, "CAPA reply of over %d lines; stopped reading it", 1000);
        return;
    }
    /* The line is not NUL-terminated: the keyword ends at a space within
     * len, or at len. */
    const char *sp = memchr(l, ' ', len);
    size_t w = sp ? (size_t)(sp - l) : len;
    if (p->mode == P3L_CMDS) mwi_p3l_capa_keep(p, l, len); /* mw_loop_pop3_capa_line */
    if (w == 4 && !strncasecmp(l, "STLS", 4)) p->capa_stls = 1;
    if (w == 10 && !strncasecmp(l, "PIPELINING", 10)) p->capa_pipelining = 1;
    if (w == 4 && !strncasecmp(l, "UIDL", 4)) p->capa_uidl = 1;
    if (w == 14 && !strncasecmp(l, "AUTH-RESP-CODE", 14)) p->capa_resp_codes = 1;
    if (w == 4 && !strncasecmp(l, "SASL", 4)) {
        free(p->sasl_offered);
        size_t off = sp ? w + 1 : w;
        if ((p->sasl_offered = malloc(len - off + 1)) != NULL) {
            memcpy(p->sasl_offered, l + off, len - off);
            p->sasl_offered[len - off] = '\0';
        }
    }
}

static void ml_end(p3l *p)
{
    int k = p->ml;
    p->ml = -1;
    if (k == K_CAPA)
        after_capa(p);
    else if (p->mode == P3L_CMDS)
        mwi_p3l_cmds_ml_end(p);
    else
        mwi_p3l_fetch_ml_end(p, k);
}

/* A line that is no status, or a "+ " outside AUTH, ends the job with
 * src/pop3's words (pop3.c, mwi_pop3_read_status, mwi_pop3_server_error):
 * the reply stream can no longer be trusted.  Returns 1 then. */
static int not_a_status(p3l *p, const p3l_cmd *c, mw_pop3_status *st, const char *l, size_t len)
{
    mw_error *je = &p->job->err;
    if (mwi_pop3_parse_status(st, l, len) != 0) {
        if (c->kind != K_GREET) mwi_p3l_err_command(p, c);
        mwi_err_set_reply(je, l, len);
        mwi_p3l_end(p, MW_EPROTO, "server sent neither +OK nor -ERR: '%.300s'", je->reply);
        return 1;
    }
    if (st->kind != MW_POP3_CONT || c->kind == K_AUTH) return 0;
    char what[sizeof je->command];
    if (c->kind != K_GREET) mwi_p3l_err_command(p, c);
    snprintf(what, sizeof what, "%s", c->kind == K_GREET ? "greeting" : je->command);
    int rc = mwi_pop3_status_error(je, st, MW_EPROTO, what);
    mwi_p3l_end(p, rc, "%.300s", je->message);
    return 1;
}

/* A status line, the answer to the oldest command in flight. */
static void status_line(p3l *p, const char *l, size_t len)
{
    mw_pop3_status st;
    if (p->q_len == 0) {
        mwi_p3l_end(p, MW_EPROTO, "the server sent a line no command asked for");
        return;
    }
    p3l_cmd c = p->q[p->q_head];
    p->q_head = (p->q_head + 1) % p->q_cap;
    p->q_len--;
    if (not_a_status(p, &c, &st, l, len)) return;
    int ok = st.kind == MW_POP3_OK;
    switch (c.kind) {
    case K_GREET:
        if (!ok) {
            /* src/pop3's words (pop3.c, read_greeting). */
            mw_error *e = &p->job->err;
            int rc = mwi_pop3_status_error(e, &st, MW_ESERVER, "greeting");
            mwi_p3l_end(p, rc, "server refused the connection: -ERR %.300s", e->reply);
            return;
        }
        {
            mwi_copy_printable(p->greeting, sizeof p->greeting, st.text, st.text_len);
            const char *ts;
            size_t tl;
            if (mwi_pop3_find_timestamp(st.text, st.text_len, &ts, &tl) &&
                tl < sizeof p->timestamp) {
                memcpy(p->timestamp, ts, tl);
                p->timestamp[tl] = '\0';
            }
        }
        mwi_p3l_set_state(p, S_CAPA);
        mwi_p3l_send(p, K_CAPA, "CAPA", 0, NULL);
        return;
    case K_CAPA:
        p->capa_stls = p->capa_pipelining = p->capa_uidl = p->capa_resp_codes = 0;
        free(p->sasl_offered);
        p->sasl_offered = NULL;
        p->capa_known = ok;
        p->capa_lines = 0;
        mwi_p3l_capa_forget(p);
        if (ok)
            p->ml = K_CAPA;
        else
            after_capa(p); /* no CAPA (RFC 2449 is optional): nothing offered */
        return;
    case K_STLS:
        if (!ok) {
            mw_error *e = &p->job->err;
            mwi_p3l_err_command(p, &c);
            mwi_pop3_status_error(e, &st, MW_ETLS, "STLS");
            mwi_p3l_end(p, MW_ETLS, "server refused STLS: -ERR %.300s; not going on in plain text",
                        e->reply);
            return;
        }
        mwi_p3l_set_state(p, S_HANDSHAKE);
        p->c.tls_pending = 1; /* process() checks that nothing follows the +OK */
        return;
    case K_USER:
    case K_PASS:
    case K_APOP:
    case K_AUTH:
        mwi_p3l_login_reply(p, &c, &st);
        return;
    case K_NOOP:
        if (!ok) return mwi_p3l_refuse(p, &c, &st, MW_ESERVER);
        p->c.step_deadline = mw_now_ms() + p->idle_noop_ms;
        return;
    default:
        break;
    }
    if (p->mode == P3L_CMDS)
        mwi_p3l_cmds_reply(p, &c, &st);
    else
        mwi_p3l_fetch_reply(p, &c, &st);
}

/* src/pop3's words (mwi_pop3_read_status): the command whose reply it is. */
static void line_too_long(p3l *p, size_t most)
{
    mw_error *e = &p->job->err;
    if (p->q_len && p->q[p->q_head].kind != K_GREET) mwi_p3l_err_command(p, &p->q[p->q_head]);
    mwi_p3l_end(p, MW_ETOOBIG, "reply line over the %zu-octet limit (after %s)", most,
                e->command[0] ? e->command : "connecting");
}

/* Takes what is in p->c.in as far as it goes. */
static void process(p3l *p)
{
    size_t pos = 0;
    /* Held (pop3_held.c) or a filter running (pop3_top.c): the rest waits. */
    while (!p->job->done && p->state != S_HANDSHAKE && !p->reopen_pending && p->state != S_HELD &&
           !p->top_wait) {
        if (p->in_body) {
            if (pos == p->c.in_len) break;
            size_t before = pos;
            if (p->mode == P3L_CMDS)
                mwi_p3l_cmds_body(p, &pos);
            else
                mwi_p3l_fetch_body(p, &pos);
            if (pos == before && p->in_body) break; /* a CR kept for the next read */
            continue;
        }
        char *nl = memchr(p->c.in + pos, '\n', p->c.in_len - pos);
        if (!nl) {
            /* Bounded by the line limit and by the input buffer (smaller
             * for an idle session). */
            size_t maxl = p->c.in_cap - 1 < p->max_line ? p->c.in_cap - 1 : p->max_line;
            if (p->c.in_len - pos > maxl) line_too_long(p, maxl);
            break;
        }
        char *l = p->c.in + pos;
        size_t len = (size_t)(nl - l);
        pos += len + 1;
        if (len && l[len - 1] == '\r') len--;
        if (len > p->max_line) {
            line_too_long(p, p->max_line);
            break;
        }
        mwi_p3l_trace_recv(p, l, len);
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
    if (p->reopen_pending && !p->job->done) mwi_p3l_reopen(p);
}

/* ---- the connection half's hooks (lconn.h) ---------------------------------- */

static void on_connected(void *impl)
{
    p3l *p = impl;
    p->q[0].kind = K_GREET;
    p->q_head = 0;
    p->q_len = 1;
    if (p->tls_mode == MW_TLS_IMPLICIT) {
        mwi_p3l_set_state(p, S_HANDSHAKE);
        mwi_lconn_start_tls(&p->c);
    } else {
        mwi_p3l_set_state(p, S_GREETING);
    }
}

static void on_tls_up(void *impl)
{
    p3l *p = impl;
    mwi_lconn_info(&p->c, "TLS established (%s)", p->q_len ? "implicit" : "STLS");
    if (p->q_len) {
        mwi_p3l_set_state(p, S_GREETING); /* implicit TLS: the greeting comes now */
    } else {
        mwi_p3l_set_state(p, S_CAPA); /* RFC 2595 §4: capabilities again after STLS */
        mwi_p3l_send(p, K_CAPA, "CAPA", 0, NULL);
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
        char m[sizeof p->job->err.message];
        snprintf(m, sizeof m, "%s: %s after %llu octets; the message is incomplete", p->body_what,
                 msg, (unsigned long long)p->body.produced);
        if (p->mode == P3L_FETCH && !p->in_top) {
            const p3l_msg *pm = &p->msgs[p->body_msg];
            mwi_p3l_msg_failed(p, pm->num, code, p->body_what, "%s", m);
        }
        mwi_p3l_end(p, code, "%s", m);
        return;
    }
    mwi_p3l_end(p, code, "%s", msg);
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
    mwi_p3l_send(p, K_NOOP, "NOOP", 0, NULL);
    if (p->job->done) return 1;
    p->c.step_deadline = mw_now_ms() + (p->c.io_timeout_ms > 0 ? p->c.io_timeout_ms : 60000);
    return 1;
}

static const mwi_lconn_ops conn_ops = {on_connected, on_tls_up, on_process,  NULL,
                                       on_fail,      on_state,  on_deadline, NULL};

static void step(mw_loop_job *j, int events)
{
    mwi_p3l_top_step(j->impl, events); /* lconn.c's step, or a filter's wait (pop3_top.c) */
}

static void destroy(mw_loop_job *j)
{
    p3l *p = j->impl;
    if (!p) return;
    if (p->in_body && p->store && p->mode == P3L_FETCH && !p->body_discard)
        mw_store_abort(p->store);
    if (p->top_wait && p->headers_drop) p->headers_drop(j, p->headers_ud);
    mwi_lconn_free(&p->c);
    mwi_p3l_login_free(p);
    for (size_t i = 0; i < p->nmsgs; i++)
        free(p->msgs[i].uid);
    free(p->msgs);
    free(p->q);
    free(p->cmds);
    free(p->user);
    free(p->authzid);
    free(p->sasl_mechs);
    free(p->sasl_offered);
    mwi_p3l_capa_forget(p);
    free(p->capa_kept);
    mwi_buf_free(&p->hdr);
    if (p->token) {
        explicit_bzero(p->token, strlen(p->token));
        free(p->token);
    }
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p);
    j->impl = NULL;
}

const mwi_job_ops mwi_p3l_ops = {step, destroy};

static int bad_arg(const char *s, int may_be_null)
{
    if (!s) return !may_be_null;
    return !*s || strpbrk(s, "\r\n") || strlen(s) > P3L_CMD_MAX - 7;
}

static char *dup_or_null(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

/* The login options: version 1 knew USER/PASS only. */
static int check_login(const mw_loop_pop3_opts *o, int mode, int driven, mw_error *err)
{
    int auth = o->version >= 2 ? o->auth : MW_POP3_AUTH_USER;
    if (auth < MW_POP3_AUTH_AUTO || auth > MW_POP3_AUTH_NONE)
        return mwi_err_set(err, MW_EINVAL, "unknown login method %d", auth);
    /* mw_fetch_account's stream may be logged in already (pop3.h) */
    if (auth == MW_POP3_AUTH_NONE && mode != P3L_CMDS && !driven)
        return mwi_err_set(err, MW_EINVAL, "a fetch or an idle session needs a login");
    int need_pw = auth == MW_POP3_AUTH_USER || auth == MW_POP3_AUTH_APOP;
    /* SASL may go without a user (EXTERNAL): pop3_login.c checks then. */
    int sasl = auth == MW_POP3_AUTH_SASL || auth == MW_POP3_AUTH_AUTO;
    if (o->version >= 2 && o->token && strpbrk(o->token, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "CR or LF in the token");
    if (auth != MW_POP3_AUTH_NONE && (bad_arg(o->user, sasl) || bad_arg(o->password, !need_pw)))
        return mwi_err_set(err, MW_EINVAL,
                           "user and password must be given, without CR or LF, at most %d "
                           "octets",
                           P3L_CMD_MAX - 7);
    if (o->version >= 2 && (bad_arg(o->authzid, 1) || bad_arg(o->sasl_mechs, 1)))
        return mwi_err_set(err, MW_EINVAL, "CR or LF in the authzid or the SASL mechanism list");
    return 0;
}

/* build()'s flags: a host is needed; a held job (pop3_held.c), whose
 * login options src/pop3 checked and whose login says what is missing
 * in src/pop3's words; a job for a driver (pop3_drive.c). */
#define B_HOST   1
#define B_HELD   2
#define B_DRIVEN 4

static int check_opts(const mw_loop_pop3_opts *o, int mode, int flags, mw_error *err)
{
    if (!o || o->version < 1 || o->version > MW_LOOP_POP3_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_loop_pop3_opts missing or of another version");
    int rc = flags & B_HELD ? 0 : check_login(o, mode, flags & B_DRIVEN, err);
    if (rc) return rc;
    int with_host = flags & B_HOST;
    if (mode == P3L_FETCH && !o->store)
        return mwi_err_set(err, MW_EINVAL, "no store to fetch into");
    if (with_host && (!o->host || !*o->host))
        return mwi_err_set(err, MW_EINVAL, "no host to connect to");
    int opp = o->version >= 4 && o->tls == MW_TLS_OPPORTUNISTIC;
    if (o->tls != MW_TLS_STARTTLS && o->tls != MW_TLS_IMPLICIT && o->tls != MW_TLS_NONE && !opp)
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "TLS mode %d not on the loop yet (STARTTLS, IMPLICIT or NONE)", o->tls);
    if (o->version >= 4 && (o->retr_mode < MW_POP3_RETR_RETR || o->retr_mode > MW_POP3_RETR_SLOW))
        return mwi_err_set(err, MW_EINVAL, "unknown retr mode %d", o->retr_mode);
    if (o->window > P3L_WINDOW_MAX)
        return mwi_err_set(err, MW_EINVAL, "window %u over %d", o->window, P3L_WINDOW_MAX);
    return 0;
}

static void take_opts(p3l *p, const mw_loop_pop3_opts *o, int *fail)
{
    p->c.host = dup_or_null(o->host, fail);
    p->user = dup_or_null(o->user, fail);
    p->password = dup_or_null(o->password, fail);
    p->auth = MW_POP3_AUTH_USER;
    p->sasl_ir = 1;
    if (o->version >= 2) {
        p->auth = o->auth;
        p->authzid = dup_or_null(o->authzid, fail);
        p->sasl_mechs = dup_or_null(o->sasl_mechs, fail);
        p->sasl_ir = o->sasl_ir;
        p->trace_secrets = o->trace_secrets;
        p->token = dup_or_null(o->token, fail);
    }
    p->tls_mode = o->tls;
    if (o->version >= 4) {
        p->c.lf_only = o->msex != 0;
        p->retr_mode = o->retr_mode;
    }
    p->c.port = o->port ? o->port : (o->tls == MW_TLS_IMPLICIT ? 995 : 110);
    p->allow_plaintext = o->allow_plaintext;
    p->keep = o->keep;
    p->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    p->c.io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 60000;
    p->c.total_deadline =
        o->max_time_ms > 0 ? mw_now_ms() + o->max_time_ms : (int64_t)MW_NO_DEADLINE;
    p->c.max_time_ms = o->max_time_ms;
    p->c.tls_reply = "STLS +OK";
    p->c.trace = o->trace;
    p->c.trace_ud = o->trace_userdata;
    p->window = o->window ? o->window : 16;
    p->idle_noop_ms = o->idle_noop_ms;
    p->store = o->store;
    p->stored = o->stored;
    p->stored_ud = o->stored_userdata;
    p->plan = o->plan;
    p->commit = o->commit;
    p->plan_ud = o->plan_userdata;
}

/* Checks opts and builds the job (not attached, no socket yet). */
static int build(mw_loop_job **out, const mw_loop_pop3_opts *o, int mode, int flags, mw_error *err)
{
    *out = NULL;
    int rc = check_opts(o, mode, flags, err);
    if (rc) return rc;
    mw_loop_job *j = calloc(1, sizeof *j);
    p3l *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    j->impl = p;
    j->ops = &mwi_p3l_ops;
    j->fd = -1;
    p->job = j;
    p->ml = -1;
    p->mode = mode;
    p->max_line = P3L_LINE_MAX;
    int fail = 0;
    take_opts(p, o, &fail);
    /* In flight at most: the window's RETRs, one DELE, LIST and UIDL. */
    p->q_cap = p->window + 8;
    p->q = calloc(p->q_cap, sizeof *p->q);
    /* An idle session reads only short status lines (RFC 2449 §4: 512
     * octets): a small input buffer keeps thousands of them cheap. */
    size_t in_cap = mode == P3L_IDLE ? P3L_IDLE_IN_CAP : P3L_IN_CAP;
    /* Output: the window's commands, or a SASL line (driver.h). */
    size_t out_max = p->q_cap * (P3L_CMD_MAX + 2) + 16386;
    if (mwi_lconn_init(&p->c, j, &conn_ops, p, in_cap, out_max, P3L_READ_BUDGET) != 0 || !p->q)
        fail = 1;
    p->c.connecting = 1;
    rc = fail ? mwi_err_set(err, MW_ENOMEM, "out of memory") : 0;
    if (!rc && o->tls != MW_TLS_NONE) rc = mwi_ltls_cfg_init(&p->c.tlscfg, o->tls_opts, err);
    p->c.tlscfg.keep_peer = mode == P3L_CMDS; /* mw_loop_pop3_tls_info */
    if (!rc && o->version >= 3 && o->proxy && *o->proxy)
        rc = mwi_lproxy_setup(&p->c, o->proxy, p->connect_timeout_ms, err);
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
        mwi_p3l_end(j->impl, rc, "descriptor %d cannot be watched", fd);
    }
    return 0;
}

/* Connects (fd < 0) or takes fd, and attaches the built job. */
static int start(mw_loop *loop, mw_loop_job **out, mw_loop_job *j, int fd, mw_loop_done_fn done,
                 void *userdata, mw_error *err)
{
    p3l *p = j->impl;
    int rc, cr = 0, ce = 0;
    if (fd < 0 && (rc = mwi_loop_tcp_socket(p->c.host, p->c.port, &fd, &cr, &ce, err)) != 0) {
        destroy(j);
        free(j);
        return rc;
    }
    if ((rc = attach(loop, j, fd, done, userdata, err)) != 0) return rc;
    p->c.step_deadline = mw_now_ms() + p->connect_timeout_ms;
    p->c.connect_timeout_ms = p->connect_timeout_ms; /* a name's race (leyes.h) */
    if (!j->done && cr != 0 && ce != EINPROGRESS)
        mwi_p3l_end(p, MW_ENET, "connect to %s port %u: %s", p->c.host, p->c.port,
                    MW_ERRNO_TEXT(ce));
    /* Connected already or not: the first OUT event (or the deadline) says. */
    if (!j->done) mwi_lconn_arm(&p->c);
    if (out) *out = j;
    return 0;
}

/* A job for a driver (pop3_drive.c): external I/O, a host name ("" for
 * none) for errors and TLS. */
static int build_external(mw_loop_job **out, const mw_loop_pop3_opts *opts, int mode, int flags,
                          mw_error *err)
{
    int rc = build(out, opts, mode, flags, err);
    if (rc) return rc;
    p3l *p = (*out)->impl;
    p->c.external = 1;
    if (!p->c.host && !(p->c.host = strdup(""))) {
        destroy(*out);
        free(*out);
        *out = NULL;
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    return 0;
}

int mwi_loop_pop3_fetch_new(mw_loop_job **out, const mw_loop_pop3_opts *opts, mw_error *err)
{
    return build_external(out, opts, P3L_FETCH, B_DRIVEN, err);
}

int mwi_p3l_held_new(mw_loop_job **out, const mw_loop_pop3_opts *opts, mw_error *err)
{
    int rc = build_external(out, opts, P3L_CMDS, B_HELD | B_DRIVEN, err);
    if (rc) return rc;
    p3l *p = (*out)->impl;
    p->held = p->quiet = 1;
    return 0;
}

int mw_loop_add_pop3_fetch(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                           mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
    mw_loop_job *j = NULL;
    int mode = opts && opts->idle_noop_ms > 0 ? P3L_IDLE : P3L_FETCH;
    int rc = build(&j, opts, mode, B_HOST, err);
    return rc ? rc : start(loop, out, j, -1, done, userdata, err);
}

/* The command sequence job, not attached yet. */
static int build_cmds(mw_loop_job **out, const mw_loop_pop3_opts *opts,
                      const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                      void *reply_userdata, int with_host, mw_error *err)
{
    if (n && !cmds) return mwi_err_set(err, MW_EINVAL, "no commands");
    for (size_t i = 0; i < n; i++)
        if (cmds[i].op < MW_LOOP_POP3_STAT || cmds[i].op > MW_LOOP_POP3_CAPA)
            return mwi_err_set(err, MW_EINVAL, "command %zu: unknown operation %d", i, cmds[i].op);
    mw_loop_job *j = NULL;
    int rc = build(&j, opts, P3L_CMDS, with_host ? B_HOST : 0, err);
    if (rc) return rc;
    p3l *p = j->impl;
    if (n && !(p->cmds = malloc(n * sizeof *cmds))) {
        destroy(j);
        free(j);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    if (n) memcpy(p->cmds, cmds, n * sizeof *cmds);
    p->ncmds = n;
    p->reply = reply;
    p->reply_ud = reply_userdata;
    *out = j;
    return 0;
}

int mw_loop_add_pop3_cmds(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                          const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                          void *reply_userdata, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
    mw_loop_job *j = NULL;
    int rc = build_cmds(&j, opts, cmds, n, reply, reply_userdata, 1, err);
    return rc ? rc : start(loop, out, j, -1, done, userdata, err);
}

/* A built job over a descriptor the caller connected (tests, fuzzing). */
static int start_given(mw_loop *loop, mw_loop_job **out, mw_loop_job *j, int fd,
                       mw_loop_done_fn done, void *userdata, mw_error *err)
{
    p3l *p = j->impl;
    p->given_fd = 1;
    if (!p->c.host && !(p->c.host = strdup("peer"))) {
        close(fd);
        destroy(j);
        free(j);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    return start(loop, out, j, fd, done, userdata, err);
}

int mwi_loop_add_pop3_cmds_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                              const mw_loop_pop3_cmd *cmds, size_t n, mw_loop_pop3_reply_fn reply,
                              void *reply_userdata, int fd, mw_loop_done_fn done, void *userdata,
                              mw_error *err)
{
    if (out) *out = NULL;
    mw_loop_job *j = NULL;
    int rc = build_cmds(&j, opts, cmds, n, reply, reply_userdata, 0, err);
    if (rc) {
        close(fd);
        return rc;
    }
    return start_given(loop, out, j, fd, done, userdata, err);
}

int mwi_loop_add_pop3_fetch_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_pop3_opts *opts,
                               int fd, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    mw_loop_job *j = NULL;
    int mode = opts && opts->idle_noop_ms > 0 ? P3L_IDLE : P3L_FETCH;
    int rc = build(&j, opts, mode, 0, err);
    if (rc) {
        close(fd);
        return rc;
    }
    return start_given(loop, out, j, fd, done, userdata, err);
}
