/* SMTP AUTH (RFC 4954) through the SASL engine (src/sasl): the
 * mechanisms offered, strongest first; a refusal moves on to the next. */
#include "smtp/smtp_int.h"
#include "sasl/sasl.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    rc = mwi_smtp_put_line(s, line, (size_t)n, shown);
    if (!rc) rc = mwi_smtp_flush(s);
    while (!rc) {
        if ((rc = mwi_smtp_get_reply(s, "AUTH")) != 0) break;
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
                rc = mwi_smtp_put_line(s, "*", 1, NULL);
                if (!rc) rc = mwi_smtp_flush(s);
                if (!rc) rc = mwi_smtp_get_reply(s, "AUTH *");
                if (!rc) {
                    s->err = saved;
                    rc = keep;
                }
                break;
            }
            size_t rl = strlen(resp);
            if (s->trace_secrets)
                rc = mwi_smtp_put_line(s, resp, rl, NULL);
            else {
                mwi_sasl_mask(shown, sizeof shown, resp, rl);
                rc = mwi_smtp_put_line(s, resp, rl, shown);
            }
            if (!rc) rc = mwi_smtp_flush(s);
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
        rc = mwi_smtp_reply_error(s, "authentication failed");
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

/* XOAUTH2 / OAUTHBEARER with a token from the caller's provider (token.h):
 * when refused, one new token (refused = 1) and one more AUTH on the same
 * connection (RFC 4954 §4 allows a retry after a failure). */
static int auth_provided_token(mw_smtp *s, const char *mech, mw_sasl_creds *cr, int *fatal)
{
    char *fresh = NULL;
    mw_error_clear(&s->err);
    int rc = s->token_fn(0, &fresh, &s->err, s->token_ud);
    if (rc || !fresh) {
        *fatal = 1;
        return rc ? rc : mwi_err_set(&s->err, MW_EINVAL, "the token provider gave no token");
    }
    cr->token = fresh;
    rc = auth_one(s, mech, cr, fatal);
    if (rc && !*fatal && s->state != ST_DEAD) {
        char *again = NULL;
        mw_error keep = s->err;
        int rc2 = s->token_fn(1, &again, &s->err, s->token_ud);
        if (rc2 == 0 && again) {
            explicit_bzero(fresh, strlen(fresh));
            free(fresh);
            fresh = again;
            cr->token = fresh;
            mwi_smtp_trace_info(s, "%s refused; again with a new token", mech);
            rc = auth_one(s, mech, cr, fatal);
        } else if (rc2 == 0) {
            s->err = keep;
        } else {
            rc = rc2;
            *fatal = 1;
        }
    }
    explicit_bzero(fresh, strlen(fresh));
    free(fresh);
    cr->token = s->token;
    return rc;
}

int mwi_smtp_authenticate(mw_smtp *s)
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
        if (oauth && !s->token && s->token_fn)
            rc = auth_provided_token(s, mechs[i], &cr, &fatal);
        else
            rc = auth_one(s, mechs[i], &cr, &fatal);
        if (rc == 0) {
            mwi_smtp_trace_info(s, "authenticated with %s", mechs[i]);
            return 0;
        }
        if (fatal || s->state == ST_DEAD) break;
        mwi_smtp_trace_info(s, "%s failed: %s", mechs[i], s->err.message);
    }
    s->stop = 1;
    return rc;
}
