/* mailwire — OAuth 2.0 tokens for XOAUTH2 / OAUTHBEARER: obtained, stored,
 * refreshed and revoked by the library itself.
 *
 *   device authorization grant (RFC 8628), authorization code with PKCE
 *   (RFC 7636) and a loopback redirect (RFC 8252), refresh (RFC 6749
 *   section 6), revocation (RFC 7009).
 *
 * The refresh token and the cached access token live in one token store
 * file (mode 0600, replaced atomically, locked while a refresh runs so that
 * two processes never spend one rotating refresh token twice).  Tokens are
 * never traced, printed or put in argv or the environment.  HTTP goes
 * through libcurl with the same CA, CRL, pin, client certificate and proxy
 * options as the mail connection; HTTPS is required.  The library never
 * prints: the device flow's "go to URL, enter CODE" and the PKCE flow's
 * "open this URL" are callbacks to the caller.
 *
 *   mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
 *   o.client_id = ...; o.token_url = ...; o.store_path = ...;
 *   mw_oauth *oa; mw_error e;
 *   if (mw_oauth_new(&oa, &o, &e) == 0) {
 *       char *tok;
 *       if (mw_oauth_token(oa, 0, &tok, &e) == 0) { use; mw_oauth_token_free(tok); }
 *       mw_oauth_free(oa);
 *   }
 */
#ifndef MAILWIRE_OAUTH_H
#define MAILWIRE_OAUTH_H

#include "common.h"
#include "error.h"
#include "net.h"
#include "token.h"
#include "trace.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MW_OAUTH_OPTS_VERSION 1
typedef struct mw_oauth_opts {
    unsigned version;
    const char *client_id;     /* required */
    const char *client_secret; /* optional: sent in the body (installed apps' "secret") */
    const char *device_url;    /* device authorization endpoint (RFC 8628 section 3.1) */
    const char *auth_url;      /* authorization endpoint (code + PKCE) */
    const char *token_url;     /* token endpoint; required */
    const char *revoke_url;    /* revocation endpoint (RFC 7009); optional */
    const char *scope;         /* space-separated, e.g. "openid offline_access mail" */
    /* Extra query parameters for the authorization request, "k=v&k2=v2"
     * (e.g. Google's "access_type=offline"); already URL-encoded. */
    const char *auth_params;
    const char *store_path; /* token store file; required */
    /* TLS for the endpoints: ca_file, crl_file, pin (public-key pins only:
     * "sha256:BASE64" of the SubjectPublicKeyInfo), cert_file/key_file. */
    const mw_tls_opts *tls_opts;
    const char *proxy; /* socks5://, socks5h:// or http:// (CONNECT) */
    int timeout_ms;    /* each HTTP request, whole; default 30000 */
    /* Refresh when fewer seconds than this remain (default 60; at most half
     * of the token's lifetime, so short-lived tokens are still used). */
    int refresh_margin_s;
    /* One line per HTTP exchange (method, endpoint, grant type, status,
     * which fields came back) — never a token. */
    mw_trace_fn trace;
    void *trace_userdata;
    /* A secret store for the refresh token instead of the store file
     * (e.g. "secret-tool store --label=mail service mailwire user me" and
     * "secret-tool lookup service mailwire user me", or "pass insert -m -f
     * mail/me" and "pass show mail/me"): store_cmd gets the token on its
     * standard input, lookup_cmd prints it as its first line.  Run with
     * /bin/sh -c; the token is never in their argv or environment.  Either
     * may ask a person (a PIN): the lookup has no deadline, the store five
     * minutes.  The file then holds only the access token cache.  Both
     * or neither. */
    const char *secret_store_cmd;
    const char *secret_lookup_cmd;
} mw_oauth_opts;
#define MW_OAUTH_OPTS_INIT                                                                         \
    {                                                                                              \
        MW_OAUTH_OPTS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,   \
            30000, 60, NULL, NULL, NULL, NULL                                                      \
    }

typedef struct mw_oauth mw_oauth;

/* Checks the options (copies every string).  *out is NULL on failure. */
MW_EXTERN int mw_oauth_new(mw_oauth **out, const mw_oauth_opts *opts, mw_error *err);
MW_EXTERN void mw_oauth_free(mw_oauth *oa);

/* What the user must do for the device flow (RFC 8628 section 3.3). */
typedef struct mw_oauth_device_prompt {
    const char *verification_uri;
    const char *verification_uri_complete; /* NULL when the server sent none */
    const char *user_code;
    int expires_in; /* seconds the code is valid */
    int interval;   /* seconds between polls */
} mw_oauth_device_prompt;
/* Called once with the prompt, then after every poll with prompt NULL and
 * `polls` counted; return nonzero to give up: the login returns that
 * value unchanged (err says the callback stopped it). */
typedef int (*mw_oauth_device_fn)(const mw_oauth_device_prompt *prompt, unsigned polls,
                                  void *userdata);

/* Device authorization grant: asks for a code, hands it to show(), polls
 * the token endpoint (default interval 5 s, +5 s on slow_down) until the
 * user approved, denied or the code expired; stores the tokens.
 * Errors: MW_EAUTH (access_denied), MW_ETIMEOUT (expired_token), others as
 * for any token request (see mw_oauth_refresh). */
MW_EXTERN int mw_oauth_login_device(mw_oauth *oa, mw_oauth_device_fn show, void *userdata,
                                    mw_error *err);

/* Called with the authorization URL (to open in a browser or print).
 * Return nonzero to give up (returned unchanged by the login). */
typedef int (*mw_oauth_browser_fn)(const char *url, void *userdata);
/* Authorization code flow with PKCE S256 and a redirect to a listener on
 * 127.0.0.1 (RFC 8252 section 7.3): waits up to timeout_s for the redirect,
 * checks `state`, exchanges the code, stores the tokens. */
MW_EXTERN int mw_oauth_login_pkce(mw_oauth *oa, mw_oauth_browser_fn open_url, void *userdata,
                                  int timeout_s, mw_error *err);

/* Refresh grant now (under the store's lock; a rotated refresh token is
 * saved before the new access token is handed out).  MW_EAUTH with advice
 * for invalid_grant (revoked or expired: log in again); MW_ETEMP for HTTP
 * 5xx and temporarily_unavailable; MW_EPROTO for malformed JSON;
 * MW_ETOOBIG for a response over 64 KiB; MW_ECERT for the endpoint's
 * certificate; MW_ESTATE when nothing is stored (not logged in). */
MW_EXTERN int mw_oauth_refresh(mw_oauth *oa, mw_error *err);

/* The token provider: an access token valid for at least the refresh
 * margin — the cached one, or a refreshed one.  refused = 1 when a server
 * just refused the last token handed out: refresh once (the server may
 * know better than our clock); a token refused right after a refresh is
 * MW_EAUTH ("check the clock and the scopes").  *token is malloc'd: free
 * it with mw_oauth_token_free (wipes it). */
MW_EXTERN int mw_oauth_token(mw_oauth *oa, int refused, char **token, mw_error *err);
MW_EXTERN void mw_oauth_token_free(char *token);
/* mw_oauth_token as a token provider (token.h) for mw_pop3_opts.token_fn
 * and mw_smtp_opts.token_fn; userdata = the mw_oauth. */
MW_EXTERN int mw_oauth_token_cb(int refused, char **token, mw_error *err, void *userdata);

/* Revokes the refresh token (and the access token) at the revocation
 * endpoint when there is one, then deletes the store.  The store is
 * deleted even when the server could not be reached (then the error is
 * returned after). */
MW_EXTERN int mw_oauth_logout(mw_oauth *oa, mw_error *err);

typedef struct mw_oauth_status {
    int logged_in;         /* a refresh token is stored */
    int have_access;       /* an access token is cached */
    long long expires_at;  /* its expiry, seconds since the epoch (0: unknown) */
    long long obtained_at; /* when the last token response came */
    long long refreshes;   /* refresh grants done since login */
    char scope[512];       /* granted scopes, as the server said */
} mw_oauth_status;
/* Reads the store (no network). */
MW_EXTERN int mw_oauth_get_status(mw_oauth *oa, mw_oauth_status *st, mw_error *err);

#ifdef __cplusplus
}
#endif
#endif
