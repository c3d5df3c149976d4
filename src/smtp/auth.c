/* SMTP AUTH (RFC 4954): a thin loop over the SASL driver (src/sasl/driver.h),
 * which chooses the mechanisms and applies the fallback rule that POP3
 * follows too (docs/CONVENTIONS.md, "SASL fallback"). */
#include "smtp/smtp_int.h"
#include "sasl/driver.h"
#include "net/tls.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The channel binding data of the TLS connection (RFC 9266 tls-exporter,
 * else RFC 5929 tls-unique) into cb[64]; its type, or NULL. */
static const char *channel_binding(mw_smtp *s, unsigned char *cb, size_t *cbl)
{
    *cbl = 0;
    if (!s->tls_active) return NULL;
    return mwi_stream_channel_binding_best(mwi_conn_stream(s->c), cb, cbl);
}

static void sasl_cfg(mw_smtp *s, mwi_sasld_cfg *c, unsigned char *cb)
{
    memset(c, 0, sizeof *c);
    size_t cbl = 0;
    const char *cbt = channel_binding(s, cb, &cbl);
    c->proto = &mwi_sasl_proto_smtp;
    c->offered = s->caps.auth;
    c->policy.want = s->auth;
    c->policy.tls = s->tls_active;
    c->policy.allow_plaintext = s->allow_plaintext;
    c->policy.has_password = s->password != NULL;
    c->policy.has_token = s->token != NULL || s->token_fn != NULL;
    c->policy.want_external = s->tls_active && s->tls.cert_file != NULL;
    c->policy.has_cb = cbt != NULL;
    c->creds.authcid = s->username;
    c->creds.authzid = s->authzid;
    c->creds.password = s->password;
    c->creds.token = s->token;
    c->creds.hostname = s->server;
    c->creds.port = s->port;
    c->creds.cb_type = cbt;
    c->creds.cb_data = cbt ? cb : NULL;
    c->creds.cb_len = cbl;
    c->use_ir = !s->no_ir;
    c->has_token_fn = s->token_fn != NULL;
    c->trace_secrets = s->trace_secrets;
}

/* Sends what the driver says and feeds it the reply. */
static int exchange(mw_smtp *s, mwi_sasld *d, int *act)
{
    size_t len;
    const char *line = mwi_sasld_line(d, &len);
    int cancel = len == 1 && line[0] == '*' && mwi_sasld_in_exchange(d);
    int rc = mwi_smtp_put_line(s, line, len, mwi_sasld_shown(d));
    if (!rc) rc = mwi_smtp_flush(s);
    if (!rc) rc = mwi_smtp_get_reply(s, cancel ? "AUTH *" : "AUTH");
    if (!rc) *act = mwi_sasld_feed(d, s->rep);
    return rc;
}

static int provide_token(mw_smtp *s, mwi_sasld *d)
{
    if (mwi_sasld_token_refresh(d))
        mwi_smtp_trace_info(s, "%s refused; again with a new token", mwi_sasld_mech(d));
    return mwi_sasld_ask_token(d, s->token_fn, s->token_ud);
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
    mwi_sasld_cfg cfg;
    sasl_cfg(s, &cfg, cb);
    mwi_sasld *d = NULL;
    int rc = mwi_sasld_new(&d, &cfg, &s->err);
    explicit_bzero(cb, sizeof cb);
    if (rc) {
        s->stop = 1;
        return rc;
    }
    int act = mwi_sasld_start(d);
    for (rc = 0; !rc;) {
        if (act == MWI_SASLD_SEND) {
            rc = exchange(s, d, &act);
        } else if (act == MWI_SASLD_TOKEN) {
            act = provide_token(s, d);
        } else if (act == MWI_SASLD_NEXT) {
            mwi_smtp_trace_info(s, "%s failed: %s", mwi_sasld_mech(d), mwi_sasld_error(d)->message);
            act = mwi_sasld_start(d);
        } else if (act == MWI_SASLD_DONE) {
            snprintf(s->auth_mech, sizeof s->auth_mech, "%s", mwi_sasld_mech(d));
            mwi_smtp_trace_info(s, "authenticated with %s", mwi_sasld_mech(d));
            break;
        } else {
            s->err = *mwi_sasld_error(d);
            rc = s->err.code ? s->err.code : MW_EAUTH;
        }
    }
    mwi_sasld_free(d);
    if (rc) s->stop = 1;
    return rc;
}
