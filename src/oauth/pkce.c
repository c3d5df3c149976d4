/* OAuth login with the authorization code grant, PKCE (RFC 7636) and a
 * loopback redirect (RFC 8252 section 7.3). */
#include "mailwire/config.h"
#include "mailwire/oauth.h"
#include "oauth/client.h"
#include "oauth/oauth_int.h"
#include "util/err.h"

#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void b64url(char *out, const unsigned char *in, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The value of name in the query q (up to a space or the end), decoded
 * into out; 1 when found. */
static int query_get(const char *q, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    for (const char *p = q; p && *p && *p != ' ';) {
        const char *amp = strpbrk(p, "& ");
        size_t seglen = amp ? (size_t)(amp - p) : strlen(p);
        if (seglen > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t o = 0;
            for (const char *v = p + nl + 1; v < p + seglen && o + 1 < outsz; v++) {
                if (*v == '%' && v + 2 < p + seglen && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                }
            }
            out[o] = '\0';
            return 1;
        }
        if (!amp || *amp == ' ') break;
        p = amp + 1;
    }
    return 0;
}

static void reply_page(int fd, const char *status, const char *text)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     status, strlen(text), text);
    if (n > 0 && write(fd, buf, (size_t)n) < 0) {
        /* the browser went away: nothing to tell it */
    }
}

/* The PKCE verifier (43 characters, RFC 7636 section 4.1), its S256
 * challenge and the state value, from fresh random bytes. */
static int pkce_secrets(char verifier[64], char state[32], char challenge[64], mw_error *err)
{
    unsigned char rnd[32 + 16];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return mwi_err_set(err, MW_EIO, "no random bytes for PKCE");
    b64url(verifier, rnd, 32);
    b64url(state, rnd + 32, 16);
    unsigned char dg[32];
    unsigned dl = 0;
    EVP_Digest(verifier, strlen(verifier), dg, &dl, EVP_sha256(), NULL);
    b64url(challenge, dg, 32);
    OPENSSL_cleanse(rnd, sizeof rnd);
    return 0;
}

/* A listener on 127.0.0.1, a port the kernel picks; *ls and the redirect
 * URI to it. */
static int listen_loopback(int *ls, char redirect[64], mw_error *err)
{
    *ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*ls < 0) return mwi_err_set(err, MW_EIO, "loopback listener: socket (errno %d)", errno);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(*ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(*ls, 8) != 0 ||
        getsockname(*ls, (struct sockaddr *)&sa, &sl) != 0) {
        close(*ls);
        *ls = -1;
        return mwi_err_set(err, MW_EIO, "loopback listener on 127.0.0.1 (errno %d)", errno);
    }
    snprintf(redirect, 64, "http://127.0.0.1:%u/callback", ntohs(sa.sin_port));
    return 0;
}

/* The authorization URL the browser opens (malloc'd; NULL when out of
 * memory). */
static char *auth_url(const mw_oauth *oa, const char *redirect, const char *state,
                      const char *challenge)
{
    char *q = NULL;
    int rc = mwi_oauth_form_add(&q, "response_type", "code");
    if (!rc) rc = mwi_oauth_form_add(&q, "client_id", oa->o.client_id);
    if (!rc) rc = mwi_oauth_form_add(&q, "redirect_uri", redirect);
    if (!rc && oa->o.scope) rc = mwi_oauth_form_add(&q, "scope", oa->o.scope);
    if (!rc) rc = mwi_oauth_form_add(&q, "state", state);
    if (!rc) rc = mwi_oauth_form_add(&q, "code_challenge", challenge);
    if (!rc) rc = mwi_oauth_form_add(&q, "code_challenge_method", "S256");
    /* A refresh token needs consent on several providers (offline_access). */
    if (!rc) rc = mwi_oauth_form_add(&q, "prompt", "consent");
    char *url = NULL;
    if (!rc) {
        size_t n = strlen(oa->o.auth_url) + strlen(q) + 4 +
                   (oa->o.auth_params ? strlen(oa->o.auth_params) : 0);
        url = malloc(n);
        if (url)
            snprintf(url, n, "%s%c%s%s%s", oa->o.auth_url, strchr(oa->o.auth_url, '?') ? '&' : '?',
                     q, oa->o.auth_params ? "&" : "", oa->o.auth_params ? oa->o.auth_params : "");
    }
    free(q);
    return url;
}

/* One connection to the listener: its request read (at most 8 KiB, within
 * 10 s) and answered.  Returns 1 when it was not the redirect (keep
 * waiting), 0 with the code in code[], or the error. */
static int one_request(int c, const char *state, char *code, size_t codesz, mw_error *err)
{
    char req[8192];
    size_t n = 0;
    long long rdl = mwi_oauth_now_s() + 10;
    while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4) && mwi_oauth_now_s() < rdl) {
        struct pollfd cp = {c, POLLIN, 0};
        if (poll(&cp, 1, 1000) <= 0) continue;
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    req[n] = '\0';
    char st[64] = "", er[64] = "";
    if (strncmp(req, "GET /callback?", 14) != 0) {
        reply_page(c, "404 Not Found", "not here\n");
        return 1;
    }
    const char *qs = req + 14;
    int have_state = query_get(qs, "state", st, sizeof st);
    int rc;
    if (!have_state || CRYPTO_memcmp(st, state, strlen(state) + 1) != 0) {
        /* Not our request (RFC 6749 section 10.12): ignore it. */
        reply_page(c, "400 Bad Request", "state does not match\n");
        return 1;
    }
    if (query_get(qs, "error", er, sizeof er)) {
        reply_page(c, "200 OK", "Login refused. You can close this page.\n");
        mw_oauth_resp r = {0};
        r.error = er;
        rc = mwi_oauth_error_for(&r, "authorization", err);
    } else if (!query_get(qs, "code", code, codesz) || !code[0]) {
        reply_page(c, "400 Bad Request", "no code\n");
        rc = mwi_err_set(err, MW_EPROTO, "authorization redirect without a code");
    } else {
        reply_page(c, "200 OK", "mailwire: login complete. You can close this page.\n");
        rc = 0;
    }
    OPENSSL_cleanse(req, n);
    return rc;
}

/* Waits on the listener for the browser's redirect until timeout_s. */
static int wait_redirect(int ls, int timeout_s, const char *redirect, const char *state, char *code,
                         size_t codesz, mw_error *err)
{
    long long deadline = mwi_oauth_now_s() + (timeout_s > 0 ? timeout_s : 300);
    int rc = 1;
    while (rc == 1) {
        long long left = deadline - mwi_oauth_now_s();
        if (left <= 0)
            return mwi_err_set(err, MW_ETIMEOUT,
                               "no redirect to %s within %d s: the browser step was not finished; "
                               "run `mailwire oauth login` again",
                               redirect, timeout_s);
        struct pollfd pf = {ls, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left > 1 ? 1000 : left * 1000));
        if (pr <= 0) continue;
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        rc = one_request(c, state, code, codesz, err);
        close(c);
    }
    return rc;
}

/* The code exchanged for tokens at the token endpoint, saved. */
static int exchange_code(mw_oauth *oa, const char *code, const char *redirect, const char *verifier,
                         mw_error *err)
{
    char *form = NULL;
    int rc = mwi_oauth_form_add(&form, "grant_type", "authorization_code");
    if (!rc) rc = mwi_oauth_form_add(&form, "code", code);
    if (!rc) rc = mwi_oauth_form_add(&form, "redirect_uri", redirect);
    if (!rc) rc = mwi_oauth_form_add(&form, "code_verifier", verifier);
    mw_oauth_resp r;
    long long t0;
    rc = mwi_oauth_token_request(oa, "grant_type=authorization_code", form, rc, &r, &t0, err);
    if (rc == 0) rc = mwi_oauth_save_login(oa, &r, t0, err);
    mwi_oauth_resp_clear(&r);
    return rc;
}

int mw_oauth_login_pkce(mw_oauth *oa, mw_oauth_browser_fn open_url, void *userdata, int timeout_s,
                        mw_error *err)
{
    if (!oa->o.auth_url)
        return mwi_err_set(err, MW_EINVAL, "OAuth: no authorization endpoint (oauth_auth_url)");
    char verifier[64], state[32], challenge[64], redirect[64];
    int ls = -1;
    int rc = pkce_secrets(verifier, state, challenge, err);
    if (!rc) rc = listen_loopback(&ls, redirect, err);
    if (rc) return rc;
    char *url = auth_url(oa, redirect, state, challenge);
    if (!url) {
        close(ls);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    mwi_oauth_trace(oa, MW_TRACE_INFO, "oauth: waiting for the redirect to %s", redirect);
    int stop = open_url ? open_url(url, userdata) : 0;
    free(url);
    if (stop) {
        close(ls);
        mwi_err_set(err, stop < 0 ? stop : MW_ECANCELED, "login stopped by the callback (%d)",
                    stop);
        return stop;
    }
    char code[2048] = "";
    rc = wait_redirect(ls, timeout_s, redirect, state, code, sizeof code, err);
    close(ls);
    if (!rc) rc = exchange_code(oa, code, redirect, verifier, err);
    OPENSSL_cleanse(code, sizeof code);
    OPENSSL_cleanse(verifier, sizeof verifier);
    return rc;
}
