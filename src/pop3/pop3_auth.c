/* POP3 login: USER/PASS and APOP (RFC 1939 §7), AUTH (RFC 5034) through
 * the shared SASL engine.  No password goes over an unencrypted link unless
 * the caller allowed it (docs/CONVENTIONS.md, "Safe defaults"). */
#include "pop3/pop3_int.h"

#include "sasl/driver.h"
#include "net/tls.h"
#include "util/err.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

static int login_failed(mw_pop3 *p, const mw_pop3_status *st, const char *what)
{
    int code = mwi_pop3_server_error(p, st, MW_EAUTH, what);
    /* A refused login is final for this connection: RFC 1939 §7 lets the
     * server close, and we do not try again behind the caller's back. */
    mwi_err_set(&p->err, code, "%s refused: -ERR %s", what, p->err.reply);
    return code;
}

static int need_password(mw_pop3 *p, const mw_pop3_opts *o, const char *what)
{
    if (!o->user || !*o->user) return mwi_err_set(&p->err, MW_EINVAL, "%s needs a user name", what);
    if (!o->password) return mwi_err_set(&p->err, MW_EINVAL, "%s needs a password", what);
    return 0;
}

static int login_user(mw_pop3 *p, const mw_pop3_opts *o)
{
    mw_error_clear(&p->err);
    int rc = need_password(p, o, "USER/PASS");
    if (rc) return rc;
    if (p->tls == MW_TLS_NONE && !o->allow_plaintext)
        return mwi_err_set(&p->err, MW_EPOLICY,
                           "USER/PASS would send the password unencrypted; use TLS or allow "
                           "plaintext passwords explicitly");
    mw_pop3_status st;
    char line[P3_MAX_CMD + 1];
    int n = snprintf(line, sizeof line, "USER %s", o->user);
    if (n < 0 || (size_t)n >= sizeof line)
        return mwi_err_set(&p->err, MW_EINVAL, "user name too long");
    rc = mwi_pop3_send(p, line, (size_t)n, NULL, 1);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) return login_failed(p, &st, "USER");
    n = snprintf(line, sizeof line, "PASS %s", o->password);
    if (n < 0 || (size_t)n >= sizeof line) {
        wipe(line, sizeof line);
        return mwi_err_set(&p->err, MW_EINVAL, "password too long");
    }
    rc = mwi_pop3_send(p, line, (size_t)n, p->trace_secrets ? NULL : "PASS ****", 1);
    wipe(line, sizeof line);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) return login_failed(p, &st, "PASS");
    snprintf(p->auth_used, sizeof p->auth_used, "USER");
    return 0;
}

/* RFC 1939 §7: APOP name digest, digest = MD5(timestamp password) in
 * lower-case hex.  MD5 is broken; used only when the caller asks. */
static int login_apop(mw_pop3 *p, const mw_pop3_opts *o)
{
    mw_error_clear(&p->err);
    int rc = need_password(p, o, "APOP");
    if (rc) return rc;
    if (p->tls == MW_TLS_NONE && !o->allow_plaintext)
        return mwi_err_set(&p->err, MW_EPOLICY,
                           "APOP: no login over an unencrypted connection (use TLS, or allow "
                           "plaintext logins explicitly)");
    if (!p->timestamp[0])
        return mwi_err_set(&p->err, MW_EUNSUPPORTED,
                           "APOP asked for, but the greeting has no valid timestamp: '%s'",
                           p->greeting);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
             EVP_DigestUpdate(ctx, p->timestamp, strlen(p->timestamp)) &&
             EVP_DigestUpdate(ctx, o->password, strlen(o->password)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen != 16)
        return mwi_err_set(&p->err, MW_EUNSUPPORTED, "MD5 is not available for APOP");
    char hex[33];
    for (unsigned i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    char line[P3_MAX_CMD + 1], masked[P3_MAX_CMD + 1];
    int n = snprintf(line, sizeof line, "APOP %s %s", o->user, hex);
    snprintf(masked, sizeof masked, "APOP %s ****", o->user);
    wipe(hex, sizeof hex);
    if (n < 0 || (size_t)n >= sizeof line)
        return mwi_err_set(&p->err, MW_EINVAL, "user name too long");
    mw_pop3_status st;
    rc = mwi_pop3_send(p, line, (size_t)n, p->trace_secrets ? NULL : masked, 1);
    wipe(line, sizeof line);
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    if (rc) return rc;
    if (st.kind != MW_POP3_OK) return login_failed(p, &st, "APOP");
    snprintf(p->auth_used, sizeof p->auth_used, "APOP");
    return 0;
}

/* The channel binding data of a TLS connection (RFC 9266 tls-exporter,
 * else RFC 5929 tls-unique) into cb[64]; its type, or NULL. */
static const char *channel_binding(mw_pop3 *p, unsigned char *cb, size_t *cbl)
{
    *cbl = 0;
    if (p->tls == MW_TLS_NONE) return NULL;
    return mwi_stream_channel_binding_best(mwi_conn_stream(p->conn), cb, cbl);
}

static int has_capa(const mw_pop3 *p, const char *name)
{
    for (size_t i = 0; i < p->ncapa; i++)
        if (!strcasecmp(p->capa[i], name)) return 1;
    return 0;
}

/* The driver's configuration from the options and the CAPA reply. */
static void sasl_cfg(mw_pop3 *p, const mw_pop3_opts *o, mwi_sasld_cfg *c, unsigned char *cb)
{
    memset(c, 0, sizeof *c);
    c->proto = &mwi_sasl_proto_pop3;
    for (size_t i = 0; i < p->ncapa; i++)
        if (!strncasecmp(p->capa[i], "SASL", 4) && (p->capa[i][4] == ' ' || !p->capa[i][4]))
            c->offered = p->capa[i][4] ? p->capa[i] + 5 : "";
    /* Version 2 options may name a token provider (token.h). */
    mw_token_fn tfn = o->version >= 2 ? o->token_fn : NULL;
    size_t cbl = 0;
    const char *cbt = channel_binding(p, cb, &cbl);
    c->policy.want = o->sasl_mechs;
    c->policy.tls = p->tls != MW_TLS_NONE;
    c->policy.allow_plaintext = o->allow_plaintext;
    c->policy.has_password = o->password != NULL;
    c->policy.has_token = o->token != NULL || tfn != NULL;
    c->policy.want_external = o->tls_opts && o->tls_opts->cert_file && c->policy.tls;
    c->policy.has_cb = cbt != NULL;
    c->creds.authcid = o->user;
    c->creds.authzid = o->authzid;
    c->creds.password = o->password;
    c->creds.token = o->token;
    c->creds.hostname = p->host;
    c->creds.port = p->port;
    c->creds.cb_type = cbt;
    c->creds.cb_data = cbt ? cb : NULL;
    c->creds.cb_len = cbl;
    c->use_ir = o->sasl_ir;
    c->has_token_fn = tfn != NULL;
    c->trace_secrets = p->trace_secrets;
    c->flags = has_capa(p, "AUTH-RESP-CODE") ? MWI_SASLD_F_RESP_CODES : 0;
}

/* Sends what the driver says and feeds it the reply (RFC 5034 §4). */
static int sasl_exchange(mw_pop3 *p, mwi_sasld *d, int *act)
{
    size_t len;
    const char *line = mwi_sasld_line(d, &len);
    /* The continuation lines are not commands: the AUTH line stays the
     * command an error names, and the server's "+ " lines are masked. */
    p->in_auth = mwi_sasld_in_exchange(d);
    int rc = mwi_pop3_send(p, line, len, mwi_sasld_shown(d), 1);
    p->in_auth = 1;
    mw_pop3_status st;
    if (!rc) rc = mwi_pop3_read_status(p, &st);
    p->in_auth = 0;
    if (!rc) *act = mwi_sasld_feed(d, &st);
    return rc;
}

/* SASL login: a thin loop over the driver (src/sasl/driver.h).  Returns 0,
 * an error, or 1 when `automatic` and nothing usable is offered. */
static int login_sasl(mw_pop3 *p, const mw_pop3_opts *o, int automatic)
{
    mw_token_fn tfn = o->version >= 2 ? o->token_fn : NULL;
    unsigned char cb[64];
    mwi_sasld_cfg cfg;
    sasl_cfg(p, o, &cfg, cb);
    mwi_sasld *d = NULL;
    mw_error_clear(&p->err);
    int rc = mwi_sasld_new(&d, &cfg, &p->err);
    wipe(cb, sizeof cb);
    if (rc) return automatic && rc == MW_EUNSUPPORTED ? 1 : rc;
    if (!o->user && !o->token && !tfn && strcasecmp(mwi_sasld_mech_first(d), "EXTERNAL")) {
        mwi_sasld_free(d);
        return mwi_err_set(&p->err, MW_EINVAL, "AUTH needs a user name");
    }
    int act = mwi_sasld_start(d);
    for (rc = 0; !rc;) {
        if (act == MWI_SASLD_SEND) {
            rc = sasl_exchange(p, d, &act);
        } else if (act == MWI_SASLD_TOKEN) {
            char *tok = NULL;
            mw_error te;
            mw_error_clear(&te);
            int trc = tfn(mwi_sasld_token_refresh(d), &tok, &te, o->token_userdata);
            act = mwi_sasld_token(d, trc, tok, &te);
        } else if (act == MWI_SASLD_NEXT) {
            char note[sizeof p->err.message + 40];
            int n = snprintf(note, sizeof note, "%s failed: %s", mwi_sasld_mech(d),
                             mwi_sasld_error(d)->message);
            if (n > 0) mwi_conn_trace(p->conn, MW_TRACE_INFO, note, strlen(note));
            p->err.command[0] = '\0';
            act = mwi_sasld_start(d);
        } else if (act == MWI_SASLD_DONE) {
            snprintf(p->auth_used, sizeof p->auth_used, "SASL %s", mwi_sasld_mech(d));
            break;
        } else {
            /* The driver's error; the command is the AUTH line as sent. */
            char cmd[sizeof p->err.command];
            memcpy(cmd, p->err.command, sizeof cmd);
            p->err = *mwi_sasld_error(d);
            if (cmd[0]) memcpy(p->err.command, cmd, sizeof cmd);
            rc = p->err.code ? p->err.code : MW_EAUTH;
            if (mwi_sasld_fatal(d)) mwi_pop3_fatal(p, rc);
        }
    }
    mwi_sasld_free(d);
    return rc;
}

int mwi_pop3_login(mw_pop3 *p, const mw_pop3_opts *o)
{
    int rc;
    switch (o->auth) {
    case MW_POP3_AUTH_NONE:
        return 0;
    case MW_POP3_AUTH_USER:
        rc = login_user(p, o);
        break;
    case MW_POP3_AUTH_APOP:
        rc = login_apop(p, o);
        break;
    case MW_POP3_AUTH_SASL:
        rc = login_sasl(p, o, 0);
        break;
    default:
        /* The strongest SASL mechanism offered, else USER/PASS. */
        rc = login_sasl(p, o, 1);
        if (rc == 1) rc = login_user(p, o);
        break;
    }
    if (rc) {
        if (p->state != P3_BROKEN) mwi_pop3_set_state(p, P3_BROKEN);
        return rc;
    }
    mwi_pop3_set_state(p, P3_TRANS);
    return 0;
}
