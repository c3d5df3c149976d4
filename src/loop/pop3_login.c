/* The POP3 job's login (pop3_job.h), on a loop and under the blocking
 * API (pop3_held.c): USER/PASS (RFC 1939 §7), APOP (RFC 1939 §7, only when
 * asked for), AUTH (RFC 5034) driven by the one SASL driver
 * (src/sasl/driver.h), and with MW_POP3_AUTH_AUTO the strongest SASL
 * mechanism offered, else USER/PASS.  A bearer token is taken as given.
 * Channel binding (-PLUS mechanisms) and EXTERNAL with a client
 * certificate.  A token provider, the
 * synchronous one (token.h) or the job's asynchronous one (ltoken.h), is
 * asked once more after a refused token. */
#include "loop/ltoken.h"
#include "loop/pop3_job.h"
#include "sasl/driver.h"
#include "net/tls.h"
#include "util/err.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void wipe(void *v, size_t n)
{
    volatile unsigned char *b = v;
    while (n--)
        *b++ = 0;
}

/* A login without SASL needs both a user and a password. */
static int need_password(p3l *p, const char *what)
{
    if (!p->user)
        mwi_p3l_end(p, MW_EINVAL, "%s needs a user name", what);
    else if (!p->password)
        mwi_p3l_end(p, MW_EINVAL, "%s needs a password", what);
    return !p->user || !p->password;
}

/* src/pop3's words for a login line of n octets past RFC 2449 §4's
 * 255: the field too long for the line, or the line with its CR LF over
 * the limit.  Returns 1 when the job ended. */
static int line_too_long(p3l *p, size_t n, const char *field)
{
    if (n > P3L_CMD_MAX)
        mwi_p3l_end(p, MW_EINVAL, "%s too long", field);
    else if (n + 2 > P3L_CMD_MAX)
        mwi_p3l_end(p, MW_EINVAL, "command of %zu octets is over the %d-octet limit", n + 2,
                    P3L_CMD_MAX);
    return p->job->done;
}

static void start_user(p3l *p)
{
    if (need_password(p, "USER/PASS")) return;
    if (!MWI_LCONN_SECURE(&p->c) && !p->allow_plaintext) {
        mwi_p3l_end(p, MW_EPOLICY,
                    "USER/PASS would send the password unencrypted; use TLS or allow plaintext "
                    "passwords explicitly");
        return;
    }
    if (line_too_long(p, 5 + strlen(p->user), "user name")) return;
    char line[P3L_CMD_MAX + 1];
    snprintf(line, sizeof line, "USER %s", p->user);
    mwi_p3l_set_state(p, S_USER);
    mwi_p3l_send(p, K_USER, line, 0, NULL);
}

/* RFC 1939 §7: APOP name digest, digest = MD5(timestamp password) in
 * lower-case hex. */
static void start_apop(p3l *p)
{
    if (need_password(p, "APOP")) return;
    if (!MWI_LCONN_SECURE(&p->c) && !p->allow_plaintext) {
        mwi_p3l_end(p, MW_EPOLICY,
                    "APOP: no login over an unencrypted connection (use TLS, or allow plaintext "
                    "logins explicitly)");
        return;
    }
    if (!p->timestamp[0]) {
        mwi_p3l_end(p, MW_EUNSUPPORTED,
                    "APOP asked for, but the greeting has no valid timestamp: '%.300s'",
                    p->greeting);
        return;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) &&
             EVP_DigestUpdate(ctx, p->timestamp, strlen(p->timestamp)) &&
             EVP_DigestUpdate(ctx, p->password, strlen(p->password)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok || mdlen != 16) {
        mwi_p3l_end(p, MW_EUNSUPPORTED, "MD5 is not available for APOP");
        return;
    }
    if (line_too_long(p, 6 + strlen(p->user) + 32, "user name")) return;
    char hex[33], line[P3L_CMD_MAX + 1];
    for (unsigned i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(line, sizeof line, "APOP %s %s", p->user, hex);
    snprintf(p->cur_cmd, sizeof p->cur_cmd, "APOP %.40s ****", p->user);
    wipe(hex, sizeof hex);
    mwi_p3l_set_state(p, S_USER);
    mwi_p3l_send(p, K_APOP, line, 0, p->cur_cmd);
    wipe(line, sizeof line);
}

/* The connection's channel binding:
 * tls-exporter (RFC 9266), else tls-unique (RFC 5929), else none. */
static const char *channel_binding(p3l *p, unsigned char *cb, size_t *cbl)
{
    const char *t = mwi_ltls_channel_binding_best(p->c.tls, cb, cbl);
    /* Else the blocking driver's stream (pop3_drive.c). */
    return t ? t : mwi_stream_channel_binding_best(p->c.ext_stream, cb, cbl);
}

/* The driver's configuration; cb
 * holds 64 bytes (the driver copies them). */
static void sasl_cfg(p3l *p, mwi_sasld_cfg *c, unsigned char *cb)
{
    memset(c, 0, sizeof *c);
    size_t cbl = 0;
    const char *cbt = channel_binding(p, cb, &cbl);
    c->proto = &mwi_sasl_proto_pop3;
    c->offered = p->sasl_offered;
    c->policy.want = p->sasl_mechs;
    c->policy.tls = MWI_LCONN_SECURE(&p->c);
    c->policy.allow_plaintext = p->allow_plaintext;
    c->policy.has_password = p->password != NULL;
    c->policy.has_token = p->token != NULL || p->token_fn != NULL || p->job->tok_fn != NULL;
    c->has_token_fn = p->token_fn != NULL || p->job->tok_fn != NULL;
    c->policy.want_external =
        (p->c.tlscfg.conf.cert_file && p->c.tls) || (p->c.ext_cert && p->c.ext_tls_up);
    c->policy.has_cb = cbt != NULL;
    c->creds.cb_type = cbt;
    c->creds.cb_data = cbt ? cb : NULL;
    c->creds.cb_len = cbl;
    c->creds.token = p->token;
    c->creds.authcid = p->user;
    c->creds.authzid = p->authzid;
    c->creds.password = p->password;
    c->creds.hostname = p->c.host;
    c->creds.port = p->c.port;
    c->use_ir = p->sasl_ir;
    c->trace_secrets = p->trace_secrets;
    c->flags = p->capa_resp_codes ? MWI_SASLD_F_RESP_CODES : 0;
}

static void drive(p3l *p, int act);

/* The asynchronous provider's answer came (ltoken.c). */
static void token_resume(mw_loop_job *job, int act)
{
    drive(job->impl, act);
}

/* Runs the driver up to its next line to send, or to its end. */
static void drive(p3l *p, int act)
{
    mwi_sasld *d = p->sd;
    for (;;) {
        if (act == MWI_SASLD_SEND) {
            size_t len;
            const char *line = mwi_sasld_line(d, &len);
            const char *shown = mwi_sasld_shown(d);
            p->in_auth = mwi_sasld_in_exchange(d);
            if (!p->in_auth) snprintf(p->cur_cmd, sizeof p->cur_cmd, "%s", shown ? shown : line);
            mwi_p3l_set_state(p, S_AUTH);
            mwi_p3l_send(p, K_AUTH, line, 0, shown);
            p->in_auth = 1; /* the server's "+ " lines are masked */
            return;
        }
        if (act == MWI_SASLD_TOKEN) {
            /* The caller's provider (once more with refresh set after a
             * refused token): a synchronous one runs in this thread (on a
             * loop the other jobs wait); an asynchronous one may answer
             * later, through token_resume. */
            act = mwi_ltok_ask(p->job, d, p->token_fn, p->token_ud, token_resume);
            if (act == MWI_SASLD_TOKEN) {
                mwi_lconn_info(&p->c, "waiting for the token provider");
                return;
            }
        } else if (act == MWI_SASLD_NEXT) {
            mwi_lconn_info(&p->c, "%s failed: %s", mwi_sasld_mech(d), mwi_sasld_error(d)->message);
            act = mwi_sasld_start(d);
        } else if (act == MWI_SASLD_DONE) {
            snprintf(p->auth_used, sizeof p->auth_used, "SASL %s", mwi_sasld_mech(d));
            mwi_p3l_login_free(p);
            mwi_p3l_logged_in(p);
            return;
        } else {
            mw_error *e = &p->job->err;
            *e = *mwi_sasld_error(d);
            if (p->cur_cmd[0]) mwi_err_set_command(e, p->cur_cmd, strlen(p->cur_cmd));
            int rc = e->code ? e->code : MW_EAUTH;
            char msg[sizeof e->message];
            memcpy(msg, e->message, sizeof msg);
            mwi_p3l_login_free(p);
            mwi_p3l_end(p, rc, "%s", msg);
            return;
        }
    }
}

/* Returns 1 when `automatic` and no SASL mechanism is usable. */
static int start_sasl(p3l *p, int automatic)
{
    mwi_sasld_cfg cfg;
    unsigned char cb[64];
    sasl_cfg(p, &cfg, cb);
    mw_error e;
    memset(&e, 0, sizeof e);
    int rc = mwi_sasld_new(&p->sd, &cfg, &e);
    wipe(cb, sizeof cb);
    if (rc && automatic && rc == MW_EUNSUPPORTED) return 1;
    if (rc) {
        p->job->err = e;
        mwi_p3l_end(p, rc, "%s", e.message);
        return 0;
    }
    if (!p->user && !p->token && strcasecmp(mwi_sasld_mech_first(p->sd), "EXTERNAL")) {
        mwi_p3l_login_free(p);
        mwi_p3l_end(p, MW_EINVAL, "AUTH needs a user name");
        return 0;
    }
    drive(p, mwi_sasld_start(p->sd));
    return 0;
}

void mwi_loop_pop3_set_login(mw_loop_job *job, mw_token_fn fn, void *ud, int msex)
{
    p3l *p = job->impl;
    p->token_fn = fn;
    p->token_ud = ud;
    p->c.lf_only = msex != 0;
}

void mwi_p3l_login(p3l *p)
{
    switch (p->auth) {
    case MW_POP3_AUTH_NONE:
        mwi_p3l_logged_in(p);
        return;
    case MW_POP3_AUTH_USER:
        start_user(p);
        return;
    case MW_POP3_AUTH_APOP:
        start_apop(p);
        return;
    case MW_POP3_AUTH_SASL:
        start_sasl(p, 0);
        return;
    default:
        if (start_sasl(p, 1) == 1) start_user(p);
        return;
    }
}

void mwi_p3l_login_reply(p3l *p, const p3l_cmd *c, const mw_pop3_status *st)
{
    int ok = st->kind == MW_POP3_OK;
    if (c->kind == K_AUTH) {
        p->in_auth = 0;
        drive(p, mwi_sasld_feed(p->sd, st));
        return;
    }
    if (!ok) {
        mwi_p3l_refuse(p, c, st, MW_EAUTH);
        return;
    }
    if (c->kind == K_USER) {
        if (line_too_long(p, 5 + strlen(p->password), "password")) return;
        char line[P3L_CMD_MAX + 1];
        snprintf(line, sizeof line, "PASS %s", p->password);
        mwi_p3l_set_state(p, S_PASS);
        mwi_p3l_send(p, K_PASS, line, 0, "PASS ****");
        wipe(line, sizeof line);
        return;
    }
    snprintf(p->auth_used, sizeof p->auth_used, "%s", c->kind == K_APOP ? "APOP" : "USER");
    mwi_p3l_logged_in(p); /* PASS or APOP said +OK */
}

void mwi_p3l_logged_in(p3l *p)
{
    p->in_auth = 0;
    if (p->mode == P3L_IDLE) { /* an idle session: logged in, waiting */
        mwi_p3l_set_state(p, S_IDLE);
        p->c.step_deadline = mw_now_ms() + p->idle_noop_ms;
    } else if (p->mode == P3L_CMDS) {
        mwi_p3l_cmds_start(p);
    } else {
        mwi_p3l_fetch_start(p);
    }
}

void mwi_p3l_login_free(p3l *p)
{
    mwi_sasld_free(p->sd);
    p->sd = NULL;
}
