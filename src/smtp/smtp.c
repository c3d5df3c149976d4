/* SMTP client session (RFC 5321) — see include/mailwire/smtp.h. */
#include "mailwire/smtp.h"

#include "net/conn.h"
#include "proto/smtp_data.h"
#include "proto/smtp_reply.h"
#include "sasl/sasl.h"
#include "smtp/envelope.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fmt.h"
#include "util/random.h"

#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* One state variable, changed only in set_state (docs/ARCHITECTURE.md). */
enum st {
    ST_INIT,   /* connecting, greeting, EHLO, TLS, AUTH */
    ST_READY,  /* between transactions */
    ST_DEAD,   /* the connection failed or the server closed it */
    ST_CLOSED, /* QUIT sent */
};

/* Body chunks are read and encoded this many octets at a time; BDAT
 * chunks are about this large. */
#define CHUNK (64 * 1024)

struct mw_smtp {
    mw_conn *c;
    enum st state;
    mw_error err;
    mw_smtp_reply *rep;
    mw_smtp_caps caps;
    int tls_active;
    int tls_mode;
    mw_tls_opts tls;
    int have_tls_opts;
    mw_net_opts net;
    char *client;
    char *username, *password, *token, *authzid, *auth;
    mw_token_fn token_fn; /* version 2 options: the token provider (token.h) */
    void *token_ud;
    int allow_plaintext, no_ir, queue;
    mw_smtp_tlspolicy_fn tlspolicy;
    void *tlspolicy_ud;
    mw_trace_fn trace;
    void *trace_ud;
    int trace_secrets;
    char *server;
    unsigned port;
    char *ehlo_text[2];
    char *greeting; /* the 220 text (mw_smtp_greeting) */
    int helo_only;  /* EHLO refused, HELO used (mw_smtp_esmtp) */
    char auth_mech[32];
    char hostname[256];
    int dirty; /* a transaction was left open: RSET before the next */
    int maxtime_ms;
    int no_message_pipelining; /* mw_smtp_set_message_pipelining(s, 0) */
    int64_t tx_deadline;       /* of the transaction in progress (maxsecs) */
    int stop;                  /* an error not worth trying the next server for */
    /* Kept across the messages of a batch instead of allocated for each:
     * the buffer a stream source is read into, and the encoded output. */
    char *chunk;
    mw_buf xout;
};

static void set_state(mw_smtp *s, enum st st)
{
    /* Once dead or closed, nothing more is sent on this connection. */
    if (s->state == ST_DEAD || s->state == ST_CLOSED) return;
    s->state = st;
}

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

/* Any failure of the connection itself makes the session unusable. */
static int conn_failed(mw_smtp *s, int rc)
{
    if (rc == MW_ENET || rc == MW_ETIMEOUT || rc == MW_ECANCELED || rc == MW_ETOOBIG ||
        rc == MW_EPROTO || rc == MW_ETLS || rc == MW_ECERT)
        set_state(s, ST_DEAD);
    return rc;
}

/* Queues one command line.  `shown` is what the trace and the error
 * record get (masked for AUTH), NULL = the line itself. */
static int put_line(mw_smtp *s, const char *line, size_t len, const char *shown)
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
    return conn_failed(s, rc);
}

static int put_cmd(mw_smtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int put_cmd(mw_smtp *s, const char *fmt, ...)
{
    char line[1200];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line)
        return mwi_err_set(&s->err, MW_ETOOBIG, "command line too long");
    return put_line(s, line, (size_t)n, NULL);
}

static int flush(mw_smtp *s)
{
    return conn_failed(s, mwi_conn_flush(s->c, &s->err));
}

/* Reads one complete reply into s->rep.  `cmd` names what it answers (for
 * the error record). */
static int get_reply(mw_smtp *s, const char *cmd)
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
            return conn_failed(s, rc);
        }
        if (s->trace) s->trace(MW_TRACE_RECV, line, len, s->trace_ud);
        rc = mwi_smtp_reply_feed(s->rep, line, len, &s->err);
        if (rc == MW_ETOOBIG) rc = s->err.code = MW_EPROTO;
        if (rc < 0) {
            mwi_err_set_command(&s->err, cmd, strlen(cmd));
            return conn_failed(s, rc);
        }
        if (rc == 1) break;
    }
    /* RFC 5321 §3.8: 421 means the server is closing the connection. */
    if (s->rep->code == 421) set_state(s, ST_DEAD);
    return 0;
}

/* Makes an error of the reply in s->rep: 4xx temporary, 5xx permanent. */
static int reply_error(mw_smtp *s, const char *what)
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

static int is_2xx(const mw_smtp *s)
{
    return s->rep->code >= 200 && s->rep->code < 300;
}

static char *xstrdup(const char *p)
{
    return p ? strdup(p) : NULL;
}

static int bad_arg(const char *v, int allow_space)
{
    if (!v) return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p == 0x7F || (!allow_space && *p == ' ')) return 1;
    return 0;
}

static void free_session(mw_smtp *s)
{
    if (!s) return;
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
    int rc = put_cmd(s, "EHLO %s", s->client);
    if (!rc) rc = flush(s);
    if (!rc) rc = get_reply(s, "EHLO");
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
        rc = put_cmd(s, "HELO %s", s->client);
        if (!rc) rc = flush(s);
        if (!rc) rc = get_reply(s, "HELO");
        if (rc) return rc;
        if (s->rep->code != 250) return reply_error(s, "HELO refused");
        s->helo_only = 1;
    } else {
        return reply_error(s, "EHLO refused");
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
            trace_info(s, "STARTTLS not offered; the tlspolicy allows plain text");
            return 0;
        }
        if (!required && !s->tlspolicy) return 0; /* opportunistic: plain text it is */
        return mwi_err_set(&s->err, MW_ETLS,
                           "the server does not offer STARTTLS (RFC 3207) and TLS is required");
    }
    int rc = put_cmd(s, "STARTTLS");
    if (!rc) rc = flush(s);
    if (!rc) rc = get_reply(s, "STARTTLS");
    if (rc) return rc;
    if (s->rep->code != 220) {
        int code = s->rep->code;
        rc = reply_error(s, "STARTTLS refused");
        if (code == 421) return rc;
        if (s->tlspolicy) {
            if (s->tlspolicy(code, s->err.reply, s->tlspolicy_ud) == MW_SMTP_TLSPOLICY_INSECURE) {
                trace_info(s, "STARTTLS refused; the tlspolicy allows plain text");
                mw_error_clear(&s->err);
                return 0;
            }
        } else if (!required) {
            trace_info(s, "STARTTLS refused; going on in plain text (opportunistic)");
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
        set_state(s, ST_DEAD);
        return mwi_err_set(&s->err, MW_EPROTO,
                           "%zu bytes received after the 220 to STARTTLS, before the TLS "
                           "handshake (possible injection): refused",
                           extra);
    }
    mw_tls_opts o = s->tls;
    if (!o.servername && s->server) o.servername = s->server;
    rc = mwi_conn_starttls(s->c, &o, &s->err);
    if (rc) return conn_failed(s, rc);
    s->tls_active = 1;
    trace_info(s, "TLS established");
    /* RFC 3207 §4.2: forget what was said in plain text, ask again. */
    memset(&s->caps, 0, sizeof s->caps);
    return ehlo(s, 1);
}

static int auth_one(mw_smtp *s, const char *mech, const mw_sasl_creds *creds, int *fatal)
{
    mw_sasl *sa = NULL;
    const char *ir = NULL;
    int rc = mwi_sasl_start(&sa, s->no_ir ? NULL : &ir, mech, creds, &s->err);
    if (rc) return rc;
    char line[MW_SASL_MAX_CHALLENGE + 64];
    char shown[200];
    int n;
    /* RFC 4954 §4: the AUTH line with its initial response must fit the
     * 512-octet command line; otherwise the response goes on its own. */
    if (ir && strlen(ir) + strlen(mech) + 8 <= 510)
        n = snprintf(line, sizeof line, "AUTH %s %s", mech, ir);
    else
        n = snprintf(line, sizeof line, "AUTH %s", mech);
    if (s->trace_secrets)
        mwi_copy_printable(shown, sizeof shown, line, (size_t)n);
    else
        mwi_sasl_mask(shown, sizeof shown, line, (size_t)n);
    rc = put_line(s, line, (size_t)n, shown);
    if (!rc) rc = flush(s);
    while (!rc) {
        if ((rc = get_reply(s, "AUTH")) != 0) break;
        int code = s->rep->code;
        if (code == 334) {
            size_t cl;
            const char *ch = mwi_smtp_reply_line(s->rep, 0, &cl);
            const char *resp = NULL;
            int st = mwi_sasl_step(sa, &resp, ch, cl, &s->err);
            if (st < 0) {
                /* RFC 4954 §4: "*" cancels the exchange; the server says 501. */
                int keep = st;
                mw_error saved = s->err;
                rc = put_line(s, "*", 1, NULL);
                if (!rc) rc = flush(s);
                if (!rc) rc = get_reply(s, "AUTH *");
                if (!rc) {
                    s->err = saved;
                    rc = keep;
                }
                break;
            }
            size_t rl = strlen(resp);
            if (s->trace_secrets)
                rc = put_line(s, resp, rl, NULL);
            else {
                mwi_sasl_mask(shown, sizeof shown, resp, rl);
                rc = put_line(s, resp, rl, shown);
            }
            if (!rc) rc = flush(s);
            continue;
        }
        if (code == 235) {
            rc = mwi_sasl_check_success(sa, &s->err);
            if (rc)
                *fatal = 1; /* the server skipped its proof: do not trust it */
            else
                snprintf(s->auth_mech, sizeof s->auth_mech, "%s", mwi_sasl_mech(sa));
            break;
        }
        rc = reply_error(s, "authentication failed");
        /* The command that failed is the exchange, not its last (masked)
         * line. */
        char cmd[64];
        int cl = snprintf(cmd, sizeof cmd, "AUTH %s", mech);
        mwi_err_set_command(&s->err, cmd, cl > 0 && (size_t)cl < sizeof cmd ? (size_t)cl : 0);
        /* 421: the server is going away; anything else (535, 534, 538,
         * 454, 504) lets the next mechanism try. */
        s->err.code = rc = code == 421 ? MW_ETEMP : MW_EAUTH;
        if (code == 421) *fatal = 1;
        const char *se = mwi_sasl_server_error(sa);
        if (se && *se) {
            size_t ml = strlen(s->err.message);
            snprintf(s->err.message + ml, sizeof s->err.message - ml, " (%s)", se);
        }
        break;
    }
    mwi_sasl_free(sa);
    return rc;
}

static int authenticate(mw_smtp *s)
{
    if (!(s->caps.flags & MW_SMTP_CAP_AUTH) || !s->caps.auth[0]) {
        s->stop = 1;
        return mwi_err_set(&s->err, MW_EUNSUPPORTED,
                           "credentials given but the server offers no AUTH (RFC 4954)%s",
                           s->tls_active ? "" : " before TLS");
    }
    unsigned char cb[64];
    size_t cbl = 0;
    const char *cbt = NULL;
    if (s->tls_active) {
        mw_stream *st = mwi_conn_stream(s->c);
        if (mw_stream_channel_binding(st, "tls-exporter", cb, sizeof cb, &cbl) == 0 && cbl)
            cbt = "tls-exporter";
        else if (mw_stream_channel_binding(st, "tls-unique", cb, sizeof cb, &cbl) == 0 && cbl)
            cbt = "tls-unique";
        else
            cbl = 0;
    }
    mw_sasl_policy pol = {0};
    pol.want = s->auth;
    pol.tls = s->tls_active;
    pol.allow_plaintext = s->allow_plaintext;
    pol.has_password = s->password != NULL;
    pol.has_token = s->token != NULL || s->token_fn != NULL;
    pol.want_external = s->tls_active && s->tls.cert_file != NULL;
    pol.has_cb = cbt != NULL;
    const char *mechs[MW_SASL_MAX_MECHS];
    size_t nm = 0;
    int rc = mwi_sasl_choose(mechs, MW_SASL_MAX_MECHS, &nm, s->caps.auth, &pol, &s->err);
    if (rc) {
        s->stop = 1;
        return rc;
    }
    mw_sasl_creds cr = {0};
    cr.authcid = s->username;
    cr.authzid = s->authzid;
    cr.password = s->password;
    cr.token = s->token;
    cr.service = "smtp";
    cr.hostname = s->server;
    cr.port = s->port;
    cr.cb_type = cbt;
    cr.cb_data = cbt ? cb : NULL;
    cr.cb_len = cbl;
    /* Strongest first; a refusal moves on to the next (RFC 4954 §4). */
    for (size_t i = 0; i < nm; i++) {
        int fatal = 0;
        int oauth = !strcasecmp(mechs[i], "XOAUTH2") || !strcasecmp(mechs[i], "OAUTHBEARER");
        char *fresh = NULL;
        if (oauth && !s->token && s->token_fn) {
            mw_error_clear(&s->err);
            rc = s->token_fn(0, &fresh, &s->err, s->token_ud);
            if (rc || !fresh) {
                s->stop = 1;
                return rc ? rc
                          : mwi_err_set(&s->err, MW_EINVAL, "the token provider gave no token");
            }
            cr.token = fresh;
        }
        rc = auth_one(s, mechs[i], &cr, &fatal);
        if (rc && fresh && !fatal && s->state != ST_DEAD) {
            /* Refused: one new token from the provider (refused = 1), one
             * more AUTH (RFC 4954 §4 allows it after a failure). */
            char *again = NULL;
            mw_error keep = s->err;
            int cr2 = s->token_fn(1, &again, &s->err, s->token_ud);
            if (cr2 == 0 && again) {
                explicit_bzero(fresh, strlen(fresh));
                free(fresh);
                fresh = again;
                cr.token = fresh;
                trace_info(s, "%s refused; again with a new token", mechs[i]);
                rc = auth_one(s, mechs[i], &cr, &fatal);
            } else if (cr2 == 0) {
                s->err = keep;
            } else {
                rc = cr2;
                fatal = 1;
            }
        }
        if (fresh) {
            explicit_bzero(fresh, strlen(fresh));
            free(fresh);
            cr.token = s->token;
        }
        if (rc == 0) {
            trace_info(s, "authenticated with %s", mechs[i]);
            return 0;
        }
        if (fatal || s->state == ST_DEAD) break;
        trace_info(s, "%s failed: %s", mechs[i], s->err.message);
    }
    s->stop = 1;
    return rc;
}

static const mw_tls_opts *tls_for(mw_smtp *s, mw_tls_opts *tmp)
{
    *tmp = s->tls;
    if (!tmp->servername) tmp->servername = s->server;
    return tmp;
}

/* One server and port: connect, greeting, EHLO, TLS, QUED, AUTH. */
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
    mw_stream *st = given;
    if (!st) {
        trace_info(s, "connecting to %s port %u", host, port);
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
    if ((rc = get_reply(s, "the greeting")) != 0) return rc;
    /* RFC 5321 §3.1: 220 is service ready; 554 (or 421) is no service. */
    if (s->rep->code != 220) return reply_error(s, "greeting");
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
        rc = put_cmd(s, "QUED");
        if (!rc) rc = flush(s);
        if (!rc) rc = get_reply(s, "QUED");
        if (rc) return rc;
        if (s->rep->code == 421) return reply_error(s, "QUED");
    }
    if (s->username || s->token || s->token_fn) {
        if ((rc = authenticate(s)) != 0) return rc;
    }
    mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
    set_state(s, ST_READY);
    return 0;
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
    int rc = 0;
    /* Refuse before anything is sent (docs/CONVENTIONS.md "Safe defaults":
     * CR/LF/NUL never reach a command line). */
    if (bad_arg(o->client, 0))
        rc = mwi_err_set(err, MW_EINVAL, "the EHLO name contains a control octet or space");
    else if (o->client && (!*o->client || strlen(o->client) > 255))
        rc = mwi_err_set(err, MW_EINVAL, "the EHLO name is empty or too long");
    else if (bad_arg(o->user, 1) || bad_arg(o->authzid, 1))
        rc = mwi_err_set(err, MW_EINVAL,
                         "the AUTH identity contains CR, LF, NUL or a control "
                         "octet");
    else if (o->tls < MW_TLS_STARTTLS || o->tls > MW_TLS_IMPLICIT)
        rc = mwi_err_set(err, MW_EINVAL, "unknown TLS mode %d", o->tls);
    else if ((o->user && !o->password && !o->token && !(o->version >= 2 && o->token_fn)))
        rc = mwi_err_set(err, MW_EINVAL, "a user name without a password or token");
    for (size_t i = 0; !rc && i < o->nservers; i++)
        if (!o->servers[i] || !*o->servers[i] || bad_arg(o->servers[i], 0))
            rc = mwi_err_set(err, MW_EINVAL, "server %zu is empty or has control octets", i + 1);
    for (size_t i = 0; !rc && i < o->nports; i++)
        if (o->ports[i] == 0 || o->ports[i] > 65535)
            rc = mwi_err_set(err, MW_EINVAL, "port %u out of range", o->ports[i]);
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
    if (gethostname(s->hostname, sizeof s->hostname - 1) != 0 || bad_arg(s->hostname, 0))
        s->hostname[0] = '\0';
    s->hostname[sizeof s->hostname - 1] = '\0';

    static const char *const def_servers[] = {"localhost"};
    const char *const *servers = o->nservers ? o->servers : def_servers;
    size_t nservers = o->nservers ? o->nservers : 1;
    unsigned def_port = o->tls == MW_TLS_IMPLICIT ? 465 : 587;
    const unsigned *ports = o->nports ? o->ports : &def_port;
    size_t nports = o->nports ? o->nports : 1;
    int64_t deadline = o->open_timeout_ms > 0 ? mw_now_ms() + o->open_timeout_ms : MW_NO_DEADLINE;

    rc = MW_ENET;
    if (given) {
        rc = try_one(s, servers[0], ports[0], given, deadline);
    } else {
        /* Every port of a server before the next server (Tcllib 1.4.5
         * advanced the port only on EHLO failures). */
        for (size_t i = 0; i < nservers; i++) {
            for (size_t j = 0; j < nports; j++) {
                rc = try_one(s, servers[i], ports[j], NULL, deadline);
                if (rc == 0) goto done;
                if (s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
                char msg[sizeof s->err.message + 300];
                snprintf(msg, sizeof msg, "%.200s port %u: %s", servers[i], ports[j],
                         s->err.message);
                mwi_copy_printable(s->err.message, sizeof s->err.message, msg, strlen(msg));
                trace_info(s, "%s", s->err.message);
                if (s->c && s->state != ST_DEAD && rc != MW_ETLS && rc != MW_ECERT) {
                    /* Say goodbye politely when the server can still hear;
                     * the error keeps naming the command that failed. */
                    mw_error keep = s->err;
                    if (put_cmd(s, "QUIT") == 0) flush(s);
                    s->err = keep;
                }
                mwi_conn_free(s->c);
                s->c = NULL;
                if (s->stop || rc == MW_EINVAL || rc == MW_ENOMEM || rc == MW_ECANCELED ||
                    rc == MW_EPOLICY)
                    goto done;
            }
        }
    }
done:
    if (rc) {
        if (err) *err = s->err;
        free_session(s);
        return rc;
    }
    trace_info(s, "ready on %s port %u%s", s->server, s->port, s->tls_active ? " (TLS)" : "");
    *out = s;
    return 0;
}

/* ---- the message source ---- */

typedef struct src {
    const mw_smtp_msg *m;
    size_t pos; /* memory: next octet */
    char *pre;  /* fd/callback: octets read ahead (the header block) */
    size_t prelen, prepos;
    int eof;
} src;

static long src_raw_read(src *r, char *buf, size_t len, mw_error *err)
{
    const mw_smtp_msg *m = r->m;
    if (m->data) {
        size_t n = m->len - r->pos < len ? m->len - r->pos : len;
        memcpy(buf, m->data + r->pos, n);
        r->pos += n;
        return (long)n;
    }
    if (m->read) {
        long n = m->read(buf, len, m->read_userdata);
        if (n < 0)
            return mwi_err_set(err, n < MW_ERROR_LAST ? MW_EIO : (int)n,
                               "the message source failed (%ld)", n);
        return n;
    }
    for (;;) {
        ssize_t n = read(m->fd, buf, len);
        if (n >= 0) return (long)n;
        if (errno != EINTR)
            return mwi_err_set(err, MW_EIO, "reading the message: %s", MW_ERRNO_TEXT(errno));
    }
}

/* Reads the header block ahead: into r->pre (streams) or just measures it
 * (memory).  Points *hdr and *hlen at the block. */
static int src_header(src *r, const char **hdr, size_t *hlen, mw_error *err)
{
    int complete;
    if (r->m->data) {
        size_t l = mwi_smtp_header_len(r->m->data, r->m->len, &complete);
        *hdr = r->m->data;
        *hlen = complete ? l : r->m->len;
        return 0;
    }
    mw_buf b = MW_BUF_INIT(MW_SMTP_MAX_HEADER + CHUNK);
    for (;;) {
        if (mwi_buf_reserve(&b, CHUNK)) {
            mwi_buf_free(&b);
            return mwi_err_set(err, MW_ETOOBIG, "the header block is over %d octets",
                               MW_SMTP_MAX_HEADER);
        }
        long n = src_raw_read(r, b.data + b.len, CHUNK, err);
        if (n < 0) {
            mwi_buf_free(&b);
            return (int)n;
        }
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        size_t l = mwi_smtp_header_len(b.data, b.len, &complete);
        if (complete || n == 0) {
            r->pre = b.data;
            r->prelen = b.len;
            *hdr = b.data;
            *hlen = complete ? l : b.len;
            if (n == 0) r->eof = 1;
            return 0;
        }
        if (b.len > MW_SMTP_MAX_HEADER) {
            mwi_buf_free(&b);
            return mwi_err_set(err, MW_ETOOBIG,
                               "no end of the header block in the first %d "
                               "octets",
                               MW_SMTP_MAX_HEADER);
        }
    }
}

static long src_read(src *r, char *buf, size_t len, mw_error *err);

/* The next piece of the message that is already in memory (the header
 * read-ahead, a message given as data), without a copy: points *p at up to
 * `len` octets and returns their number; 0 when nothing is in memory. */
static long src_mem_next(src *r, const char **p, size_t len)
{
    if (r->prepos < r->prelen) {
        size_t n = r->prelen - r->prepos < len ? r->prelen - r->prepos : len;
        *p = r->pre + r->prepos;
        r->prepos += n;
        return (long)n;
    }
    if (r->m->data) {
        size_t n = r->m->len - r->pos < len ? r->m->len - r->pos : len;
        *p = r->m->data + r->pos;
        r->pos += n;
        return (long)n;
    }
    return 0;
}

/* The next piece of the message: from memory without a copy, else read
 * into buf.  Returns its length, 0 at the end, or a negative code. */
static long src_next(src *r, const char **p, char *buf, size_t len, mw_error *err)
{
    if (r->prepos < r->prelen || r->m->data) return src_mem_next(r, p, len);
    *p = buf;
    return src_read(r, buf, len, err);
}

static long src_read(src *r, char *buf, size_t len, mw_error *err)
{
    if (r->prepos < r->prelen) {
        size_t n = r->prelen - r->prepos < len ? r->prelen - r->prepos : len;
        memcpy(buf, r->pre + r->prepos, n);
        r->prepos += n;
        return (long)n;
    }
    if (r->eof) return 0;
    return src_raw_read(r, buf, len, err);
}

/* ---- sending ---- */

void mw_smtp_result_free(mw_smtp_result *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nrcpt; i++) {
        free(r->rcpt[i].address);
        free(r->rcpt[i].text);
    }
    free(r->rcpt);
    free(r->originator);
    free(r->server);
    free(r->final_text);
    free(r);
}

static char *reply_text_dup(const mw_smtp_reply *rep)
{
    size_t sl;
    const char *sum = mwi_smtp_reply_summary(rep, &sl);
    char *t = malloc(sl + 1);
    if (t) mwi_copy_printable(t, sl + 1, sum, sl);
    return t;
}

/* RFC 3461 §4: xtext — '+', '=' and octets outside 33..126 as "+HH". */
static void xtext(char *out, size_t outsz, const char *in)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 4 < outsz; p++) {
        if (*p < 33 || *p > 126 || *p == '+' || *p == '=')
            o += (size_t)snprintf(out + o, outsz - o, "+%02X", *p);
        else
            out[o++] = (char)*p;
    }
    out[o] = '\0';
}

static int has8(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] >= 0x80) return 1;
    return 0;
}

static int check_dsn(const mw_smtp_msg *m, mw_error *err)
{
    if (m->dsn_notify) {
        const char *p = m->dsn_notify;
        if (!strcasecmp(p, "NEVER")) return 0;
        char tmp[64];
        snprintf(tmp, sizeof tmp, "%s", p);
        for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (strcasecmp(t, "SUCCESS") && strcasecmp(t, "FAILURE") && strcasecmp(t, "DELAY"))
                return mwi_err_set(
                    err, MW_EINVAL,
                    "DSN NOTIFY must be NEVER or SUCCESS,FAILURE,DELAY; not \"%.40s\"", p);
        if (strlen(p) >= sizeof tmp) return mwi_err_set(err, MW_EINVAL, "DSN NOTIFY too long");
    }
    if (m->dsn_ret && strcasecmp(m->dsn_ret, "FULL") && strcasecmp(m->dsn_ret, "HDRS"))
        return mwi_err_set(err, MW_EINVAL, "DSN RET must be FULL or HDRS");
    if (m->dsn_envid && (strlen(m->dsn_envid) > 100 || bad_arg(m->dsn_envid, 1)))
        return mwi_err_set(err, MW_EINVAL, "DSN ENVID too long or has control octets");
    return 0;
}

/* The server may answer in the middle of the data transfer (a 552 for a
 * message too big, a 554 from a content filter, a 421) and close the
 * connection; our write then fails with a broken pipe or a reset, and the
 * server's reply, already in our receive queue, is the real reason.  RFC
 * 5321 §4.1.1.4 / RFC 2920 §3.2 let a server reply before the end of the
 * data.  So after a failed write, read what is left on the stream (bounded:
 * 4 KiB, 2 seconds, the operation deadline) and when it holds a complete
 * reply, report that reply, keeping the write failure in the message.
 * The connection is dead either way. */
static void salvage_reply(mw_smtp *s, const char *what)
{
    mw_stream *st = mwi_conn_stream(s->c);
    if (!st) return;
    char buf[4096];
    size_t have = 0;
    int64_t dl = mw_now_ms() + 2000;
    if (s->tx_deadline != MW_NO_DEADLINE && s->tx_deadline < dl) dl = s->tx_deadline;
    mw_error tmp = {0};
    mwi_smtp_reply_init(s->rep);
    size_t start = 0;
    while (have < sizeof buf) {
        size_t got = 0;
        if (mw_stream_read(st, buf + have, sizeof buf - have, &got, dl, &tmp) || got == 0) break;
        have += got;
        char *nl;
        while ((nl = memchr(buf + start, '\n', have - start)) != NULL) {
            size_t len = (size_t)(nl - (buf + start));
            if (len > 0 && buf[start + len - 1] == '\r') len--;
            if (s->trace) s->trace(MW_TRACE_RECV, buf + start, len, s->trace_ud);
            int fr = mwi_smtp_reply_feed(s->rep, buf + start, len, &tmp);
            start = (size_t)(nl - buf) + 1;
            if (fr < 0) return;
            if (fr == 1) {
                char label[sizeof s->err.message + 64];
                snprintf(label, sizeof label, "%s (the server replied, then %.120s)", what,
                         s->err.message);
                reply_error(s, label);
                set_state(s, ST_DEAD);
                return;
            }
        }
    }
}

/* Writes one BDAT chunk (RFC 3030 §2). */
static int put_bdat(mw_smtp *s, mw_buf *b, int last, int *outstanding)
{
    char line[64];
    mw_fmt f;
    mw_fmt_init(&f, line, sizeof line);
    mw_fmt_mem(&f, "BDAT ", 5);
    mw_fmt_uint(&f, b->len, 1);
    if (last) mw_fmt_mem(&f, " LAST", 5);
    int rc = put_line(s, line, f.len, NULL);
    if (!rc && b->len) rc = conn_failed(s, mwi_conn_write(s->c, b->data, b->len, &s->err));
    (*outstanding)++;
    b->len = 0;
    return rc;
}

/* Streams the message: the rewritten header (when any), then the source
 * from `skip` on, encoded; the end of the body and the final dot go out in
 * the same write.  Returns with every reply to BDAT read (CHUNKING) or
 * with the reply to the final dot. */
/* Hands the output buffer back to the session for the next message (not
 * one grown past a few chunks: the memory a batch keeps stays bounded). */
static void xout_release(mw_smtp *s, mw_buf *b)
{
    if (b->data && !s->xout.data && b->cap <= 4 * CHUNK) {
        s->xout = *b;
        s->xout.len = 0;
        s->xout.data[0] = '\0';
    } else {
        mwi_buf_free(b);
    }
    *b = (mw_buf)MW_BUF_INIT(0);
}

/* The start of a transfer: the encoder, its output, and a local failure
 * met while encoding ahead (reported by transfer as if met there). */
typedef struct xfer {
    mw_smtp_data_enc enc;
    mw_buf out;
    mw_error local;
    int rc;
    int started; /* header encoded and the original header skipped */
    /* Set by transfer_send when the data went out (or the write failed)
     * and its replies are still to be read by transfer_replies. */
    int pending;
    int wrc;         /* the write's outcome */
    int outstanding; /* BDAT replies owed */
    int chunking;
    int hold; /* set by the caller: queue the end of the data, do not flush */
    int held; /* it was: the caller flushes (with the next envelope) */
} xfer;

/* Whether the rest of the message is in memory (header read-ahead, data). */
static int src_in_memory(const src *r)
{
    return r->prepos < r->prelen || (r->m->data && r->pos < r->m->len);
}

/* Encodes the rewritten header and skips the original one.  Only octets
 * already in memory are involved (the original header lies in the
 * read-ahead or the data), so this reads nothing from the source. */
static void xfer_start(xfer *x, src *r, const mw_smtp_env *env, size_t skip, int chunking)
{
    mwi_smtp_data_init(&x->enc, chunking != 0);
    x->enc.binary_body = chunking == 2;
    x->started = 1;
    if (env->rewritten)
        x->rc =
            mwi_smtp_data_encode(&x->enc, env->header.data, env->header.len, &x->out, &x->local);
    while (!x->rc && skip > 0 && src_in_memory(r)) {
        const char *p;
        long n = src_mem_next(r, &p, skip < CHUNK ? skip : CHUNK);
        skip -= (size_t)n;
    }
}

/* Encodes ahead, while the replies to MAIL/RCPT/DATA are on their way: the
 * header, whatever of the message is already in memory, and what the
 * source gives (into `buf`, CHUNK octets) up to one CHUNK of output — for
 * a small file that includes the read that finds its end — so that after
 * the 354 the message goes out at once.  A source error met here is
 * reported by transfer, as if met there. */
static void xfer_ahead(xfer *x, src *r, const mw_smtp_env *env, size_t skip, int forbid8, char *buf,
                       int chunking)
{
    xfer_start(x, r, env, skip, chunking);
    while (!x->rc && x->out.len < CHUNK) {
        const char *p;
        long n;
        if (src_in_memory(r)) {
            n = src_mem_next(r, &p, CHUNK);
        } else {
            if (r->eof || r->m->data || !buf) break;
            p = buf;
            n = src_raw_read(r, buf, CHUNK, &x->local);
            if (n < 0) {
                x->rc = (int)n;
                break;
            }
            if (n == 0) {
                r->eof = 1;
                break;
            }
        }
        x->rc = mwi_smtp_data_encode(&x->enc, p, (size_t)n, &x->out, &x->local);
        if (!x->rc && forbid8 && x->enc.saw_8bit)
            x->rc = mwi_err_set(&x->local, MW_EUNSUPPORTED,
                                "the message has 8-bit data and the server does not offer "
                                "8BITMIME (RFC 6152): transfer aborted");
    }
}

/* The first half of a transfer: the message goes out, up to and including
 * its end (final dot, or BDAT LAST) and the flush.  Returns non-zero when
 * the transfer is over already (a refused chunk, a local failure); else 0
 * with x->pending set: transfer_replies reads what the server says. */
static int transfer_send(mw_smtp *s, src *r, const mw_smtp_env *env, size_t skip, int chunking,
                         int forbid8, mw_smtp_result *res, xfer *x)
{
    if (!x->started) xfer_start(x, r, env, skip, chunking);
    mw_smtp_data_enc enc = x->enc;
    mw_buf out = x->out;
    x->out = (mw_buf)MW_BUF_INIT(0);
    mw_error local = x->local;
    int rc = x->rc, outstanding = 0, chunks = 0;
    if (!s->chunk) s->chunk = malloc(CHUNK);
    char *in = s->chunk;
    int pipelining = (s->caps.flags & MW_SMTP_CAP_PIPELINING) != 0;
    if (!in) {
        xout_release(s, &out);
        return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    /* Encoded ahead up to a CHUNK: it goes out before more is read. */
    if (!rc && !chunking && out.len >= CHUNK) {
        rc = conn_failed(s, mwi_conn_write(s->c, out.data, out.len, &s->err));
        out.len = 0;
    }
    int first_fail = 0;
    while (!rc) {
        const char *p;
        long n = src_next(r, &p, in, CHUNK, &local);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) break;
        rc = mwi_smtp_data_encode(&enc, p, (size_t)n, &out, &local);
        /* RFC 6152 §3: no 8-bit octet may go to a server that did not
         * offer 8BITMIME; known only now for a stream source. */
        if (!rc && forbid8 && enc.saw_8bit)
            rc = mwi_err_set(&local, MW_EUNSUPPORTED,
                             "the message has 8-bit data and the server does not offer 8BITMIME "
                             "(RFC 6152): transfer aborted");
        if (!rc && out.len >= CHUNK) {
            if (chunking) {
                rc = put_bdat(s, &out, 0, &outstanding);
                chunks++;
                /* Without PIPELINING each chunk waits for its reply; with
                 * it, at most 16 replies are left unread so the server
                 * never blocks writing them while we block writing chunks
                 * (the deadlock of RFC 2920 §3.1). */
                while (!rc && outstanding > (pipelining ? 16 : 0)) {
                    rc = flush(s);
                    if (!rc) rc = get_reply(s, "BDAT");
                    outstanding--;
                    if (!rc && !is_2xx(s)) {
                        rc = reply_error(s, "message data refused");
                        first_fail = 1;
                    }
                }
            } else {
                rc = conn_failed(s, mwi_conn_write(s->c, out.data, out.len, &s->err));
                out.len = 0;
            }
        }
    }
    if (first_fail) {
        /* A chunk was refused: read the replies still owed (RFC 3030 §2:
         * the rest fail too) so the session stays in step; RSET follows. */
        mw_error keep = s->err;
        int r2 = flush(s);
        while (!r2 && outstanding-- > 0)
            r2 = get_reply(s, "BDAT");
        s->err = keep;
        if (s->rep->code == 421 || r2) set_state(s, ST_DEAD);
        xout_release(s, &out);
        return rc;
    }
    if (rc && (local.code || s->err.code == 0)) {
        if (local.code) s->err = local;
        if (chunking && chunks == 0) {
            /* Met before any BDAT went out: nothing of the message reached
             * the server, so the session lives on (RSET before the next,
             * as after any BDAT transaction that did not end well). */
            trace_info(s, "not sending the message: %s", s->err.message);
            xout_release(s, &out);
            return rc;
        }
        /* A local failure (source, line too long) in the middle of DATA:
         * there is no way to abort DATA (RFC 5321 §4.1.1.4), so the
         * connection is dropped and the server discards the message. */
        set_state(s, ST_DEAD);
        trace_info(s, "aborting the transfer: %s", s->err.message);
        xout_release(s, &out);
        return rc;
    }
    if (!rc) rc = mwi_smtp_data_finish(&enc, &out, &s->err);
    if (!rc) {
        if (chunking)
            rc = put_bdat(s, &out, 1, &outstanding);
        else if (x->hold)
            rc = conn_failed(s, mwi_conn_queue(s->c, out.data, out.len, &s->err));
        else
            rc = conn_failed(s, mwi_conn_write(s->c, out.data, out.len, &s->err));
    }
    if (!rc) {
        trace_info(s, "(%llu octets of message data%s)", (unsigned long long)enc.out_octets,
                   chunking ? " in BDAT chunks" : "");
        if (x->hold && !chunking)
            x->held = 1;
        else
            rc = flush(s);
    }
    xout_release(s, &out);
    res->octets = enc.out_octets;
    x->pending = 1;
    x->wrc = rc;
    x->outstanding = outstanding;
    x->chunking = chunking;
    return 0;
}

/* The second half: every reply still owed; the first failure counts. */
static int transfer_replies(mw_smtp *s, xfer *x, mw_smtp_result *res)
{
    int rc = x->wrc, outstanding = x->outstanding, chunking = x->chunking;
    x->pending = 0;
    int frc = 0;
    while (!rc && outstanding > 0) {
        rc = get_reply(s, chunking ? "BDAT" : "end of data");
        outstanding--;
        if (!rc && !is_2xx(s) && !frc) frc = reply_error(s, "message data refused");
    }
    if (!chunking && !rc) {
        rc = get_reply(s, "end of data (.)");
        if (!rc && !is_2xx(s)) frc = reply_error(s, "message data refused");
    }
    if (rc == MW_ENET && s->err.reply_code == 0) {
        salvage_reply(s, "message data refused");
        if (s->err.reply_code) {
            res->final_code = s->rep->code;
            free(res->final_text);
            res->final_text = reply_text_dup(s->rep);
            rc = s->err.code;
        }
    }
    if (rc) return rc;
    res->final_code = s->rep->code;
    free(res->final_text);
    res->final_text = reply_text_dup(s->rep);
    return frc;
}

static int do_rset(mw_smtp *s)
{
    int rc = put_cmd(s, "RSET");
    if (!rc) rc = flush(s);
    if (!rc) rc = get_reply(s, "RSET");
    if (!rc && s->rep->code != 250) rc = reply_error(s, "RSET refused");
    if (!rc) s->dirty = 0;
    return rc;
}

/* Tcllib's Bcc copy: a second transaction to the Bcc
 * recipients whose message is a multipart/digest (RFC 2046 §5.1.5) holding
 * the message as sent.  Its recipients' results are appended to res. */
static int send_tx(mw_smtp *s, const mw_smtp_msg *m, mw_smtp_result **resp);

static int send_bcc_digest(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                           mw_smtp_result *res)
{
    mw_buf d = MW_BUF_INIT(0);
    char date[64], mid[400], boundary[80];
    unsigned char rnd[9];
    mwi_smtp_make_date(date, sizeof date);
    if (mwi_smtp_make_msgid(mid, sizeof mid, s->hostname, &s->err)) return s->err.code;
    if (mwi_random_bytes(rnd, sizeof rnd, &s->err)) return s->err.code;
    int bl = snprintf(boundary, sizeof boundary, "=_mw_bcc_");
    for (size_t i = 0; i < sizeof rnd; i++)
        bl += snprintf(boundary + bl, sizeof boundary - (size_t)bl, "%02x", rnd[i]);
    int rc = mwi_buf_printf(&d,
                            "From: <%s>\r\nBcc:\r\nDate: %s\r\nSubject: [Bcc] %s\r\n"
                            "Message-ID: %s\r\nMIME-Version: 1.0\r\n"
                            "Content-Type: multipart/digest; boundary=\"%s\"\r\n\r\n"
                            "--%s\r\nContent-Type: message/rfc822\r\n\r\n",
                            res->originator, date, env->subject ? env->subject : "", mid, boundary,
                            boundary);
    if (!rc && env->rewritten) rc = mwi_buf_append(&d, env->header.data, env->header.len);
    if (!rc) rc = mwi_buf_append(&d, m->data + skip, m->len - skip);
    if (!rc) rc = mwi_buf_printf(&d, "\r\n--%s--\r\n", boundary);
    if (rc) {
        mwi_buf_free(&d);
        return mwi_err_set(&s->err, rc, "cannot build the Bcc copy");
    }
    mw_smtp_msg b = MW_SMTP_MSG_INIT;
    b.data = d.data;
    b.len = d.len;
    b.originator = res->originator;
    b.recipients = (const char *const *)env->bcc;
    b.nrecipients = env->nbcc;
    b.rewrite_headers = 0;
    b.atleastone = m->atleastone;
    b.body = m->body;
    b.use_chunking = m->use_chunking;
    b.dsn_notify = m->dsn_notify;
    b.dsn_ret = m->dsn_ret;
    b.dsn_orcpt = m->dsn_orcpt;
    mw_smtp_result *r2 = NULL;
    trace_info(s, "sending the Bcc copy (multipart/digest) to %zu recipients", env->nbcc);
    rc = send_tx(s, &b, &r2);
    mwi_buf_free(&d);
    if (r2) {
        mw_smtp_rcpt *all = realloc(res->rcpt, (res->nrcpt + r2->nrcpt) * sizeof *all);
        if (all) {
            memcpy(all + res->nrcpt, r2->rcpt, r2->nrcpt * sizeof *all);
            res->rcpt = all;
            res->nrcpt += r2->nrcpt;
            res->nrejected += r2->nrejected;
            r2->nrcpt = 0; /* moved */
        } else if (!rc) {
            rc = mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
        }
        mw_smtp_result_free(r2);
    }
    return rc;
}

/* One transaction, in three steps so that a batch can prepare the next
 * message while the server is still answering this one:
 *   tx_prepare  checks the message, reads its header ahead, builds the
 *               envelope, the result and the MAIL line (no network);
 *   tx_begin    RSET, MAIL, RCPT, DATA/BDAT and the data, up to the flush
 *               of its end, leaving the final reply unread (xf.pending);
 *   tx_end      reads what is owed, resets after a failure, sends the Bcc
 *               digest, frees.
 * mw_smtp_send runs the three in a row. */
enum tx_after { AFTER_OUT = 0, AFTER_RESET, AFTER_421 };
typedef struct tx {
    mw_smtp_msg m; /* the caller's message (version 1 upgraded) */
    src r;
    xfer xf;
    mw_smtp_env env;
    int built; /* env and res exist: tx_end must run */
    mw_smtp_result *res;
    size_t skip;
    int chunking, forbid8, pipelining, dsn;
    char mail[700];
    size_t ml;
    enum tx_after after;
    int pipe_data; /* DATA went with the envelope (PIPELINING) */
    int pipe_bdat; /* the whole message went with it as BDAT LAST (RFC 3030 §4.2) */
    int had_rset;  /* an RSET reply is owed before MAIL's */
    int env_sent;  /* tx_envelope is done */
    int prep_rc;   /* batch: tx_prepare's outcome, kept until its turn */
    mw_error prep_err;
} tx;

static int tx_prepare(mw_smtp *s, tx *t, const mw_smtp_msg *m)
{
    int rc;
    memset(t, 0, sizeof *t);
    if (!m || (m->version != MW_SMTP_MSG_VERSION && m->version != 1))
        return mwi_err_set(&s->err, MW_EINVAL, "message missing or of an unknown version");
    if (m->version == 1) {
        /* A caller built against version 1 has no header_recipients. */
        memcpy(&t->m, m, offsetof(mw_smtp_msg, header_recipients));
        t->m.version = MW_SMTP_MSG_VERSION;
    } else {
        t->m = *m;
    }
    m = &t->m;
    int nsrc = (m->data != NULL) + (m->fd >= 0) + (m->read != NULL);
    if (nsrc != 1) return mwi_err_set(&s->err, MW_EINVAL, "give exactly one of data, fd or read");
    if ((rc = check_dsn(m, &s->err)) != 0) return rc;
    if (m->bcc_digest && !m->data)
        return mwi_err_set(&s->err, MW_EINVAL, "bcc_digest needs the message in memory");
    src *r = &t->r;
    r->m = m;
    const char *hdr = "";
    size_t hlen = 0;
    int need_hdr = m->rewrite_headers || !m->originator || !m->recipients || m->nheaders ||
                   m->header_recipients;
    if (need_hdr && (rc = src_header(r, &hdr, &hlen, &s->err)) != 0) {
        free(r->pre);
        r->pre = NULL;
        return rc;
    }
    mw_smtp_env *envp = &t->env;
    rc = mwi_smtp_env_build(envp, m, hdr, hlen, s->hostname, &s->err);
    if (rc) {
        free(r->pre);
        r->pre = NULL;
        return rc;
    }
    size_t skip = t->skip = envp->rewritten ? hlen : 0;
    mw_smtp_result *res = calloc(1, sizeof *res);
    if (!res || !(res->rcpt = calloc(envp->nrcpt, sizeof *res->rcpt))) {
        free(res);
        free(r->pre);
        r->pre = NULL;
        mwi_smtp_env_free(envp);
        return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    }
    res->nrcpt = envp->nrcpt;
    for (size_t i = 0; i < envp->nrcpt; i++) {
        res->rcpt[i].address = envp->rcpt[i];
        envp->rcpt[i] = NULL;
    }
    res->originator = envp->originator;
    envp->originator = NULL;
    res->server = strdup(s->server ? s->server : "");
    res->port = s->port;
    t->res = res;
    t->built = 1;
    /* Every exit from here on goes through tx_end, which hands it back. */
    t->xf.out = s->xout; /* empty; reused from the previous message */
    s->xout = (mw_buf)MW_BUF_INIT(0);

    /* What the message needs of the server, decided before MAIL. */
    int utf8_addr = has8(res->originator, strlen(res->originator));
    for (size_t i = 0; i < res->nrcpt; i++)
        utf8_addr |= has8(res->rcpt[i].address, strlen(res->rcpt[i].address));
    int smtputf8 = 0;
    if (utf8_addr || envp->utf8) {
        if (s->caps.flags & MW_SMTP_CAP_SMTPUTF8)
            smtputf8 = 1;
        else if (utf8_addr) {
            rc = mwi_err_set(&s->err, MW_EUNSUPPORTED,
                             "an address is UTF-8 and the server does not offer SMTPUTF8 "
                             "(RFC 6531)");
            goto fail;
        }
    }
    uint64_t size = 0;
    int eight = envp->utf8;
    if (m->data) {
        size = (uint64_t)(m->len - skip) + (envp->rewritten ? envp->header.len : 0);
        eight |= has8(m->data + skip, m->len - skip);
    } else {
        struct stat st;
        if (m->size_hint)
            size = m->size_hint;
        else if ((s->caps.flags & MW_SMTP_CAP_SIZE) && m->fd >= 0 && fstat(m->fd, &st) == 0 &&
                 S_ISREG(st.st_mode)) {
            /* The file, with its header as rewritten (Date, Message-ID…
             * added, Bcc removed); line ends made CRLF are not counted:
             * an estimate, as RFC 1870 §4 allows. */
            size = (uint64_t)st.st_size;
            if (envp->rewritten && size >= skip) size = size - skip + envp->header.len;
        }
        eight = 1; /* unknown until read: declare 8BITMIME when offered */
    }
    const char *body = NULL;
    int has8bm = (s->caps.flags & MW_SMTP_CAP_8BITMIME) != 0;
    int binary = m->body == MW_SMTP_BODY_BINARYMIME;
    if (binary) {
        if (!(s->caps.flags & MW_SMTP_CAP_BINARYMIME) || !(s->caps.flags & MW_SMTP_CAP_CHUNKING)) {
            rc = mwi_err_set(&s->err, MW_EUNSUPPORTED,
                             "the message is binary and the server does not offer %s (RFC 3030): "
                             "re-encode it as 7-bit",
                             (s->caps.flags & MW_SMTP_CAP_CHUNKING) ? "BINARYMIME"
                                                                    : "CHUNKING and BINARYMIME");
            goto fail;
        }
        body = "BINARYMIME";
    } else if (m->body == MW_SMTP_BODY_8BITMIME || (m->body == MW_SMTP_BODY_AUTO && eight)) {
        if (has8bm)
            body = "8BITMIME";
        else if (m->data && !smtputf8) {
            rc = mwi_err_set(&s->err, MW_EUNSUPPORTED,
                             "the message has 8-bit data and the server does not offer 8BITMIME "
                             "(RFC 6152): encode it as 7-bit");
            goto fail;
        }
    } else if (m->body == MW_SMTP_BODY_7BIT && has8bm) {
        body = "7BIT";
    }
    /* RFC 1870 §6: refuse early what the server said it will not take. */
    if ((s->caps.flags & MW_SMTP_CAP_SIZE) && s->caps.size_max && size > s->caps.size_max) {
        rc = mwi_err_set(&s->err, MW_ETOOBIG,
                         "the message (%llu octets) is over the server's SIZE limit of %llu",
                         (unsigned long long)size, (unsigned long long)s->caps.size_max);
        goto fail;
    }
    /* chunking 2: BDAT with the body as it is (BINARYMIME, xfer_start) */
    int chunking = t->chunking =
        binary ? 2 : m->use_chunking && (s->caps.flags & MW_SMTP_CAP_CHUNKING);
    t->forbid8 = !(body && (!strcmp(body, "8BITMIME") || binary)) && !smtputf8;
    t->pipelining = (s->caps.flags & MW_SMTP_CAP_PIPELINING) != 0;
    int dsn = t->dsn = (s->caps.flags & MW_SMTP_CAP_DSN) != 0;
    res->chunking = chunking != 0;

    /* Command lines are put together without printf (per message, on the
     * path between two replies); one cut short is refused, not sent. */
    char *mail = t->mail;
    mw_fmt mf;
    mw_fmt_init(&mf, mail, sizeof t->mail);
    mw_fmt_mem(&mf, "MAIL FROM:<", 11);
    mw_fmt_str(&mf, res->originator);
    mw_fmt_mem(&mf, ">", 1);
    if ((s->caps.flags & MW_SMTP_CAP_SIZE) && size) {
        mw_fmt_mem(&mf, " SIZE=", 6);
        mw_fmt_uint(&mf, size, 1);
    }
    if (body) {
        mw_fmt_mem(&mf, " BODY=", 6);
        mw_fmt_str(&mf, body);
    }
    if (smtputf8) mw_fmt_mem(&mf, " SMTPUTF8", 9);
    if (dsn && m->dsn_ret) {
        mw_fmt_mem(&mf, " RET=", 5);
        mw_fmt_str(&mf, m->dsn_ret);
    }
    if (dsn && m->dsn_envid) {
        char x[320];
        xtext(x, sizeof x, m->dsn_envid);
        mw_fmt_mem(&mf, " ENVID=", 7);
        mw_fmt_str(&mf, x);
    }
    if (mf.over) {
        rc = mwi_err_set(&s->err, MW_ETOOBIG, "the MAIL command would be over %zu octets",
                         sizeof t->mail - 1);
        goto fail;
    }
    t->ml = mf.len;
    return 0;
fail:
    t->after = AFTER_OUT;
    return rc;
}

/* Post-transfer bookkeeping, once the transfer's outcome is known. */
static void tx_transferred(mw_smtp *s, tx *t, int rc)
{
    if (rc == 0) {
        t->res->sent = 1;
        for (size_t i = 0; i < t->res->nrcpt; i++)
            t->res->rcpt[i].delivered = t->res->rcpt[i].accepted;
        s->dirty = 0;
    } else if (s->state != ST_DEAD && (t->res->final_code >= 400 || t->chunking)) {
        /* The transaction ended with the refusal; after BDAT failures
         * RFC 3030 §2 asks for RSET. */
        s->dirty = t->chunking;
    }
}

/* Where a step of the transaction left it: what tx_end has to do. */
static int tx_stop(tx *t, enum tx_after after, int rc)
{
    t->after = after;
    return rc;
}

/* The envelope: RSET when owed, MAIL, RCPT… and, pipelined, DATA.  With
 * PIPELINING it is written and flushed and the message encoded ahead, the
 * replies left unread (t->env_sent); without, each command waits for its
 * reply here. */
static int tx_envelope(mw_smtp *s, tx *t)
{
    int rc;
    const mw_smtp_msg *m = &t->m;
    mw_smtp_result *res = t->res;
    int chunking = t->chunking, pipelining = t->pipelining, dsn = t->dsn;

    /* RFC 2920: with PIPELINING, RSET, MAIL, every RCPT and DATA go out in
     * one write and the replies are read in order afterwards.  DATA joins
     * them only when no outcome of the RCPTs could make us want to stop:
     * with atleastone (any accepted recipient gets the message), or with a
     * single recipient — if its RCPT fails there is no valid recipient and
     * RFC 2920 §3.1 has the server refuse DATA (503 or 554), so nothing is
     * sent; if it succeeds every recipient was accepted.  With several
     * recipients and atleastone off (Tcllib's all-or-nothing), DATA waits
     * for the RCPT replies, since a server would accept DATA after only
     * some of them were accepted. */
    int pipe_data = t->pipe_data = pipelining && !chunking && (m->atleastone || res->nrcpt == 1);
    int had_rset = s->dirty;
    if (s->dirty) {
        if ((rc = put_cmd(s, "RSET")) != 0) goto out;
        if (!pipelining && (rc = flush(s)) == 0 && (rc = get_reply(s, "RSET")) == 0) {
            had_rset = 0;
            s->dirty = 0;
        }
        if (rc) goto out;
    }
    if ((rc = put_line(s, t->mail, t->ml, NULL)) != 0) goto out;
    s->dirty = 1;
    if (!pipelining) {
        if ((rc = flush(s)) || (rc = get_reply(s, "MAIL"))) goto out;
        if (s->rep->code != 250) {
            rc = reply_error(s, "sender refused");
            res->final_code = s->rep->code;
            res->final_text = reply_text_dup(s->rep);
            goto reset;
        }
    }
    for (size_t i = 0; i < res->nrcpt; i++) {
        char line[1200]; /* ORCPT may triple a 256-octet address */
        mw_fmt lf;
        mw_fmt_init(&lf, line, sizeof line);
        mw_fmt_mem(&lf, "RCPT TO:<", 9);
        mw_fmt_str(&lf, res->rcpt[i].address);
        mw_fmt_mem(&lf, ">", 1);
        if (dsn && m->dsn_notify) {
            mw_fmt_mem(&lf, " NOTIFY=", 8);
            mw_fmt_str(&lf, m->dsn_notify);
        }
        if (dsn && m->dsn_orcpt && !has8(res->rcpt[i].address, strlen(res->rcpt[i].address))) {
            char x[800];
            xtext(x, sizeof x, res->rcpt[i].address);
            mw_fmt_mem(&lf, " ORCPT=rfc822;", 14);
            mw_fmt_str(&lf, x);
        }
        if (lf.over) {
            /* Cannot happen (addresses, NOTIFY and ORCPT are bounded), but
             * MAIL is queued already: never leave the session out of step. */
            set_state(s, ST_DEAD);
            rc = mwi_err_set(&s->err, MW_ETOOBIG,
                             "the RCPT command for <%s> would be over %zu octets",
                             res->rcpt[i].address, sizeof line - 1);
            goto out;
        }
        if ((rc = put_line(s, line, lf.len, NULL)) != 0) goto out;
        if (!pipelining) {
            if ((rc = flush(s)) || (rc = get_reply(s, "RCPT"))) goto out;
            mw_smtp_rcpt *rr = &res->rcpt[i];
            rr->code = s->rep->code;
            memcpy(rr->enhanced, s->rep->enhanced, sizeof rr->enhanced);
            rr->text = reply_text_dup(s->rep);
            if (s->rep->code == 421) goto out421;
        }
    }
    if (pipe_data && (rc = put_line(s, "DATA", 4, NULL)) != 0) goto out;
    t->had_rset = had_rset;
    /* RFC 3030 §4.2: with PIPELINING, BDAT may follow the RCPTs in the same
     * group; a BDAT after a failed MAIL or with no accepted recipient is
     * refused, and its data (counted, not dot-terminated) is skipped, so
     * nothing is delivered and the session stays in step.  When the whole
     * message fits in one chunk it is encoded now and goes out with its
     * envelope as BDAT LAST: one round trip per message.  As for DATA,
     * only when no RCPT outcome could make us want to stop. */
    if (pipelining && chunking && (m->atleastone || res->nrcpt == 1)) {
        if (!s->chunk) s->chunk = malloc(CHUNK);
        xfer *x = &t->xf;
        xfer_ahead(x, &t->r, &t->env, t->skip, t->forbid8, s->chunk, chunking);
        int whole = !x->rc && !src_in_memory(&t->r) && (t->r.eof || m->data);
        if (whole && (rc = mwi_smtp_data_finish(&x->enc, &x->out, &s->err)) != 0) goto out;
        if (whole) {
            int outstanding = 0;
            trace_info(s, "(%llu octets of message data in BDAT chunks)",
                       (unsigned long long)x->enc.out_octets);
            if ((rc = put_bdat(s, &x->out, 1, &outstanding)) != 0) goto out;
            res->octets = x->enc.out_octets;
            xout_release(s, &x->out);
            x->pending = 1;
            x->wrc = 0;
            x->outstanding = outstanding;
            x->chunking = 1;
            t->pipe_bdat = 1;
        }
    }
    if (pipelining) {
        if ((rc = flush(s)) != 0) goto out;
        /* The replies take a round trip: encode meanwhile what is already
         * in memory (and read a small file to its end), so that after the
         * 354 the message goes out at once. */
        if (pipe_data) {
            if (!s->chunk) s->chunk = malloc(CHUNK);
            xfer_ahead(&t->xf, &t->r, &t->env, t->skip, t->forbid8, s->chunk, 0);
        }
    }
    t->env_sent = 1;
    return 0;
out421:
    return tx_stop(t, AFTER_421, rc);
reset:
    return tx_stop(t, AFTER_RESET, rc);
out:
    return tx_stop(t, AFTER_OUT, rc);
}

/* A transaction that failed before its data: reads the reply owed to a
 * BDAT LAST sent with the envelope, keeping the error that counts. */
static int bdat_drain(mw_smtp *s, tx *t)
{
    if (!t->xf.pending) return 0;
    t->xf.pending = 0;
    mw_error keep = s->err;
    int rc = get_reply(s, "BDAT");
    if (!rc) s->err = keep;
    return rc;
}

/* The rest: the envelope's replies (pipelined), DATA, the data. */
static int tx_rest(mw_smtp *s, tx *t)
{
    int rc = 0;
    const mw_smtp_msg *m = &t->m;
    mw_smtp_result *res = t->res;
    src *r = &t->r;
    mw_smtp_env *envp = &t->env;
    int chunking = t->chunking, forbid8 = t->forbid8, pipelining = t->pipelining;
    size_t skip = t->skip;
    int pipe_data = t->pipe_data, had_rset = t->had_rset;
    if (pipelining) {
        if (had_rset) {
            if ((rc = get_reply(s, "RSET")) != 0) goto out;
        }
        if ((rc = get_reply(s, "MAIL")) != 0) goto out;
        int mail_code = s->rep->code;
        mw_error mail_err = {0};
        if (mail_code != 250) {
            reply_error(s, "sender refused");
            mail_err = s->err;
            res->final_code = mail_code;
            res->final_text = reply_text_dup(s->rep);
        }
        for (size_t i = 0; i < res->nrcpt; i++) {
            if ((rc = get_reply(s, "RCPT")) != 0) goto out;
            mw_smtp_rcpt *rr = &res->rcpt[i];
            rr->code = s->rep->code;
            memcpy(rr->enhanced, s->rep->enhanced, sizeof rr->enhanced);
            rr->text = reply_text_dup(s->rep);
        }
        if (pipe_data) {
            if ((rc = get_reply(s, "DATA")) != 0) goto out;
            if (s->rep->code == 354 && (mail_code != 250)) {
                /* The server took DATA although MAIL failed: the only way
                 * out of DATA without sending a message is to hang up. */
                set_state(s, ST_DEAD);
            }
        }
        if (mail_code != 250) {
            if ((rc = bdat_drain(s, t)) != 0) goto out;
            s->err = mail_err;
            rc = mail_err.code;
            goto reset;
        }
    }
    size_t nacc = 0, nperm = 0;
    for (size_t i = 0; i < res->nrcpt; i++) {
        mw_smtp_rcpt *rr = &res->rcpt[i];
        rr->accepted = rr->code == 250 || rr->code == 251;
        rr->permanent = rr->code >= 500;
        if (rr->accepted)
            nacc++;
        else {
            res->nrejected++;
            nperm += rr->permanent;
        }
        if (rr->code == 421) goto out421;
    }
    if (nacc == 0 || (res->nrejected && !m->atleastone)) {
        /* Tcllib: no DATA unless every recipient was accepted, or at least
         * one with -atleastone; RSET and report the rejected ones. */
        mw_smtp_rcpt *first = NULL;
        for (size_t i = 0; i < res->nrcpt && !first; i++)
            if (!res->rcpt[i].accepted) first = &res->rcpt[i];
        rc = nperm ? MW_ESERVER : MW_ETEMP;
        mwi_err_set(&s->err, rc,
                    "%zu of %zu recipients rejected (first: <%s> %d %s %s); "
                    "message not sent",
                    res->nrejected, res->nrcpt, first->address, first->code, first->enhanced,
                    first->text ? first->text : "");
        s->err.reply_code = first->code;
        memcpy(s->err.enhanced, first->enhanced, sizeof s->err.enhanced);
        res->final_code = first->code;
        free(res->final_text);
        size_t fl = strlen(first->enhanced) + 1 + (first->text ? strlen(first->text) : 0) + 1;
        if ((res->final_text = malloc(fl)))
            snprintf(res->final_text, fl, "%s%s%s", first->enhanced, first->enhanced[0] ? " " : "",
                     first->text ? first->text : "");
        mwi_err_set_reply(&s->err, first->text ? first->text : "",
                          first->text ? strlen(first->text) : 0);
        if (pipe_data && s->rep->code == 354) {
            /* DATA is pipelined only with atleastone or one recipient, so
             * here nacc == 0 and a compliant server refuses DATA (RFC 2920
             * §3.1); one that did not leaves us no way out but hanging up. */
            set_state(s, ST_DEAD);
            goto out;
        }
        /* The BDAT sent along is refused too (no valid recipient). */
        if (t->pipe_bdat) {
            int r2 = bdat_drain(s, t);
            if (r2) {
                rc = r2;
                goto out;
            }
        }
        goto reset;
    }
    if (t->pipe_bdat) goto out; /* the BDAT reply is read by tx_end */
    if (!chunking) {
        if (!pipe_data) {
            if ((rc = put_cmd(s, "DATA")) || (rc = flush(s)) || (rc = get_reply(s, "DATA")))
                goto out;
        }
        if (s->rep->code != 354) {
            rc = reply_error(s, "DATA refused");
            res->final_code = s->rep->code;
            res->final_text = reply_text_dup(s->rep);
            if (s->rep->code == 421) goto out;
            goto reset;
        }
    }
    rc = transfer_send(s, r, envp, skip, chunking, forbid8, res, &t->xf);
    if (!t->xf.pending) tx_transferred(s, t, rc);
    goto out;
out421:
    return tx_stop(t, AFTER_421, rc);
reset:
    return tx_stop(t, AFTER_RESET, rc);
out:
    return tx_stop(t, AFTER_OUT, rc);
}

static int tx_begin(mw_smtp *s, tx *t)
{
    int rc = t->env_sent ? 0 : tx_envelope(s, t);
    return rc ? rc : tx_rest(s, t);
}

static int tx_end(mw_smtp *s, tx *t, int rc)
{
    const mw_smtp_msg *m = &t->m;
    if (t->xf.pending) {
        rc = transfer_replies(s, &t->xf, t->res);
        tx_transferred(s, t, rc);
    }
    if (t->after == AFTER_421) rc = reply_error(s, "server closing the connection");
    if (t->after == AFTER_RESET && s->state == ST_READY) {
        mw_error keep = s->err;
        if (do_rset(s) == 0)
            s->err = keep;
        else if (s->state != ST_DEAD)
            s->err = keep;
    }
    if (m->bcc_digest && t->env.nbcc > 0 && s->state == ST_READY) {
        mw_error keep = s->err;
        int rc2 = send_bcc_digest(s, m, &t->env, t->skip, t->res);
        if (rc)
            s->err = keep; /* the main transaction's failure is the one to report */
        else
            rc = rc2;
    }
    free(t->r.pre);
    t->r.pre = NULL;
    xout_release(s, &t->xf.out);
    mwi_smtp_env_free(&t->env);
    t->built = 0;
    return rc;
}

/* A prepared transaction that will not be sent (the session died first):
 * only the memory goes. */
static void tx_discard(mw_smtp *s, tx *t)
{
    if (t->built) {
        xout_release(s, &t->xf.out);
        mwi_smtp_env_free(&t->env);
    }
    free(t->r.pre);
    t->r.pre = NULL;
    t->built = 0;
}

static int send_tx(mw_smtp *s, const mw_smtp_msg *m, mw_smtp_result **resp)
{
    tx t;
    int rc = tx_prepare(s, &t, m);
    *resp = t.res;
    if (t.built) {
        if (!rc) rc = tx_begin(s, &t);
        rc = tx_end(s, &t, rc);
    }
    return rc;
}

static int not_ready(mw_smtp *s)
{
    return mwi_err_set(&s->err, MW_ESTATE, "the session is not ready to send (%s)",
                       s->state == ST_DEAD ? "the connection failed earlier" : "closed");
}

int mw_smtp_send(mw_smtp *s, const mw_smtp_msg *msg, mw_smtp_result **result)
{
    if (result) *result = NULL;
    if (!s) return MW_EINVAL;
    mw_error_clear(&s->err);
    if (s->state != ST_READY) return not_ready(s);
    s->tx_deadline = s->maxtime_ms > 0 ? mw_now_ms() + s->maxtime_ms : MW_NO_DEADLINE;
    mwi_conn_set_deadline(s->c, s->tx_deadline);
    mw_smtp_result *res = NULL;
    int rc = send_tx(s, msg, &res);
    if (s->c) mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
    if (rc && s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
    if (result)
        *result = res;
    else
        mw_smtp_result_free(res);
    return rc;
}

/* mw_smtp_send_batch's state: up to three messages are in hand at once —
 * one whose final reply is still owed (fin), the one being sent (cur) and
 * the next, prepared (pre). */
typedef struct batch {
    mw_smtp *s;
    mw_smtp_next_fn next;
    mw_smtp_done_fn done;
    void *ud;
    tx slot[3];
    int used[3];
    size_t asked; /* messages taken from next() */
    int more;     /* next() may have more: 1, none: 0, its failure: < 0 */
} batch;

/* Takes the next message and prepares it (no network); NULL when there
 * are no more.  A failed preparation is kept for the message's turn. */
static tx *batch_take(batch *b)
{
    if (b->more <= 0) return NULL;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    b->more = b->next(b->asked, &m, b->ud);
    if (b->more <= 0) return NULL;
    b->asked++;
    int k = 0;
    while (b->used[k])
        k++;
    b->used[k] = 1;
    tx *t = &b->slot[k];
    mw_smtp *s = b->s;
    mw_error keep = s->err;
    mw_error_clear(&s->err);
    t->prep_rc = 0; /* tx_prepare clears the rest */
    int rc = tx_prepare(s, t, &m);
    t->prep_rc = rc;
    t->prep_err = s->err;
    s->err = keep;
    return t;
}

/* Reports a message to done() with rc, and frees its slot. */
static void batch_report(batch *b, tx *t, size_t index, int rc)
{
    mw_smtp *s = b->s;
    if (rc && s->err.code == 0) mwi_err_set(&s->err, rc, "%s", mw_strerror(rc));
    b->done(index, rc, t->res, &s->err, b->ud);
    mw_smtp_result_free(t->res);
    t->res = NULL;
    b->used[t - b->slot] = 0;
}

/* Reads the final reply of a message whose data went out, and reports it. */
static int batch_finish(batch *b, tx *t, size_t index, int rc)
{
    if (t->built) rc = tx_end(b->s, t, rc);
    batch_report(b, t, index, rc);
    return rc;
}

/* The session died: messages in hand were not sent. */
static void batch_abandon(batch *b, tx *t, size_t index)
{
    mw_smtp *s = b->s;
    tx_discard(s, t);
    mw_smtp_result_free(t->res);
    t->res = NULL;
    mw_error_clear(&s->err);
    not_ready(s);
    b->done(index, MW_ESTATE, NULL, &s->err, b->ud);
    b->used[t - b->slot] = 0;
}

int mw_smtp_send_batch(mw_smtp *s, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud)
{
    if (!s) return MW_EINVAL;
    mw_error_clear(&s->err);
    if (!next || !done) return mwi_err_set(&s->err, MW_EINVAL, "next and done are both needed");
    if (s->state != ST_READY) return not_ready(s);
    batch *b = calloc(1, sizeof *b);
    if (!b) return mwi_err_set(&s->err, MW_ENOMEM, "out of memory");
    b->s = s;
    b->next = next;
    b->done = done;
    b->ud = ud;
    b->more = 1;
    tx *fin = NULL, *cur = batch_take(b), *pre = NULL;
    size_t i = 0; /* index of cur; fin is i - 1 */
    int last = 0, fin_crossed = 0;
    while (cur) {
        mw_error_clear(&s->err);
        if (!fin) {
            s->tx_deadline = s->maxtime_ms > 0 ? mw_now_ms() + s->maxtime_ms : MW_NO_DEADLINE;
            mwi_conn_set_deadline(s->c, s->tx_deadline);
        }
        int rc = cur->prep_rc;
        if (rc) s->err = cur->prep_err;
        if (!rc && cur->built && !cur->env_sent) rc = tx_envelope(s, cur);
        mw_error cur_err = s->err;
        /* The envelope's replies (and, crossed, the previous message's
         * final reply) are on their way: take and prepare the next
         * message meanwhile, so opening and reading it costs no time. */
        if (!pre) pre = batch_take(b);
        /* The previous message's final reply: read now, reported to done()
         * only after this message's data went out, so that the caller's
         * work (closing a file, printing) is not between a reply and the
         * write it allows. */
        tx *fin_unreported = NULL;
        mw_error fin_err;
        int fin_rc = 0;
        if (fin) {
            mw_error_clear(&s->err);
            fin_rc = last = tx_end(s, fin, 0);
            fin_err = s->err;
            if (fin_crossed && s->state == ST_READY) s->dirty = 1; /* cur's envelope is open */
            fin_crossed = 0;
            if (s->state != ST_READY) {
                batch_report(b, fin, i - 1, fin_rc);
                batch_abandon(b, cur, i);
                if (pre) batch_abandon(b, pre, i + 1);
                free(b);
                return last ? last : MW_ESTATE;
            }
            fin_unreported = fin;
            fin = NULL;
            s->tx_deadline = s->maxtime_ms > 0 ? mw_now_ms() + s->maxtime_ms : MW_NO_DEADLINE;
            mwi_conn_set_deadline(s->c, s->tx_deadline);
        }
        s->err = cur_err;
        /* RFC 2920 §3.1: message content may be followed in the same group
         * by the next MAIL and RCPTs (and DATA, as the group's last
         * command).  The end of a DATA transfer closes the transaction
         * whatever its reply, so the next envelope needs no RSET and goes
         * out in the same write as the final dot: one round trip per
         * message instead of two, and the server answers both at once.
         * Not after BDAT (a refused chunk asks for RSET) nor before a Bcc
         * digest (another transaction follows this one). */
        int cross = pre && !pre->prep_rc && pre->built && cur->pipelining && !cur->chunking &&
                    !(cur->m.bcc_digest && cur->env.nbcc > 0) && !s->no_message_pipelining;
        cur->xf.hold = cross;
        if (!rc && cur->built) rc = tx_rest(s, cur);
        int crossed = 0;
        if (cur->xf.held) {
            mw_error keep = s->err;
            s->dirty = 0;
            int erc = tx_envelope(s, pre); /* flushes the held data with it */
            if (erc) {
                /* Only a dead connection fails here (the lines are
                 * bounded): the next message's outcome, in its turn. */
                pre->prep_rc = erc;
                pre->prep_err = s->err;
            } else {
                crossed = 1;
            }
            s->err = keep;
        }
        if (fin_unreported) {
            mw_error keep = s->err;
            s->err = fin_err;
            batch_report(b, fin_unreported, i - 1, fin_rc);
            s->err = keep;
        }
        if (crossed) {
            fin = cur;
            fin_crossed = 1;
        } else {
            last = batch_finish(b, cur, i, rc);
            if (s->state != ST_READY) {
                if (pre) batch_abandon(b, pre, i + 1);
                free(b);
                return last ? last : MW_ESTATE;
            }
        }
        if (s->c && !fin) mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
        cur = pre;
        pre = NULL;
        i++;
    }
    if (fin) {
        /* Cannot happen: a message is crossed only with a next one. */
        last = batch_finish(b, fin, i - 1, 0);
    }
    if (s->c) mwi_conn_set_deadline(s->c, MW_NO_DEADLINE);
    int more = b->more;
    free(b);
    return more < 0 ? more : 0;
}

void mw_smtp_set_message_pipelining(mw_smtp *s, int on)
{
    if (s) s->no_message_pipelining = !on;
}

void mw_smtp_set_maxtime(mw_smtp *s, int ms)
{
    if (s) s->maxtime_ms = ms > 0 ? ms : 0;
}

int mw_smtp_quit(mw_smtp *s)
{
    if (!s || s->state != ST_READY) return MW_ESTATE;
    int rc = put_cmd(s, "QUIT");
    if (!rc) rc = flush(s);
    if (!rc) rc = get_reply(s, "QUIT");
    if (!rc && s->rep->code != 221) rc = reply_error(s, "QUIT");
    set_state(s, ST_CLOSED);
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
    if (!s->c || !s->tls_active) return MW_EUNSUPPORTED;
    return mw_stream_tls_info(mwi_conn_stream(s->c), out);
}
