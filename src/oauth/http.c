/* HTTPS POST to OAuth endpoints through libcurl, with the mail connection's
 * CA, CRL, pin, client certificate and proxy options.
 *
 * libcurl is loaded with dlopen(3) on the first request, not linked: it
 * brings some thirty libraries (GnuTLS, Kerberos, LDAP, ...) whose loading
 * would cost every mailwire process, `mailwire send` from cron included,
 * milliseconds for a feature most runs never use. */
#include "oauth/oauth_int.h"
#include "util/dl.h"
#include "util/err.h"

#define CURL_DISABLE_TYPECHECK /* calls go through the pointers below */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The libcurl calls used here, resolved once per process and read-only
 * after (curl_global_init is not safe to race either). */
static struct {
    CURLcode (*global_init)(long);
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    void (*easy_cleanup)(CURL *);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} lc;
static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static char curl_load_error[200];

static void curl_init(void)
{
    /* dlsym(3) gives void *: each function pointer is stored through
     * void ** (the documented way). */
    static const char *const libs[] = {"libcurl.so.4", NULL};
    const mwi_dl_sym syms[] = {
        {"curl_global_init", (void **)&lc.global_init},
        {"curl_easy_init", (void **)&lc.easy_init},
        {"curl_easy_setopt", (void **)&lc.easy_setopt},
        {"curl_easy_perform", (void **)&lc.easy_perform},
        {"curl_easy_getinfo", (void **)&lc.easy_getinfo},
        {"curl_easy_cleanup", (void **)&lc.easy_cleanup},
        {"curl_easy_strerror", (void **)&lc.easy_strerror},
        {"curl_slist_append", (void **)&lc.slist_append},
        {"curl_slist_free_all", (void **)&lc.slist_free_all},
    };
    if (mwi_dl_load(libs, syms, sizeof syms / sizeof syms[0], curl_load_error,
                    sizeof curl_load_error) != 0)
        return;
    curl_init_rc = lc.global_init(CURL_GLOBAL_DEFAULT);
    if (curl_init_rc != CURLE_OK)
        snprintf(curl_load_error, sizeof curl_load_error, "curl_global_init failed");
}

int mwi_oauth_form_add(char **s, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t old = *s ? strlen(*s) : 0;
    size_t need = old + 1 + strlen(name) + 1 + 3 * strlen(value) + 1;
    char *n = realloc(*s, need);
    if (!n) return MW_ENOMEM;
    char *p = n + old;
    if (old) *p++ = '&';
    size_t nl = strlen(name);
    memcpy(p, name, nl);
    p += nl;
    *p++ = '=';
    for (const unsigned char *v = (const unsigned char *)value; *v; v++) {
        if ((*v >= 'A' && *v <= 'Z') || (*v >= 'a' && *v <= 'z') || (*v >= '0' && *v <= '9') ||
            *v == '-' || *v == '.' || *v == '_' || *v == '~') {
            *p++ = (char)*v;
        } else {
            *p++ = '%';
            *p++ = hex[*v >> 4];
            *p++ = hex[*v & 15];
        }
    }
    *p = '\0';
    *s = n;
    return 0;
}

typedef struct sink {
    char *buf;
    size_t len;
    int over;
} sink;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
    sink *s = ud;
    size_t n = size * nmemb;
    if (s->len + n > MW_OAUTH_MAX_BODY) {
        s->over = 1;
        return 0; /* aborts the transfer: never unbounded memory */
    }
    char *b = realloc(s->buf, s->len + n + 1);
    if (!b) return 0;
    memcpy(b + s->len, ptr, n);
    s->len += n;
    b[s->len] = '\0';
    s->buf = b;
    return n;
}

/* "sha256:B64;sha256:B64" -> curl's "sha256//B64;sha256//B64". */
static char *curl_pin(const char *pin)
{
    /* Each element grows by at most 8 ("sha256//") plus its ';'. */
    size_t elems = 1;
    for (const char *s = pin; *s; s++)
        elems += *s == ';' || *s == ' ';
    char *out = malloc(strlen(pin) + 9 * elems + 1), *p = out;
    if (!out) return NULL;
    for (const char *s = pin; *s;) {
        while (*s == ';' || *s == ' ')
            s++;
        if (!*s) break;
        if (p != out) *p++ = ';';
        if (!strncasecmp(s, "sha256:", 7)) s += 7;
        memcpy(p, "sha256//", 8);
        p += 8;
        while (*s && *s != ';' && *s != ' ')
            *p++ = *s++;
    }
    *p = '\0';
    return out;
}

/* The mail connection's trust settings on handle c: CA, CRL, client
 * certificate, pin (the returned string, which c uses until it is
 * cleaned up; NULL without a pin). */
static char *set_tls(CURL *c, const mw_tls_opts *t)
{
    char *pin = NULL;
    if (t->ca_file) lc.easy_setopt(c, CURLOPT_CAINFO, t->ca_file);
    if (t->ca_dir) lc.easy_setopt(c, CURLOPT_CAPATH, t->ca_dir);
    if (t->crl_file) lc.easy_setopt(c, CURLOPT_CRLFILE, t->crl_file);
    if (t->cert_file) lc.easy_setopt(c, CURLOPT_SSLCERT, t->cert_file);
    if (t->key_file || t->cert_file)
        lc.easy_setopt(c, CURLOPT_SSLKEY, t->key_file ? t->key_file : t->cert_file);
    if (t->pin) {
        pin = curl_pin(t->pin);
        if (pin) lc.easy_setopt(c, CURLOPT_PINNEDPUBLICKEY, pin);
    }
    if (t->insecure) {
        lc.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        lc.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return pin;
}

/* A failed transfer's curl code as the mail connection's codes. */
static int curl_fail(CURLcode cr, const char *url, const char *why, mw_error *err)
{
    switch (cr) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return mwi_err_set(err, MW_ECERT,
                           "OAuth endpoint %.120s: certificate not accepted: %.120s; check "
                           "--cafile/--pin",
                           url, why);
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
        return mwi_err_set(err, MW_ETLS, "OAuth endpoint %.120s: TLS: %.150s", url, why);
    case CURLE_OPERATION_TIMEDOUT:
        return mwi_err_set(err, MW_ETIMEOUT, "OAuth endpoint %.120s: timed out: %.120s", url, why);
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return mwi_err_set(err, MW_EINVAL, "OAuth endpoint %.120s: %.150s", url, why);
    default:
        return mwi_err_set(err, MW_ENET, "OAuth endpoint %.120s: %.150s", url, why);
    }
}

int mwi_oauth_http_post(const mw_oauth_opts *o, const char *url, const char *form, long *status,
                        char **body, size_t *len, mw_error *err)
{
    *body = NULL;
    *len = 0;
    *status = 0;
    if (strncasecmp(url, "https://", 8) != 0)
        return mwi_err_set(err, MW_EPOLICY,
                           "OAuth endpoint %.200s is not https: tokens only go over TLS", url);
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return mwi_err_set(err, MW_EUNSUPPORTED, "OAuth needs libcurl (libcurl.so.4): %s",
                           curl_load_error);
    CURL *c = lc.easy_init();
    if (!c) return mwi_err_set(err, MW_ENOMEM, "out of memory (curl handle)");
    sink s = {NULL, 0, 0};
    char ebuf[CURL_ERROR_SIZE] = "";
    char *pin = NULL;
    struct curl_slist *hdr = lc.slist_append(NULL, "Accept: application/json");
    lc.easy_setopt(c, CURLOPT_URL, url);
    lc.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    lc.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
    lc.easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    lc.easy_setopt(c, CURLOPT_POSTFIELDS, form);
    lc.easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    lc.easy_setopt(c, CURLOPT_WRITEDATA, &s);
    lc.easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    lc.easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)(o->timeout_ms > 0 ? o->timeout_ms : 30000));
    lc.easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    lc.easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    lc.easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    lc.easy_setopt(c, CURLOPT_USERAGENT, "mailwire-oauth");
    /* No proxy from the environment: only the one the caller names. */
    lc.easy_setopt(c, CURLOPT_PROXY, o->proxy ? o->proxy : "");
    if (o->tls_opts) pin = set_tls(c, o->tls_opts);
    CURLcode cr = lc.easy_perform(c);
    int rc = 0;
    if (cr == CURLE_OK) {
        lc.easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        *body = s.buf ? s.buf : strdup("");
        *len = s.len;
        s.buf = NULL;
        if (!*body) rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    } else if (s.over) {
        rc = mwi_err_set(err, MW_ETOOBIG, "OAuth endpoint %.150s: response over %d bytes", url,
                         MW_OAUTH_MAX_BODY);
    } else {
        rc = curl_fail(cr, url, ebuf[0] ? ebuf : lc.easy_strerror(cr), err);
    }
    free(s.buf);
    free(pin);
    lc.slist_free_all(hdr);
    lc.easy_cleanup(c);
    return rc;
}
