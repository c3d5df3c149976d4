/* The SMTP session as a non-blocking state machine, on a loop (loop.h)
 * or under the blocking API (smtp_held.c), the session half
 * (smtp_job.h): connect, greeting, EHLO (HELO after a 5xx but 554, RFC
 * 5321 §4.1.4), STARTTLS (RFC 3207) and EHLO again, AUTH (smtp_auth.c),
 * then the transaction (smtp_tx.c), RSET and QUIT.  Replies through
 * src/proto/smtp_reply.h; the socket and TLS through lconn.c. */
#include "loop/lproxy.h"
#include "loop/smtp_job.h"
#include "sasl/driver.h"
#include "proto/smtp_reply.h"
#include "util/buf.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define SJ_IN_CAP      8192
#define SJ_ARG_MAX     256          /* a path or name in a command (RFC 5321 §4.5.3.1.3) */
#define SJ_OUT_MAX     (512 * 1024) /* commands, or a chunk of the message encoded */
#define SJ_READ_BUDGET (64 * 1024)

static const char *const state_name[] = {
    "connecting", "TLS handshake", "greeting", "EHLO", "HELO", "STARTTLS", "QUED", "AUTH",
    "envelope",   "DATA",          "message",  "RSET", "QUIT", "QUIT",     "held", "done"};

void mwi_sj_set_state(sj *p, int st)
{
    if (p->state == st || p->state == S_DONE) return;
    mwi_lconn_info(&p->c, "state %s -> %s", state_name[p->state], state_name[st]);
    p->state = st;
}

void mwi_sj_end(sj *p, int code)
{
    if (p->job->done) return;
    mw_error *e = &p->job->err;
    if (p->bcc_state == 1 && p->main_rc) { /* the Bcc copy's failure does not count */
        code = p->main_rc;
        p->sh->err = p->main_err;
    }
    if (code) {
        if (p->sh->err.code == 0) mwi_err_set(&p->sh->err, code, "%s", mw_strerror(code));
        *e = p->sh->err;
    }
    if (p->b) mwi_sjb_abandon(p, code);
    mwi_sj_tx_free(p);
    mwi_lconn_end(&p->c, code, code ? p->sh->err.message : "");
    if (code) e->code = code;
    mwi_sj_set_state(p, S_DONE);
}

int mwi_sj_send(sj *p, int st, const char *line, size_t len, const char *shown, const char *what)
{
    mw_error *e = &p->sh->err;
    char buf[MWI_SASLD_MAX_LINE]; /* the longest line: an AUTH continuation */
    int rc = 0;
    if (len >= sizeof buf || memchr(line, '\r', len) || memchr(line, '\n', len) ||
        memchr(line, '\0', len))
        rc = mwi_err_set(e, MW_EINVAL, "CR, LF or NUL in a command: refused");
    if (!rc) {
        memcpy(buf, line, len);
        buf[len] = '\0';
        const char *sh = shown ? shown : buf;
        mwi_err_set_command(e, sh, strlen(sh));
        rc = mwi_lconn_queue_line(&p->c, buf);
        if (rc)
            mwi_err_set(e, rc, "command refused: %s", mw_strerror(rc));
        else /* before the wipe: sh may be buf */
            mwi_lconn_trace(&p->c, MW_TRACE_SEND, sh, strlen(sh));
        explicit_bzero(buf, len + 1); /* what was copied, not the 16 KiB */
    }
    if (rc) {
        p->dead = 1;
        mwi_sj_end(p, rc);
        return rc;
    }
    p->waiting = what;
    /* BDAT chunks go while earlier replies may be arriving: keep them. */
    if (!(p->state == S_BODY && st == S_BODY)) mwi_smtp_reply_init(p->reply);
    mwi_sj_set_state(p, st);
    return 0;
}

void mwi_sj_finish(sj *p, int code, int reset)
{
    p->end_rc = code;
    p->end_err = p->sh->err;
    if (code && p->end_err.code == 0) mwi_err_set(&p->end_err, code, "%s", mw_strerror(code));
    if (p->dead) {
        p->sh->err = p->end_err;
        mwi_sj_end(p, code);
        return;
    }
    if (reset)
        mwi_sj_send(p, S_RSET, "RSET", 4, NULL, "RSET");
    else
        mwi_sj_tx_after(p);
}

/* A failure before the session was ready, as mw_smtp_open's failover
 * reports it: "HOST port N: why", and QUIT when the server can still
 * hear (not after a TLS or certificate failure). */
void mwi_sj_open_fail(sj *p, int code)
{
    mw_error *e = &p->sh->err;
    if (e->code == 0) mwi_err_set(e, code, "%s", mw_strerror(code));
    char msg[sizeof e->message + 300];
    snprintf(msg, sizeof msg, "%.200s port %u: %s", p->c.host, p->c.port, e->message);
    mwi_copy_printable(e->message, sizeof e->message, msg, strlen(msg));
    mwi_lconn_info(&p->c, "%s", e->message);
    p->end_rc = code;
    p->end_err = *e;
    if (p->ready_out && p->in_auth) *p->ready_out = -1;
    if (p->dead || code == MW_ETLS || code == MW_ECERT) {
        mwi_sj_end(p, code);
        return;
    }
    if (mwi_sj_send(p, S_BYE, "QUIT", 4, NULL, "QUIT") == 0) p->sh->err = p->end_err;
}

static void send_ehlo(sj *p, int st)
{
    char line[SJ_ARG_MAX + 8];
    int n = snprintf(line, sizeof line, "%s %s", st == S_HELO ? "HELO" : "EHLO", p->sh->client);
    mwi_sj_send(p, st, line, (size_t)n, NULL, st == S_HELO ? "HELO" : "EHLO");
}

void mwi_sj_session_ready(sj *p)
{
    p->ready = 1;
    if (p->ready_out) *p->ready_out = 1;
    if (p->b) { /* a batch: each message's deadline in smtp_batch.c */
        mwi_lconn_info(&p->c, "ready on %s port %u%s", p->c.host, p->c.port,
                       MWI_LCONN_SECURE(&p->c) ? " (TLS)" : "");
        mwi_sjb_start(p);
        return;
    }
    if (p->tx_max_time_ms > 0) { /* mw_smtp_set_maxtime: from here to the end of the data */
        int64_t d = mw_now_ms() + p->tx_max_time_ms;
        if (d < p->c.total_deadline) {
            p->c.total_deadline = d;
            p->c.max_time_ms = 0; /* what runs out now is not the session's max-time */
        }
    }
    mwi_lconn_info(&p->c, "ready on %s port %u%s", p->c.host, p->c.port,
                   MWI_LCONN_SECURE(&p->c) ? " (TLS)" : "");
    mwi_sj_tx_start(p);
}

/* EHLO (or HELO) answered 250: STARTTLS, AUTH or the transaction. */
static void after_ehlo(sj *p)
{
    int opp = p->tls_mode == MW_TLS_OPPORTUNISTIC;
    if (!MWI_LCONN_SECURE(&p->c) && !p->plain_ok && (p->tls_mode == MW_TLS_STARTTLS || opp)) {
        if (!(p->sh->caps.flags & MW_SMTP_CAP_STARTTLS) && p->tlspolicy &&
            p->tlspolicy(0, "STARTTLS not offered", p->tlspolicy_ud) ==
                MW_SMTP_TLSPOLICY_INSECURE) {
            mwi_lconn_info(&p->c, "STARTTLS not offered; the tlspolicy allows plain text");
            p->plain_ok = 1;
            after_ehlo(p);
            return;
        }
        if (!(p->sh->caps.flags & MW_SMTP_CAP_STARTTLS) && opp && !p->tlspolicy) {
            p->plain_ok = 1; /* opportunistic: plain text it is */
            after_ehlo(p);
            return;
        }
        if (!(p->sh->caps.flags & MW_SMTP_CAP_STARTTLS)) {
            mwi_err_set(&p->sh->err, MW_ETLS,
                        "the server does not offer STARTTLS (RFC 3207) and TLS is required");
            mwi_sj_open_fail(p, MW_ETLS);
            return;
        }
        mwi_sj_send(p, S_STARTTLS, "STARTTLS", 8, NULL, "STARTTLS");
        return;
    }
    if (p->queue && (p->sh->caps.flags & MW_SMTP_CAP_XQUE)) {
        /* Tcllib -queue: QUED asks the server to queue, not deliver now. */
        p->queue = 0;
        mwi_sj_send(p, S_QUED, "QUED", 4, NULL, "QUED");
        return;
    }
    if (p->user || p->token || p->token_fn)
        mwi_sj_auth_start(p);
    else
        mwi_sj_session_ready(p);
}

/* What mw_smtp_greeting and mw_smtp_ehlo_text give (mw_loop_smtp_session),
 * kept as smtp.c keeps them: the greeting printable (control octets but
 * the line breaks '?', the last line break gone), the EHLO text as it is.
 * 0, or -1 when out of memory (the job has ended). */
static int keep_text(sj *p, char **to, int printable)
{
    size_t n = p->reply->text_len;
    while (printable && n > 0 && p->reply->text[n - 1] == '\n')
        n--;
    free(*to);
    if (!(*to = malloc(n + 1))) {
        mwi_err_set(&p->sh->err, MW_ENOMEM, "out of memory");
        mwi_sj_open_fail(p, MW_ENOMEM);
        return -1;
    }
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)p->reply->text[k];
        (*to)[k] = printable && ((ch < 0x20 && ch != '\n') || ch == 0x7F) ? '?' : (char)ch;
    }
    (*to)[n] = '\0';
    return 0;
}

static void ehlo_reply(sj *p)
{
    int code = p->reply->code;
    memset(&p->sh->caps, 0, sizeof p->sh->caps);
    if (p->state == S_HELO) {
        if (code != 250) {
            mwi_sj_open_fail(p, mwi_smtp_reply_error(p->sh, "HELO refused"));
            return;
        }
        p->sh->helo_only = 1;
        if (keep_text(p, &p->sh->ehlo_text[p->after_stls], 0)) return;
        after_ehlo(p);
        return;
    }
    p->sh->helo_only = 0;
    if (code == 250) {
        mwi_smtp_caps_parse(&p->sh->caps, p->reply);
        if (keep_text(p, &p->sh->ehlo_text[p->after_stls], 0)) return;
        after_ehlo(p);
    } else if (code >= 500 && code != 554) {
        send_ehlo(p, S_HELO); /* smtp.c says why not after 554 */
    } else {
        mwi_sj_open_fail(p, mwi_smtp_reply_error(p->sh, "EHLO refused"));
    }
}

/* A complete reply, to the command of the current state. */
static void on_reply(sj *p)
{
    int c = p->reply->code;
    if (c == 421) p->dead = 1; /* RFC 5321 §3.8: the server is closing */
    switch (p->state) {
    case S_GREETING:
        if (c != 220) return mwi_sj_open_fail(p, mwi_smtp_reply_error(p->sh, "greeting"));
        if (keep_text(p, &p->sh->greeting, 1)) return;
        send_ehlo(p, S_EHLO);
        return;
    case S_EHLO:
    case S_HELO:
        ehlo_reply(p);
        return;
    case S_STARTTLS:
        if (c != 220) {
            int rc = mwi_smtp_reply_error(p->sh, "STARTTLS refused");
            if (c != 421 && p->tlspolicy) {
                if (p->tlspolicy(c, p->sh->err.reply, p->tlspolicy_ud) ==
                    MW_SMTP_TLSPOLICY_INSECURE) {
                    mwi_lconn_info(&p->c, "STARTTLS refused; the tlspolicy allows plain text");
                    mw_error_clear(&p->sh->err);
                    p->plain_ok = 1;
                    after_ehlo(p);
                    return;
                }
            } else if (c != 421 && p->tls_mode == MW_TLS_OPPORTUNISTIC) {
                mwi_lconn_info(&p->c, "STARTTLS refused; going on in plain text (opportunistic)");
                mw_error_clear(&p->sh->err);
                p->plain_ok = 1;
                after_ehlo(p);
                return;
            }
            if (c != 421) p->sh->err.code = rc = MW_ETLS;
            return mwi_sj_open_fail(p, rc);
        }
        mwi_sj_set_state(p, S_HANDSHAKE);
        p->c.tls_pending = 1; /* process() checks that nothing follows the 220 */
        return;
    case S_QUED:
        if (c == 421) return mwi_sj_open_fail(p, mwi_smtp_reply_error(p->sh, "QUED"));
        p->plain_ok = 1; /* TLS is settled by now */
        after_ehlo(p);
        return;
    case S_AUTH:
        mwi_sj_auth_reply(p);
        return;
    case S_RSET:
        if (p->dead) {
            p->sh->err = p->end_err;
            return mwi_sj_end(p, p->end_rc);
        }
        p->sh->err = p->end_err; /* RSET's own outcome does not count */
        mwi_sj_tx_after(p);
        return;
    case S_QUIT:
        p->job->result.quit_ok = c == 221;
        p->sh->err = p->end_err;
        mwi_sj_end(p, p->end_rc);
        return;
    case S_BYE:
        return;  /* ends once QUIT is written (on_feed) */
    case S_HELD: /* process() leaves a held session's input alone */
        return;
    default:
        mwi_sj_tx_reply(p);
    }
}

/* A failure that ends the connection: before the session was ready as
 * mw_smtp_open reports it; during RSET or QUIT the outcome stays. */
static void fail_now(sj *p, int code)
{
    p->dead = 1;
    if (p->state == S_RSET || p->state == S_QUIT || p->state == S_BYE) {
        p->sh->err = p->end_err;
        mwi_sj_end(p, p->end_rc);
    } else if (!p->ready) {
        mwi_sj_open_fail(p, code);
    } else {
        mwi_sj_finish(p, code, 0);
    }
}

/* RFC 3207 §4.2 (and the STARTTLS command-injection attacks): anything
 * after the 220 and before the handshake is refused, as smtp.c says it. */
static int injected(sj *p, size_t pos)
{
    if (!p->c.tls_pending || pos == p->c.in_len) return 0;
    mwi_err_set(&p->sh->err, MW_EPROTO,
                "%zu bytes received after the 220 to STARTTLS, before the TLS handshake "
                "(possible injection): refused",
                p->c.in_len - pos);
    p->c.tls_pending = 0;
    p->dead = 1;
    mwi_sj_open_fail(p, MW_EPROTO);
    return 1;
}

/* In S_BODY, a complete reply nothing was sent for yet. */
static int held(const sj *p)
{
    return p->t.chunking ? p->bdat_owed == 0 : !p->body_queued;
}

static void process(sj *p)
{
    size_t pos = 0;
    /* Held: what the server says unasked (a 421) is read as the reply to
     * the next command, as the blocking session reads it. */
    while (!p->job->done && p->state != S_HANDSHAKE && p->state != S_HELD) {
        /* A reply ahead of its command waits for it (read in order, as the
         * blocking session reads them). */
        if (p->state == S_BODY && p->reply->complete && held(p)) break;
        char *nl = memchr(p->c.in + pos, '\n', p->c.in_len - pos);
        if (!nl) {
            if (p->c.in_len - pos > MW_SMTP_REPLY_MAX_LINE) {
                mwi_err_set(&p->sh->err, MW_EPROTO, "line longer than the %d-byte limit",
                            MW_SMTP_REPLY_MAX_LINE);
                p->dead = 1;
                fail_now(p, MW_EPROTO);
            }
            break;
        }
        char *l = p->c.in + pos;
        size_t len = (size_t)(nl - l);
        pos += len + 1;
        if (len && l[len - 1] == '\r') len--;
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, l, len);
        int rc = mwi_smtp_reply_feed(p->reply, l, len, &p->sh->err);
        if (rc == MW_ETOOBIG) rc = p->sh->err.code = MW_EPROTO;
        if (rc < 0) {
            mwi_err_set_command(&p->sh->err, p->waiting, strlen(p->waiting));
            p->dead = 1;
            fail_now(p, rc);
            break;
        }
        if (rc == 1) on_reply(p);
        if (rc == 1 && injected(p, pos)) break;
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
    sj *p = impl;
    mwi_smtp_reply_init(p->reply);
    p->waiting = "the greeting";
    if (p->tls_mode == MW_TLS_IMPLICIT) {
        mwi_sj_set_state(p, S_HANDSHAKE);
        mwi_lconn_start_tls(&p->c);
    } else {
        mwi_sj_set_state(p, S_GREETING);
    }
}

static void on_tls_up(void *impl)
{
    sj *p = impl;
    p->sh->tls_active = 1;
    if (p->tls_mode == MW_TLS_IMPLICIT) {
        mwi_sj_set_state(p, S_GREETING); /* the greeting comes now */
        return;
    }
    mwi_lconn_info(&p->c, "TLS established");
    /* RFC 3207 §4.2: forget what was said in plain text, ask again. */
    memset(&p->sh->caps, 0, sizeof p->sh->caps);
    p->after_stls = 1;
    send_ehlo(p, S_EHLO);
}

static void on_process(void *impl)
{
    sj *p = impl;
    if (p->state == S_BODY && p->reply->complete && !held(p)) mwi_sj_tx_reply(p);
    if (!p->job->done) process(p);
}

static void on_feed(void *impl)
{
    sj *p = impl;
    if (p->state == S_BYE && !mwi_lconn_pending(&p->c)) {
        p->sh->err = p->end_err;
        mwi_sj_end(p, p->end_rc);
        return;
    }
    mwi_sj_tx_feed(p);
}

static void on_fail(void *impl, int code, const char *msg)
{
    sj *p = impl;
    if (p->state == S_BODY && code != MW_ETIMEOUT && mwi_sj_salvage_reply(p, msg)) return;
    if (p->c.eof && code == MW_ENET && p->waiting) {
        mwi_err_set(&p->sh->err, MW_ENET,
                    "connection closed by the server waiting for the reply to %s", p->waiting);
        mwi_err_set_command(&p->sh->err, p->waiting, strlen(p->waiting));
    } else {
        mwi_err_set(&p->sh->err, code, "%s", msg);
    }
    fail_now(p, code);
}

static const char *on_state(void *impl)
{
    return state_name[((sj *)impl)->state];
}

/* A held session waits without an io deadline (the session's max-time
 * still counts). */
static int on_deadline(void *impl)
{
    sj *p = impl;
    if (p->state != S_HELD) return 0;
    p->c.step_deadline = MW_NO_DEADLINE;
    return 1;
}

static const mwi_lconn_ops conn_ops = {on_connected, on_tls_up, on_process,  on_feed,
                                       on_fail,      on_state,  on_deadline, mwi_sjb_ahead};

static void step(mw_loop_job *j, int events)
{
    mwi_lconn_step(&((sj *)j->impl)->c, events);
}

static void destroy(mw_loop_job *j)
{
    sj *p = j->impl;
    if (!p) return;
    mwi_lconn_free(&p->c);
    mwi_sj_auth_free(p);
    mwi_sjb_free(p);
    mwi_sj_tx_free(p);
    for (size_t i = 0; p->own_rcpt && i < p->nown; i++)
        free(p->own_rcpt[i]);
    free(p->own_rcpt);
    free(p->own_from);
    free(p->user);
    free(p->authzid);
    free(p->auth);
    if (p->token) {
        explicit_bzero(p->token, strlen(p->token));
        free(p->token);
    }
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    if (p->sh) {
        free(p->sh->greeting);
        free(p->sh->ehlo_text[0]);
        free(p->sh->ehlo_text[1]);
        free(p->sh->tls_info);
        free(p->sh->rep);
        free(p->sh->client);
        free(p->sh->server);
        mwi_buf_free(&p->sh->xout);
        free(p->sh);
    }
    free(p->chunk);
    free(p->whole);
    free(p->seven);
    free(p->bcc_built);
    mwi_smtp_env_free(&p->main_env);
    free(p);
    j->impl = NULL;
}

static const mwi_job_ops smtp_ops = {step, destroy};

static int bad(const char *s, int empty_ok)
{
    return !s || (!empty_ok && !*s) || strpbrk(s, "\r\n<>") || strlen(s) > SJ_ARG_MAX - 1;
}

static char *dup_s(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

/* The TLS configuration and (version 3) the proxy of o. */
static int conn_setup(sj *p, const mw_loop_smtp_opts *o, mw_error *err)
{
    int rc = o->tls != MW_TLS_NONE ? mwi_ltls_cfg_init(&p->c.tlscfg, o->tls_opts, err) : 0;
    p->c.tlscfg.keep_peer = p->b != NULL; /* a batch shows it (mw_loop_smtp_session) */
    if (!rc && o->proxy && *o->proxy)
        rc = mwi_lproxy_setup(&p->c, o->proxy, p->connect_timeout_ms, err);
    return rc;
}

static int is_loopback(const char *h)
{
    return !strcasecmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1");
}

/* The options as the current version, checked (the fields a caller's
 * older version lacks are zero).  Version 1 callers get a message
 * made of from, rcpt and message (every recipient must be accepted). */
static int take_opts(mw_loop_smtp_opts *o, const mw_loop_smtp_opts *in, int batch, mw_error *err)
{
    if (!in || in->version < 1 || in->version > MW_LOOP_SMTP_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_loop_smtp_opts missing or of another version");
    memset(o, 0, sizeof *o);
    memcpy(o, in,
           in->version == 1   ? offsetof(mw_loop_smtp_opts, msg)
           : in->version == 2 ? offsetof(mw_loop_smtp_opts, proxy)
           : in->version == 3 ? offsetof(mw_loop_smtp_opts, token_fn)
           : in->version == 4 ? offsetof(mw_loop_smtp_opts, authzid)
           : in->version == 5 ? offsetof(mw_loop_smtp_opts, token_async)
                              : sizeof *o);
    if (in->version < 5) o->sasl_ir = 1;
    if (!o->host || !*o->host) return mwi_err_set(err, MW_EINVAL, "no host to connect to");
    /* The EHLO name as mw_smtp_open checks it (smtp.c). */
    if (o->helo && mwi_smtp_bad_arg(o->helo, 0))
        return mwi_err_set(err, MW_EINVAL, "the EHLO name contains a control octet or space");
    if (o->helo && (!*o->helo || strlen(o->helo) > 255))
        return mwi_err_set(err, MW_EINVAL, "the EHLO name is empty or too long");
    if (o->user && !o->password && !o->token && !o->token_fn && !o->token_async)
        return mwi_err_set(err, MW_EINVAL, "a user name without a password or token");
    if (mwi_smtp_bad_arg(o->authzid, 1)) /* as mw_smtp_open checks it (smtp.c) */
        return mwi_err_set(err, MW_EINVAL,
                           "the AUTH identity contains CR, LF, NUL or a control octet");
    if ((o->user && (!*o->user || strlen(o->user) >= SJ_ARG_MAX || mwi_smtp_bad_arg(o->user, 1))) ||
        mwi_smtp_bad_arg(o->password, 1) || mwi_smtp_bad_arg(o->token, 0) ||
        mwi_smtp_bad_arg(o->auth, 1))
        return mwi_err_set(err, MW_EINVAL,
                           "user, password, token and auth: without control octets (a user "
                           "under %d octets)",
                           SJ_ARG_MAX);
    if (o->tls != MW_TLS_STARTTLS && o->tls != MW_TLS_IMPLICIT && o->tls != MW_TLS_NONE &&
        o->tls != MW_TLS_OPPORTUNISTIC)
        return mwi_err_set(err, MW_EUNSUPPORTED, "TLS mode %d not on the loop yet", o->tls);
    if (o->msg || batch) return 0;
    if (bad(o->from, 1) || !o->nrcpt || !o->rcpt || (!o->message && o->message_len))
        return mwi_err_set(err, MW_EINVAL,
                           "from, rcpt and message: given, without CR, LF, < or >, under %d "
                           "octets",
                           SJ_ARG_MAX);
    for (size_t i = 0; i < o->nrcpt; i++)
        if (bad(o->rcpt[i], 0))
            return mwi_err_set(err, MW_EINVAL,
                               "recipient %zu is empty, too long or holds CR, LF, < or >", i + 1);
    return 0;
}

/* The message of a version 1 caller, and the session shell. */
static int make_parts(sj *p, const mw_loop_smtp_opts *o, int batch)
{
    int fail = 0;
    if (!(p->sh = calloc(1, sizeof *p->sh)) || !(p->sh->rep = malloc(sizeof *p->sh->rep)) ||
        !(p->chunk = malloc(MWI_SMTP_CHUNK)))
        return 1;
    mw_smtp *s = p->sh;
    p->reply = s->rep;
    s->state = ST_READY;
    s->port = p->c.port;
    s->server = dup_s(o->host, &fail);
    if (gethostname(s->hostname, sizeof s->hostname - 1) != 0 || mwi_smtp_bad_arg(s->hostname, 0))
        s->hostname[0] = '\0';
    s->client = dup_s(o->helo                ? o->helo
                      : is_loopback(o->host) ? "localhost"
                      : s->hostname[0]       ? s->hostname
                                             : "localhost",
                      &fail);
    if (o->msg || batch) {
        p->msg = batch ? NULL : o->msg; /* a batch's come from its next callback */
        return fail;
    }
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    p->own = m;
    p->own.data = o->message ? o->message : "";
    p->own.len = o->message_len;
    p->own.originator = p->own_from = dup_s(o->from, &fail);
    p->own.atleastone = 0;
    p->own.rewrite_headers = 0;
    p->own.use_chunking = 0;
    p->own_rcpt = calloc(o->nrcpt, sizeof *p->own_rcpt);
    if (!p->own_rcpt) return 1;
    p->nown = o->nrcpt;
    for (size_t i = 0; i < o->nrcpt; i++)
        p->own_rcpt[i] = dup_s(o->rcpt[i], &fail);
    p->own.recipients = (const char *const *)p->own_rcpt;
    p->own.nrecipients = o->nrcpt;
    p->msg = &p->own;
    return fail;
}

/* The job, not attached: *out, or an error code (nothing made). */
static int build(mw_loop_job **out, const mw_loop_smtp_opts *in, const mw_loop_smtp_batch *batch,
                 int external, mw_error *err)
{
    *out = NULL;
    mw_loop_smtp_opts o;
    int rc = take_opts(&o, in, batch != NULL, err);
    if (rc) return rc;
    if (batch) o.result = NULL; /* each message's goes to the batch's done */
    mw_loop_job *j = calloc(1, sizeof *j);
    sj *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    j->impl = p;
    j->ops = &smtp_ops;
    j->fd = -1;
    p->job = j;
    int fail = mwi_lconn_init(&p->c, j, &conn_ops, p, SJ_IN_CAP, SJ_OUT_MAX, SJ_READ_BUDGET) != 0;
    p->c.connecting = 1;
    p->c.host = dup_s(o.host, &fail);
    p->c.port = o.port ? o.port : (o.tls == MW_TLS_IMPLICIT ? 465 : 587);
    fail |= make_parts(p, &o, batch != NULL);
    p->user = dup_s(o.user, &fail);
    p->password = dup_s(o.user ? o.password : NULL, &fail);
    p->token = dup_s(o.token, &fail);
    mwi_sj_auth_opts(p, &o); /* the token providers */
    p->authzid = dup_s(o.authzid, &fail);
    p->no_ir = !o.sasl_ir;
    p->trace_secrets = o.trace_secrets;
    p->auth = o.auth && *o.auth && strcasecmp(o.auth, "auto") ? dup_s(o.auth, &fail) : NULL;
    /* Without msg, as before version 2: AUTH PLAIN whenever it is offered. */
    if (!o.msg && !batch && !p->auth) p->auth = dup_s("PLAIN", &fail);
    p->tls_mode = o.tls;
    p->allow_plaintext = o.allow_plaintext;
    p->queue = o.queue;
    p->downgrade = o.downgrade;
    p->result_out = o.result;
    p->ready_out = o.ready;
    if (p->result_out) *p->result_out = NULL;
    if (p->ready_out) *p->ready_out = 0;
    p->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 30000;
    p->c.io_timeout_ms = o.io_timeout_ms > 0 ? o.io_timeout_ms : 60000;
    p->c.total_deadline = o.max_time_ms > 0 ? mw_now_ms() + o.max_time_ms : (int64_t)MW_NO_DEADLINE;
    p->c.max_time_ms = o.max_time_ms; /* lconn says src/net's words when it runs out */
    p->tx_max_time_ms = o.tx_max_time_ms;
    p->c.trace = o.trace;
    p->c.trace_ud = o.trace_userdata;
    p->c.external = external;
    rc = fail ? mwi_err_set(err, MW_ENOMEM, "out of memory") : 0;
    if (!rc && batch) rc = mwi_sjb_new(p, batch, err);
    if (!rc && !external) rc = conn_setup(p, &o, err);
    if (rc) {
        mwi_sj_external_free(j);
        return rc;
    }
    *out = j;
    return 0;
}

int mwi_sj_external_new(mw_loop_job **out, const mw_loop_smtp_opts *opts,
                        const mw_loop_smtp_batch *b, mw_error *err)
{
    return build(out, opts, b, 1, err);
}

void mwi_sj_external_free(mw_loop_job *j)
{
    if (j) destroy(j);
    free(j);
}

/* given_fd >= 0: a connected descriptor instead of a TCP connect (owned
 * from the call on). */
static int add_send(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *in,
                    const mw_loop_smtp_batch *batch, int given_fd, int *fd_taken,
                    mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
    mw_loop_job *j = NULL;
    int rc = build(&j, in, batch, 0, err);
    if (rc) return rc;
    sj *p = j->impl;
    int fd = given_fd, ce = 0, cr = 0;
    *fd_taken = 1; /* from here on every path closes fd or gives it to the job */
    if (given_fd < 0 && !rc) rc = mwi_loop_tcp_socket(p->c.host, p->c.port, &fd, &cr, &ce, err);
    if (!rc) rc = mwi_loop_attach(loop, j, err);
    if (rc) {
        if (fd >= 0) close(fd);
        destroy(j);
        free(j);
        return rc;
    }
    j->done_fn = done;
    j->userdata = userdata;
    p->c.step_deadline = mw_now_ms() + p->connect_timeout_ms;
    p->c.connect_timeout_ms = p->connect_timeout_ms; /* a name's race (leyes.h) */
    if (mwi_loop_set_fd(j, fd) != 0) {
        close(fd);
        mwi_err_set(&p->sh->err, MW_ETOOBIG, "descriptor %d cannot be watched", fd);
        p->dead = 1;
        mwi_sj_end(p, MW_ETOOBIG);
    } else if (cr != 0 && ce != EINPROGRESS) {
        mwi_err_set(&p->sh->err, MW_ENET, "connect to %s port %u: %s", p->c.host, p->c.port,
                    MW_ERRNO_TEXT(ce));
        p->dead = 1;
        mwi_sj_open_fail(p, MW_ENET);
    }
    if (!j->done) mwi_lconn_arm(&p->c);
    if (out) *out = j;
    return 0;
}

int mw_loop_add_smtp_send(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                          mw_loop_done_fn done, void *userdata, mw_error *err)
{
    int taken = 0;
    return add_send(loop, out, opts, NULL, -1, &taken, done, userdata, err);
}

int mw_loop_add_smtp_batch(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                           const mw_loop_smtp_batch *b, mw_loop_done_fn done, void *userdata,
                           mw_error *err)
{
    int taken = 0;
    if (!b) return mwi_err_set(err, MW_EINVAL, "no batch callbacks");
    return add_send(loop, out, opts, b, -1, &taken, done, userdata, err);
}

int mwi_loop_add_smtp_batch_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                               const mw_loop_smtp_batch *b, int fd, mw_loop_done_fn done,
                               void *userdata, mw_error *err)
{
    int taken = 0;
    int rc = b ? add_send(loop, out, opts, b, fd, &taken, done, userdata, err)
               : mwi_err_set(err, MW_EINVAL, "no batch callbacks");
    if (!taken) close(fd);
    return rc;
}

sj *mwi_sj_of(const mw_loop_job *job)
{
    return job && job->ops == &smtp_ops ? job->impl : NULL;
}

int mwi_loop_add_smtp_send_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                              int fd, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    int taken = 0;
    int rc = add_send(loop, out, opts, NULL, fd, &taken, done, userdata, err);
    if (!taken) close(fd);
    return rc;
}
