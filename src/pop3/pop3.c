/* POP3 session: connection, commands and replies, simple commands
 * (RFC 1939, RFC 2449, RFC 2595). */
#include "pop3/pop3_int.h"

#include "loop/pop3_held.h"

#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *state_name(int s)
{
    switch (s) {
    case P3_NEW:
        return "not connected";
    case P3_AUTH:
        return "authorization";
    case P3_TRANS:
        return "transaction";
    case P3_CLOSED:
        return "closed";
    default:
        return "unusable after an earlier error";
    }
}

void mwi_pop3_set_state(mw_pop3 *p, int state)
{
    /* Policy lives here: once broken or closed, a session never comes back,
     * and the connection goes away with it. */
    if (p->state == P3_BROKEN && state != P3_BROKEN) return;
    p->state = state;
    if (state == P3_CLOSED && p->conn) {
        mwi_conn_free(p->conn);
        p->conn = NULL;
    }
}

int mwi_pop3_fatal(mw_pop3 *p, int rc)
{
    mwi_pop3_set_state(p, P3_BROKEN);
    if (p->err.code == 0) p->err.code = rc;
    return rc;
}

int mwi_pop3_require(mw_pop3 *p, int state, const char *what)
{
    if (p->state == state) return 0;
    mw_error_clear(&p->err);
    return mwi_err_set(&p->err, MW_ESTATE, "%s: not possible, the session is %s", what,
                       state_name(p->state));
}

static int has_line_break(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
    return 0;
}

int mwi_pop3_send(mw_pop3 *p, const char *line, size_t len, const char *masked, int flush)
{
    /* The lines of an AUTH exchange are not commands: the AUTH line stays
     * the command an error names. */
    char cmd[sizeof p->err.command];
    memcpy(cmd, p->err.command, sizeof cmd);
    mw_error_clear(&p->err);
    if (p->in_auth) memcpy(p->err.command, cmd, sizeof cmd);
    if (has_line_break(line, len))
        return mwi_err_set(&p->err, MW_EINVAL, "CR, LF or NUL in a command; nothing sent");
    /* RFC 2449 §4: command lines are at most 255 octets with the CRLF.
     * The base64 lines of an AUTH exchange are not commands (RFC 5034 §4
     * limits only the AUTH line itself); DIGEST-MD5 answers run longer. */
    size_t limit = p->in_auth ? 16384 : P3_MAX_CMD;
    if (len + 2 > limit)
        return mwi_err_set(&p->err, MW_EINVAL, "command of %zu octets is over the %zu-octet limit",
                           len + 2, limit);
    const char *show = masked ? masked : line;
    size_t show_len = masked ? strlen(masked) : len;
    mwi_conn_trace(p->conn, MW_TRACE_SEND, show, show_len);
    if (!p->in_auth) mwi_err_set_command(&p->err, show, show_len);
    int rc = mwi_conn_write(p->conn, line, len, &p->err);
    /* Tcllib -msex: Exchange wanted commands ended by a bare LF. */
    if (!rc) rc = mwi_conn_write(p->conn, p->msex ? "\n" : "\r\n", p->msex ? 1 : 2, &p->err);
    if (!rc && flush) rc = mwi_conn_flush(p->conn, &p->err);
    if (rc) return mwi_pop3_fatal(p, rc);
    return 0;
}

/* Formats a command into line[512] and sends it; `what` (or NULL) names it
 * in the error when it does not fit. */
__attribute__((format(printf, 4, 0))) static int
pop3_vsendf(mw_pop3 *p, int flush, const char *what, const char *fmt, va_list ap)
{
    char line[512];
    int n = vsnprintf(line, sizeof line, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof line) {
        mw_error_clear(&p->err);
        return what ? mwi_err_set(&p->err, MW_EINVAL, "%s: command too long", what)
                    : mwi_err_set(&p->err, MW_EINVAL, "command too long");
    }
    return mwi_pop3_send(p, line, (size_t)n, NULL, flush);
}

int mwi_pop3_sendf(mw_pop3 *p, int flush, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pop3_vsendf(p, flush, NULL, fmt, ap);
    va_end(ap);
    return rc;
}

int mwi_pop3_read_status(mw_pop3 *p, mw_pop3_status *st)
{
    const char *line;
    size_t len;
    int rc = mwi_conn_read_line(p->conn, &line, &len, &p->err);
    if (rc) {
        if (rc == MW_ETOOBIG)
            mwi_err_set(&p->err, rc, "reply line over the %zu-octet limit (after %s)", p->max_line,
                        p->err.command[0] ? p->err.command : "connecting");
        return mwi_pop3_fatal(p, rc);
    }
    if (p->in_auth && !p->trace_secrets && len > 0 && line[0] == '+' &&
        (len == 1 || line[1] == ' '))
        mwi_conn_trace(p->conn, MW_TRACE_RECV, "+ ****", 6);
    else
        mwi_conn_trace(p->conn, MW_TRACE_RECV, line, len);
    if (mwi_pop3_parse_status(st, line, len)) {
        mwi_err_set_reply(&p->err, line, len);
        mwi_err_set(&p->err, MW_EPROTO, "server sent neither +OK nor -ERR: '%s'", p->err.reply);
        return mwi_pop3_fatal(p, MW_EPROTO);
    }
    return 0;
}

int mwi_pop3_server_error(mw_pop3 *p, const mw_pop3_status *st, int dflt, const char *what)
{
    int rc = mwi_pop3_status_error(&p->err, st, dflt, what);
    /* A "+ " outside AUTH: the reply stream can no longer be trusted. */
    return st->kind == MW_POP3_CONT ? mwi_pop3_fatal(p, rc) : rc;
}

int mwi_pop3_simple(mw_pop3 *p, mw_pop3_status *st, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pop3_vsendf(p, 1, what, fmt, ap);
    va_end(ap);
    if (!rc) rc = mwi_pop3_read_status(p, st);
    if (rc) return rc;
    if (st->kind != MW_POP3_OK) return mwi_pop3_server_error(p, st, MW_ESERVER, what);
    return 0;
}

int mwi_pop3_read_lines(mw_pop3 *p, pop3_line_fn fn, void *ud)
{
    int keep = 0;
    for (;;) {
        const char *line;
        size_t len;
        int rc = mwi_conn_read_line(p->conn, &line, &len, &p->err);
        if (rc) {
            if (rc == MW_ENET)
                mwi_err_set(&p->err, rc, "connection closed in the middle of a multi-line reply");
            return mwi_pop3_fatal(p, rc);
        }
        mwi_conn_trace(p->conn, MW_TRACE_RECV, line, len);
        /* RFC 1939 §3: "." ends the reply; a leading dot is stuffing. */
        if (len == 1 && line[0] == '.') return keep;
        if (len > 0 && line[0] == '.') {
            line++;
            len--;
        }
        if (!keep) {
            rc = fn(p, line, len, ud);
            if (rc) {
                if (p->state == P3_BROKEN) return rc;
                keep = rc;
            }
        }
    }
}

int mwi_pop3_check_msg(mw_pop3 *p, uint64_t msg)
{
    mw_error_clear(&p->err);
    if (msg == 0) return mwi_err_set(&p->err, MW_EINVAL, "message numbers start at 1");
    if (p->have_count && msg > p->count)
        return mwi_err_set(
            &p->err, MW_EINVAL, "message %llu does not exist: the mailbox has %llu message%s",
            (unsigned long long)msg, (unsigned long long)p->count, p->count == 1 ? "" : "s");
    return 0;
}

/* ---- CAPA ------------------------------------------------------------------ */

static void capa_forget(mw_pop3 *p)
{
    for (size_t i = 0; i < p->ncapa; i++)
        free(p->capa[i]);
    p->ncapa = 0;
    p->capa_known = 0;
}

/* A CAPA reply longer than this is not a capability list (servers send
 * a few dozen lines): the session ends without reading the rest. */
#define P3_MAX_CAPA_LINES 1000

static int capa_line(mw_pop3 *p, const char *line, size_t len, void *ud)
{
    size_t *lines = ud;
    if (++*lines > P3_MAX_CAPA_LINES) {
        mwi_err_set(&p->err, MW_ETOOBIG, "CAPA reply of over %d lines; stopped reading it",
                    P3_MAX_CAPA_LINES);
        return mwi_pop3_fatal(p, MW_ETOOBIG);
    }
    if (p->ncapa >= P3_MAX_CAPA || len == 0) return 0; /* more than we look at: ignored */
    char *s = malloc(len + 1);
    if (!s) return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    mwi_copy_printable(s, len + 1, line, len);
    p->capa[p->ncapa++] = s;
    return 0;
}

int mwi_pop3_do_capa(mw_pop3 *p)
{
    mw_pop3_status st;
    capa_forget(p);
    int rc = mwi_pop3_send(p, "CAPA", 4, NULL, 1);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) return mwi_pop3_server_error(p, &st, MW_EUNSUPPORTED, "CAPA");
    size_t lines = 0;
    rc = mwi_pop3_read_lines(p, capa_line, &lines);
    if (!rc) p->capa_known = 1;
    return rc;
}

static const char *capa_find(const mw_pop3 *p, const char *kw)
{
    size_t kl = strlen(kw);
    for (size_t i = 0; i < p->ncapa; i++) {
        const char *c = p->capa[i];
        if (!strncasecmp(c, kw, kl) && (c[kl] == '\0' || c[kl] == ' ')) return c;
    }
    return NULL;
}

int mw_pop3_has_capa(const mw_pop3 *p, const char *keyword)
{
    return p && keyword && capa_find(p, keyword) != NULL;
}

size_t mw_pop3_capa_count(const mw_pop3 *p)
{
    return p ? p->ncapa : 0;
}

const char *mw_pop3_capa_line(const mw_pop3 *p, size_t i)
{
    return p && i < p->ncapa ? p->capa[i] : NULL;
}

int mw_pop3_capa(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    if (p->state != P3_AUTH && p->state != P3_TRANS) return mwi_pop3_require(p, P3_TRANS, "CAPA");
    int rc = mwi_pop3_do_capa(p);
    if (!rc) p->pipelining = p->want_pipelining && capa_find(p, "PIPELINING");
    return rc;
}

/* ---- Opening ------------------------------------------------------------ */

static int validate_opts(mw_pop3 *p, const mw_pop3_opts *o)
{
    if (o->version < 1 || o->version > MW_POP3_OPTS_VERSION)
        return mwi_err_set(&p->err, MW_EINVAL, "mw_pop3_opts version %u is not 1..%u", o->version,
                           MW_POP3_OPTS_VERSION);
    if (o->tls < MW_TLS_STARTTLS || o->tls > MW_TLS_IMPLICIT)
        return mwi_err_set(&p->err, MW_EINVAL, "unknown TLS mode %d", o->tls);
    if (o->auth < MW_POP3_AUTH_AUTO || o->auth > MW_POP3_AUTH_NONE)
        return mwi_err_set(&p->err, MW_EINVAL, "unknown login method %d", o->auth);
    if (o->retr_mode < MW_POP3_RETR_RETR || o->retr_mode > MW_POP3_RETR_SLOW)
        return mwi_err_set(&p->err, MW_EINVAL, "unknown retr mode %d", o->retr_mode);
    if (o->port > 65535) return mwi_err_set(&p->err, MW_EINVAL, "port %u out of range", o->port);
    if (o->window > MW_POP3_WINDOW_MAX)
        return mwi_err_set(&p->err, MW_EINVAL, "pipelining window %u over %d", o->window,
                           MW_POP3_WINDOW_MAX);
    if (o->max_line && o->max_line < 512)
        return mwi_err_set(&p->err, MW_EINVAL, "max_line %zu under 512", o->max_line);
    const char *fields[] = {o->user, o->password, o->authzid, o->token, o->sasl_mechs};
    const char *names[] = {"user name", "password", "authzid", "token", "SASL mechanism list"};
    for (size_t i = 0; i < 5; i++)
        if (fields[i] && has_line_break(fields[i], strlen(fields[i])))
            return mwi_err_set(&p->err, MW_EINVAL, "CR or LF in the %s; nothing sent", names[i]);
    return 0;
}

/* The session's settings from the options. */
static void take_opts(mw_pop3 *p, const mw_pop3_opts *o)
{
    p->tls = o->tls;
    p->port = o->port ? o->port : o->tls == MW_TLS_IMPLICIT ? 995 : 110;
    p->msex = o->msex;
    p->retr_mode = o->retr_mode;
    p->want_pipelining = o->pipelining;
    p->window = o->window ? o->window : 32;
    p->max_line = o->max_line ? o->max_line : 8192;
    p->command_timeout_ms = o->command_timeout_ms;
    p->trace = o->trace;
    p->trace_ud = o->trace_userdata;
    p->trace_secrets = o->trace_secrets;
}

/* What the machine learned while opening (src/loop/pop3_held.c). */
static int take_info(mw_pop3 *p, const mwi_p3h *h, const mw_pop3_opts *o)
{
    mwi_p3h_info in;
    mwi_p3h_info_get(h, &in);
    snprintf(p->greeting, sizeof p->greeting, "%s", in.greeting);
    snprintf(p->auth_used, sizeof p->auth_used, "%s", in.auth_used);
    for (size_t i = 0; i < in.ncapa && p->ncapa < P3_MAX_CAPA; i++) {
        if (!(p->capa[p->ncapa] = strdup(in.capa[i])))
            return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
        p->ncapa++;
    }
    p->capa_known = in.capa_known;
    p->count = in.count;
    p->have_count = in.have_count;
    /* Opportunistic TLS: what it came to (a login then needed
     * allow_plaintext without it). */
    if (o->tls == MW_TLS_OPPORTUNISTIC) p->tls = in.secure ? MW_TLS_STARTTLS : MW_TLS_NONE;
    p->pipelining = p->want_pipelining && capa_find(p, "PIPELINING");
    return 0;
}

/* The connection over the machine's stream, for the calls src/pop3 still
 * reads and writes itself: the bytes that came past the last reply go
 * first. */
static int take_stream(mw_pop3 *p, mwi_p3h *h, const mw_net_opts *n)
{
    const char *left;
    size_t nleft;
    mw_stream *s = mwi_p3h_release(h, &left, &nleft);
    int rc = mwi_conn_new(&p->conn, s, &p->err);
    if (!rc) rc = mwi_conn_unread(p->conn, left, nleft, &p->err);
    if (rc) return rc;
    mwi_conn_set_io_timeout(p->conn, n->io_timeout_ms);
    mwi_conn_set_max_line(p->conn, p->max_line);
    if (n->cancel) mwi_conn_set_cancel(p->conn, n->cancel);
    mwi_conn_set_trace(p->conn, p->trace, p->trace_ud);
    return 0;
}

/* mw_pop3_open's work; *out is set as soon as a handle exists, so that the
 * error record can be read on failure.  Connect, greeting, CAPA, STLS,
 * the login and STAT run on the loop's POP3 machine (pop3_held.h). */
static int open_session(mw_pop3 **out, const char *host, const mw_pop3_opts *opts)
{
    mw_pop3_opts dflt = MW_POP3_OPTS_INIT;
    const mw_pop3_opts *o = opts ? opts : &dflt;
    mw_pop3 *p = calloc(1, sizeof *p);
    if (!p) {
        if (o->stream) mw_stream_free(o->stream);
        return MW_ENOMEM;
    }
    *out = p;
    p->host = strdup(host ? host : "");
    if (!p->host) {
        if (o->stream) mw_stream_free(o->stream);
        return mwi_err_set(&p->err, MW_ENOMEM, "out of memory");
    }
    int rc = validate_opts(p, o);
    if (!rc && !o->stream && (!host || !*host))
        rc = mwi_err_set(&p->err, MW_EINVAL, "no host to connect to");
    if (rc) {
        if (o->stream) mw_stream_free(o->stream);
        mwi_pop3_set_state(p, P3_BROKEN);
        return rc;
    }
    take_opts(p, o);
    mw_net_opts ndflt = MW_NET_OPTS_INIT;
    mwi_p3h *h = NULL;
    rc = mwi_p3h_open(&h, host, o, &p->err); /* o->stream is its from here */
    if (!rc) rc = take_info(p, h, o);
    if (!rc) rc = take_stream(p, h, o->net ? o->net : &ndflt);
    mwi_p3h_free(h);
    if (rc) {
        mwi_pop3_set_state(p, P3_BROKEN);
        return rc;
    }
    mwi_pop3_set_state(p, o->auth == MW_POP3_AUTH_NONE ? P3_AUTH : P3_TRANS);
    mw_error_clear(&p->err);
    return 0;
}

int mw_pop3_open(mw_pop3 **out, const char *host, const mw_pop3_opts *opts, mw_error *err)
{
    if (err) mw_error_clear(err);
    if (!out) {
        if (opts && opts->stream) mw_stream_free(opts->stream);
        return mwi_err_set(err, MW_EINVAL, "mw_pop3_open: no place for the handle");
    }
    *out = NULL;
    mw_pop3 *p = NULL;
    int rc = open_session(&p, host, opts);
    if (rc) {
        if (err && p)
            *err = p->err;
        else if (p == NULL)
            mwi_err_set(err, rc, "out of memory");
        if (err && !err->code) err->code = rc;
        mw_pop3_free(p); /* no QUIT: nothing was done */
        return rc;
    }
    *out = p;
    return 0;
}

void mw_pop3_free(mw_pop3 *p)
{
    if (!p) return;
    if (p->conn) mwi_conn_free(p->conn);
    capa_forget(p);
    free(p->host);
    free(p);
}

const mw_error *mw_pop3_error(const mw_pop3 *p)
{
    return p ? &p->err : NULL;
}

uint64_t mw_pop3_count(const mw_pop3 *p)
{
    return p && p->have_count ? p->count : 0;
}

/* Each command may be bounded as a whole (a reply that never ends). */
void mwi_pop3_command_deadline(mw_pop3 *p, int on)
{
    if (p->command_timeout_ms > 0 && p->conn)
        mwi_conn_set_deadline(p->conn, on ? mw_now_ms() + p->command_timeout_ms : MW_NO_DEADLINE);
}

int mw_pop3_stat(mw_pop3 *p, uint64_t *count, uint64_t *octets)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "STAT");
    if (rc) return rc;
    mw_pop3_status st;
    mwi_pop3_command_deadline(p, 1);
    rc = mwi_pop3_simple(p, &st, "STAT", "STAT");
    mwi_pop3_command_deadline(p, 0);
    if (rc) return rc;
    uint64_t c, o;
    if (mwi_pop3_parse_stat(st.text, st.text_len, &c, &o)) {
        mwi_err_set_reply(&p->err, st.text, st.text_len);
        mwi_err_set(&p->err, MW_EPROTO, "STAT reply is not 'count octets': '%s'", p->err.reply);
        return mwi_pop3_fatal(p, MW_EPROTO);
    }
    p->count = c;
    p->have_count = 1;
    if (count) *count = c;
    if (octets) *octets = o;
    return 0;
}

/* ---- DELE, RSET, NOOP, LAST, QUIT ------------------------------------------------ */

int mw_pop3_dele(mw_pop3 *p, uint64_t msg)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "DELE");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    if (rc) return rc;
    mw_pop3_status st;
    return mwi_pop3_simple(p, &st, "DELE", "DELE %llu", (unsigned long long)msg);
}

int mw_pop3_rset(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "RSET");
    mw_pop3_status st;
    return rc ? rc : mwi_pop3_simple(p, &st, "RSET", "RSET");
}

int mw_pop3_noop(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "NOOP");
    mw_pop3_status st;
    return rc ? rc : mwi_pop3_simple(p, &st, "NOOP", "NOOP");
}

int mw_pop3_last(mw_pop3 *p, uint64_t *last)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "LAST");
    if (rc) return rc;
    mw_pop3_status st;
    rc = mwi_pop3_send(p, "LAST", 4, NULL, 1);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) {
        /* LAST left the standard with RFC 1725; Dovecot, for one, lacks it. */
        int code = mwi_pop3_server_error(p, &st, MW_EUNSUPPORTED, "LAST");
        if (code == MW_EUNSUPPORTED)
            mwi_err_set(&p->err, code, "server has no LAST command: -ERR %s", p->err.reply);
        return code;
    }
    uint64_t v;
    if (!mwi_pop3_parse_retr_size(st.text, st.text_len, &v)) {
        mwi_err_set_reply(&p->err, st.text, st.text_len);
        return mwi_err_set(&p->err, MW_EPROTO, "LAST reply is not a number: '%s'", p->err.reply);
    }
    if (last) *last = v;
    return 0;
}

int mw_pop3_quit(mw_pop3 *p, int *confirmed)
{
    if (confirmed) *confirmed = 0;
    if (!p) return MW_EINVAL;
    if (p->state != P3_AUTH && p->state != P3_TRANS) return mwi_pop3_require(p, P3_TRANS, "QUIT");
    mw_pop3_status st;
    /* Sent only now, after every earlier reply was read: Dovecot over TLS
     * may cut a download short when QUIT arrives with the pipelined RETRs
     * (tests/servers notes). */
    int rc = mwi_pop3_send(p, "QUIT", 4, NULL, 1);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) {
        mwi_pop3_set_state(p, P3_CLOSED);
        return rc;
    }
    if (st.kind != MW_POP3_OK) {
        /* RFC 1939 §6: -ERR means some deleted messages were not removed. */
        rc = mwi_pop3_server_error(p, &st, MW_ESERVER, "QUIT");
    } else if (confirmed) {
        *confirmed = 1;
    }
    mwi_pop3_set_state(p, P3_CLOSED);
    return rc;
}

void mw_pop3_config_get(const mw_pop3 *p, mw_pop3_config *out)
{
    memset(out, 0, sizeof *out);
    if (!p) return;
    out->host = p->host;
    out->port = p->port;
    out->tls = p->tls;
    out->msex = p->msex;
    out->retr_mode = p->retr_mode;
    out->limit = p->have_count ? p->count : 0;
    out->pipelining = p->pipelining;
    out->window = p->pipelining ? p->window : 1;
    out->auth_used = p->auth_used;
    out->greeting = p->greeting;
}

int mw_pop3_tls_info(const mw_pop3 *p, mw_tls_info *out)
{
    if (!out) return MW_EINVAL;
    memset(out, 0, sizeof *out);
    if (!p) return MW_EINVAL;
    if (!p->conn) return MW_EUNSUPPORTED;
    return mw_stream_tls_info(mwi_conn_stream(p->conn), out);
}
