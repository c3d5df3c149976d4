/* Internal parts of src/oauth: the token-endpoint response parser (fuzzed by
 * tests/fuzz/fuzz_oauth.c) and the HTTP client. */
#ifndef MW_OAUTH_INT_H
#define MW_OAUTH_INT_H

#include "mailwire/error.h"
#include "mailwire/oauth.h"

#include <stddef.h>

#define MW_OAUTH_MAX_BODY  65536 /* a token response is a few KiB at most */
#define MW_OAUTH_MAX_TOKEN 16384

/* What a token or device-authorization endpoint answered (RFC 6749 section
 * 5.1/5.2, RFC 8628 section 3.2).  Strings malloc'd or NULL. */
typedef struct mw_oauth_resp {
    char *error; /* the "error" code of an error response */
    char *error_description;
    char *access_token, *refresh_token, *token_type, *scope;
    long long expires_in; /* -1 when absent */
    char *device_code, *user_code, *verification_uri, *verification_uri_complete;
    long long interval; /* -1 when absent */
} mw_oauth_resp;

enum { MW_OAUTH_RESP_TOKEN = 0, MW_OAUTH_RESP_DEVICE = 1 };

/* Parses body (len bytes, at most MW_OAUTH_MAX_BODY) of an HTTP answer with
 * status http_status.  Returns 0 with r filled for a usable answer — a 200
 * with the fields `kind` needs, or a 400/401 with an "error" (r->error set,
 * the caller decides) — else MW_EPROTO (malformed, or fields of the wrong
 * type), MW_ETOOBIG (over a limit), MW_ETEMP (5xx without an OAuth error),
 * MW_ESERVER (other statuses).  r is always safe to pass to
 * mwi_oauth_resp_clear. */
int mwi_oauth_parse_resp(const char *body, size_t len, long http_status, int kind, mw_oauth_resp *r,
                         mw_error *err);
void mwi_oauth_resp_clear(mw_oauth_resp *r);

/* The named error and advice for an OAuth error code from endpoint `what`
 * ("token", "device"): sets err, returns the mw code. */
int mwi_oauth_error_for(const mw_oauth_resp *r, const char *what, mw_error *err);

/* POSTs form (application/x-www-form-urlencoded, already encoded) to url.
 * On 0, *body (malloc'd, NUL-terminated, *len bytes) and *status are set.
 * MW_ECERT / MW_ETLS / MW_ENET / MW_ETIMEOUT / MW_ETOOBIG / MW_EPOLICY
 * (not https) otherwise. */
int mwi_oauth_http_post(const mw_oauth_opts *o, const char *url, const char *form, long *status,
                        char **body, size_t *len, mw_error *err);

/* Appends "&name=value" (value percent-encoded, RFC 3986 unreserved kept)
 * to the malloc'd string *s; returns 0 or MW_ENOMEM. */
int mwi_oauth_form_add(char **s, const char *name, const char *value);

#endif
