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
#include "util/base64.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>

#define MW_TLS_MAX_PINS 8
/* close_notify on free is best effort and must not hold the caller up. */
#define MW_TLS_SHUTDOWN_MS 1000

struct mw_tls {
    SSL_CTX *ctx;
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
    mw_tls_peer peer;
    unsigned char *der;
    char subject[256];
    char issuer[256];
    char verify_error[320];
    long first_vr;  /* the first verification error seen, or X509_V_OK */
    X509 *bad_cert; /* the certificate it was about (for names), ref held */
    int strict;
    X509_LOOKUP_METHOD *lazy_meth; /* the system bundle, loaded on demand */
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

/* Keeps the first verification error and its certificate: with a strict
 * check OpenSSL stops the handshake before the peer certificate is stored
 * in the session, and without one later errors would overwrite the first. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct mw_tls *t = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!t) return preverify_ok;
    if (!preverify_ok && t->first_vr == X509_V_OK) {
        t->first_vr = X509_STORE_CTX_get_error(xs);
        X509 *leaf = X509_STORE_CTX_get0_cert(xs);
        if (leaf && X509_up_ref(leaf)) t->bad_cert = leaf;
    }
    return t->strict ? preverify_ok : 1;
}

/* ---- errors -------------------------------------------------------------- */

/* The first OpenSSL error of this thread, in words. */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_error();
    if (!e) return "no further detail";
    const char *r = ERR_reason_error_string(e);
    if (r)
        snprintf(buf, len, "%s", r);
    else
        ERR_error_string_n(e, buf, len);
    return buf;
}

/* The DNS and IP names a certificate is for, for a mismatch message. */
static void cert_names(X509 *cert, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        char one[128] = "";
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *s = gn->d.dNSName;
            mwi_copy_printable(one, sizeof one, (const char *)ASN1_STRING_get0_data(s),
                               (size_t)ASN1_STRING_length(s));
        } else if (gn->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = gn->d.iPAddress;
            int l = ASN1_STRING_length(s);
            if (l == 4 || l == 16)
                inet_ntop(l == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), one, sizeof one);
        }
        if (one[0] && used + strlen(one) + 3 < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? ", " : "", one);
    }
    GENERAL_NAMES_free(names);
    if (!used) {
        X509_NAME *subj = X509_get_subject_name(cert);
        int idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
        const ASN1_STRING *cn =
            idx >= 0 ? X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx)) : NULL;
        if (cn)
            mwi_copy_printable(buf, len, (const char *)ASN1_STRING_get0_data(cn),
                               (size_t)ASN1_STRING_length(cn));
        else
            snprintf(buf, len, "no names");
    }
}

/* Why verification failed, in the words tests and users look for (tls.h). */
void mwi_tls_verify_reason(long vr, X509 *cert, char *buf, size_t len)
{
    char names[200];
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        snprintf(buf, len, "certificate has expired");
        return;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        snprintf(buf, len, "certificate is not yet valid");
        return;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        snprintf(buf, len, "self-signed certificate");
        return;
    case X509_V_ERR_CERT_REVOKED:
        snprintf(buf, len, "certificate revoked (by the CRL given)");
        return;
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        snprintf(buf, len, "no CRL covers a certificate of the chain (CRL checking is on)");
        return;
    case X509_V_ERR_CRL_HAS_EXPIRED:
        snprintf(buf, len, "the CRL has expired (its next update is past)");
        return;
    case X509_V_ERR_CRL_NOT_YET_VALID:
        snprintf(buf, len, "the CRL is not yet valid");
        return;
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        snprintf(buf, len, "the CRL's signature does not verify");
        return;
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        if (cert)
            cert_names(cert, names, sizeof names);
        else
            snprintf(names, sizeof names, "unknown names");
        snprintf(buf, len, "host name mismatch (certificate is for %s)", names);
        return;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        snprintf(buf, len, "unable to get local issuer certificate (CA not trusted)");
        return;
    }
    snprintf(buf, len, "%s", X509_verify_cert_error_string(vr));
}

/* ---- pins ------------------------------------------------------------------ */

/* "sha256:BASE64[;sha256:BASE64...]" → up to MW_TLS_MAX_PINS digests. */
static int parse_pins(const char *spec, unsigned char pins[][32], int *npins, mw_error *err)
{
    *npins = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l < 7 || strncmp(p, "sha256:", 7) != 0 || l - 7 != 44 || *npins == MW_TLS_MAX_PINS)
            return mwi_err_set(err, MW_EINVAL,
                               "invalid pin: expected sha256:BASE64 of a 32-byte digest (at most "
                               "%d, separated by ';')",
                               MW_TLS_MAX_PINS);
        unsigned char tmp[33];
        if (mwi_base64_decode_strict(tmp, p + 7, 44) != 32)
            return mwi_err_set(err, MW_EINVAL, "invalid pin: the base64 digest is not 32 bytes");
        memcpy(pins[(*npins)++], tmp, 32);
        p += l;
        if (*p == ';') p++;
    }
    if (*npins == 0) return mwi_err_set(err, MW_EINVAL, "invalid pin: empty");
    return 0;
}

void mwi_tls_pin_text(const unsigned char d[32], char out[52])
{
    memcpy(out, "sha256:", 7);
    mwi_base64_encode(out + 7, d, 32);
}

/* ---- peer ------------------------------------------------------------------- */

static int fill_peer(struct mw_tls *t, X509 *cert)
{
    mw_tls_peer *p = &t->peer;
    memset(p, 0, sizeof *p);
    X509_NAME_oneline(X509_get_subject_name(cert), t->subject, sizeof t->subject);
    X509_NAME_oneline(X509_get_issuer_name(cert), t->issuer, sizeof t->issuer);
    p->subject = t->subject;
    p->issuer = t->issuer;
    int l = i2d_X509(cert, NULL);
    if (l <= 0 || !(t->der = malloc((size_t)l))) return MW_ENOMEM;
    unsigned char *w = t->der;
    i2d_X509(cert, &w);
    p->der = t->der;
    p->der_len = (size_t)l;
    unsigned int hl = 0;
    if (!EVP_Digest(t->der, (size_t)l, p->cert_sha256, &hl, EVP_sha256(), NULL)) return MW_ENOMEM;
    unsigned char *spki = NULL;
    int sl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
    if (sl <= 0) return MW_ENOMEM;
    int ok = EVP_Digest(spki, (size_t)sl, p->spki_sha256, &hl, EVP_sha256(), NULL);
    OPENSSL_free(spki);
    if (!ok) return MW_ENOMEM;
    p->protocol = SSL_get_version(t->ssl);
    p->cipher = SSL_get_cipher_name(t->ssl);
    p->verify_error = t->verify_error;
    return 0;
}

/* ---- set-up --------------------------------------------------------------- */

/* ---- the system trust store, lazily ------------------------------------------
 * SSL_CTX_set_default_verify_paths() parses the whole system bundle (~140
 * certificates) for every connection: 63 ms per handshake measured here at
 * -O2.  Instead the hashed directory is asked first (OpenSSL reads only the
 * issuer it needs), and the bundle is loaded only when the directory does
 * not have the issuer: with the same sources OpenSSL's defaults use
 * (including its SSL_CERT_DIR / SSL_CERT_FILE overrides, read by OpenSSL). */

static X509_STORE *lazy_bundle(X509_LOOKUP *lu)
{
    X509_STORE *b = X509_LOOKUP_get_method_data(lu);
    if (b) return b;
    b = X509_STORE_new();
    X509_LOOKUP *file = b ? X509_STORE_add_lookup(b, X509_LOOKUP_file()) : NULL;
    /* A missing bundle is not an error here: nothing more is trusted. */
    if (file) X509_LOOKUP_load_file(file, NULL, X509_FILETYPE_DEFAULT);
    ERR_clear_error();
    if (b && !X509_LOOKUP_set_method_data(lu, b)) {
        X509_STORE_free(b);
        b = NULL;
    }
    return b;
}

static int lazy_get_by_subject(X509_LOOKUP *lu, X509_LOOKUP_TYPE type, const X509_NAME *name,
                               X509_OBJECT *ret)
{
    if (type != X509_LU_X509) return 0;
    X509_STORE *b = lazy_bundle(lu), *store = X509_LOOKUP_get_store(lu);
    if (!b || !store) return 0;
    /* As OpenSSL's own file and directory lookups do: every certificate of
     * that name goes into the connection's store, where the chain builder
     * also looks for alternatives (same name, other key). */
    STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(b);
    int idx = X509_OBJECT_idx_by_subject(objs, type, (X509_NAME *)name);
    if (idx < 0) return 0;
    for (int i = idx; i < sk_X509_OBJECT_num(objs); i++) {
        X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
        if (!x || X509_NAME_cmp(X509_get_subject_name(x), name) != 0) break;
        X509_STORE_add_cert(store, x);
    }
    ERR_clear_error();
    if (!X509_STORE_lock(store)) return 0;
    X509_OBJECT *found =
        X509_OBJECT_retrieve_by_subject(X509_STORE_get0_objects(store), type, (X509_NAME *)name);
    X509 *x = found ? X509_OBJECT_get0_X509(found) : NULL;
    int ok = x && X509_OBJECT_set1_X509(ret, x) == 1;
    X509_STORE_unlock(store);
    if (!ok) return 0;
    /* Like OpenSSL's own lookups, hand back a BORROWED reference (the store
     * keeps the certificate alive): X509_STORE_CTX_get_by_subject() takes its
     * own reference from the object and never releases the one set1 took. */
    X509_free(x);
    return 1;
}

static void lazy_free(X509_LOOKUP *lu)
{
    X509_STORE_free(X509_LOOKUP_get_method_data(lu));
}

static int use_system_store(struct mw_tls *t)
{
    X509_STORE *store = SSL_CTX_get_cert_store(t->ctx);
    X509_LOOKUP *dir = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
    if (!dir || X509_LOOKUP_add_dir(dir, NULL, X509_FILETYPE_DEFAULT) != 1) return -1;
    t->lazy_meth = X509_LOOKUP_meth_new("mailwire lazy system bundle");
    if (!t->lazy_meth || !X509_LOOKUP_meth_set_get_by_subject(t->lazy_meth, lazy_get_by_subject) ||
        !X509_LOOKUP_meth_set_free(t->lazy_meth, lazy_free))
        return -1;
    return X509_STORE_add_lookup(store, t->lazy_meth) ? 0 : -1;
}

static void tls_free(struct mw_tls *t)
{
    if (!t) return;
    SSL_free(t->ssl); /* frees the BIO */
    SSL_CTX_free(t->ctx);
    X509_LOOKUP_meth_free(t->lazy_meth); /* after the store that used it */
    X509_free(t->bad_cert);
    BIO_meth_free(t->meth);
    mw_stream_free(t->inner);
    free(t->der);
}

static int is_ip_literal(const char *h)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

int mw_tls_opts_copy(mw_tls_opts *dst, const mw_tls_opts *src)
{
    mw_tls_opts d = MW_TLS_OPTS_INIT;
    *dst = d;
    if (!src) return 0;
    if (src->version == 1) {
        /* Version 1 ends before crl_file: copy only what it has. */
        memcpy(dst, src, offsetof(mw_tls_opts, crl_file));
        dst->version = MW_TLS_OPTS_VERSION;
        return 0;
    }
    if (src->version != MW_TLS_OPTS_VERSION) return MW_EINVAL;
    *dst = *src;
    return 0;
}

/* The CRLs of o->crl_file into the context's store, and checking on. */
static int load_crls(struct mw_tls *t, const char *file, mw_error *err)
{
    char why[200];
    X509_STORE *store = SSL_CTX_get_cert_store(t->ctx);
    X509_LOOKUP *lu = store ? X509_STORE_add_lookup(store, X509_LOOKUP_file()) : NULL;
    int n = lu ? X509_load_crl_file(lu, file, X509_FILETYPE_PEM) : 0;
    if (n <= 0)
        return mwi_err_set(err, MW_ETLS, "cannot load CRLs from %s: %s", file,
                           ssl_reason(why, sizeof why));
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return 0;
}

static int setup_ctx(struct mw_tls *t, const mw_tls_opts *o, int strict, mw_error *err)
{
    char why[200];
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx)
        return mwi_err_set(err, MW_ENOMEM, "cannot create TLS context: %s",
                           ssl_reason(why, sizeof why));
    /* TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1). */
    SSL_CTX_set_min_proto_version(t->ctx, o->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* POP3 and SMTP end their data themselves, and many servers close
     * without close_notify: a bare EOF is end of stream, not an error. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    /* Read ahead: one read of the inner stream takes in whole records (and
     * several of them) instead of a 5-byte header, then the body. */
    SSL_CTX_set_read_ahead(t->ctx, 1);
    SSL_CTX_set_default_read_buffer_len(t->ctx, 64 * 1024);
    if (o->ca_file || o->ca_dir) {
        if (SSL_CTX_load_verify_locations(t->ctx, o->ca_file, o->ca_dir) != 1)
            return mwi_err_set(err, MW_ETLS, "cannot load CA %s %s: %s",
                               o->ca_file ? "file" : "directory",
                               o->ca_file ? o->ca_file : o->ca_dir, ssl_reason(why, sizeof why));
    } else if (use_system_store(t) != 0) {
        return mwi_err_set(err, MW_ETLS, "cannot use the system CA store: %s",
                           ssl_reason(why, sizeof why));
    }
    if (o->crl_file) {
        int rc = load_crls(t, o->crl_file, err);
        if (rc) return rc;
    }
    if (o->cert_file) {
        const char *key = o->key_file ? o->key_file : o->cert_file;
        if (SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1)
            return mwi_err_set(err, MW_ETLS, "cannot load client certificate %s: %s", o->cert_file,
                               ssl_reason(why, sizeof why));
        if (SSL_CTX_use_PrivateKey_file(t->ctx, key, SSL_FILETYPE_PEM) != 1)
            return mwi_err_set(err, MW_ETLS, "cannot load client key %s: %s", key,
                               ssl_reason(why, sizeof why));
        if (SSL_CTX_check_private_key(t->ctx) != 1)
            return mwi_err_set(err, MW_ETLS, "client key %s does not match certificate %s", key,
                               o->cert_file);
    }
    /* Strict: OpenSSL aborts the handshake itself on a bad chain (and tells
     * the server why).  Otherwise we decide after the handshake (pin,
     * policy, insecure), from the verification result OpenSSL still keeps. */
    t->strict = strict;
    SSL_CTX_set_verify(t->ctx, strict ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, verify_cb);
    return 0;
}

static int setup_ssl(struct mw_tls *t, const char *host, mw_error *err)
{
    char why[200];
    t->ssl = SSL_new(t->ctx);
    t->meth = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "mailwire stream");
    BIO *bio = NULL;
    if (!t->ssl || !t->meth || !BIO_meth_set_read_ex(t->meth, bio_read_ex) ||
        !BIO_meth_set_write_ex(t->meth, bio_write_ex) || !BIO_meth_set_ctrl(t->meth, bio_ctrl) ||
        !BIO_meth_set_create(t->meth, bio_create) || !(bio = BIO_new(t->meth)))
        return mwi_err_set(err, MW_ENOMEM, "cannot set up TLS: %s", ssl_reason(why, sizeof why));
    BIO_set_data(bio, t);
    SSL_set_app_data(t->ssl, t);
    SSL_set_bio(t->ssl, bio, bio);
    if (!host) return 0;
    if (is_ip_literal(host)) {
        /* RFC 6066 §3: no SNI for address literals; check the IP SAN. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) != 1)
            return mwi_err_set(err, MW_EINVAL, "cannot check address %s", host);
    } else {
        SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(t->ssl, host) != 1 || SSL_set_tlsext_host_name(t->ssl, host) != 1)
            return mwi_err_set(err, MW_EINVAL, "invalid TLS server name %s", host);
    }
    return 0;
}

/* After the handshake: pin, policy, verification — in that order. */
static int decide(struct mw_tls *t, const mw_tls_opts *o, const char *host,
                  unsigned char pins[][32], int npins, mw_error *err)
{
    const char *who = host ? host : "the server";
    X509 *cert = SSL_get0_peer_certificate(t->ssl);
    if (!cert) return mwi_err_set(err, MW_ECERT, "%s presented no certificate", who);
    long vr = t->first_vr != X509_V_OK ? t->first_vr : SSL_get_verify_result(t->ssl);
    if (vr != X509_V_OK) mwi_tls_verify_reason(vr, cert, t->verify_error, sizeof t->verify_error);
    if (fill_peer(t, cert)) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    t->peer.verified = vr == X509_V_OK;
    int pinned = 0;
    for (int i = 0; i < npins; i++)
        if (!memcmp(pins[i], t->peer.cert_sha256, 32) || !memcmp(pins[i], t->peer.spki_sha256, 32))
            pinned = 1;
    if (npins && !pinned) {
        char want[52], gc[52], gk[52];
        mwi_tls_pin_text(pins[0], want);
        mwi_tls_pin_text(t->peer.cert_sha256, gc);
        mwi_tls_pin_text(t->peer.spki_sha256, gk);
        return mwi_err_set(err, MW_ECERT,
                           "certificate of %s not accepted: pin mismatch: expected %s%s, got %s "
                           "(certificate) / %s (public key)",
                           who, want, npins > 1 ? " (or another pin)" : "", gc, gk);
    }
    if (o->policy) {
        if (o->policy(&t->peer, o->policy_userdata) != 0) {
            if (t->peer.verified)
                return mwi_err_set(err, MW_ECERT,
                                   "certificate of %s refused by the caller's policy", who);
            return mwi_err_set(
                err, MW_ECERT,
                "certificate of %s refused by the caller's policy (not verified: %s)", who,
                t->verify_error);
        }
        return 0;
    }
    /* A matching pin is enough (mw_tls_opts.pin); insecure is explicit. */
    if (pinned || o->insecure || t->peer.verified) return 0;
    return mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s", who, t->verify_error);
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
    mw_tls_opts copy;
    const mw_tls_opts *o = &copy;
    unsigned char pins[MW_TLS_MAX_PINS][32];
    int npins = 0, rc = 0;
    if (mw_tls_opts_copy(&copy, opts) != 0)
        rc = mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported", opts->version);
    else if (o->min_version != 0 && o->min_version != 12 && o->min_version != 13)
        rc =
            mwi_err_set(err, MW_EINVAL, "invalid TLS min_version %d (0, 12 or 13)", o->min_version);
    else if (o->pin)
        rc = parse_pins(o->pin, pins, &npins, err);
    const char *host = o->servername ? o->servername : mwi_stream_host(inner);
    if (!rc && !host && !o->insecure && !npins && !o->policy)
        rc = mwi_err_set(err, MW_EINVAL,
                         "no host name to check the certificate against (set servername)");
    if (!rc && host && strpbrk(host, "\r\n"))
        rc = mwi_err_set(err, MW_EINVAL, "invalid TLS server name");
    mw_stream *s = NULL;
    if (!rc && !(s = mwi_stream_new(&tls_vt, sizeof(struct mw_tls))))
        rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (rc) {
        mw_stream_free(inner);
        return rc;
    }
    struct mw_tls *t = s->impl;
    t->inner = inner;
    s->inner = inner;
    s->cancel = inner->cancel;
    int strict = !o->insecure && !npins && !o->policy;
    /* The handshake deadline covers loading the trust store as well. */
    t->deadline = mwi_deadline_min(deadline_ms, o->handshake_timeout_ms);
    ERR_clear_error();
    if ((rc = setup_ctx(t, o, strict, err)) || (rc = setup_ssl(t, host, err))) goto fail;
    if (SSL_connect(t->ssl) != 1) {
        char why[200];
        if (strict && t->first_vr != X509_V_OK) {
            mwi_tls_verify_reason(t->first_vr, t->bad_cert, t->verify_error,
                                  sizeof t->verify_error);
            rc = mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s", host,
                             t->verify_error);
        } else if (t->io_rc) {
            rc = mwi_err_set(err, t->io_rc, "TLS handshake with %s: %s", host ? host : "the server",
                             t->io_err.message);
        } else if (t->eof) {
            rc = mwi_err_set(err, MW_ETLS, "%s closed the connection during the TLS handshake",
                             host ? host : "the server");
        } else {
            rc = mwi_err_set(err, MW_ETLS, "TLS handshake with %s failed: %s",
                             host ? host : "the server", ssl_reason(why, sizeof why));
        }
        t->failed = 1;
        goto fail;
    }
    t->established = 1;
    if ((rc = decide(t, o, host, pins, npins, err))) goto fail;
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
                         e == SSL_ERROR_SSL ? ssl_reason(why, sizeof why) : "connection broken");
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
    return t && t->der ? &t->peer : NULL;
}

int mw_stream_channel_binding(mw_stream *s, const char *type, unsigned char *buf, size_t len,
                              size_t *out_len)
{
    if (out_len) *out_len = 0;
    if (!s || !type || !out_len || (!buf && len)) return MW_EINVAL;
    const struct mw_tls *t = s->vt == &tls_vt ? s->impl : NULL;
    if (!t || !t->established) return MW_EUNSUPPORTED;
    SSL *ssl = t->ssl;
    int tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
    unsigned char tmp[64];
    size_t n;
    if (!strcmp(type, "tls-unique")) {
        /* RFC 5929 §3.1: the first Finished of the latest handshake; RFC
         * 8446 has no such message role, so not for TLS 1.3 (RFC 9266). */
        if (tls13) return MW_EUNSUPPORTED;
        n = SSL_session_reused(ssl) ? SSL_get_peer_finished(ssl, tmp, sizeof tmp)
                                    : SSL_get_finished(ssl, tmp, sizeof tmp);
        if (n == 0 || n > sizeof tmp) return MW_EUNSUPPORTED;
    } else if (!strcmp(type, "tls-exporter")) {
        /* RFC 9266 §2: 32 bytes, label "EXPORTER-Channel-Binding", empty
         * context; with TLS 1.2 only under extended master secret (§3). */
        if (!tls13 && SSL_get_extms_support(ssl) != 1) return MW_EUNSUPPORTED;
        static const char label[] = "EXPORTER-Channel-Binding";
        n = 32;
        if (SSL_export_keying_material(ssl, tmp, n, label, sizeof label - 1,
                                       (const unsigned char *)"", 0, 1) != 1)
            return MW_EUNSUPPORTED;
    } else {
        return MW_EINVAL;
    }
    if (n > len) return MW_ETOOBIG;
    memcpy(buf, tmp, n);
    *out_len = n;
    return 0;
}
