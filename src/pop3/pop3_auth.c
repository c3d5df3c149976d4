/* POP3 login: USER/PASS and APOP (RFC 1939 §7), AUTH (RFC 5034) through
 * the shared SASL engine.  No password goes over an unencrypted link unless
 * the caller allowed it (docs/CONVENTIONS.md, "Safe defaults"). */
#include "pop3/pop3_int.h"

#include "sasl/sasl.h"
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

/* Sends one line of the AUTH exchange, masked in traces. */
static int send_auth_line(mw_pop3 *p, const char *line, size_t len)
{
    char masked[64];
    if (!p->trace_secrets) mwi_sasl_mask(masked, sizeof masked, line, len);
    return mwi_pop3_send(p, line, len, p->trace_secrets ? NULL : masked, 1);
}

/* One AUTH attempt (RFC 5034 §4).  Returns 0, or an error; *local is set
 * when the failure came from our side before the server judged us. */
static int sasl_try(mw_pop3 *p, const mw_pop3_opts *o, const char *mech, const char *token,
                    int *local)
{
    mw_sasl_creds cr;
    memset(&cr, 0, sizeof cr);
    cr.authcid = o->user;
    cr.authzid = o->authzid;
    cr.password = o->password;
    cr.token = token;
    cr.service = "pop";
    cr.hostname = p->host;
    cr.port = p->port;
    unsigned char cb[64];
    size_t cbl = 0;
    if (p->tls != MW_TLS_NONE) {
        mw_stream *s = mwi_conn_stream(p->conn);
        if (s && mw_stream_channel_binding(s, "tls-exporter", cb, sizeof cb, &cbl) == 0 && cbl) {
            cr.cb_type = "tls-exporter";
        } else if (s && mw_stream_channel_binding(s, "tls-unique", cb, sizeof cb, &cbl) == 0 &&
                   cbl) {
            cr.cb_type = "tls-unique";
        }
        if (cr.cb_type) {
            cr.cb_data = cb;
            cr.cb_len = cbl;
        }
    }
    *local = 1;
    mw_sasl *s = NULL;
    const char *ir = NULL;
    mw_error_clear(&p->err);
    int rc = mwi_sasl_start(&s, o->sasl_ir ? &ir : NULL, mech, &cr, &p->err);
    if (rc) return rc;
    char line[P3_MAX_CMD + 1];
    int n;
    /* RFC 5034 §4: the initial response may go with AUTH unless the line
     * would pass 255 octets; then it waits for the server's empty "+ ". */
    if (ir && strlen("AUTH ") + strlen(mech) + 1 + strlen(ir) + 2 <= P3_MAX_CMD)
        n = snprintf(line, sizeof line, "AUTH %s %s", mech, ir);
    else
        n = snprintf(line, sizeof line, "AUTH %s", mech);
    rc = send_auth_line(p, line, (size_t)n);
    wipe(line, sizeof line);
    p->in_auth = 1; /* from here on, lines of the exchange are masked */
    *local = 0;
    mw_pop3_status st;
    while (!rc) {
        if ((rc = mwi_pop3_read_status(p, &st))) break;
        if (st.kind == MW_POP3_OK) {
            /* Early success: a mutual mechanism whose server proof never
             * came is refused (mwi_sasl_check_success). */
            rc = mwi_sasl_check_success(s, &p->err);
            if (rc) {
                mwi_pop3_fatal(p, rc);
                mwi_err_set(&p->err, rc, "AUTH %s: server said +OK before proving itself: %s", mech,
                            p->err.message);
            }
            break;
        }
        if (st.kind == MW_POP3_ERR) {
            rc = login_failed(p, &st, "AUTH");
            const char *se = mwi_sasl_server_error(s);
            if (se && *se) {
                char msg[sizeof p->err.message];
                memcpy(msg, p->err.message, sizeof msg);
                mwi_err_set(&p->err, rc, "%s (%s)", msg, se);
            }
            break;
        }
        const char *resp = NULL;
        int sr = mwi_sasl_step(s, &resp, st.text, st.text_len, &p->err);
        if (sr < 0) {
            /* RFC 5034 §4: "*" cancels; the server answers -ERR. */
            char why[sizeof p->err.message];
            snprintf(why, sizeof why, "%s", p->err.message);
            int cr2 = send_auth_line(p, "*", 1);
            if (!cr2) cr2 = mwi_pop3_read_status(p, &st);
            rc = sr;
            if (!cr2 || p->state != P3_BROKEN)
                mwi_err_set(&p->err, sr, "AUTH %s: bad server challenge, cancelled: %s", mech, why);
            break;
        }
        rc = send_auth_line(p, resp, strlen(resp));
    }
    p->in_auth = 0;
    wipe(cb, sizeof cb);
    mwi_sasl_free(s);
    if (!rc) snprintf(p->auth_used, sizeof p->auth_used, "SASL %s", mech);
    return rc;
}

static int login_sasl(mw_pop3 *p, const mw_pop3_opts *o, int automatic)
{
    const char *line = NULL;
    for (size_t i = 0; i < p->ncapa; i++)
        if (!strncasecmp(p->capa[i], "SASL", 4) && (p->capa[i][4] == ' ' || !p->capa[i][4]))
            line = p->capa[i][4] ? p->capa[i] + 5 : "";
    mw_sasl_policy pol;
    memset(&pol, 0, sizeof pol);
    pol.want = o->sasl_mechs;
    pol.tls = p->tls != MW_TLS_NONE;
    pol.allow_plaintext = o->allow_plaintext;
    pol.has_password = o->password != NULL;
    /* Version 2 options may name a token provider (token.h). */
    mw_token_fn tfn = o->version >= 2 ? o->token_fn : NULL;
    pol.has_token = o->token != NULL || tfn != NULL;
    pol.want_external = o->tls_opts && o->tls_opts->cert_file && pol.tls;
    if (pol.tls) {
        unsigned char cb[64];
        size_t cbl = 0;
        mw_stream *s = mwi_conn_stream(p->conn);
        pol.has_cb = s && (mw_stream_channel_binding(s, "tls-exporter", cb, sizeof cb, &cbl) == 0 ||
                           mw_stream_channel_binding(s, "tls-unique", cb, sizeof cb, &cbl) == 0);
    }
    const char *mechs[MW_SASL_MAX_MECHS];
    size_t nm = 0;
    mw_error_clear(&p->err);
    int rc = mwi_sasl_choose(mechs, MW_SASL_MAX_MECHS, &nm, line, &pol, &p->err);
    if (rc) {
        if (automatic && rc == MW_EUNSUPPORTED) return 1; /* nothing usable offered: USER/PASS */
        return rc;
    }
    if (!o->user && !o->token && !tfn && strcasecmp(mechs[0], "EXTERNAL"))
        return mwi_err_set(&p->err, MW_EINVAL, "AUTH needs a user name");
    for (size_t i = 0; i < nm; i++) {
        int local = 0;
        int oauth = !strcasecmp(mechs[i], "XOAUTH2") || !strcasecmp(mechs[i], "OAUTHBEARER");
        char *fresh = NULL;
        if (oauth && !o->token && tfn) {
            mw_error_clear(&p->err);
            rc = tfn(0, &fresh, &p->err, o->token_userdata);
            if (rc) return rc; /* the callback's value, unchanged */
            if (!fresh) return mwi_err_set(&p->err, MW_EINVAL, "the token provider gave no token");
        }
        rc = sasl_try(p, o, mechs[i], fresh ? fresh : o->token, &local);
        if (rc == MW_EAUTH && !local && fresh && p->state != P3_BROKEN) {
            /* Refused: the provider may know better (a token expired early,
             * a clock behind); one new token, one more AUTH (RFC 5034 §4
             * leaves the session in the AUTHORIZATION state). */
            char *again = NULL;
            mw_error keep = p->err;
            int cr = tfn(1, &again, &p->err, o->token_userdata);
            if (cr == 0 && again) {
                wipe(fresh, strlen(fresh));
                free(fresh);
                fresh = again;
                rc = sasl_try(p, o, mechs[i], fresh, &local);
            } else if (cr == 0) {
                p->err = keep;
            } else {
                rc = cr;
            }
        }
        if (fresh) {
            wipe(fresh, strlen(fresh));
            free(fresh);
        }
        /* Only a local failure (GNU SASL lacks the mechanism, a credential
         * it needs is missing) moves on to the next one; a server refusal
         * is final, so a wrong password is not tried over and over. */
        if (!rc || !local) return rc;
    }
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
