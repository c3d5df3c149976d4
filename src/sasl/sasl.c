/* The SASL client engine: GNU SASL for most mechanisms, XOAUTH2 and
 * OAUTHBEARER written here.  No I/O; see sasl.h for the contract. */
#include "sasl/sasl.h"
#include "sasl/mech.h"

#include <gsasl.h>
#include <limits.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "util/dl.h"
#include "util/err.h"

/* Highest SCRAM iteration count we agree to compute (RFC 5802 §5.1 lets
 * the server choose it; an absurd count would make us burn CPU for minutes
 * with no deadline).  Real servers use 4096 (RFC 7677 §4) to a few hundred
 * thousand. */
#define MW_SASL_SCRAM_MAX_ITER 1000000UL
/* A DIGEST-MD5 challenge must be shorter than this (RFC 2831 §2.1.1). */
#define MW_SASL_DIGEST_MD5_MAX 2048
/* Longest user name, authzid, host or token accepted (bytes). */
#define MW_SASL_MAX_CRED 4096

enum { ST_READY, ST_FAILED };

struct mw_sasl {
    const mw_sasl_mech_info *m;
    Gsasl *ctx;
    Gsasl_session *gs;
    int state;          /* ST_READY or ST_FAILED (no more steps) */
    int started;        /* the first client message has been produced */
    int finished;       /* the client side is complete */
    int ir_outstanding; /* first message handed out as initial response, no challenge since */
    int challenges;     /* challenges fed so far */
    int scram_stage;    /* 1: client-first produced; 2: client-final produced; 3: verified */
    char *first;        /* raw first client message, kept to re-send (secret) */
    size_t first_len;
    char *cnonce; /* SCRAM client nonce, from our client-first message */
    char *out;    /* base64 response handed to the caller (secret) */
    size_t out_len;
    char server_error[256];
};

/* gsasl_init is called once per engine; the lock keeps the library's own
 * one-time set-up (crypto back end) from racing between threads. */
static pthread_mutex_t gsasl_init_lock = PTHREAD_MUTEX_INITIALIZER;

/* GNU SASL is loaded with dlopen(3) when a mechanism it runs is first
 * used, not linked: with its libraries (GSS, NTLM, IDN) it cost every
 * process about 0.5 ms of start-up, `mailwire send` from cron included,
 * and most sessions use the mechanisms written here.  Resolved once per
 * process, read-only after. */
static struct {
    int (*init)(Gsasl **);
    void (*done)(Gsasl *);
    void (*callback_set)(Gsasl *, Gsasl_callback_function);
    int (*client_start)(Gsasl *, const char *, Gsasl_session **);
    int (*property_set)(Gsasl_session *, Gsasl_property, const char *);
    int (*step)(Gsasl_session *, const char *, size_t, char **, size_t *);
    void (*finish)(Gsasl_session *);
    void (*free_)(void *);
    const char *(*strerror_)(int);
    const char *(*check_version)(const char *);
} G;
static pthread_once_t gs_once = PTHREAD_ONCE_INIT;
static int gs_loaded;
static char gs_load_error[200];

static void gs_load(void)
{
    /* dlsym(3) gives void *: each function pointer is stored through
     * void ** (the documented way). */
    static const char *const libs[] = {"libgsasl.so.18", "libgsasl.so.7", NULL};
    const mwi_dl_sym syms[] = {
        {"gsasl_init", (void **)&G.init},
        {"gsasl_done", (void **)&G.done},
        {"gsasl_callback_set", (void **)&G.callback_set},
        {"gsasl_client_start", (void **)&G.client_start},
        {"gsasl_property_set", (void **)&G.property_set},
        {"gsasl_step", (void **)&G.step},
        {"gsasl_finish", (void **)&G.finish},
        {"gsasl_free", (void **)&G.free_},
        {"gsasl_strerror", (void **)&G.strerror_},
        {"gsasl_check_version", (void **)&G.check_version},
    };
    gs_loaded = mwi_dl_load(libs, syms, sizeof syms / sizeof syms[0], gs_load_error,
                            sizeof gs_load_error) == 0;
}

const char *mwi_sasl_gsasl_version(void)
{
    pthread_once(&gs_once, gs_load);
    const char *v = gs_loaded ? G.check_version(NULL) : NULL;
    return v ? v : "not loaded";
}

static void wipe_free(void *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

/* Every property is set before a step; the callback is asked only for what
 * we do not have, so the answer is always "none". */
static int no_callback(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
    (void)ctx;
    (void)sctx;
    (void)prop;
    return GSASL_NO_CALLBACK;
}

/* Makes raw[0..n) the next response, base64-encoded. */
static int set_out(mw_sasl *s, const char *raw, size_t n)
{
    wipe_free(s->out, s->out_len + 1);
    s->out = NULL;
    s->out_len = 0;
    size_t enc = mwi_base64_encoded_len(n);
    char *o = malloc(enc + 1);
    if (!o) return MW_ENOMEM;
    mwi_base64_encode(o, (const unsigned char *)raw, n);
    s->out = o;
    s->out_len = enc;
    return 0;
}

/* Marks the exchange failed and sets err to "<MECH>: <what>". */
static int fail(mw_sasl *s, mw_error *err, int code, const char *what)
{
    s->state = ST_FAILED;
    return mwi_err_set(err, code, "%s: %s", s->m->name, what);
}

__attribute__((format(printf, 4, 5))) static int failf(mw_sasl *s, mw_error *err, int code,
                                                       const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fail(s, err, code, what);
}

/* ---- credentials ------------------------------------------------------ */

static int has_ctl(const char *p)
{
    for (; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7F) return 1;
    return 0;
}

/* RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
 * "+" / "/" ) *"=" */
static int is_b64token(const char *t)
{
    size_t i = 0;
    for (; t[i]; i++) {
        char c = t[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'))
            break;
    }
    if (i == 0) return 0;
    while (t[i] == '=')
        i++;
    return t[i] == '\0';
}

static int check_cred(const char *what, const char *v, int required, const char *mech,
                      mw_error *err)
{
    if (!v || !*v) {
        if (required) return mwi_err_set(err, MW_EINVAL, "%s needs %s", mech, what);
        return 0;
    }
    if (strlen(v) > MW_SASL_MAX_CRED)
        return mwi_err_set(err, MW_EINVAL, "the %s for %s is over %d bytes", what, mech,
                           MW_SASL_MAX_CRED);
    return 0;
}

/* ---- OAuth (written here: GNU SASL 2.2 has neither) ---------------------- */

/* RFC 5801 §4 saslname: ',' and '=' are written =2C and =3D. */
static size_t saslname_len(const char *u)
{
    size_t n = 0;
    for (; *u; u++)
        n += (*u == ',' || *u == '=') ? 3 : 1;
    return n;
}

static char *put_saslname(char *p, const char *u)
{
    for (; *u; u++) {
        if (*u == ',') {
            memcpy(p, "=2C", 3);
            p += 3;
        } else if (*u == '=') {
            memcpy(p, "=3D", 3);
            p += 3;
        } else {
            *p++ = *u;
        }
    }
    return p;
}

static char *put(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return p + n;
}

/* XOAUTH2 (Google's and Microsoft's documented format):
 *   "user=" user ^A "auth=Bearer " token ^A ^A */
static int build_xoauth2(mw_sasl *s, const mw_sasl_creds *c)
{
    size_t n = 5 + strlen(c->authcid) + 1 + 12 + strlen(c->token) + 2;
    char *m = malloc(n + 1), *p = m;
    if (!m) return MW_ENOMEM;
    p = put(p, "user=");
    p = put(p, c->authcid);
    p = put(p, "\001auth=Bearer ");
    p = put(p, c->token);
    p = put(p, "\001\001");
    *p = '\0';
    s->first = m;
    s->first_len = (size_t)(p - m);
    return 0;
}

/* RFC 7628 §3.1: client-resp = gs2-header kvsep *kvpair kvsep, where
 * gs2-header = "n," ["a=" saslname] "," (no channel binding, §4), kvsep = ^A,
 * kvpairs host=, port= (§3.2.1, optional) and auth=Bearer token. */
static int build_oauthbearer(mw_sasl *s, const mw_sasl_creds *c)
{
    const char *user = (c->authzid && *c->authzid) ? c->authzid : c->authcid;
    char port[16] = "";
    if (c->port) snprintf(port, sizeof port, "%u", c->port);
    size_t n = 2 + (user && *user ? 2 + saslname_len(user) : 0) + 1 + 1;
    if (c->hostname && *c->hostname) n += 5 + strlen(c->hostname) + 1;
    if (*port) n += 5 + strlen(port) + 1;
    n += 12 + strlen(c->token) + 2;
    char *m = malloc(n + 1), *p = m;
    if (!m) return MW_ENOMEM;
    p = put(p, "n,");
    if (user && *user) {
        p = put(p, "a=");
        p = put_saslname(p, user);
    }
    p = put(p, ",\001");
    if (c->hostname && *c->hostname) {
        p = put(p, "host=");
        p = put(p, c->hostname);
        p = put(p, "\001");
    }
    if (*port) {
        p = put(p, "port=");
        p = put(p, port);
        p = put(p, "\001");
    }
    p = put(p, "auth=Bearer ");
    p = put(p, c->token);
    p = put(p, "\001\001");
    *p = '\0';
    s->first = m;
    s->first_len = (size_t)(p - m);
    return 0;
}

static int oauth_start(mw_sasl *s, const mw_sasl_creds *c, mw_error *err)
{
    const char *name = s->m->name;
    int xo = s->m->id == MW_M_XOAUTH2;
    int rc;
    if ((rc = check_cred("a user name", c->authcid, xo, name, err)) ||
        (rc = check_cred("an OAuth 2.0 token", c->token, 1, name, err)) ||
        (rc = check_cred("authorization identity", c->authzid, 0, name, err)) ||
        (rc = check_cred("host name", c->hostname, 0, name, err)))
        return rc;
    /* ^A separates the fields: a control character in a value would let it
     * forge fields of its own. */
    if ((c->authcid && has_ctl(c->authcid)) || (c->authzid && has_ctl(c->authzid)))
        return mwi_err_set(err, MW_EINVAL, "the user name for %s contains control characters",
                           name);
    if (!xo && c->hostname && has_ctl(c->hostname))
        return mwi_err_set(err, MW_EINVAL, "the host name for %s contains control characters",
                           name);
    if (!is_b64token(c->token))
        return mwi_err_set(err, MW_EINVAL,
                           "the token for %s is not a bearer token (RFC 6750 §2.1 allows "
                           "letters, digits and -._~+/ then '=' padding)",
                           name);
    rc = xo ? build_xoauth2(s, c) : build_oauthbearer(s, c);
    return rc ? mwi_err_set(err, rc, "out of memory starting %s", name) : 0;
}

/* RFC 7628 §3.2.2: a failure comes as a challenge holding error JSON; the
 * client answers with a single ^A (OAUTHBEARER) and the server then fails
 * the command.  For XOAUTH2 the documented answer is an empty response. */
static int oauth_error_challenge(mw_sasl *s, const unsigned char *data, size_t n, const char **resp,
                                 mw_error *err)
{
    mwi_copy_printable(s->server_error, sizeof s->server_error, (const char *)data, n);
    int rc = s->m->id == MW_M_OAUTHBEARER ? set_out(s, "\001", 1) : set_out(s, "", 0);
    if (rc) return fail(s, err, rc, "out of memory");
    *resp = s->out;
    return MW_SASL_DONE;
}

/* ---- GNU SASL mechanisms ---------------------------------------------------- */

static int gs_map(mw_sasl *s, int grc, mw_error *err)
{
    switch (grc) {
    case GSASL_MALLOC_ERROR:
        return fail(s, err, MW_ENOMEM, "out of memory");
    case GSASL_NO_AUTHID:
    case GSASL_NO_PASSWORD:
    case GSASL_NO_SERVICE:
    case GSASL_NO_HOSTNAME:
    case GSASL_NO_CB_TLS_UNIQUE:
    case GSASL_NO_CB_TLS_EXPORTER:
        return failf(s, err, MW_EINVAL, "a credential is missing (%s)", G.strerror_(grc));
    case GSASL_MECHANISM_CALLED_TOO_MANY_TIMES:
        return fail(s, err, MW_EPROTO, "the server sent a challenge after the exchange finished");
    case GSASL_SASLPREP_ERROR:
        return fail(s, err, MW_EINVAL,
                    "the user name or password is not valid for SASLprep (RFC 4013)");
    default:
        if (s->challenges == 0)
            return failf(s, err, MW_EINVAL, "GNU SASL cannot make the first message (%s)",
                         G.strerror_(grc));
        return failf(s, err, MW_EPROTO, "malformed challenge from the server (%s)",
                     G.strerror_(grc));
    }
}

static int set_prop(mw_sasl *s, Gsasl_property p, const char *v)
{
    if (!v || !*v) return 0;
    return G.property_set(s->gs, p, v) == GSASL_OK ? 0 : MW_ENOMEM;
}

static int gs_start(mw_sasl *s, const mw_sasl_creds *c, mw_error *err)
{
    const char *name = s->m->name;
    int rc;
    unsigned f = s->m->flags;
    if (f & MW_MF_PASSWORD) {
        if ((rc = check_cred("a user name", c->authcid, 1, name, err)) ||
            (rc = check_cred("a password", c->password, 1, name, err)))
            return rc;
    }
    if ((rc = check_cred("authorization identity", c->authzid, 0, name, err))) return rc;
    if (s->m->id == MW_M_DIGEST_MD5 &&
        (rc = check_cred("the server's host name", c->hostname, 1, name, err)))
        return rc;
    if ((f & MW_MF_CB) && (!c->cb_type || !c->cb_data || c->cb_len == 0))
        return mwi_err_set(err, MW_EINVAL, "%s needs TLS channel binding data", name);
    if (c->cb_len > 1024)
        return mwi_err_set(err, MW_EINVAL, "channel binding data over 1024 bytes");

    pthread_once(&gs_once, gs_load);
    if (!gs_loaded)
        return mwi_err_set(err, MW_EUNSUPPORTED, "%s needs GNU SASL (libgsasl.so.18): %s", name,
                           gs_load_error);
    pthread_mutex_lock(&gsasl_init_lock);
    int grc = G.init(&s->ctx);
    pthread_mutex_unlock(&gsasl_init_lock);
    if (grc != GSASL_OK) {
        s->ctx = NULL;
        return mwi_err_set(err, grc == GSASL_MALLOC_ERROR ? MW_ENOMEM : MW_EUNSUPPORTED,
                           "GNU SASL failed to start: %s", G.strerror_(grc));
    }
    G.callback_set(s->ctx, no_callback);
    grc = G.client_start(s->ctx, name, &s->gs);
    if (grc != GSASL_OK) {
        s->gs = NULL;
        return mwi_err_set(err, grc == GSASL_MALLOC_ERROR ? MW_ENOMEM : MW_EUNSUPPORTED,
                           "GNU SASL cannot run %s: %s", name, G.strerror_(grc));
    }
    rc = set_prop(s, GSASL_AUTHID, c->authcid);
    if (!rc) rc = set_prop(s, GSASL_AUTHZID, c->authzid);
    if (!rc) rc = set_prop(s, GSASL_PASSWORD, c->password);
    if (!rc) rc = set_prop(s, GSASL_SERVICE, c->service && *c->service ? c->service : "smtp");
    if (!rc) rc = set_prop(s, GSASL_HOSTNAME, c->hostname);
    if (rc) return mwi_err_set(err, rc, "out of memory starting %s", name);

    /* Channel binding data goes to the -PLUS variants only.  RFC 5802 §6
     * would have plain SCRAM send "y" when binding is possible, but the
     * GNU SASL 2.2 client fails to build a "y" message (it returns an
     * authentication error at the first step), so plain SCRAM says "n".
     * mwi_sasl_choose() puts -PLUS first whenever binding data exists, so the
     * loss is only the downgrade signal to servers. */
    if ((f & MW_MF_CB) && c->cb_type && c->cb_data && c->cb_len) {
        Gsasl_property p;
        if (strcmp(c->cb_type, "tls-exporter") == 0)
            p = GSASL_CB_TLS_EXPORTER;
        else if (strcmp(c->cb_type, "tls-unique") == 0)
            p = GSASL_CB_TLS_UNIQUE;
        else
            return mwi_err_set(err, MW_EINVAL,
                               "unknown channel binding type (want tls-exporter "
                               "or tls-unique)");
        char *b64 = malloc(mwi_base64_encoded_len(c->cb_len) + 1);
        if (!b64) return mwi_err_set(err, MW_ENOMEM, "out of memory starting %s", name);
        mwi_base64_encode(b64, c->cb_data, c->cb_len);
        grc = G.property_set(s->gs, p, b64);
        free(b64);
        if (grc != GSASL_OK) return mwi_err_set(err, MW_ENOMEM, "out of memory starting %s", name);
    }
    return 0;
}

/* Finds the client nonce in our own client-first message:
 * gs2-header "n=" saslname ",r=" c-nonce ["," extensions] (RFC 5802 §7).
 * Values escape ',' so the first ",r=" is the nonce. */
static int scram_keep_cnonce(mw_sasl *s, const char *msg, size_t n)
{
    const char *end = msg + n;
    const char *r = NULL;
    for (const char *p = msg; p + 3 <= end; p++)
        if (p[0] == ',' && p[1] == 'r' && p[2] == '=') {
            r = p + 3;
            break;
        }
    if (!r) return MW_EPROTO;
    const char *e = memchr(r, ',', (size_t)(end - r));
    if (!e) e = end;
    s->cnonce = strndup(r, (size_t)(e - r));
    return s->cnonce ? 0 : MW_ENOMEM;
}

/* RFC 5802 §7 server-first-message:
 *   [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
 * Checked here so that the caller learns exactly what was wrong, and so that
 * an iteration count we will not compute is refused before GNU SASL starts. */
static int scram_check_server_first(mw_sasl *s, const char *m, size_t n, mw_error *err)
{
    if (n >= 2 && m[0] == 'm' && m[1] == '=')
        return fail(s, err, MW_EPROTO,
                    "the server demands a mandatory extension (m=) we do not know");
    if (memchr(m, '\0', n)) return fail(s, err, MW_EPROTO, "server-first message contains NUL");
    if (n < 2 || m[0] != 'r' || m[1] != '=')
        return fail(s, err, MW_EPROTO, "server-first message does not start with the nonce (r=)");
    const char *nonce = m + 2, *end = m + n;
    const char *c1 = memchr(nonce, ',', (size_t)(end - nonce));
    if (!c1) return fail(s, err, MW_EPROTO, "server-first message is truncated after the nonce");
    size_t cn = strlen(s->cnonce), nn = (size_t)(c1 - nonce);
    /* RFC 5802 §5.1: the server appends its own part to our nonce. */
    if (nn <= cn || memcmp(nonce, s->cnonce, cn) != 0)
        return fail(s, err, MW_EPROTO, "the server's nonce does not extend ours");
    for (const char *p = nonce; p < c1; p++)
        if (*p < 0x21 || *p > 0x7E)
            return fail(s, err, MW_EPROTO, "the server's nonce has a bad character");
    const char *salt = c1 + 1;
    if (end - salt < 2 || salt[0] != 's' || salt[1] != '=')
        return fail(s, err, MW_EPROTO, "server-first message lacks the salt (s=)");
    salt += 2;
    const char *c2 = memchr(salt, ',', (size_t)(end - salt));
    if (!c2) return fail(s, err, MW_EPROTO, "server-first message is truncated after the salt");
    size_t sl = (size_t)(c2 - salt);
    if (sl == 0 || sl % 4 != 0) return fail(s, err, MW_EPROTO, "the salt is not valid base64");
    unsigned char *tmp = malloc(sl / 4 * 3);
    if (!tmp) return fail(s, err, MW_ENOMEM, "out of memory");
    long saltlen = mwi_base64_decode_strict(tmp, salt, sl);
    free(tmp);
    if (saltlen <= 0) return fail(s, err, MW_EPROTO, "the salt is not valid base64");
    const char *it = c2 + 1;
    if (end - it < 2 || it[0] != 'i' || it[1] != '=')
        return fail(s, err, MW_EPROTO, "server-first message lacks the iteration count (i=)");
    it += 2;
    /* Every digit is looked at (so that the error can name the count), but
     * the value stops growing past the cap: no overflow, whatever the length. */
    unsigned long iter = 0;
    int over = 0;
    const char *p = it;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (over) continue;
        iter = iter * 10 + (unsigned long)(*p - '0');
        if (iter > MW_SASL_SCRAM_MAX_ITER) over = 1;
    }
    size_t nd = (size_t)(p - it);
    if (nd == 0 || (p < end && *p != ',')) {
        const char *ce = memchr(it, ',', (size_t)(end - it));
        char shown[24];
        mwi_copy_printable(shown, sizeof shown, it, (size_t)((ce ? ce : end) - it));
        return failf(s, err, MW_EPROTO, "the iteration count \"%s%s\" is not a number", shown,
                     (size_t)((ce ? ce : end) - it) >= sizeof shown ? "..." : "");
    }
    if (over) {
        /* 20 digits are shown; a longer count is too big for any integer
         * type (2^64 has 20 digits) and is said to be. */
        if (nd <= 20)
            return failf(s, err, MW_EPROTO, "iteration count %.*s exceeds the cap %lu", (int)nd, it,
                         MW_SASL_SCRAM_MAX_ITER);
        return failf(s, err, MW_EPROTO,
                     "iteration count %.20s... (%zu digits, too big for any integer) "
                     "exceeds the cap %lu",
                     it, nd, MW_SASL_SCRAM_MAX_ITER);
    }
    if (iter == 0) return fail(s, err, MW_EPROTO, "iteration count 0 is below the minimum of 1");
    return 0;
}

/* RFC 5802 §7 server-final-message = (server-error / verifier)
 * ["," extensions]; server-error = "e=" value. */
static int scram_check_server_final(mw_sasl *s, const char *m, size_t n, mw_error *err)
{
    if (n >= 2 && m[0] == 'e' && m[1] == '=') {
        const char *e = memchr(m, ',', n);
        mwi_copy_printable(s->server_error, sizeof s->server_error, m + 2,
                           (size_t)((e ? e : m + n) - (m + 2)));
        return failf(s, err, MW_EAUTH, "the server reports an error: %s", s->server_error);
    }
    if (n < 2 || m[0] != 'v' || m[1] != '=')
        return fail(s, err, MW_EPROTO, "server-final message lacks the verifier (v=)");
    if (memchr(m, '\0', n)) return fail(s, err, MW_EPROTO, "server-final message contains NUL");
    return 0;
}

/* Runs one GNU SASL step on raw input and makes its output the response. */
static int gs_step(mw_sasl *s, const char *in, size_t n, mw_error *err)
{
    char *o = NULL;
    size_t olen = 0;
    int grc = G.step(s->gs, in, n, &o, &olen);
    if (grc != GSASL_OK && grc != GSASL_NEEDS_MORE) {
        if (o) G.free_(o);
        if (grc == GSASL_AUTHENTICATION_ERROR && (s->m->flags & MW_MF_SCRAM) && s->scram_stage == 2)
            return fail(s, err, MW_EAUTH, "server signature did not verify");
        if (grc == GSASL_AUTHENTICATION_ERROR && s->m->id == MW_M_DIGEST_MD5 && s->challenges > 1)
            return fail(s, err, MW_EAUTH, "the server's rspauth did not verify");
        return gs_map(s, grc, err);
    }
    int rc = set_out(s, o ? o : "", o ? olen : 0);
    if (o) {
        explicit_bzero(o, olen);
        G.free_(o);
    }
    if (rc) return fail(s, err, rc, "out of memory");
    if (grc == GSASL_OK) s->finished = 1;
    return 0;
}

/* Produces the first client message of a client-first mechanism. */
static int first_message(mw_sasl *s, mw_error *err)
{
    s->started = 1;
    if (!(s->m->flags & MW_MF_GSASL)) {
        s->finished = 1;
        int rc = set_out(s, s->first, s->first_len);
        return rc ? fail(s, err, rc, "out of memory") : 0;
    }
    int rc = gs_step(s, "", 0, err);
    if (rc) return rc;
    /* Keep the raw message: to repeat it if the initial response is not
     * sent after all, and for SCRAM the nonce to check the server's. */
    size_t cap = s->out_len / 4 * 3 + 1;
    char *raw = malloc(cap);
    if (!raw) return fail(s, err, MW_ENOMEM, "out of memory");
    long dl = s->out_len ? mwi_base64_decode_strict((unsigned char *)raw, s->out, s->out_len) : 0;
    if (dl < 0) {
        wipe_free(raw, cap);
        return fail(s, err, MW_EPROTO, "cannot decode our own first message");
    }
    raw[dl] = '\0';
    s->first = raw;
    s->first_len = (size_t)dl;
    if (s->m->flags & MW_MF_SCRAM) {
        rc = scram_keep_cnonce(s, raw, (size_t)dl);
        if (rc) return fail(s, err, rc, "cannot find our own client nonce");
        s->scram_stage = 1;
    }
    return 0;
}

/* ---- the public face of the engine -------------------------------------------- */

int mwi_sasl_start(mw_sasl **out, const char **ir_b64, const char *mech, const mw_sasl_creds *creds,
                   mw_error *err)
{
    if (out) *out = NULL;
    if (ir_b64) *ir_b64 = NULL;
    if (!out || !mech || !creds)
        return mwi_err_set(err, MW_EINVAL, "mwi_sasl_start: bad arguments");
    const mw_sasl_mech_info *m = mwi_sasl_mech_find(mech, strlen(mech));
    if (!m) {
        char name[MW_SASL_MECH_NAME_MAX + 1];
        mwi_copy_printable(name, sizeof name, mech, strlen(mech));
        return mwi_err_set(err, MW_EINVAL, "unknown SASL mechanism \"%s\"", name);
    }
    mw_sasl *s = calloc(1, sizeof *s);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory starting %s", m->name);
    s->m = m;
    int rc = (m->flags & MW_MF_GSASL) ? gs_start(s, creds, err) : oauth_start(s, creds, err);
    if (rc == 0 && ir_b64 && (m->flags & MW_MF_CLIENT_FIRST)) {
        rc = first_message(s, err);
        if (rc == 0) {
            s->ir_outstanding = 1;
            /* RFC 4954 §4, RFC 5034 §4: "=" stands for an empty initial
             * response. */
            *ir_b64 = s->out_len ? s->out : "=";
        }
    }
    if (rc) {
        if (ir_b64) *ir_b64 = NULL;
        mwi_sasl_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* The challenge decoded into *raw (malloc'd, NUL-ended) and *n, within the mechanism's bound. */
static int decode_challenge(mw_sasl *s, const char *challenge, size_t len, unsigned char **raw,
                            size_t *n, mw_error *err)
{
    *raw = NULL;
    *n = 0;
    unsigned char *r = malloc(len / 4 * 3 + 1);
    if (!r) return fail(s, err, MW_ENOMEM, "out of memory");
    long dl = len ? mwi_base64_decode_strict(r, challenge, len) : 0;
    if (dl < 0) {
        free(r);
        return fail(s, err, MW_EPROTO, "the server's challenge is not valid base64");
    }
    size_t rn = (size_t)dl;
    r[rn] = '\0';
    /* RFC 2831 §2.1.1: a digest-challenge is less than 2048 bytes; GNU SASL
     * parses whatever it is given, so the bound is kept here. */
    if (s->m->id == MW_M_DIGEST_MD5 && rn >= MW_SASL_DIGEST_MD5_MAX) {
        free(r);
        return failf(s, err, MW_ETOOBIG,
                     "a challenge of %zu bytes is over the limit (RFC 2831 section 2.1.1: "
                     "less than %d)",
                     rn, MW_SASL_DIGEST_MD5_MAX);
    }
    *raw = r;
    *n = rn;
    return 0;
}

int mwi_sasl_step(mw_sasl *s, const char **resp_b64, const char *challenge, size_t len,
                  mw_error *err)
{
    if (resp_b64) *resp_b64 = NULL;
    if (!s || !resp_b64 || (!challenge && len))
        return mwi_err_set(err, MW_EINVAL, "mwi_sasl_step: bad arguments");
    if (s->state == ST_FAILED)
        return mwi_err_set(err, MW_ESTATE, "the %s exchange already failed", s->m->name);
    if (len > MW_SASL_MAX_CHALLENGE)
        return failf(s, err, MW_ETOOBIG, "a challenge of %zu bytes is over the limit of %d", len,
                     MW_SASL_MAX_CHALLENGE);
    int was_ir = s->ir_outstanding;
    s->ir_outstanding = 0;
    s->challenges++;

    unsigned char *raw;
    size_t n;
    int rc = decode_challenge(s, challenge, len, &raw, &n, err);
    if (rc) return rc;
    if (!s->started && (s->m->flags & MW_MF_CLIENT_FIRST)) {
        /* A client-first mechanism without initial response: RFC 4422 §5
         * has the server send an empty challenge first. */
        if (n)
            rc = fail(s, err, MW_EPROTO, "the server sent data before our first message");
        else
            rc = first_message(s, err);
    } else if (was_ir && n == 0) {
        /* The initial response was computed but not sent (too long for
         * the command line, say): RFC 4422 §5 has the server ask with an
         * empty challenge, and the first message goes as the response. */
        rc = set_out(s, s->first, s->first_len);
        if (rc) rc = fail(s, err, rc, "out of memory");
    } else if (!(s->m->flags & MW_MF_GSASL)) {
        if (n == 0)
            rc = fail(s, err, MW_EPROTO, "the server sent an empty challenge after the token");
        else if (s->server_error[0])
            rc = fail(s, err, MW_EPROTO, "the server sent a challenge after its error");
        else {
            rc = oauth_error_challenge(s, raw, n, resp_b64, err);
            free(raw);
            return rc;
        }
    } else if (s->finished) {
        rc = fail(s, err, MW_EPROTO, "the server sent a challenge after the exchange finished");
    } else if ((s->m->flags & MW_MF_SCRAM) && s->scram_stage == 1) {
        rc = scram_check_server_first(s, (const char *)raw, n, err);
        if (!rc) rc = gs_step(s, (const char *)raw, n, err);
        if (!rc) s->scram_stage = 2;
    } else if ((s->m->flags & MW_MF_SCRAM) && s->scram_stage == 2) {
        rc = scram_check_server_final(s, (const char *)raw, n, err);
        if (!rc) rc = gs_step(s, (const char *)raw, n, err);
        if (!rc) {
            if (!s->finished)
                rc = fail(s, err, MW_EPROTO,
                          "the exchange did not end after the server's final message");
            else
                s->scram_stage = 3;
        }
    } else if (n == 0 && (s->m->id == MW_M_CRAM_MD5 || s->m->id == MW_M_DIGEST_MD5)) {
        rc = fail(s, err, MW_EPROTO, "the server sent an empty challenge");
    } else {
        rc = gs_step(s, (const char *)raw, n, err);
    }
    explicit_bzero(raw, n);
    free(raw);
    if (rc) return rc;
    *resp_b64 = s->out;
    return s->finished ? MW_SASL_DONE : MW_SASL_CONTINUE;
}

int mwi_sasl_finished(const mw_sasl *s)
{
    return s && s->finished;
}

int mwi_sasl_mutual(const mw_sasl *s)
{
    return s && (s->m->flags & MW_MF_MUTUAL) != 0;
}

int mwi_sasl_check_success(const mw_sasl *s, mw_error *err)
{
    if (!s) return mwi_err_set(err, MW_EINVAL, "mwi_sasl_check_success: no engine");
    if (s->server_error[0])
        return mwi_err_set(err, MW_EPROTO, "the server reported success after a %s error (%s)",
                           s->m->name, s->server_error);
    if ((s->m->flags & MW_MF_MUTUAL) && !s->finished)
        return mwi_err_set(err, MW_EAUTH,
                           "the server reported success before proving its identity (%s "
                           "exchange not finished: server not verified)",
                           s->m->name);
    return 0;
}

const char *mwi_sasl_mech(const mw_sasl *s)
{
    return s ? s->m->name : "";
}

const char *mwi_sasl_server_error(const mw_sasl *s)
{
    return s ? s->server_error : "";
}

void mwi_sasl_free(mw_sasl *s)
{
    if (!s) return;
    if (s->gs) G.finish(s->gs);
    if (s->ctx) G.done(s->ctx);
    wipe_free(s->first, s->first_len + 1);
    free(s->cnonce);
    wipe_free(s->out, s->out_len + 1);
    explicit_bzero(s, sizeof *s);
    free(s);
}
