/* TLS over a non-blocking socket for the loop (loop_tls.h): OpenSSL's
 * WANT_READ / WANT_WRITE become the events the job waits for. */
#include "loop/loop_tls.h"
#include "net/tls.h"
#include "mailwire/loop.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct mwi_ltls {
    SSL_CTX *ctx;
    SSL *ssl;
    char host[256];
};

static char *dup_opt(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

int mwi_ltls_cfg_init(mwi_ltls_cfg *cfg, const mw_tls_opts *o, mw_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    mw_tls_opts c = MW_TLS_OPTS_INIT;
    if (o && mw_tls_opts_copy(&c, o) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported", o->version);
    if (c.pin || c.policy || c.cert_file || c.crl_file || c.insecure)
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "TLS pins, policies, client certificates, CRLs and insecure are not "
                           "on the loop yet");
    if (c.min_version != 0 && c.min_version != 12 && c.min_version != 13)
        return mwi_err_set(err, MW_EINVAL, "invalid TLS min_version %d (0, 12 or 13)",
                           c.min_version);
    if (c.servername && strpbrk(c.servername, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "invalid TLS server name");
    int fail = 0;
    cfg->ca_file = dup_opt(c.ca_file, &fail);
    cfg->ca_dir = dup_opt(c.ca_dir, &fail);
    cfg->servername = dup_opt(c.servername, &fail);
    cfg->min_version = c.min_version;
    cfg->handshake_timeout_ms = c.handshake_timeout_ms > 0 ? c.handshake_timeout_ms : 30000;
    if (fail) {
        mwi_ltls_cfg_free(cfg);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    return 0;
}

void mwi_ltls_cfg_free(mwi_ltls_cfg *cfg)
{
    free(cfg->ca_file);
    free(cfg->ca_dir);
    free(cfg->servername);
    memset(cfg, 0, sizeof *cfg);
}

static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    if (!e) {
        snprintf(buf, len, "unknown TLS error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    return buf;
}

void mwi_ltls_free(mwi_ltls *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
}

struct mwi_ltls_cache {
    char *ca_file, *ca_dir;
    int min_version;
    SSL_CTX *ctx;
};

void mwi_ltls_cache_free(mwi_ltls_cache *c)
{
    if (!c) return;
    SSL_CTX_free(c->ctx);
    free(c->ca_file);
    free(c->ca_dir);
    free(c);
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The context: trust store, TLS floor, verification.  One per loop and
 * configuration (the trust store is the bulk of a context's memory). */
static int make_ctx(SSL_CTX **out, const mwi_ltls_cfg *cfg, mw_error *err)
{
    char why[200];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    *out = NULL;
    if (!ctx)
        return mwi_err_set(err, MW_ENOMEM, "cannot create TLS context: %s",
                           ssl_reason(why, sizeof why));
    /* As src/net/tls.c: TLS 1.2 floor (RFC 8996), EOF without
     * close_notify is an end of stream, full verification. */
    SSL_CTX_set_min_proto_version(ctx, cfg->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    int rc = 0;
    if (cfg->ca_file || cfg->ca_dir) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->ca_file, cfg->ca_dir) != 1)
            rc =
                mwi_err_set(err, MW_ETLS, "cannot load CA %s: %s",
                            cfg->ca_file ? cfg->ca_file : cfg->ca_dir, ssl_reason(why, sizeof why));
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rc = mwi_err_set(err, MW_ETLS, "cannot use the system CA store: %s",
                         ssl_reason(why, sizeof why));
    }
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    *out = ctx;
    return 0;
}

int mwi_ltls_new(mwi_ltls **out, const mwi_ltls_cfg *cfg, mwi_ltls_cache **cache, int fd,
                 const char *host, mw_error *err)
{
    char why[200];
    *out = NULL;
    const char *name = cfg->servername ? cfg->servername : host;
    if (!name || !*name) return mwi_err_set(err, MW_EINVAL, "no host name to check against");
    mwi_ltls *t = calloc(1, sizeof *t);
    if (!t) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    snprintf(t->host, sizeof t->host, "%s", name);
    ERR_clear_error();
    int rc = 0;
    mwi_ltls_cache *c = cache ? *cache : NULL;
    if (c && same_str(c->ca_file, cfg->ca_file) && same_str(c->ca_dir, cfg->ca_dir) &&
        c->min_version == cfg->min_version && SSL_CTX_up_ref(c->ctx) == 1) {
        t->ctx = c->ctx;
    } else {
        if ((rc = make_ctx(&t->ctx, cfg, err)) != 0) goto fail;
        mwi_ltls_cache *nc = cache ? calloc(1, sizeof *nc) : NULL;
        if (nc && (!cfg->ca_file || (nc->ca_file = strdup(cfg->ca_file))) &&
            (!cfg->ca_dir || (nc->ca_dir = strdup(cfg->ca_dir))) && SSL_CTX_up_ref(t->ctx) == 1) {
            nc->ctx = t->ctx;
            nc->min_version = cfg->min_version;
            mwi_ltls_cache_free(*cache);
            *cache = nc;
        } else if (nc) {
            free(nc->ca_file);
            free(nc->ca_dir);
            free(nc); /* no cache this time: only memory is lost, not safety */
        }
    }
    if (!(t->ssl = SSL_new(t->ctx)) || SSL_set_fd(t->ssl, fd) != 1) {
        rc = mwi_err_set(err, MW_ENOMEM, "cannot set up TLS: %s", ssl_reason(why, sizeof why));
        goto fail;
    }
    unsigned char addr[16];
    if (inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1) {
        /* RFC 6066 §3: no SNI for an address; the IP SAN is checked. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), name) != 1) {
            rc = mwi_err_set(err, MW_EINVAL, "cannot check address %s", name);
            goto fail;
        }
    } else {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(t->ssl, name) != 1 || SSL_set_tlsext_host_name(t->ssl, name) != 1) {
            rc = mwi_err_set(err, MW_EINVAL, "invalid TLS server name %s", name);
            goto fail;
        }
    }
    *out = t;
    return 0;
fail:
    ERR_clear_error();
    mwi_ltls_free(t);
    return rc;
}

/* An SSL_* result that is not success: wait, end of stream, or error. */
static int ssl_fail(mwi_ltls *t, int r, const char *what, int *want, int *eof, mw_error *err)
{
    char why[200];
    int e = SSL_get_error(t->ssl, r);
    int sys = errno;
    switch (e) {
    case SSL_ERROR_WANT_READ:
        *want = MW_LOOP_IN;
        return 0;
    case SSL_ERROR_WANT_WRITE:
        *want = MW_LOOP_OUT;
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        if (eof) {
            *eof = 1;
            return 0;
        }
        return mwi_err_set(err, MW_ETLS, "%s closed the connection during TLS %s", t->host, what);
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (sys == EAGAIN || sys == EWOULDBLOCK || sys == EINTR) {
            *want = MW_LOOP_IN;
            return 0;
        }
        return mwi_err_set(err, MW_ENET, "TLS %s with %s: %s", what, t->host,
                           sys ? MW_ERRNO_TEXT(sys) : "connection closed");
    default: {
        long vr = SSL_get_verify_result(t->ssl);
        if (vr != X509_V_OK) {
            ERR_clear_error();
            mwi_tls_verify_reason(vr, SSL_get0_peer_certificate(t->ssl), why, sizeof why);
            return mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s", t->host, why);
        }
        int rc = mwi_err_set(err, MW_ETLS, "TLS %s with %s failed: %s", what, t->host,
                             ssl_reason(why, sizeof why));
        ERR_clear_error();
        return rc;
    }
    }
}

int mwi_ltls_handshake(mwi_ltls *t, int *want, mw_error *err)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_connect(t->ssl);
    if (r != 1) {
        int rc = ssl_fail(t, r, "handshake", want, NULL, err);
        return rc ? rc : 0;
    }
    /* SSL_VERIFY_PEER aborted a handshake with a bad chain or name; this is
     * a second look, so no path accepts an unverified peer. */
    if (!SSL_get0_peer_certificate(t->ssl) || SSL_get_verify_result(t->ssl) != X509_V_OK)
        return mwi_err_set(err, MW_ECERT, "certificate of %s not verified", t->host);
    return 1;
}

int mwi_ltls_read(mwi_ltls *t, void *buf, size_t len, size_t *n, int *want, int *eof, mw_error *err)
{
    *n = 0;
    ERR_clear_error();
    errno = 0;
    int w = 0;
    if (SSL_read_ex(t->ssl, buf, len, n) == 1) return 0;
    int rc = ssl_fail(t, 0, "read", &w, eof, err);
    if (!rc && w == MW_LOOP_OUT) *want = MW_LOOP_OUT;
    return rc;
}

int mwi_ltls_write(mwi_ltls *t, const void *buf, size_t len, size_t *n, int *want, mw_error *err)
{
    *n = 0;
    ERR_clear_error();
    errno = 0;
    if (SSL_write_ex(t->ssl, buf, len, n) == 1) return 0;
    return ssl_fail(t, 0, "write", want, NULL, err);
}

const char *mwi_ltls_version(const mwi_ltls *t)
{
    return SSL_get_version(t->ssl);
}

int mwi_lplain_read(int fd, void *buf, size_t len, size_t *n, int *eof, mw_error *err)
{
    *n = 0;
    ssize_t r = recv(fd, buf, len, MSG_DONTWAIT);
    if (r > 0) {
        *n = (size_t)r;
        return 0;
    }
    if (r == 0) {
        *eof = 1;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    return mwi_err_set(err, MW_ENET, "reading: %s", MW_ERRNO_TEXT(errno));
}

int mwi_lplain_write(int fd, const void *buf, size_t len, size_t *n, int *want, mw_error *err)
{
    *n = 0;
    ssize_t r = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r >= 0) {
        *n = (size_t)r;
        return 0;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        *want = MW_LOOP_OUT;
        return 0;
    }
    return mwi_err_set(err, MW_ENET, "writing: %s", MW_ERRNO_TEXT(errno));
}
