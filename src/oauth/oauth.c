/* OAuth 2.0 client (include/mailwire/oauth.h): the client object, token
 * requests, refresh and the token provider, revocation.  The token store
 * is in tokstore.c, the login flows in device.c and pkce.c. */
#include "mailwire/config.h"
#include "mailwire/oauth.h"
#include "oauth/client.h"
#include "oauth/oauth_int.h"
#include "util/err.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void mwi_oauth_wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void mw_oauth_token_free(char *token)
{
    mwi_oauth_wipe_free(token);
}

void mwi_oauth_trace(const mw_oauth *oa, int dir, const char *fmt, ...)
{
    if (!oa->o.trace) return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    oa->o.trace(dir, line, (size_t)n, oa->o.trace_userdata);
}

int mw_oauth_new(mw_oauth **out, const mw_oauth_opts *opts, mw_error *err)
{
    *out = NULL;
    if (!opts || opts->version != MW_OAUTH_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_oauth_new: unknown options version");
    if (!opts->client_id || !opts->client_id[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no client id (oauth_client_id)");
    if (!opts->token_url || !opts->token_url[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no token endpoint (oauth_token_url)");
    if (!opts->store_path || !opts->store_path[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no token store path");
    if (!opts->secret_store_cmd != !opts->secret_lookup_cmd)
        return mwi_err_set(err, MW_EINVAL,
                           "OAuth: a secret store needs both commands (oauth_secret_store and "
                           "oauth_secret_lookup)");
    mw_oauth *oa = calloc(1, sizeof *oa);
    if (!oa) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    oa->o = *opts;
    const char **f[] = {&oa->o.client_id, &oa->o.client_secret, &oa->o.device_url,
                        &oa->o.auth_url,  &oa->o.token_url,     &oa->o.revoke_url,
                        &oa->o.scope,     &oa->o.auth_params,   &oa->o.store_path,
                        &oa->o.proxy};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!*f[i]) continue;
        if (!(oa->strs[i] = strdup(*f[i]))) {
            mw_oauth_free(oa);
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
        *f[i] = oa->strs[i];
    }
    if (oa->o.timeout_ms <= 0) oa->o.timeout_ms = 30000;
    if (oa->o.refresh_margin_s < 0) oa->o.refresh_margin_s = 0;
    *out = oa;
    return 0;
}

void mw_oauth_free(mw_oauth *oa)
{
    if (!oa) return;
    for (size_t i = 0; i < sizeof oa->strs / sizeof oa->strs[0]; i++)
        free(oa->strs[i]);
    mwi_oauth_wipe_free(oa->last_token);
    free(oa);
}

/* ---- token requests ----------------------------------------------------------- */

int mwi_oauth_add_client(const mw_oauth *oa, char **form)
{
    int rc = mwi_oauth_form_add(form, "client_id", oa->o.client_id);
    if (!rc && oa->o.client_secret)
        rc = mwi_oauth_form_add(form, "client_secret", oa->o.client_secret);
    return rc;
}

/* POSTs form to url and parses the answer; traces without secrets. */
int mwi_oauth_request(const mw_oauth *oa, const char *url, const char *what, const char *form,
                      int kind, long *status, mw_oauth_resp *r, mw_error *err)
{
    char *body = NULL;
    size_t len = 0;
    memset(r, 0, sizeof *r);
    r->expires_in = r->interval = -1;
    mwi_oauth_trace(oa, MW_TRACE_SEND, "oauth: POST %.200s (%s)", url, what);
    int rc = mwi_oauth_http_post(&oa->o, url, form, status, &body, &len, err);
    if (rc) {
        mwi_oauth_trace(oa, MW_TRACE_INFO, "oauth: %s", err ? err->message : "HTTP failed");
        return rc;
    }
    rc = mwi_oauth_parse_resp(body, len, *status, kind, r, err);
    OPENSSL_cleanse(body, len);
    free(body);
    if (rc == 0 && r->error)
        mwi_oauth_trace(oa, MW_TRACE_RECV, "oauth: HTTP %ld error=%.60s", *status, r->error);
    else if (rc == 0 && kind == MW_OAUTH_RESP_TOKEN)
        mwi_oauth_trace(oa, MW_TRACE_RECV,
                        "oauth: HTTP %ld access_token=<hidden> expires_in=%lld%s", *status,
                        r->expires_in, r->refresh_token ? " refresh_token=<hidden>" : "");
    else if (rc == 0)
        mwi_oauth_trace(oa, MW_TRACE_RECV,
                        "oauth: HTTP %ld device_code=<hidden> expires_in=%lld interval=%lld",
                        *status, r->expires_in, r->interval);
    else
        mwi_oauth_trace(oa, MW_TRACE_INFO, "oauth: HTTP %ld: %s", *status,
                        err ? err->message : "bad answer");
    return rc;
}

/* Folds a successful token response into the store (keeps the old refresh
 * token when none came, RFC 6749 section 6). */
int mwi_oauth_absorb(mwi_oauth_store *s, mw_oauth_resp *r, long long t0)
{
    mwi_oauth_wipe_free(s->access_token);
    s->access_token = r->access_token;
    r->access_token = NULL;
    if (r->refresh_token) {
        mwi_oauth_wipe_free(s->refresh_token);
        s->refresh_token = r->refresh_token;
        r->refresh_token = NULL;
    }
    if (r->scope) {
        free(s->scope);
        s->scope = r->scope;
        r->scope = NULL;
    }
    /* The lifetime counts from when the request was sent (RFC 6749 section
     * 5.1 gives it relative): never later than the server's clock. */
    s->obtained_at = t0;
    s->expires_at = r->expires_in >= 0 ? t0 + r->expires_in : 0;
    return 0;
}

long long mwi_oauth_now_s(void)
{
    return (long long)time(NULL);
}

static int hand_out(mw_oauth *oa, const mwi_oauth_store *s, int from_refresh, char **token,
                    mw_error *err)
{
    *token = strdup(s->access_token);
    mwi_oauth_wipe_free(oa->last_token);
    oa->last_token = strdup(s->access_token);
    if (!*token || !oa->last_token) {
        mwi_oauth_wipe_free(*token);
        *token = NULL;
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    oa->last_from_refresh = from_refresh;
    return 0;
}

/* The refresh grant on s (already loaded, store locked). */
static int do_refresh(mw_oauth *oa, mwi_oauth_store *s, mw_error *err)
{
    int src = mwi_oauth_secret_get(oa, s, err);
    if (src) return src;
    if (!s->refresh_token || !s->refresh_token[0])
        return mwi_err_set(err, MW_EAUTH,
                           "no refresh token stored (the provider gave none): run `mailwire oauth "
                           "login` again");
    char *form = NULL;
    int rc = mwi_oauth_form_add(&form, "grant_type", "refresh_token");
    if (!rc) rc = mwi_oauth_form_add(&form, "refresh_token", s->refresh_token);
    mw_oauth_resp r;
    long long t0;
    rc = mwi_oauth_token_request(oa, "grant_type=refresh_token", form, rc, &r, &t0, err);
    if (rc == 0) {
        mwi_oauth_absorb(s, &r, t0);
        s->refreshes++;
        /* A rotated refresh token is saved before the access token is used:
         * the old one may already be dead. */
        rc = mwi_oauth_store_save(oa, s, err);
    }
    mwi_oauth_resp_clear(&r);
    return rc;
}

int mwi_oauth_token_request(const mw_oauth *oa, const char *what, char *form, int form_rc,
                            mw_oauth_resp *r, long long *t0, mw_error *err)
{
    memset(r, 0, sizeof *r);
    *t0 = mwi_oauth_now_s();
    if (!form_rc) form_rc = mwi_oauth_add_client(oa, &form);
    if (form_rc) {
        mwi_oauth_wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status;
    int rc =
        mwi_oauth_request(oa, oa->o.token_url, what, form, MW_OAUTH_RESP_TOKEN, &status, r, err);
    mwi_oauth_wipe_free(form);
    if (rc == 0 && r->error) rc = mwi_oauth_error_for(r, "token", err);
    return rc;
}

static int fresh_enough(const mw_oauth *oa, const mwi_oauth_store *s, long long now)
{
    if (!s->access_token || !s->access_token[0]) return 0;
    if (s->expires_at == 0) return 1; /* lifetime unknown: use until refused */
    /* A clock that went back past the time the token came: do not trust
     * the cached expiry. */
    if (s->obtained_at > now + 60) return 0;
    long long life = s->expires_at - s->obtained_at;
    long long margin = oa->o.refresh_margin_s;
    if (life > 0 && margin > life / 2) margin = life / 2;
    return now < s->expires_at - margin;
}

int mw_oauth_refresh(mw_oauth *oa, mw_error *err)
{
    int lk = mwi_oauth_store_lock(oa, err);
    if (lk < 0) return lk;
    mwi_oauth_store s;
    int rc = mwi_oauth_store_load(oa, &s, err);
    if (!rc) rc = do_refresh(oa, &s, err);
    mwi_oauth_store_clear(&s);
    mwi_oauth_store_unlock(lk);
    return rc;
}

int mw_oauth_token(mw_oauth *oa, int refused, char **token, mw_error *err)
{
    *token = NULL;
    if (refused && oa->last_from_refresh)
        return mwi_err_set(err, MW_EAUTH,
                           "the server refused a token just issued by the provider: check the "
                           "account's user name and oauth_scope, and the system clock");
    mwi_oauth_store s;
    int rc = mwi_oauth_store_load(oa, &s, err);
    if (rc) return rc;
    if (!refused && fresh_enough(oa, &s, mwi_oauth_now_s())) {
        rc = hand_out(oa, &s, 0, token, err);
        mwi_oauth_store_clear(&s);
        return rc;
    }
    mwi_oauth_store_clear(&s);
    int lk = mwi_oauth_store_lock(oa, err);
    if (lk < 0) return lk;
    rc = mwi_oauth_store_load(oa, &s, err); /* another process may have refreshed meanwhile */
    if (!rc) {
        int other = refused && s.access_token && oa->last_token &&
                    strcmp(s.access_token, oa->last_token) != 0;
        if ((!refused || other) && fresh_enough(oa, &s, mwi_oauth_now_s())) {
            rc = hand_out(oa, &s, 0, token, err);
        } else {
            if (refused)
                mwi_oauth_trace(oa, MW_TRACE_INFO,
                                "oauth: the server refused the access token; refreshing");
            rc = do_refresh(oa, &s, err);
            if (!rc) rc = hand_out(oa, &s, 1, token, err);
        }
    }
    mwi_oauth_store_clear(&s);
    mwi_oauth_store_unlock(lk);
    return rc;
}

int mw_oauth_token_cb(int refused, char **token, mw_error *err, void *userdata)
{
    return mw_oauth_token(userdata, refused, token, err);
}

int mw_oauth_get_status(mw_oauth *oa, mw_oauth_status *st, mw_error *err)
{
    memset(st, 0, sizeof *st);
    mwi_oauth_store s;
    int rc = mwi_oauth_store_load(oa, &s, err);
    if (rc == MW_ESTATE) {
        mw_error_clear(err);
        return 0;
    }
    if (rc) return rc;
    st->logged_in = (s.refresh_token && s.refresh_token[0]) || s.rt_external;
    st->have_access = s.access_token && s.access_token[0];
    st->expires_at = s.expires_at;
    st->obtained_at = s.obtained_at;
    st->refreshes = s.refreshes;
    if (s.scope) snprintf(st->scope, sizeof st->scope, "%s", s.scope);
    mwi_oauth_store_clear(&s);
    return 0;
}

/* ---- revocation (RFC 7009) ------------------------------------------------------ */

static int revoke_one(mw_oauth *oa, const char *tok, const char *hint, mw_error *err)
{
    char *form = NULL;
    int rc = mwi_oauth_form_add(&form, "token", tok);
    if (!rc) rc = mwi_oauth_form_add(&form, "token_type_hint", hint);
    if (!rc) rc = mwi_oauth_add_client(oa, &form);
    if (rc) {
        mwi_oauth_wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    mwi_oauth_trace(oa, MW_TRACE_SEND, "oauth: POST %.200s (revoke %s)", oa->o.revoke_url, hint);
    rc = mwi_oauth_http_post(&oa->o, oa->o.revoke_url, form, &status, &body, &len, err);
    mwi_oauth_wipe_free(form);
    if (rc) return rc;
    mwi_oauth_trace(oa, MW_TRACE_RECV, "oauth: HTTP %ld", status);
    /* RFC 7009 section 2.2: 200 also for a token already invalid. */
    if (status != 200) {
        mw_oauth_resp r;
        if (mwi_oauth_parse_resp(body, len, status, MW_OAUTH_RESP_TOKEN, &r, err) == 0 && r.error)
            rc = mwi_oauth_error_for(&r, "revocation", err);
        else
            rc = mwi_err_set(err, status >= 500 ? MW_ETEMP : MW_ESERVER,
                             "revocation endpoint: HTTP %ld", status);
        mwi_oauth_resp_clear(&r);
    }
    free(body);
    return rc;
}

int mw_oauth_logout(mw_oauth *oa, mw_error *err)
{
    int lk = mwi_oauth_store_lock(oa, err);
    if (lk < 0) return lk;
    mwi_oauth_store s;
    int rc = mwi_oauth_store_load(oa, &s, err);
    if (rc == MW_ESTATE) {
        mwi_oauth_store_unlock(lk);
        return rc;
    }
    int rrc = 0;
    if (rc == 0 && oa->o.revoke_url && s.rt_external) rrc = mwi_oauth_secret_get(oa, &s, err);
    if (rc == 0 && !rrc && oa->o.revoke_url) {
        if (s.refresh_token) rrc = revoke_one(oa, s.refresh_token, "refresh_token", err);
        if (!rrc && s.access_token) rrc = revoke_one(oa, s.access_token, "access_token", err);
    }
    mwi_oauth_store_clear(&s);
    if (unlink(oa->o.store_path) != 0 && errno != ENOENT) {
        mwi_oauth_store_unlock(lk);
        return mwi_err_set(err, MW_EIO, "token store %.200s: cannot delete (errno %d)",
                           oa->o.store_path, errno);
    }
    mwi_oauth_store_unlock(lk);
    return rrc ? rrc : (rc == MW_EFORMAT ? 0 : rc);
}
