/* The loop's SMTP AUTH (RFC 4954, smtp_job.h): src/sasl/driver.h's SASL
 * driver, run as src/smtp/auth.c runs it (the same choice of mechanisms,
 * the same fallback rule, the same masked lines), one reply per event.
 * Not on the loop yet: channel binding (a -PLUS mechanism the blocking
 * session would pick is refused, named) and token providers (a bearer
 * token is taken as given). */
#include "loop/smtp_job.h"
#include "sasl/driver.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void sasl_cfg(sj *p, mwi_sasld_cfg *c)
{
    memset(c, 0, sizeof *c);
    c->proto = &mwi_sasl_proto_smtp;
    c->offered = p->sh->caps.auth;
    c->policy.want = p->auth;
    c->policy.tls = p->c.tls != NULL;
    c->policy.allow_plaintext = p->allow_plaintext;
    c->policy.has_password = p->password != NULL;
    c->policy.has_token = p->token != NULL;
    c->creds.authcid = p->user;
    c->creds.password = p->password;
    c->creds.token = p->token;
    c->creds.hostname = p->sh->server;
    c->creds.port = p->c.port;
    c->use_ir = 1;
}

/* What auth.c would try first when it had channel binding: a -PLUS
 * mechanism, or NULL. */
static const char *needs_cb(sj *p, const mwi_sasld_cfg *cfg)
{
    if (!p->c.tls) return NULL;
    mw_sasl_policy pol = cfg->policy;
    pol.has_cb = 1;
    const char *mechs[MW_SASL_MAX_MECHS];
    size_t nm = 0;
    if (mwi_sasl_choose(mechs, MW_SASL_MAX_MECHS, &nm, cfg->offered, &pol, NULL) || !nm)
        return NULL;
    size_t l = strlen(mechs[0]);
    return l > 5 && !strcmp(mechs[0] + l - 5, "-PLUS") ? mechs[0] : NULL;
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
        if (act == MWI_SASLD_TOKEN) { /* no provider on the loop: the token is as given */
            act = mwi_sasld_token(d, MW_EUNSUPPORTED, NULL, NULL);
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

void mwi_sj_auth_start(sj *p)
{
    mw_error *e = &p->sh->err;
    p->in_auth = 1; /* a failure from here on stops a failover (smtp.c's s->stop) */
    if (!(p->sh->caps.flags & MW_SMTP_CAP_AUTH) || !p->sh->caps.auth[0]) {
        mwi_err_set(e, MW_EUNSUPPORTED,
                    "credentials given but the server offers no AUTH (RFC 4954)%s",
                    p->c.tls ? "" : " before TLS");
        mwi_sj_open_fail(p, MW_EUNSUPPORTED);
        return;
    }
    mwi_sasld_cfg cfg;
    sasl_cfg(p, &cfg);
    const char *plus = needs_cb(p, &cfg);
    if (plus) {
        mwi_err_set(e, MW_EUNSUPPORTED,
                    "not on the loop engine yet: AUTH %s (channel binding, RFC 5929)", plus);
        p->dead = 1; /* no goodbye the blocking session would not say */
        mwi_sj_open_fail(p, MW_EUNSUPPORTED);
        return;
    }
    int rc = mwi_sasld_new(&p->sd, &cfg, e);
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
