/* The SMTP AUTH (RFC 4954, smtp_job.h) of the loop and of the blocking
 * API (over smtp_held.c): src/sasl/driver.h's SASL driver, one reply per
 * event (the driver's one choice of mechanisms and fallback rule, its
 * masked lines): the -PLUS mechanisms bound to the TLS connection, a token
 * provider asked once more after a refusal, then AUTH again on the same
 * connection. */
#include "loop/loop_tls.h"
#include "loop/ltoken.h"
#include "loop/smtp_job.h"
#include "net/tls.h"
#include "sasl/driver.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The channel binding: tls-exporter (RFC 9266), else tls-unique
 * (RFC 5929), of the loop's TLS connection (or a driver's TLS stream,
 * smtp_held.c) into cb[64]; its type, or NULL. */
static const char *channel_binding(sj *p, unsigned char *cb, size_t *cbl)
{
    *cbl = 0;
    if (p->c.tls) return mwi_ltls_channel_binding_best(p->c.tls, cb, cbl);
    if (p->c.ext_tls_up && p->c.ext_stream)
        return mwi_stream_channel_binding_best(p->c.ext_stream, cb, cbl);
    return NULL;
}

static void sasl_cfg(sj *p, mwi_sasld_cfg *c, unsigned char *cb)
{
    memset(c, 0, sizeof *c);
    size_t cbl = 0;
    const char *cbt = channel_binding(p, cb, &cbl);
    c->proto = &mwi_sasl_proto_smtp;
    c->offered = p->sh->caps.auth;
    c->policy.want = p->auth;
    c->policy.tls = MWI_LCONN_SECURE(&p->c);
    c->policy.allow_plaintext = p->allow_plaintext;
    c->policy.has_password = p->password != NULL;
    c->policy.has_token = p->token != NULL || p->token_fn != NULL || p->job->tok_fn != NULL;
    c->policy.want_external = (p->c.tls != NULL && p->c.tlscfg.conf.cert_file != NULL) ||
                              (p->c.ext_tls_up && p->c.ext_cert);
    c->policy.has_cb = cbt != NULL;
    c->creds.authcid = p->user;
    c->creds.authzid = p->authzid;
    c->creds.password = p->password;
    c->creds.token = p->token;
    c->creds.hostname = p->sh->server;
    c->creds.port = p->c.port;
    c->creds.cb_type = cbt;
    c->creds.cb_data = cbt ? cb : NULL;
    c->creds.cb_len = cbl;
    c->use_ir = !p->no_ir;
    c->has_token_fn = p->token_fn != NULL || p->job->tok_fn != NULL;
    c->trace_secrets = p->trace_secrets;
}

static void drive(sj *p, int act);

/* The asynchronous provider's answer came (ltoken.c). */
static void token_resume(mw_loop_job *job, int act)
{
    drive(job->impl, act);
}

static void drive(sj *p, int act)
{
    mwi_sasld *d = p->sd;
    for (;;) {
        if (act == MWI_SASLD_SEND) {
            size_t len;
            const char *line = mwi_sasld_line(d, &len);
            int cancel = len == 1 && line[0] == '*' && mwi_sasld_in_exchange(d);
            mwi_sj_send(p, S_AUTH, line, len, mwi_sasld_shown(d), cancel ? "AUTH *" : "AUTH");
            return;
        }
        if (act == MWI_SASLD_TOKEN) {
            if (mwi_sasld_token_refresh(d))
                mwi_lconn_info(&p->c, "%s refused; again with a new token", mwi_sasld_mech(d));
            act = mwi_ltok_ask(p->job, d, p->token_fn, p->token_ud, token_resume);
            if (act == MWI_SASLD_TOKEN) {
                mwi_lconn_info(&p->c, "waiting for the token provider");
                return;
            }
        } else if (act == MWI_SASLD_NEXT) {
            mwi_lconn_info(&p->c, "%s failed: %s", mwi_sasld_mech(d), mwi_sasld_error(d)->message);
            act = mwi_sasld_start(d);
        } else if (act == MWI_SASLD_DONE) {
            mwi_lconn_info(&p->c, "authenticated with %s", mwi_sasld_mech(d));
            snprintf(p->sh->auth_mech, sizeof p->sh->auth_mech, "%s", mwi_sasld_mech(d));
            mwi_sasld_free(d);
            p->sd = NULL;
            mwi_sj_session_ready(p);
            return;
        } else {
            p->sh->err = *mwi_sasld_error(d);
            int rc = p->sh->err.code ? p->sh->err.code : MW_EAUTH;
            if (mwi_sasld_fatal(d)) p->dead = 1;
            mwi_sasld_free(d);
            p->sd = NULL;
            mwi_sj_open_fail(p, rc);
            return;
        }
    }
}

void mwi_sj_auth_opts(sj *p, const mw_loop_smtp_opts *o)
{
    p->token_fn = o->token_fn;
    p->token_ud = o->token_userdata;
    p->job->tok_fn = o->token_async;
    p->job->tok_ud = o->token_async_userdata;
}

void mwi_sj_auth_start(sj *p)
{
    mw_error *e = &p->sh->err;
    p->in_auth = 1; /* a failure from here on stops mw_smtp_open's failover */
    if (!(p->sh->caps.flags & MW_SMTP_CAP_AUTH) || !p->sh->caps.auth[0]) {
        mwi_err_set(e, MW_EUNSUPPORTED,
                    "credentials given but the server offers no AUTH (RFC 4954)%s",
                    MWI_LCONN_SECURE(&p->c) ? "" : " before TLS");
        mwi_sj_open_fail(p, MW_EUNSUPPORTED);
        return;
    }
    unsigned char cb[64];
    mwi_sasld_cfg cfg;
    sasl_cfg(p, &cfg, cb);
    int rc = mwi_sasld_new(&p->sd, &cfg, e);
    explicit_bzero(cb, sizeof cb);
    if (rc) {
        mwi_sj_open_fail(p, rc);
        return;
    }
    drive(p, mwi_sasld_start(p->sd));
}

void mwi_sj_auth_reply(sj *p)
{
    drive(p, mwi_sasld_feed(p->sd, p->reply));
}

void mwi_sj_auth_free(sj *p)
{
    mwi_sasld_free(p->sd);
    p->sd = NULL;
}
