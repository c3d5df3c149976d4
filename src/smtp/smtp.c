/* SMTP client session (RFC 5321) — see include/mailwire/smtp.h: commands
 * and replies, the state setter, connect and failover, greeting, EHLO/HELO,
 * STARTTLS (RFC 3207), QUIT.  AUTH is in auth.c, the transaction in
 * transaction.c, the message source in message.c, batches in batch.c. */
#include "smtp/smtp_int.h"
#include "loop/smtp_held.h"
#include "util/err.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void mwi_smtp_set_state(mw_smtp *s, enum mwi_smtp_st st)
{
    /* Once dead or closed, nothing more is sent on this connection. */
    if (s->state == ST_DEAD || s->state == ST_CLOSED) return;
    s->state = st;
}

void mwi_smtp_trace_info(mw_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mwi_smtp_trace_info(mw_smtp *s, const char *fmt, ...)
{
    if (!s->trace) return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    s->trace(MW_TRACE_INFO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1,
             s->trace_ud);
}

/* Any failure of the connection itself makes the session unusable. */
int mwi_smtp_conn_failed(mw_smtp *s, int rc)
{
    if (rc == MW_ENET || rc == MW_ETIMEOUT || rc == MW_ECANCELED || rc == MW_ETOOBIG ||
        rc == MW_EPROTO || rc == MW_ETLS || rc == MW_ECERT)
        mwi_smtp_set_state(s, ST_DEAD);
    return rc;
}

/* Queues one command line.  `shown` is what the trace and the error
 * record get (masked for AUTH), NULL = the line itself. */
int mwi_smtp_put_line(mw_smtp *s, const char *line, size_t len, const char *shown)
{
    if (s->state == ST_DEAD || s->state == ST_CLOSED)
        return mwi_err_set(&s->err, MW_ESTATE, "the connection is no longer usable");
    /* Never let CR/LF/NUL into a command (checked earlier too). */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\r' || line[i] == '\n' || line[i] == '\0')
            return mwi_err_set(&s->err, MW_EINVAL, "CR, LF or NUL in a command: refused");
    const char *sh = shown ? shown : line;
    size_t shl = shown ? strlen(shown) : len;
    mwi_err_set_command(&s->err, sh, shl);
    if (s->trace) s->trace(MW_TRACE_SEND, sh, shl, s->trace_ud);
    int rc = mwi_conn_write(s->c, line, len, &s->err);
    if (!rc) rc = mwi_conn_write(s->c, "\r\n", 2, &s->err);
    return mwi_smtp_conn_failed(s, rc);
}

int mwi_smtp_put_cmd(mw_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mwi_smtp_put_cmd(mw_smtp *s, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return mwi_err_set(&s->err, MW_ETOOBIG, "command line too long");
    return mwi_smtp_put_line(s, line, (size_t)n, NULL);
}

int mwi_smtp_flush(mw_smtp *s)
{
    return mwi_smtp_conn_failed(s, mwi_conn_flush(s->c, &s->err));
}

/* Reads one complete reply into s->rep.  `cmd` names what it answers (for
 * the error record). */
int mwi_smtp_get_reply(mw_smtp *s, const char *cmd)
{
    mwi_smtp_reply_init(s->rep);
    for (;;) {
        const char *line;
        size_t len;
        int rc = mwi_conn_read_line(s->c, &line, &len, &s->err);
        /* RFC 5321 §4.5.3.1.5 bounds reply lines: an oversize reply is the
         * server breaking the protocol (MW_ETOOBIG stays for our message). */
        if (rc == MW_ETOOBIG) rc = s->err.code = MW_EPROTO;
        if (rc) {
            if (rc == MW_ENET)
                mwi_err_set(&s->err, MW_ENET,
                            "connection closed by the server waiting for the "
                            "reply to %s",
                            cmd);
            mwi_err_set_command(&s->err, cmd, strlen(cmd));
            return mwi_smtp_conn_failed(s, rc);
        }
        if (s->trace) s->trace(MW_TRACE_RECV, line, len, s->trace_ud);
        rc = mwi_smtp_reply_feed(s->rep, line, len, &s->err);
        if (rc == MW_ETOOBIG) rc = s->err.code = MW_EPROTO;
        if (rc < 0) {
            mwi_err_set_command(&s->err, cmd, strlen(cmd));
            return mwi_smtp_conn_failed(s, rc);
        }
        if (rc == 1) break;
    }
    /* RFC 5321 §3.8: 421 means the server is closing the connection. */
    if (s->rep->code == 421) mwi_smtp_set_state(s, ST_DEAD);
    return 0;
}

/* Makes an error of the reply in s->rep: 4xx temporary, 5xx permanent. */
int mwi_smtp_reply_error(mw_smtp *s, const char *what)
{
    int code = s->rep->code;
    int rc = code >= 500 ? MW_ESERVER : code >= 400 ? MW_ETEMP : MW_EPROTO;
    size_t sl;
    const char *sum = mwi_smtp_reply_summary(s->rep, &sl);
    char shown[200];
    mwi_copy_printable(shown, sizeof shown, sum, sl);
    mwi_err_set(&s->err, rc, "%s: %d%s%s %s", what, code, s->rep->enhanced[0] ? " " : "",
                s->rep->enhanced, shown);
    s->err.reply_code = code;
    memcpy(s->err.enhanced, s->rep->enhanced, sizeof s->err.enhanced);
    mwi_err_set_reply(&s->err, sum, sl);
    return rc;
}

int mwi_smtp_is_2xx(const mw_smtp *s)
{
    return s->rep->code >= 200 && s->rep->code < 300;
}

static char *xstrdup(const char *p)
{
    return p ? strdup(p) : NULL;
}

int mwi_smtp_bad_arg(const char *v, int allow_space)
{
    if (!v) return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7F || (!allow_space && *p == ' ')) return 1;
    return 0;
}

static void free_session(mw_smtp *s)
{
    if (!s) return;
    mwi_smh_free(s->held);
    mwi_conn_free(s->c);
    free(s->rep);
    free(s->client);
    free(s->username);
    if (s->password) {
        explicit_bzero(s->password, strlen(s->password));
        free(s->password);
    }
    if (s->token) {
        explicit_bzero(s->token, strlen(s->token));
        free(s->token);
    }
    free(s->authzid);
    free(s->auth);
    free(s->server);
    free(s->ehlo_text[0]);
    free(s->ehlo_text[1]);
    free(s->greeting);
    free(s->chunk);
    mwi_buf_free(&s->xout);
    free(s);
}

/* ---- opening ---- */

static int is_loopback(const char *h)
{
    return !strcasecmp(h, "localhost") || !strncmp(h, "127.", 4) || !strcmp(h, "::1");
}

static int ehlo(mw_smtp *s, int which)
{
    int rc = mwi_smtp_put_cmd(s, "EHLO %s", s->client);
    if (!rc) rc = mwi_smtp_flush(s);
    if (!rc) rc = mwi_smtp_get_reply(s, "EHLO");
    if (rc) return rc;
    memset(&s->caps, 0, sizeof s->caps);
    s->helo_only = 0;
    if (s->rep->code == 250) {
        mwi_smtp_caps_parse(&s->caps, s->rep);
    } else if (s->rep->code >= 500 && s->rep->code != 554) {
        /* RFC 5321 §4.1.4 / §3.2: an old server that does not know EHLO
         * says 5xx (500, 502, 504); HELO then, with no extensions.  Not
         * after 554: §3.1 makes 554 the "no SMTP service here" answer (a
         * server that refuses this client then answers every command but
         * QUIT with 503 or 554), and §4.2.3 lists 554 as "transaction
         * failed", not "command not recognized"; HELO cannot help: the
         * fallback to HELO is meant for servers that do not know EHLO.  The 554 is reported and the
         * next server, if any, is tried. */
        rc = mwi_smtp_put_cmd(s, "HELO %s", s->client);
        if (!rc) rc = mwi_smtp_flush(s);
        if (!rc) rc = mwi_smtp_get_reply(s, "HELO");
        if (rc) return rc;
        if (s->rep->code != 250) return mwi_smtp_reply_error(s, "HELO refused");
        s->helo_only = 1;
    } else {
        return mwi_smtp_reply_error(s, "EHLO refused");
    }
    free(s->ehlo_text[which]);
    s->ehlo_text[which] = strdup(s->rep->text);
    if (!s->ehlo_text[which]) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    return 0;
}

static int starttls(mw_smtp *s)
{
    int required = s->tls_mode == MW_TLS_STARTTLS;
    if (!(s->caps.flags & MW_SMTP_CAP_STARTTLS)) {
        if (s->tlspolicy && s->tlspolicy(0, "STARTTLS not offered", s->tlspolicy_ud) ==
                                MW_SMTP_TLSPOLICY_INSECURE) {
            mwi_smtp_trace_info(s, "STARTTLS not offered; the tlspolicy allows plain text");
            return 0;
        }
        if (!required && !s->tlspolicy) return 0; /* opportunistic: plain text it is */
        return mwi_err_set(&s->err, MW_ETLS,
                           "the server does not offer STARTTLS (RFC 3207) and TLS is required");
    }
    int rc = mwi_smtp_put_cmd(s, "STARTTLS");
    if (!rc) rc = mwi_smtp_flush(s);
    if (!rc) rc = mwi_smtp_get_reply(s, "STARTTLS");
    if (rc) return rc;
    if (s->rep->code != 220) {
        int code = s->rep->code;
        rc = mwi_smtp_reply_error(s, "STARTTLS refused");
        if (code == 421) return rc;
        if (s->tlspolicy) {
            if (s->tlspolicy(code, s->err.reply, s->tlspolicy_ud) == MW_SMTP_TLSPOLICY_INSECURE) {
                mwi_smtp_trace_info(s, "STARTTLS refused; the tlspolicy allows plain text");
                mw_error_clear(&s->err);
                return 0;
            }
        } else if (!required) {
            mwi_smtp_trace_info(s, "STARTTLS refused; going on in plain text (opportunistic)");
            mw_error_clear(&s->err);
            return 0;
        }
        s->err.code = MW_ETLS;
        return MW_ETLS;
    }
    /* RFC 3207 §4.2 (and the STARTTLS command-injection attacks): anything
     * the server sent after its 220 and before the handshake is refused. */
    size_t extra = mwi_conn_buffered(s->c);
    if (extra > 0) {
        mwi_smtp_set_state(s, ST_DEAD);
        return mwi_err_set(&s->err, MW_EPROTO,
                           "%zu bytes received after the 220 to STARTTLS, before the TLS "
                           "handshake (possible injection): refused",
                           extra);
    }
    mw_tls_opts o = s->tls;
    if (!o.servername && s->server) o.servername = s->server;
    rc = mwi_conn_starttls(s->c, &o, &s->err);
    if (rc) return mwi_smtp_conn_failed(s, rc);
    s->tls_active = 1;
    mwi_smtp_trace_info(s, "TLS established");
    /* RFC 3207 §4.2: forget what was said in plain text, ask again. */
    memset(&s->caps, 0, sizeof s->caps);
    return ehlo(s, 1);
}

static const mw_tls_opts *tls_for(mw_smtp *s, mw_tls_opts *tmp)
{
    *tmp = s->tls;
    if (!tmp->servername) tmp->servername = s->server;
    return tmp;
}

/* One server and port: connect, greeting, EHLO, TLS, QUED, AUTH. */
static char *dup_or_null(const char *v)
{
    return v ? strdup(v) : NULL;
}

/* The machine's session (src/loop/smtp_held.h): what it learned, copied
 * for the accessors. */
static int try_held(mw_smtp *s, const char *host, unsigned port, mw_stream *given, int64_t deadline)
{
    int stop = 0;
    mwi_smh_free(s->held);
    s->held = NULL;
    int rc = mwi_smh_open(&s->held, host, port, s->opening, given, deadline, &stop, &s->err);
    if (rc) {
        s->stop = stop;
        s->state = ST_DEAD;
        /* failover() names the server and port itself */
        char pre[300];
        int n = snprintf(pre, sizeof pre, "%.200s port %u: ", host, port);
        if (n > 0 && !strncmp(s->err.message, pre, (size_t)n))
            memmove(s->err.message, s->err.message + n, strlen(s->err.message + n) + 1);
        return rc;
    }
    const mw_smtp *m = mwi_smh_session(s->held);
    s->caps = m->caps;
    s->helo_only = m->helo_only;
    s->tls_active = m->tls_active;
    snprintf(s->auth_mech, sizeof s->auth_mech, "%s", m->auth_mech);
    free(s->greeting);
    free(s->ehlo_text[0]);
    free(s->ehlo_text[1]);
    s->greeting = dup_or_null(m->greeting);
    s->ehlo_text[0] = dup_or_null(m->ehlo_text[0]);
    s->ehlo_text[1] = dup_or_null(m->ehlo_text[1]);
    if (!s->client) s->client = dup_or_null(m->client);
    s->state = ST_READY;
    return 0;
}

static int try_one(mw_smtp *s, const char *host, unsigned port, mw_stream *given, int64_t deadline)
{
    int rc;
    mw_error_clear(&s->err);
    s->stop = 0;
    s->tls_active = 0;
    s->state = ST_INIT;
    free(s->server);
    s->server = strdup(host);
    s->port = port;
    if (!s->server) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    return try_held(s, host, port, given, deadline);
    mw_stream *st = given;
    if (!st) {
        mwi_smtp_trace_info(s, "connecting to %s port %u", host, port);
        if ((rc = mw_stream_tcp(&st, host, port, &s->net, &s->err)) != 0) return rc;
    }
    if (s->tls_mode == MW_TLS_IMPLICIT) {
        mw_stream *t = NULL;
        mw_tls_opts o;
        if ((rc = mw_stream_tls(&t, st, tls_for(s, &o), &s->err)) != 0)
            return rc; /* st was freed by mw_stream_tls */
        st = t;
        s->tls_active = 1;
    }
    if ((rc = mwi_conn_new(&s->c, st, &s->err)) != 0) return rc;
    mwi_conn_set_io_timeout(s->c, s->net.io_timeout_ms);
    mwi_conn_set_deadline(s->c, deadline);
    mwi_conn_set_max_line(s->c, MW_SMTP_REPLY_MAX_LINE);
    if (s->net.cancel) mwi_conn_set_cancel(s->c, s->net.cancel);
    if ((rc = mwi_smtp_get_reply(s, "the greeting")) != 0) return rc;
    /* RFC 5321 §3.1: 220 is service ready; 554 (or 421) is no service. */
    if (s->rep->code != 220) return mwi_smtp_reply_error(s, "greeting");
    /* Kept printable (a terminal shows it): control octets but the line
     * breaks become '?', the last line break goes. */
    free(s->greeting);
    size_t gl = s->rep->text_len;
    while (gl > 0 && s->rep->text[gl - 1] == '\n')
        gl--;
    if (!(s->greeting = malloc(gl + 1))) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    for (size_t k = 0; k < gl; k++) {
        unsigned char ch = (unsigned char)s->rep->text[k];
        s->greeting[k] = (ch < 0x20 && ch != '\n') || ch == 0x7F ? '?' : (char)ch;
    }
    s->greeting[gl] = '\0';
    if (!s->client) {
        if (is_loopback(host))
            s->client = strdup("localhost");
        else
            s->client = strdup(s->hostname[0] ? s->hostname : "localhost");
        if (!s->client) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    if ((rc = ehlo(s, 0)) != 0) return rc;
    if (!s->tls_active && (s->tls_mode == MW_TLS_STARTTLS || s->tls_mode == MW_TLS_OPPORTUNISTIC)) {
        if ((rc = starttls(s)) != 0) return rc;
    }
    if (s->queue && (s->caps.flags & MW_SMTP_CAP_XQUE)) {
        /* Tcllib -queue: QUED asks the server to queue, not deliver now. */
        rc = mwi_smtp_put_cmd(s, "QUED");
        if (!rc) rc = mwi_smtp_flush(s);
        if (!rc) rc = mwi_smtp_get_reply(s, "QUED");
        if (rc) return rc;
        if (s->rep->code == 421) return mwi_smtp_reply_error(s, "QUED");
    }
    if (s->username || s->token || s->token_fn) {
        if ((rc = mwi_smtp_authenticate(s)) != 0) return rc;
    }
    mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
    mwi_smtp_set_state(s, ST_READY);
    return 0;
}

/* Every port of a server before the next server (Tcllib 1.4.5 advanced
 * the port only on EHLO failures); stops at the first that works and at
 * an error that another server would meet as well. */
static int failover(mw_smtp *s, const char *const *servers, size_t nservers, const unsigned *ports,
                    size_t nports, int64_t deadline)
{
    int rc = MW_ENET;
    for (size_t i = 0; i < nservers; i++) {
        for (size_t j = 0; j < nports; j++) {
            rc = try_one(s, servers[i], ports[j], NULL, deadline);
            if (rc == 0) return 0;
            if (s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
            char msg[sizeof s->err.message + 300];
            snprintf(msg, sizeof msg, "%.200s port %u: %s", servers[i], ports[j], s->err.message);
            mwi_copy_printable(s->err.message, sizeof s->err.message, msg, strlen(msg));
            mwi_smtp_trace_info(s, "%s", s->err.message);
            if (s->c && s->state != ST_DEAD && rc != MW_ETLS && rc != MW_ECERT) {
                /* Say goodbye politely when the server can still hear;
                 * the error keeps naming the command that failed. */
                mw_error keep = s->err;
                if (mwi_smtp_put_cmd(s, "QUIT") == 0) mwi_smtp_flush(s);
                s->err = keep;
            }
            mwi_conn_free(s->c);
            s->c = NULL;
            if (s->stop || rc == MW_EINVAL || rc == MW_ENOMEM || rc == MW_ECANCELED ||
                rc == MW_EPOLICY)
                return rc;
        }
    }
    return rc;
}

/* Refuse before anything is sent (docs/CONVENTIONS.md "Safe defaults":
 * CR/LF/NUL never reach a command line). */
static int check_opts(const mw_smtp_opts *o, mw_error *err)
{
    int rc = 0;
    if (mwi_smtp_bad_arg(o->client, 0))
        rc = mwi_err_set(err, MW_EINVAL, "the EHLO name contains a control octet or space");
    else if (o->client && (!*o->client || strlen(o->client) > 255))
        rc = mwi_err_set(err, MW_EINVAL, "the EHLO name is empty or too long");
    else if (mwi_smtp_bad_arg(o->user, 1) || mwi_smtp_bad_arg(o->authzid, 1))
        rc = mwi_err_set(err, MW_EINVAL,
                         "the AUTH identity contains CR, LF, NUL or a control "
                         "octet");
    else if (o->tls < MW_TLS_STARTTLS || o->tls > MW_TLS_IMPLICIT)
        rc = mwi_err_set(err, MW_EINVAL, "unknown TLS mode %d", o->tls);
    else if ((o->user && !o->password && !o->token && !(o->version >= 2 && o->token_fn)))
        rc = mwi_err_set(err, MW_EINVAL, "a user name without a password or token");
    for (size_t i = 0; !rc && i < o->nservers; i++)
        if (!o->servers[i] || !*o->servers[i] || mwi_smtp_bad_arg(o->servers[i], 0))
            rc = mwi_err_set(err, MW_EINVAL, "server %zu is empty or has control octets", i + 1);
    for (size_t i = 0; !rc && i < o->nports; i++)
        if (o->ports[i] == 0 || o->ports[i] > 65535)
            rc = mwi_err_set(err, MW_EINVAL, "port %u out of range", o->ports[i]);
    return rc;
}

int mw_smtp_open(mw_smtp **out, const mw_smtp_opts *o, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output pointer");
    *out = NULL;
    if (!o || o->version < 1 || o->version > MW_SMTP_OPTS_VERSION) {
        if (o && o->stream) mw_stream_free(o->stream);
        return mwi_err_set(err, MW_EINVAL, "options missing or of an unknown version");
    }
    mw_stream *given = o->stream;
    int rc = check_opts(o, err);
    if (rc) {
        mw_stream_free(given);
        return rc;
    }
    mw_smtp *s = calloc(1, sizeof *s);
    if (!s || !(s->rep = malloc(sizeof *s->rep))) {
        free(s);
        mw_stream_free(given);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    s->tls_mode = o->tls;
    if (mw_tls_opts_copy(&s->tls, o->tls_opts) != 0) {
        free(s->rep);
        free(s);
        mw_stream_free(given);
        return mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported",
                           o->tls_opts->version);
    }
    if (mw_net_opts_copy(&s->net, o->net) != 0) {
        free(s->rep);
        free(s);
        mw_stream_free(given);
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", o->net->version);
    }
    s->client = xstrdup(o->client);
    s->username = xstrdup(o->user);
    s->password = xstrdup(o->password);
    s->token = xstrdup(o->token);
    if (o->version >= 2) {
        s->token_fn = o->token_fn;
        s->token_ud = o->token_userdata;
    }
    s->authzid = xstrdup(o->authzid);
    s->auth = xstrdup(o->sasl_mechs);
    s->allow_plaintext = o->allow_plaintext;
    s->no_ir = !o->sasl_ir;
    s->queue = o->queue;
    s->tlspolicy = o->tlspolicy;
    s->tlspolicy_ud = o->tlspolicy_userdata;
    s->trace = o->trace;
    s->trace_ud = o->trace_userdata;
    s->trace_secrets = o->trace_secrets;
    if (gethostname(s->hostname, sizeof s->hostname - 1) != 0 || mwi_smtp_bad_arg(s->hostname, 0))
        s->hostname[0] = '\0';
    s->hostname[sizeof s->hostname - 1] = '\0';

    static const char *const def_servers[] = {"localhost"};
    const char *const *servers = o->nservers ? o->servers : def_servers;
    size_t nservers = o->nservers ? o->nservers : 1;
    unsigned def_port = o->tls == MW_TLS_IMPLICIT ? 465 : 587;
    const unsigned *ports = o->nports ? o->ports : &def_port;
    size_t nports = o->nports ? o->nports : 1;
    int64_t deadline = o->open_timeout_ms > 0 ? mw_now_ms() + o->open_timeout_ms : MW_NO_DEADLINE;

    s->opening = o;
    if (given)
        rc = try_one(s, servers[0], ports[0], given, deadline);
    else
        rc = failover(s, servers, nservers, ports, nports, deadline);
    s->opening = NULL;
    if (rc) {
        if (err) *err = s->err;
        free_session(s);
        return rc;
    }
    mwi_smtp_trace_info(s, "ready on %s port %u%s", s->server, s->port,
                        s->tls_active ? " (TLS)" : "");
    *out = s;
    return 0;
}

void mw_smtp_set_maxtime(mw_smtp *s, int ms)
{
    if (s) s->maxtime_ms = ms > 0 ? ms : 0;
}

int mw_smtp_quit(mw_smtp *s)
{
    if (!s || s->state != ST_READY) return MW_ESTATE;
    if (s->held) {
        int rc = mwi_smh_quit(s->held, &s->err);
        mwi_smtp_set_state(s, ST_CLOSED);
        return rc;
    }
    int rc = mwi_smtp_put_cmd(s, "QUIT");
    if (!rc) rc = mwi_smtp_flush(s);
    if (!rc) rc = mwi_smtp_get_reply(s, "QUIT");
    if (!rc && s->rep->code != 221) rc = mwi_smtp_reply_error(s, "QUIT");
    mwi_smtp_set_state(s, ST_CLOSED);
    return rc;
}

void mw_smtp_free(mw_smtp *s)
{
    free_session(s);
}

const mw_error *mw_smtp_error(const mw_smtp *s)
{
    return s ? &s->err : NULL;
}

const char *mw_smtp_ehlo_text(const mw_smtp *s, int which)
{
    if (!s || which < 0 || which > 1 || !s->ehlo_text[which]) return "";
    return s->ehlo_text[which];
}

const char *mw_smtp_server(const mw_smtp *s, unsigned *port)
{
    if (port) *port = s ? s->port : 0;
    return s && s->server ? s->server : "";
}

int mw_smtp_is_tls(const mw_smtp *s)
{
    return s ? s->tls_active : 0;
}

int mw_smtp_alive(const mw_smtp *s)
{
    if (s && s->held) return s->state == ST_READY && mwi_smh_alive(s->held);
    return s && s->state == ST_READY;
}

const char *mw_smtp_auth_mech(const mw_smtp *s)
{
    return s ? s->auth_mech : "";
}

int mw_smtp_sendmessage(const mw_smtp_opts *opts, const mw_smtp_msg *msg, int maxtime_ms,
                        mw_smtp_result **result, mw_error *err)
{
    mw_smtp *s;
    if (result) *result = NULL;
    int rc = mw_smtp_open(&s, opts, err);
    if (rc) return rc;
    mw_smtp_set_maxtime(s, maxtime_ms);
    rc = mw_smtp_send(s, msg, result);
    if (rc && err) *err = s->err;
    if (s->state == ST_READY) mw_smtp_quit(s);
    mw_smtp_free(s);
    return rc;
}

const char *mw_smtp_greeting(const mw_smtp *s)
{
    return s && s->greeting ? s->greeting : "";
}

int mw_smtp_esmtp(const mw_smtp *s)
{
    return s && !s->helo_only;
}

int mw_smtp_tls_info(const mw_smtp *s, mw_tls_info *out)
{
    if (!out) return MW_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s) return MW_EINVAL;
    if (s->held) return mwi_smh_tls_info(s->held, out);
    if (!s->c && s->tls_info && s->tls_active) { /* a loop job's session */
        *out = *s->tls_info;
        return 0;
    }
    if (!s->c || !s->tls_active) return MW_EUNSUPPORTED;
    return mw_stream_tls_info(mwi_conn_stream(s->c), out);
}
