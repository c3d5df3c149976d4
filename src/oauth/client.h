/* Internal: the OAuth client object and what its files share: oauth.c
 * (the client, token requests, refresh, revocation), tokstore.c (the token
 * store and its lock), device.c and pkce.c (the two login flows). */
#ifndef MW_OAUTH_CLIENT_H
#define MW_OAUTH_CLIENT_H

#include "mailwire/oauth.h"
#include "oauth/oauth_int.h"

struct mw_oauth {
    mw_oauth_opts o;
    char *strs[12];   /* owned copies of the option strings */
    char *last_token; /* the last access token handed out (to tell a refusal of it) */
    int last_from_refresh;
};

/* The store's contents. */
typedef struct mwi_oauth_store {
    char *refresh_token, *access_token, *scope;
    long long expires_at, obtained_at, refreshes;
    int rt_external; /* the refresh token is in the secret store (not loaded yet) */
} mwi_oauth_store;

/* Wipes and frees a secret string (NULL is fine). */
void mwi_oauth_wipe_free(char *s);
/* One trace line (no secrets in it) through the options' trace callback. */
void mwi_oauth_trace(const mw_oauth *oa, int dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
long long mwi_oauth_now_s(void);

/* The store file into *s (zeroed first): MW_ESTATE when there is none,
 * MW_EPOLICY when others can read it, MW_EFORMAT when not JSON. */
int mwi_oauth_store_load(const mw_oauth *oa, mwi_oauth_store *s, mw_error *err);
/* Writes the store to a new 0600 file beside it, fsyncs and renames it over
 * the old one: a crash leaves the old or the new store, never half.  The
 * refresh token goes to the secret-store command when one is set. */
int mwi_oauth_store_save(const mw_oauth *oa, const mwi_oauth_store *s, mw_error *err);
void mwi_oauth_store_clear(mwi_oauth_store *s);
/* Exclusive lock on PATH.lock for a refresh; waits at most twice the HTTP
 * timeout (a refresh elsewhere ends by then).  Returns the fd or < 0. */
int mwi_oauth_store_lock(const mw_oauth *oa, mw_error *err);
void mwi_oauth_store_unlock(int fd);
/* Loads the refresh token from the secret store when it lives there. */
int mwi_oauth_secret_get(const mw_oauth *oa, mwi_oauth_store *s, mw_error *err);
/* A login's tokens (r, requested at t0) saved as a new store, locked. */
int mwi_oauth_save_login(mw_oauth *oa, mw_oauth_resp *r, long long t0, mw_error *err);

/* client_id (and client_secret) appended to a form. */
int mwi_oauth_add_client(const mw_oauth *oa, char **form);
/* POSTs form to url and parses the answer as `kind`; traces without
 * secrets.  r is always safe to clear. */
int mwi_oauth_request(const mw_oauth *oa, const char *url, const char *what, const char *form,
                      int kind, long *status, mw_oauth_resp *r, mw_error *err);
/* A token request (RFC 6749 §4.1.3, §6): the caller's form (form_rc the
 * code of its last step), the client's credentials added, POSTed to the
 * token endpoint at *t0; the form is wiped and freed whatever happens.
 * 0 when the answer is a token, else the error (an answer's "error"
 * member included).  r is always safe to clear. */
int mwi_oauth_token_request(const mw_oauth *oa, const char *what, char *form, int form_rc,
                            mw_oauth_resp *r, long long *t0, mw_error *err);
/* Folds a successful token response into the store (keeps the old refresh
 * token when none came, RFC 6749 section 6). */
int mwi_oauth_absorb(mwi_oauth_store *s, mw_oauth_resp *r, long long t0);

#endif
