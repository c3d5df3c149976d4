/* SMTP client session (RFC 5321) — see include/mailwire/smtp.h: the
 * options checked, the failover over servers and ports, the accessors.
 * Each server is tried, and the session then runs, on the loop's SMTP
 * machine held between messages (src/loop/smtp_held.c: greeting,
 * EHLO/HELO, STARTTLS, AUTH, transactions, QUIT, over a blocking stream);
 * mw_smtp_send is in transaction.c, batches in batch.c. */
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

/* An MW_TRACE_INFO line, when tracing. */
static void trace_info(mw_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trace_info(mw_smtp *s, const char *fmt, ...)
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
    free(s->rep);
    free(s->client);
    free(s->server);
    free(s->ehlo_text[0]);
    free(s->ehlo_text[1]);
    free(s->greeting);
    mwi_buf_free(&s->xout);
    free(s);
}

/* ---- opening ---- */

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
    mw_error_clear(&s->err);
    s->stop = 0;
    s->tls_active = 0;
    s->state = ST_INIT;
    free(s->server);
    s->server = strdup(host);
    s->port = port;
    if (!s->server) {
        mw_stream_free(given);
        return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    return try_held(s, host, port, given, deadline);
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
            /* The machine said QUIT when the server could still hear. */
            trace_info(s, "%s", s->err.message);
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
    /* The machine reads the options (s->opening); their versions are
     * checked here, before anything is sent. */
    mw_tls_opts tls_copy;
    mw_net_opts net_copy;
    if (mw_tls_opts_copy(&tls_copy, o->tls_opts) != 0) {
        free(s->rep);
        free(s);
        mw_stream_free(given);
        return mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported",
                           o->tls_opts->version);
    }
    if (mw_net_opts_copy(&net_copy, o->net) != 0) {
        free(s->rep);
        free(s);
        mw_stream_free(given);
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", o->net->version);
    }
    s->client = xstrdup(o->client);
    s->trace = o->trace;
    s->trace_ud = o->trace_userdata;
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
    trace_info(s, "ready on %s port %u%s", s->server, s->port, s->tls_active ? " (TLS)" : "");
    *out = s;
    return 0;
}

void mw_smtp_set_maxtime(mw_smtp *s, int ms)
{
    if (s) s->maxtime_ms = ms > 0 ? ms : 0;
}

int mw_smtp_quit(mw_smtp *s)
{
    if (!s || s->state != ST_READY || !s->held) return MW_ESTATE;
    int rc = mwi_smh_quit(s->held, &s->err);
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
    if (s->tls_info && s->tls_active) { /* a loop job's session */
        *out = *s->tls_info;
        return 0;
    }
    return MW_EUNSUPPORTED;
}
