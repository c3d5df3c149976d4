/* TLS over a non-blocking socket for the loop (loop_tls.h): OpenSSL's
 * WANT_READ / WANT_WRITE become the events the job waits for. */
#include "loop/loop_tls.h"
#include "net/tls_conf.h"
#include "mailwire/loop.h"
#include "util/err.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct mwi_ltls {
    mwi_tls_ctx *xctx;
    SSL *ssl;
    const mwi_tls_conf *conf; /* the job's (lconn.h), which outlives this */
    mwi_tls_check chk;
    int up;        /* handshake done, certificate accepted */
    int keep_peer; /* the peer stays after the decision (mwi_ltls_peer) */
    char host[256];
};

int mwi_ltls_cfg_init(mwi_ltls_cfg *cfg, const mw_tls_opts *o, mw_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    int rc = mwi_tls_conf_init(&cfg->conf, o, err);
    if (rc) return rc;
    /* The loop always has a deadline: the default when none is given. */
    int ms = cfg->conf.handshake_timeout_ms;
    cfg->handshake_timeout_ms = ms > 0 ? ms : 30000;
    return 0;
}

void mwi_ltls_cfg_free(mwi_ltls_cfg *cfg)
{
    mwi_tls_conf_free(&cfg->conf);
    memset(cfg, 0, sizeof *cfg);
}

void mwi_ltls_free(mwi_ltls *t)
{
    if (!t) return;
    SSL_free(t->ssl);
    mwi_tls_ctx_unref(t->xctx);
    mwi_tls_check_free(&t->chk);
    free(t);
}

/* The context of the last configuration used, with the files and floor it
 * was made from (mwi_tls_conf_same_ctx). */
struct mwi_ltls_cache {
    mwi_tls_conf key;
    mwi_tls_ctx *xctx;
};

void mwi_ltls_cache_free(mwi_ltls_cache *c)
{
    if (!c) return;
    mwi_tls_ctx_unref(c->xctx);
    mwi_tls_conf_free(&c->key);
    free(c);
}

/* Keeps x as the loop's context for conf; only memory is lost, not
 * safety, when there is no room for that. */
static void cache_put(mwi_ltls_cache **cache, const mwi_tls_conf *conf, mwi_tls_ctx *x)
{
    mwi_ltls_cache *nc = calloc(1, sizeof *nc);
    if (!nc) return;
    mw_tls_opts o = MW_TLS_OPTS_INIT;
    o.ca_file = conf->ca_file;
    o.ca_dir = conf->ca_dir;
    o.cert_file = conf->cert_file;
    o.key_file = conf->key_file;
    o.crl_file = conf->crl_file;
    o.min_version = conf->min_version;
    if (mwi_tls_conf_init(&nc->key, &o, NULL) != 0) {
        free(nc);
        return;
    }
    nc->xctx = mwi_tls_ctx_ref(x);
    mwi_ltls_cache_free(*cache);
    *cache = nc;
}

/* The context: one per loop and configuration (the trust store is the
 * bulk of a context's memory), made as src/net/tls.c makes its own. */
static int get_ctx(mwi_ltls *t, const mwi_ltls_cfg *cfg, mwi_ltls_cache **cache, mw_error *err)
{
    mwi_ltls_cache *c = cache ? *cache : NULL;
    if (c && mwi_tls_conf_same_ctx(&c->key, &cfg->conf)) {
        t->xctx = mwi_tls_ctx_ref(c->xctx);
        return 0;
    }
    int rc = mwi_tls_ctx_new(&t->xctx, &cfg->conf, err);
    if (!rc && cache) cache_put(cache, &cfg->conf, t->xctx);
    return rc;
}

int mwi_ltls_new(mwi_ltls **out, const mwi_ltls_cfg *cfg, mwi_ltls_cache **cache, int fd,
                 const char *host, mw_error *err)
{
    char why[200];
    *out = NULL;
    const char *name = NULL;
    int rc = mwi_tls_conf_host(&cfg->conf, host, &name, err);
    if (rc) return rc;
    mwi_ltls *t = calloc(1, sizeof *t);
    if (!t) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    snprintf(t->host, sizeof t->host, "%s", name ? name : "the server");
    t->conf = &cfg->conf;
    ERR_clear_error();
    if ((rc = get_ctx(t, cfg, cache, err)) != 0) goto fail;
    if (!(t->ssl = SSL_new(mwi_tls_ctx_get(t->xctx))) || SSL_set_fd(t->ssl, fd) != 1) {
        rc = mwi_err_set(err, MW_ENOMEM, "cannot set up TLS: %s",
                         mwi_tls_ssl_reason(why, sizeof why));
        goto fail;
    }
    SSL_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                             SSL_MODE_RELEASE_BUFFERS);
    t->keep_peer = cfg->keep_peer;
    if ((rc = mwi_tls_check_setup(&t->chk, t->ssl, t->conf, name, t->keep_peer, err)) != 0)
        goto fail;
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
        if (!sys && !eof && !strcmp(what, "handshake"))
            return mwi_err_set(err, MW_ETLS, "%s closed the connection during the TLS handshake",
                               t->host);
        return mwi_err_set(err, MW_ENET, "TLS %s with %s: %s", what, t->host,
                           sys ? MW_ERRNO_TEXT(sys) : "connection closed");
    default: {
        /* OpenSSL ended the handshake on the chain or the name: the words
         * of src/net/tls.c (tls_conf.c). */
        int rc = mwi_tls_check_refused(&t->chk, t->host, err);
        if (!rc)
            rc = mwi_err_set(err, MW_ETLS, "TLS %s with %s failed: %s", what, t->host,
                             mwi_tls_ssl_reason(why, sizeof why));
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
    /* Pin, policy, verification, as the blocking stream decides. */
    int rc = mwi_tls_check_decide(&t->chk, t->ssl, t->conf, t->host, err);
    if (rc) return rc;
    /* The loop shows no peer after the decision unless asked: its copy
     * goes (memory per session, bench/idle: the check left is a few words). */
    if (!t->keep_peer) mwi_tls_check_free(&t->chk);
    t->up = 1;
    return 1;
}

const mw_tls_peer *mwi_ltls_peer(const mwi_ltls *t)
{
    return t && t->up && t->keep_peer ? mwi_tls_check_peer(&t->chk) : NULL;
}

const char *mwi_ltls_channel_binding_best(mwi_ltls *t, unsigned char *cb, size_t *len)
{
    *len = 0;
    return t && t->up ? mwi_tls_channel_binding_best(t->ssl, cb, len) : NULL;
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
