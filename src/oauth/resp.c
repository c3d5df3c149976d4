/* Token and device-authorization endpoint responses: RFC 6749 section 5.1
 * (success), 5.2 (error), RFC 8628 sections 3.2 and 3.5. */
#include "oauth/oauth_int.h"
#include "util/err.h"

#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

void mwi_oauth_resp_clear(mw_oauth_resp *r)
{
    char **s[] = {&r->error,
                  &r->error_description,
                  &r->access_token,
                  &r->refresh_token,
                  &r->token_type,
                  &r->scope,
                  &r->device_code,
                  &r->user_code,
                  &r->verification_uri,
                  &r->verification_uri_complete};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        if (*s[i]) {
            memset(*s[i], 0, strlen(*s[i])); /* tokens do not linger in freed memory */
            free(*s[i]);
        }
        *s[i] = NULL;
    }
    r->expires_in = -1;
    r->interval = -1;
}

/* A string member: absent = 0 (*out stays NULL); a string of printable
 * ASCII without spaces where `token` is 1 = 0; else MW_EPROTO/MW_ETOOBIG. */
static int get_str(json_object *o, const char *key, int token, char **out, mw_error *err)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    if (!json_object_is_type(v, json_type_string))
        return mwi_err_set(err, MW_EPROTO, "token endpoint: \"%s\" is not a string", key);
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n > MW_OAUTH_MAX_TOKEN)
        return mwi_err_set(err, MW_ETOOBIG, "token endpoint: \"%s\" is %zu bytes (limit %d)", key,
                           n, MW_OAUTH_MAX_TOKEN);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        /* Tokens are VSCHAR (RFC 6749 appendix A.12); other fields are text
         * without control characters (they may be shown to the user). */
        if (c < 0x20 || c == 0x7F || (token && c == ' '))
            return mwi_err_set(err, MW_EPROTO,
                               "token endpoint: \"%s\" holds a control character or space", key);
    }
    *out = strndup(s, n);
    return *out ? 0 : mwi_err_set(err, MW_ENOMEM, "out of memory");
}

/* A number of seconds: an integer, or a string of digits (some servers
 * quote it); absent = -1. */
static int get_secs(json_object *o, const char *key, long long *out, mw_error *err)
{
    json_object *v;
    *out = -1;
    if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null)) return 0;
    long long n = -1;
    if (json_object_is_type(v, json_type_int)) {
        n = (long long)json_object_get_int64(v);
    } else if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        char *end;
        if (*s >= '0' && *s <= '9') {
            n = strtoll(s, &end, 10);
            if (*end) n = -1;
        }
    }
    /* Ten years bounds any lifetime or interval; beyond is nonsense. */
    if (n < 0 || n > 315360000LL)
        return mwi_err_set(err, MW_EPROTO, "token endpoint: \"%s\" is not a number of seconds",
                           key);
    *out = n;
    return 0;
}

/* The body as one JSON object (strict, depth-limited, only white space
 * after it) into *out; else the error its HTTP status explains. */
static int parse_object(const char *body, size_t len, long http_status, json_object **out,
                        mw_error *err)
{
    /* Depth 8: a token response is one flat object. */
    json_tokener *tk = json_tokener_new_ex(8);
    if (!tk) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    json_tokener_set_flags(tk, JSON_TOKENER_STRICT);
    json_object *o = json_tokener_parse_ex(tk, body, (int)len);
    enum json_tokener_error je = json_tokener_get_error(tk);
    if (o && je == json_tokener_success && json_tokener_get_parse_end(tk) < len) {
        /* Trailing bytes after the object: only white space is allowed. */
        for (size_t i = json_tokener_get_parse_end(tk); i < len; i++)
            if (!strchr(" \t\r\n", body[i])) je = json_tokener_error_parse_unexpected;
    }
    json_tokener_free(tk);
    int rc = 0;
    if (!o || je != json_tokener_success || !json_object_is_type(o, json_type_object)) {
        if (http_status >= 500)
            rc = mwi_err_set(err, MW_ETEMP,
                             "token endpoint: HTTP %ld (server error); try again later",
                             http_status);
        else if (http_status != 200 && http_status != 400 && http_status != 401)
            rc = mwi_err_set(err, MW_ESERVER,
                             "token endpoint: HTTP %ld without an OAuth answer; check the "
                             "endpoint URL",
                             http_status);
        else
            rc = mwi_err_set(err, MW_EPROTO, "token endpoint: malformed JSON (HTTP %ld): %s",
                             http_status, o ? "not an object" : json_tokener_error_desc(je));
        json_object_put(o);
        return rc;
    }
    *out = o;
    return 0;
}

/* A device authorization answer's fields (RFC 8628 section 3.2). */
static int device_fields(json_object *o, mw_oauth_resp *r, mw_error *err)
{
    int rc;
    if ((rc = get_str(o, "device_code", 1, &r->device_code, err)) ||
        (rc = get_str(o, "user_code", 0, &r->user_code, err)) ||
        (rc = get_str(o, "verification_uri", 1, &r->verification_uri, err)) ||
        (rc = get_str(o, "verification_uri_complete", 1, &r->verification_uri_complete, err)) ||
        (rc = get_secs(o, "expires_in", &r->expires_in, err)) ||
        (rc = get_secs(o, "interval", &r->interval, err)))
        return rc;
    /* Google says verification_url. */
    if (!r->verification_uri && (rc = get_str(o, "verification_url", 1, &r->verification_uri, err)))
        return rc;
    if (!r->device_code || !r->user_code || !r->verification_uri) {
        return mwi_err_set(err, MW_EPROTO,
                           "device authorization: device_code, user_code or verification_uri "
                           "missing");
    }
    return 0;
}

/* A token answer's fields (RFC 6749 section 5.1): Bearer only. */
static int token_fields(json_object *o, mw_oauth_resp *r, mw_error *err)
{
    int rc;
    if ((rc = get_str(o, "access_token", 1, &r->access_token, err)) ||
        (rc = get_str(o, "refresh_token", 1, &r->refresh_token, err)) ||
        (rc = get_str(o, "token_type", 1, &r->token_type, err)) ||
        (rc = get_str(o, "scope", 0, &r->scope, err)) ||
        (rc = get_secs(o, "expires_in", &r->expires_in, err)))
        return rc;
    if (!r->access_token || !r->access_token[0]) {
        return mwi_err_set(err, MW_EPROTO, "token endpoint: no access_token in the answer");
    }
    if (r->token_type && strcasecmp(r->token_type, "bearer") != 0) {
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "token endpoint: token_type \"%.40s\" (only Bearer is supported)",
                           r->token_type);
    }
    return 0;
}

int mwi_oauth_parse_resp(const char *body, size_t len, long http_status, int kind, mw_oauth_resp *r,
                         mw_error *err)
{
    memset(r, 0, sizeof *r);
    r->expires_in = r->interval = -1;
    if (len > MW_OAUTH_MAX_BODY)
        return mwi_err_set(err, MW_ETOOBIG, "token endpoint: response of %zu bytes (limit %d)", len,
                           MW_OAUTH_MAX_BODY);
    if (memchr(body, '\0', len))
        return mwi_err_set(err, MW_EPROTO, "token endpoint: NUL byte in the response (HTTP %ld)",
                           http_status);
    json_object *o = NULL;
    int rc = parse_object(body, len, http_status, &o, err);
    if (rc) return rc;
    if ((rc = get_str(o, "error", 1, &r->error, err)) ||
        (rc = get_str(o, "error_description", 0, &r->error_description, err)))
        goto out;
    if (r->error) {
        if (http_status == 200) {
            rc = mwi_err_set(err, MW_EPROTO, "token endpoint: \"error\" in an HTTP 200 answer");
        }
        goto out; /* the caller names it (mwi_oauth_error_for) */
    }
    if (http_status >= 500) {
        rc = mwi_err_set(err, MW_ETEMP, "token endpoint: HTTP %ld (server error); try again later",
                         http_status);
        goto out;
    }
    if (http_status != 200) {
        rc = mwi_err_set(err, MW_ESERVER, "token endpoint: HTTP %ld without an OAuth error code",
                         http_status);
        goto out;
    }
    rc = kind == MW_OAUTH_RESP_DEVICE ? device_fields(o, r, err) : token_fields(o, r, err);
out:
    json_object_put(o);
    return rc;
}

int mwi_oauth_error_for(const mw_oauth_resp *r, const char *what, mw_error *err)
{
    const char *e = r->error ? r->error : "";
    const char *d = r->error_description ? r->error_description : "";
    if (!strcmp(e, "invalid_grant"))
        return mwi_err_set(err, MW_EAUTH,
                           "%s endpoint: invalid_grant: the grant was revoked, expired or already "
                           "used (%.100s); run `mailwire oauth login` again",
                           what, d);
    if (!strcmp(e, "access_denied"))
        return mwi_err_set(err, MW_EAUTH,
                           "%s endpoint: access_denied: the user or the provider refused "
                           "access (%.100s); run `mailwire oauth login` again to retry",
                           what, d);
    if (!strcmp(e, "expired_token"))
        return mwi_err_set(err, MW_ETIMEOUT,
                           "%s endpoint: expired_token: the code was not approved in time; "
                           "run `mailwire oauth login` again",
                           what);
    if (!strcmp(e, "invalid_client") || !strcmp(e, "unauthorized_client"))
        return mwi_err_set(err, MW_EAUTH,
                           "%s endpoint: %s: the provider does not accept this client "
                           "(%.100s); check oauth_client_id / oauth_client_secret",
                           what, e, d);
    if (!strcmp(e, "invalid_scope"))
        return mwi_err_set(err, MW_EAUTH, "%s endpoint: invalid_scope (%.100s); check oauth_scope",
                           what, d);
    if (!strcmp(e, "temporarily_unavailable") || !strcmp(e, "server_error"))
        return mwi_err_set(err, MW_ETEMP, "%s endpoint: %s (%.100s); try again later", what, e, d);
    if (!strcmp(e, "authorization_pending") || !strcmp(e, "slow_down"))
        return mwi_err_set(err, MW_EPROTO, "%s endpoint: %s outside of device polling", what, e);
    char safe[64];
    mwi_copy_printable(safe, sizeof safe, e, strlen(e));
    return mwi_err_set(err, MW_ESERVER, "%s endpoint: error \"%s\" (%.100s)", what, safe, d);
}
