/* TLS streams: an OpenSSL 3 client over any mw_stream, through a BIO whose
 * reads and writes are mw_stream_read/mw_stream_write of the inner stream,
 * so TLS works over TCP, descriptors, callbacks and commands alike, and the
 * inner stream's deadlines and cancel token bound every TLS operation.
 *
 * The BIO is blocking-with-deadline: it never asks OpenSSL to retry, so each
 * SSL_* call either completes or fails with the inner stream's error, which
 * we keep and report instead of OpenSSL's less helpful "syscall" error. */
#include "net/tls.h"
#include "net/stream.h"
#include "util/err.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

/* close_notify on free is best effort and must not hold the caller up. */
#define MW_TLS_SHUTDOWN_MS 1000

struct mw_tls {
    mwi_tls_conf conf;
    mwi_tls_ctx *xctx;
    SSL *ssl;
    BIO_METHOD *meth;
    mw_stream *inner;
    int64_t deadline; /* of the SSL_* call in progress, for the BIO */
    int io_rc;        /* the inner stream's error during that call, or 0 */
    mw_error io_err;
    int eof;         /* the inner stream reported end of stream */
    int established; /* handshake done; close_notify may be sent */
    int failed;      /* a fatal TLS error: no close_notify */
    int nowait;      /* the BIO answers "retry" instead of reading the inner stream */
    int deferred;    /* a read error met after data was returned: the next read's */
    mw_error deferred_err;
    mwi_tls_check chk; /* verification state, the peer (tls_conf.h) */
};

static const mwi_stream_vt tls_vt; /* below */

/* ---- BIO over the inner stream --------------------------------------------- */

static int bio_read_ex(BIO *b, char *buf, size_t len, size_t *readbytes)
{
    struct mw_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (t->nowait) {
        /* Only what OpenSSL already holds may be decrypted now (see
         * mwi_tls_read); the standard non-blocking answer leaves a partial
         * record buffered inside OpenSSL for the next, blocking, read. */
        BIO_set_retry_read(b);
        return 0;
    }
    size_t got = 0;
    int rc = mw_stream_read(t->inner, buf, len, &got, t->deadline, &t->io_err);
    if (rc) {
        t->io_rc = rc;
        return 0;
    }
    if (got == 0) {
        t->eof = 1;
        return 0;
    }
    *readbytes = got;
    return 1;
}

static int bio_write_ex(BIO *b, const char *buf, size_t len, size_t *written)
{
    struct mw_tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    int rc = mw_stream_write(t->inner, buf, len, t->deadline, &t->io_err);
    if (rc) {
        t->io_rc = rc;
        return 0;
    }
    *written = len;
    return 1;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    struct mw_tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* every write already went out */
    case BIO_CTRL_EOF:
        return t ? t->eof : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* ---- set-up --------------------------------------------------------------- */

static void tls_free(struct mw_tls *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees the BIO */
    mwi_tls_ctx_unref(t->xctx);
    mwi_tls_check_free(&t->chk);
    mwi_tls_conf_free(&t->conf);
    BIO_meth_free(t->meth);
    mw_stream_free(t->inner);
}

/* The context (tls_conf.c) and the SSL over a BIO on the inner stream. */
static int setup(struct mw_tls *t, const char *host, mw_error *err)
{
    char why[200];
    int rc = mwi_tls_ctx_new(&t->xctx, &t->conf, err);
    if (rc) return rc;
    SSL_CTX *ctx = mwi_tls_ctx_get(t->xctx);
    /* Read ahead: one read of the inner stream takes in whole records (and
     * several of them) instead of a 5-byte header, then the body. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
    t->ssl = SSL_new(ctx);
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailwire stream");
    BIO *bio = NULL;
    if (!t->ssl || !t->meth || !BIO_meth_set_read_ex(t->meth, bio_read_ex) ||
        !BIO_meth_set_write_ex(t->meth, bio_write_ex) || !BIO_meth_set_ctrl(t->meth, bio_ctrl) ||
        !BIO_meth_set_create(t->meth, bio_create) || !(bio = BIO_new(t->meth)))
        return mwi_err_set(err, MW_ENOMEM, "cannot set up TLS: %s",
                           mwi_tls_ssl_reason(why, sizeof why));
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);
    return mwi_tls_check_setup(&t->chk, t->ssl, &t->conf, host, 1, err);
}

/* A handshake that did not complete, in words. */
static int handshake_failure(struct mw_tls *t, const char *host, mw_error *err)
{
    char why[200];
    const char *who = host ? host : "the server";
    int rc = mwi_tls_check_refused(&t->chk, host, err);
    if (rc) return rc;
    if (t->io_rc)
        return mwi_err_set(err, t->io_rc, "TLS handshake with %s: %s", who, t->io_err.message);
    if (t->eof)
        return mwi_err_set(err, MW_ETLS, "%s closed the connection during the TLS handshake", who);
    return mwi_err_set(err, MW_ETLS, "TLS handshake with %s failed: %s", who,
                       mwi_tls_ssl_reason(why, sizeof why));
}

int mwi_tls_wrap(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts, int64_t deadline_ms,
                 mw_error *err)
{
    if (!out) {
        mw_stream_free(inner);
        return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    }
    *out = NULL;
    if (!inner) return mwi_err_set(err, MW_EINVAL, "no stream to wrap in TLS");
    mwi_tls_conf conf;
    const char *host = NULL;
    int rc = mwi_tls_conf_init(&conf, opts, err);
    if (!rc && (rc = mwi_tls_conf_host(&conf, mwi_stream_host(inner), &host, err)))
        mwi_tls_conf_free(&conf);
    mw_stream *s = NULL;
    if (!rc && !(s = mwi_stream_new(&tls_vt, sizeof(struct mw_tls)))) {
        mwi_tls_conf_free(&conf);
        rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    if (rc) {
        mw_stream_free(inner);
        return rc;
    }
    struct mw_tls *t = s->impl;
    t->conf = conf; /* host is its servername's string or inner's host: both live on */
    t->inner = inner;
    s->inner = inner;
    s->cancel = inner->cancel;
    /* The handshake deadline covers loading the trust store as well. */
    t->deadline = mwi_deadline_min(deadline_ms, t->conf.handshake_timeout_ms);
    ERR_clear_error();
    if ((rc = setup(t, host, err))) goto fail;
    if (SSL_connect(t->ssl) != 1) {
        rc = handshake_failure(t, host, err);
        t->failed = 1;
        goto fail;
    }
    t->established = 1;
    if ((rc = mwi_tls_check_decide(&t->chk, t->ssl, &t->conf, host, err))) goto fail;
    *out = s;
    return 0;
fail:
    ERR_clear_error();
    mw_stream_free(s); /* frees t and inner */
    return rc;
}

int mw_stream_tls(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts, mw_error *err)
{
    return mwi_tls_wrap(out, inner, opts, MW_NO_DEADLINE, err);
}

/* Turns a failed SSL_* call into our error. */
static int io_failure(struct mw_tls *t, int r, const char *what, mw_error *err)
{
    char why[200];
    int e = SSL_get_error(t->ssl, r);
    int rc;
    if (t->io_rc) {
        rc = t->io_rc;
        mwi_err_set(err, rc, "%s", t->io_err.message);
    } else {
        rc = mwi_err_set(err, MW_ETLS, "TLS %s failed: %s", what,
                         e == SSL_ERROR_SSL ? mwi_tls_ssl_reason(why, sizeof why)
                                            : "connection broken");
    }
    /* After a timeout, a cancel or a broken record the TLS state is at an
     * unknown point (maybe mid-record): nothing more can be read or sent,
     * not even close_notify. */
    t->failed = 1;
    ERR_clear_error();
    return rc;
}

static int tls_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline_ms,
                    mw_error *err)
{
    struct mw_tls *t = s->impl;
    if (t->deferred) {
        t->deferred = 0;
        if (err) *err = t->deferred_err;
        return t->deferred_err.code;
    }
    if (t->failed)
        return mwi_err_set(err, MW_ETLS, "TLS connection unusable after an earlier error");
    t->deadline = deadline_ms;
    t->io_rc = 0;
    ERR_clear_error();
    int r = SSL_read_ex(t->ssl, buf, len, got);
    if (r != 1) {
        *got = 0;
        if (SSL_get_error(t->ssl, r) == SSL_ERROR_ZERO_RETURN) return 0;
        return io_failure(t, r, "read", err);
    }
    /* SSL_read returns one record at most, and servers send small ones
     * (Dovecot: ~3.4 KB on average), so a caller asking for 64 KiB got a
     * few KB per call, and each chunk went on to its sink (one write(2) per
     * record for `pop3 retr -o`).  Records already read ahead are decrypted
     * into the same call, without touching the socket: the BIO answers
     * "retry" meanwhile (SSL_ERROR_WANT_READ), so this never waits. */
    while (*got < len && SSL_has_pending(t->ssl)) {
        size_t more = 0;
        t->nowait = 1;
        r = SSL_read_ex(t->ssl, (char *)buf + *got, len - *got, &more);
        t->nowait = 0;
        if (r == 1) {
            *got += more;
            continue;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            ERR_clear_error();
        } else if (e != SSL_ERROR_ZERO_RETURN) {
            /* The data before the error is good: deliver it, and report
             * the error on the next read. */
            io_failure(t, r, "read", &t->deferred_err);
            t->deferred = 1;
        }
        /* close_notify: the next SSL_read reports it again. */
        break;
    }
    return 0;
}

static int tls_write(mw_stream *s, const void *buf, size_t len, size_t *written,
                     int64_t deadline_ms, mw_error *err)
{
    struct mw_tls *t = s->impl;
    if (t->failed)
        return mwi_err_set(err, MW_ETLS, "TLS connection unusable after an earlier error");
    t->deadline = deadline_ms;
    t->io_rc = 0;
    ERR_clear_error();
    size_t done = 0;
    int r = SSL_write_ex(t->ssl, buf, len, &done);
    if (r == 1 && done == len) {
        *written = len;
        return 0;
    }
    return io_failure(t, r, "write", err);
}

/* The inner stream's: TLS has no descriptor of its own.  Bytes OpenSSL
 * already holds do not show there. */
static int tls_pollfd(const mw_stream *s)
{
    return mwi_stream_pollfd(s->inner);
}

static void tls_close(mw_stream *s)
{
    struct mw_tls *t = s->impl;
    if (t->established && !t->failed && !mw_cancel_requested(s->cancel)) {
        /* Send our close_notify (RFC 8446 §6.1) without waiting for the
         * server's: bounded, best effort. */
        t->deadline = mw_now_ms() + MW_TLS_SHUTDOWN_MS;
        SSL_shutdown(t->ssl);
    }
    ERR_clear_error();
    tls_free(t);
    s->inner = NULL;
}

static const mwi_stream_vt tls_vt = {"tls", tls_read, tls_write, tls_pollfd, tls_close};

const mw_tls_peer *mw_stream_tls_peer(const mw_stream *s)
{
    const struct mw_tls *t = s && s->vt == &tls_vt ? s->impl : NULL;
    return t ? mwi_tls_check_peer(&t->chk) : NULL;
}

const char *mwi_stream_channel_binding_best(mw_stream *s, unsigned char *cb, size_t *len)
{
    const struct mw_tls *t = s && s->vt == &tls_vt ? s->impl : NULL;
    *len = 0;
    return t && t->established ? mwi_tls_channel_binding_best(t->ssl, cb, len) : NULL;
}

int mw_stream_channel_binding(mw_stream *s, const char *type, unsigned char *buf, size_t len,
                              size_t *out_len)
{
    if (out_len) *out_len = 0;
    if (!s || !type || !out_len || (!buf && len)) return MW_EINVAL;
    const struct mw_tls *t = s->vt == &tls_vt ? s->impl : NULL;
    if (!t || !t->established) return MW_EUNSUPPORTED;
    return mwi_tls_channel_binding(t->ssl, type, buf, len, out_len);
}
