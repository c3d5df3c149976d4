/* POP3 session: the blocking API of pop3.h over the loop's POP3 machine
 * (src/loop/pop3_held.h): options, states, CAPA, the simple commands
 * (RFC 1939, RFC 2449, RFC 2595).  Every byte on the wire, every reply
 * and the words of its errors are the machine's. */
#include "pop3/pop3_int.h"

#include "util/err.h"

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

static void set_state(mw_pop3 *p, int state)
{
    /* Policy lives here: once broken or closed, a session never comes back
     * (the machine's job is over then, its connection closed). */
    if (p->state == P3_BROKEN && state != P3_BROKEN) return;
    p->state = state;
}

/* Marks the session unusable after error rc and returns rc. */
static int fatal(mw_pop3 *p, int rc)
{
    set_state(p, P3_BROKEN);
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

int mwi_pop3_have_count(const mw_pop3 *p, uint64_t *count)
{
    *count = 0;
    return p->h ? mwi_p3h_count(p->h, count) : 0;
}

int mwi_pop3_check_msg(mw_pop3 *p, uint64_t msg)
{
    mw_error_clear(&p->err);
    if (msg == 0) return mwi_err_set(&p->err, MW_EINVAL, "message numbers start at 1");
    uint64_t count;
    if (mwi_pop3_have_count(p, &count) && msg > count)
        return mwi_err_set(
            &p->err, MW_EINVAL, "message %llu does not exist: the mailbox has %llu message%s",
            (unsigned long long)msg, (unsigned long long)count, count == 1 ? "" : "s");
    return 0;
}

int mwi_pop3_run(mw_pop3 *p, const mw_loop_pop3_cmd *cmds, size_t n, const mwi_p3h_opts *ro,
                 mwi_p3h_fn fn, void *ud)
{
    mw_error_clear(&p->err);
    int rc = mwi_p3h_run(p->h, cmds, n, ro, fn, ud, &p->err);
    if (rc && !mwi_p3h_alive(p->h)) fatal(p, rc);
    return rc;
}

/* One command whose reply is a status line: *value gets what its
 * STATUS piece carries (msg or value, as the command says). */
typedef struct one_reply {
    uint64_t msg, value;
    char uid[71];
} one_reply;

static int on_one(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    (void)fail;
    one_reply *o = ud;
    if (r->kind == MW_LOOP_POP3_STATUS) {
        o->msg = r->msg;
        o->value = r->value;
        if (r->uid) snprintf(o->uid, sizeof o->uid, "%s", r->uid);
    }
    return 0;
}

static int simple(mw_pop3 *p, int op, uint64_t msg, one_reply *o)
{
    mw_loop_pop3_cmd c = {op, msg, 0, 0};
    one_reply tmp;
    memset(&tmp, 0, sizeof tmp);
    return mwi_pop3_run(p, &c, 1, NULL, on_one, o ? o : &tmp);
}

/* ---- CAPA ------------------------------------------------------------------ */

static void capa_forget(mw_pop3 *p)
{
    for (size_t i = 0; i < p->ncapa; i++)
        free(p->capa[i]);
    p->ncapa = 0;
    p->capa_known = 0;
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

/* A line kept as src/pop3 kept them: printable, none empty, 128 at most. */
static int capa_keep(mw_pop3 *p, const char *l, size_t len)
{
    if (p->ncapa >= P3_MAX_CAPA || len == 0) return 0; /* more than we look at */
    char *s = malloc(len + 1);
    if (!s) return MW_ENOMEM;
    mwi_copy_printable(s, len + 1, l, len);
    p->capa[p->ncapa++] = s;
    return 0;
}

static int on_capa(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud)
{
    (void)fail;
    mw_pop3 *p = ud;
    return r->kind == MW_LOOP_POP3_LINE ? capa_keep(p, r->data, r->len) : 0;
}

int mw_pop3_capa(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    if (p->state != P3_AUTH && p->state != P3_TRANS) return mwi_pop3_require(p, P3_TRANS, "CAPA");
    capa_forget(p);
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_CAPA, 0, 0, 0};
    int rc = mwi_pop3_run(p, &c, 1, NULL, on_capa, p);
    if (!rc) {
        p->capa_known = 1;
        p->pipelining = p->want_pipelining && capa_find(p, "PIPELINING");
        mwi_p3h_set_pipelining(p->h, p->pipelining);
    }
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
    p->want_pipelining = o->pipelining;
    p->window = o->window ? o->window : 32;
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
    /* Opportunistic TLS: what it came to. */
    if (o->tls == MW_TLS_OPPORTUNISTIC) p->tls = in.secure ? MW_TLS_STARTTLS : MW_TLS_NONE;
    p->pipelining = p->want_pipelining && capa_find(p, "PIPELINING");
    return 0;
}

/* mw_pop3_open's work; *out is set as soon as a handle exists, so that the
 * error record can be read on failure.  Connect, greeting, CAPA, STLS,
 * the login and STAT run on the machine (pop3_held.h). */
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
        set_state(p, P3_BROKEN);
        return rc;
    }
    take_opts(p, o);
    rc = mwi_p3h_open(&p->h, host, o, &p->err); /* o->stream is its from here */
    if (!rc) rc = take_info(p, p->h, o);
    if (rc) {
        set_state(p, P3_BROKEN);
        return rc;
    }
    mwi_p3h_set_pipelining(p->h, p->pipelining);
    set_state(p, o->auth == MW_POP3_AUTH_NONE ? P3_AUTH : P3_TRANS);
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
    mwi_p3h_free(p->h);
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
    uint64_t c = 0;
    if (p) mwi_pop3_have_count(p, &c);
    return c;
}

int mw_pop3_stat(mw_pop3 *p, uint64_t *count, uint64_t *octets)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "STAT");
    if (rc) return rc;
    one_reply o;
    memset(&o, 0, sizeof o);
    if ((rc = simple(p, MW_LOOP_POP3_STAT, 0, &o))) return rc;
    if (count) *count = o.msg;
    if (octets) *octets = o.value;
    return 0;
}

/* ---- DELE, RSET, NOOP, LAST, QUIT ------------------------------------------------ */

int mw_pop3_dele(mw_pop3 *p, uint64_t msg)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "DELE");
    if (!rc) rc = mwi_pop3_check_msg(p, msg);
    return rc ? rc : simple(p, MW_LOOP_POP3_DELE, msg, NULL);
}

int mw_pop3_rset(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "RSET");
    return rc ? rc : simple(p, MW_LOOP_POP3_RSET, 0, NULL);
}

int mw_pop3_noop(mw_pop3 *p)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "NOOP");
    return rc ? rc : simple(p, MW_LOOP_POP3_NOOP, 0, NULL);
}

int mw_pop3_last(mw_pop3 *p, uint64_t *last)
{
    if (!p) return MW_EINVAL;
    int rc = mwi_pop3_require(p, P3_TRANS, "LAST");
    if (rc) return rc;
    /* LAST left the standard with RFC 1725; Dovecot, for one, lacks it:
     * the machine says MW_EUNSUPPORTED then. */
    one_reply o;
    memset(&o, 0, sizeof o);
    if ((rc = simple(p, MW_LOOP_POP3_LAST, 0, &o))) return rc;
    if (last) *last = o.value;
    return 0;
}

int mw_pop3_quit(mw_pop3 *p, int *confirmed)
{
    if (confirmed) *confirmed = 0;
    if (!p) return MW_EINVAL;
    if (p->state != P3_AUTH && p->state != P3_TRANS) return mwi_pop3_require(p, P3_TRANS, "QUIT");
    /* Sent only now, after every earlier reply was read: Dovecot over TLS
     * may cut a download short when QUIT arrives with the pipelined RETRs
     * (tests/servers notes).  RFC 1939 §6: -ERR means some deleted
     * messages were not removed. */
    int ok = 0;
    mw_error_clear(&p->err);
    int rc = mwi_p3h_quit(p->h, &ok, &p->err);
    if (confirmed) *confirmed = ok;
    set_state(p, P3_CLOSED);
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
    out->retr_mode = p->h ? mwi_p3h_retr_mode(p->h) : MW_POP3_RETR_RETR;
    out->limit = mw_pop3_count(p);
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
    if (!p->h || p->state == P3_CLOSED) return MW_EUNSUPPORTED;
    return mwi_p3h_tls_info(p->h, out);
}
