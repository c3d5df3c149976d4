/* One TLS client configuration and its checks (tls_conf.h), for the
 * blocking TLS stream (tls.c) and the loop's TLS (src/loop/loop_tls.c). */
#include "net/tls_conf.h"
#include "util/base64.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- words ----------------------------------------------------------------- */

const char *mwi_tls_ssl_reason(char *buf, size_t len)
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

/* The words of the CRL errors (X509_V_ERR_*CRL*), or NULL. */
static const char *crl_words(long vr)
{
    switch (vr) {
    case X509_V_ERR_CERT_REVOKED:
        return "certificate revoked (by the CRL given)";
    case X509_V_ERR_UNABLE_TO_GET_CRL:
        return "no CRL covers a certificate of the chain (CRL checking is on)";
    case X509_V_ERR_CRL_HAS_EXPIRED:
        return "the CRL has expired (its next update is past)";
    case X509_V_ERR_CRL_NOT_YET_VALID:
        return "the CRL is not yet valid";
    case X509_V_ERR_CRL_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
        return "the CRL's signature does not verify";
    }
    return NULL;
}

/* Why certificate verification failed (vr from SSL_get_verify_result),
 * as every error of ours says it; cert (may be NULL) names the host a
 * mismatch was for. */
static void verify_reason(long vr, X509 *cert, char *buf, size_t len)
{
    char names[200];
    const char *w = crl_words(vr);
    switch (vr) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
        w = "certificate has expired";
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        w = "certificate is not yet valid";
        break;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        w = "self-signed certificate";
        break;
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
        w = "unable to get local issuer certificate (CA not trusted)";
        break;
    }
    snprintf(buf, len, "%s", w ? w : X509_verify_cert_error_string(vr));
}

void mwi_tls_pin_text(const unsigned char d[32], char out[52])
{
    memcpy(out, "sha256:", 7);
    mwi_base64_encode(out + 7, d, 32);
}

/* ---- the configuration ------------------------------------------------------ */

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

/* "sha256:BASE64[;sha256:BASE64...]" → up to MWI_TLS_MAX_PINS digests. */
static int parse_pins(const char *spec, unsigned char pins[][32], int *npins, mw_error *err)
{
    *npins = 0;
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ';');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l < 7 || strncmp(p, "sha256:", 7) != 0 || l - 7 != 44 || *npins == MWI_TLS_MAX_PINS)
            return mwi_err_set(err, MW_EINVAL,
                               "invalid pin: expected sha256:BASE64 of a 32-byte digest (at most "
                               "%d, separated by ';')",
                               MWI_TLS_MAX_PINS);
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

static char *dup_opt(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

int mwi_tls_conf_init(mwi_tls_conf *c, const mw_tls_opts *opts, mw_error *err)
{
    memset(c, 0, sizeof *c);
    mw_tls_opts o;
    if (mw_tls_opts_copy(&o, opts) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_tls_opts version %u not supported", opts->version);
    if (o.min_version != 0 && o.min_version != 12 && o.min_version != 13)
        return mwi_err_set(err, MW_EINVAL, "invalid TLS min_version %d (0, 12 or 13)",
                           o.min_version);
    if (o.servername && strpbrk(o.servername, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "invalid TLS server name");
    if (o.pin && !(c->pins = malloc(MWI_TLS_MAX_PINS * sizeof *c->pins)))
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int rc = o.pin ? parse_pins(o.pin, c->pins, &c->npins, err) : 0;
    if (rc) {
        mwi_tls_conf_free(c);
        return rc;
    }
    int fail = 0;
    c->ca_file = dup_opt(o.ca_file, &fail);
    c->ca_dir = dup_opt(o.ca_dir, &fail);
    c->cert_file = dup_opt(o.cert_file, &fail);
    c->key_file = dup_opt(o.key_file, &fail);
    c->crl_file = dup_opt(o.crl_file, &fail);
    c->servername = dup_opt(o.servername, &fail);
    c->min_version = o.min_version;
    c->handshake_timeout_ms = o.handshake_timeout_ms;
    c->insecure = o.insecure;
    c->policy = o.policy;
    c->policy_userdata = o.policy_userdata;
    if (fail) {
        mwi_tls_conf_free(c);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    return 0;
}

void mwi_tls_conf_free(mwi_tls_conf *c)
{
    free(c->ca_file);
    free(c->ca_dir);
    free(c->cert_file);
    free(c->key_file);
    free(c->crl_file);
    free(c->servername);
    free(c->pins);
    memset(c, 0, sizeof *c);
}

/* 1 when OpenSSL itself ends the handshake on a bad chain or name: no
 * pin, no policy, not insecure. */
static int conf_strict(const mwi_tls_conf *c)
{
    return !c->insecure && !c->npins && !c->policy;
}

static int same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int mwi_tls_conf_same_ctx(const mwi_tls_conf *a, const mwi_tls_conf *b)
{
    return same_str(a->ca_file, b->ca_file) && same_str(a->ca_dir, b->ca_dir) &&
           same_str(a->cert_file, b->cert_file) && same_str(a->key_file, b->key_file) &&
           same_str(a->crl_file, b->crl_file) && a->min_version == b->min_version;
}

int mwi_tls_conf_host(const mwi_tls_conf *c, const char *host, const char **out, mw_error *err)
{
    const char *h = c->servername ? c->servername : host;
    *out = h && *h ? h : NULL;
    if (!*out && conf_strict(c))
        return mwi_err_set(err, MW_EINVAL,
                           "no host name to check the certificate against (set servername)");
    if (*out && strpbrk(*out, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "invalid TLS server name");
    return 0;
}

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

/* ---- the context ------------------------------------------------------------- */

struct mwi_tls_ctx {
    SSL_CTX *ctx;
    X509_LOOKUP_METHOD *lazy_meth; /* the system bundle, loaded on demand */
    int refs;
};

static int use_system_store(mwi_tls_ctx *x)
{
    X509_STORE *store = SSL_CTX_get_cert_store(x->ctx);
    X509_LOOKUP *dir = X509_STORE_add_lookup(store, X509_LOOKUP_hash_dir());
    if (!dir || X509_LOOKUP_add_dir(dir, NULL, X509_FILETYPE_DEFAULT) != 1) return -1;
    x->lazy_meth = X509_LOOKUP_meth_new("mailwire lazy system bundle");
    if (!x->lazy_meth || !X509_LOOKUP_meth_set_get_by_subject(x->lazy_meth, lazy_get_by_subject) ||
        !X509_LOOKUP_meth_set_free(x->lazy_meth, lazy_free))
        return -1;
    return X509_STORE_add_lookup(store, x->lazy_meth) ? 0 : -1;
}

/* The CRLs of the file into the context's store, and checking on for the
 * whole chain (mw_tls_opts.crl_file). */
static int load_crls(SSL_CTX *ctx, const char *file, mw_error *err)
{
    char why[200];
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    X509_LOOKUP *lu = store ? X509_STORE_add_lookup(store, X509_LOOKUP_file()) : NULL;
    int n = lu ? X509_load_crl_file(lu, file, X509_FILETYPE_PEM) : 0;
    if (n <= 0)
        return mwi_err_set(err, MW_ETLS, "cannot load CRLs from %s: %s", file,
                           mwi_tls_ssl_reason(why, sizeof why));
    X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
    return 0;
}

static int load_client_cert(SSL_CTX *ctx, const mwi_tls_conf *c, mw_error *err)
{
    char why[200];
    const char *key = c->key_file ? c->key_file : c->cert_file;
    if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1)
        return mwi_err_set(err, MW_ETLS, "cannot load client certificate %s: %s", c->cert_file,
                           mwi_tls_ssl_reason(why, sizeof why));
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return mwi_err_set(err, MW_ETLS, "cannot load client key %s: %s", key,
                           mwi_tls_ssl_reason(why, sizeof why));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return mwi_err_set(err, MW_ETLS, "client key %s does not match certificate %s", key,
                           c->cert_file);
    return 0;
}

static int fill_ctx(mwi_tls_ctx *x, const mwi_tls_conf *c, mw_error *err)
{
    char why[200];
    /* TLS 1.2 is the floor (RFC 8996 deprecates 1.0 and 1.1). */
    SSL_CTX_set_min_proto_version(x->ctx, c->min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION);
    /* POP3 and SMTP end their data themselves, and many servers close
     * without close_notify: a bare EOF is end of stream, not an error. */
    SSL_CTX_set_options(x->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
    if (c->ca_file || c->ca_dir) {
        if (SSL_CTX_load_verify_locations(x->ctx, c->ca_file, c->ca_dir) != 1)
            return mwi_err_set(
                err, MW_ETLS, "cannot load CA %s %s: %s", c->ca_file ? "file" : "directory",
                c->ca_file ? c->ca_file : c->ca_dir, mwi_tls_ssl_reason(why, sizeof why));
    } else if (use_system_store(x) != 0) {
        return mwi_err_set(err, MW_ETLS, "cannot use the system CA store: %s",
                           mwi_tls_ssl_reason(why, sizeof why));
    }
    int rc = c->crl_file ? load_crls(x->ctx, c->crl_file, err) : 0;
    if (!rc && c->cert_file) rc = load_client_cert(x->ctx, c, err);
    return rc;
}

int mwi_tls_ctx_new(mwi_tls_ctx **out, const mwi_tls_conf *c, mw_error *err)
{
    char why[200];
    *out = NULL;
    mwi_tls_ctx *x = calloc(1, sizeof *x);
    if (!x) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    x->refs = 1;
    ERR_clear_error();
    x->ctx = SSL_CTX_new(TLS_client_method());
    int rc = x->ctx ? fill_ctx(x, c, err)
                    : mwi_err_set(err, MW_ENOMEM, "cannot create TLS context: %s",
                                  mwi_tls_ssl_reason(why, sizeof why));
    ERR_clear_error();
    if (rc) {
        mwi_tls_ctx_unref(x);
        return rc;
    }
    *out = x;
    return 0;
}

SSL_CTX *mwi_tls_ctx_get(const mwi_tls_ctx *x)
{
    return x->ctx;
}

mwi_tls_ctx *mwi_tls_ctx_ref(mwi_tls_ctx *x)
{
    x->refs++;
    return x;
}

void mwi_tls_ctx_unref(mwi_tls_ctx *x)
{
    if (!x || --x->refs > 0) return;
    SSL_CTX_free(x->ctx);
    X509_LOOKUP_meth_free(x->lazy_meth); /* after the store that used it */
    free(x);
}

/* ---- one connection ---------------------------------------------------------- */

/* Keeps the first verification error and its certificate: with a strict
 * check OpenSSL stops the handshake before the peer certificate is stored
 * in the session, and without one later errors would overwrite the first. */
static int verify_cb(int preverify_ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    mwi_tls_check *k = ssl ? SSL_get_app_data(ssl) : NULL;
    if (!k) return preverify_ok;
    if (!preverify_ok && k->first_vr == X509_V_OK) {
        k->first_vr = X509_STORE_CTX_get_error(xs);
        X509 *leaf = X509_STORE_CTX_get0_cert(xs);
        if (leaf && X509_up_ref(leaf)) k->bad_cert = leaf;
    }
    return k->strict ? preverify_ok : 1;
}

static int is_ip_literal(const char *h)
{
    unsigned char tmp[16];
    return inet_pton(AF_INET, h, tmp) == 1 || inet_pton(AF_INET6, h, tmp) == 1;
}

int mwi_tls_check_setup(mwi_tls_check *k, SSL *ssl, const mwi_tls_conf *c, const char *host,
                        int keep_peer, mw_error *err)
{
    memset(k, 0, sizeof *k);
    k->first_vr = X509_V_OK;
    k->keep_peer = keep_peer;
    /* Strict: OpenSSL aborts the handshake itself on a bad chain (and tells
     * the server why).  Otherwise the decision comes after the handshake
     * (pin, policy, insecure), from the result OpenSSL still keeps. */
    k->strict = conf_strict(c);
    SSL_set_app_data(ssl, k);
    SSL_set_verify(ssl, k->strict ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, verify_cb);
    if (!host) return 0;
    if (is_ip_literal(host)) {
        /* RFC 6066 §3: no SNI for address literals; check the IP SAN. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) != 1)
            return mwi_err_set(err, MW_EINVAL, "cannot check address %s", host);
    } else {
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (SSL_set1_host(ssl, host) != 1 || SSL_set_tlsext_host_name(ssl, host) != 1)
            return mwi_err_set(err, MW_EINVAL, "invalid TLS server name %s", host);
    }
    return 0;
}

int mwi_tls_check_refused(mwi_tls_check *k, const char *host, mw_error *err)
{
    if (!k->strict || k->first_vr == X509_V_OK) return 0;
    char why[320];
    verify_reason(k->first_vr, k->bad_cert, why, sizeof why);
    return mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s",
                       host ? host : "the server", why);
}

static int fill_peer(mwi_tls_peerinfo *k, SSL *ssl, X509 *cert)
{
    mw_tls_peer *p = &k->peer;
    X509_NAME_oneline(X509_get_subject_name(cert), k->subject, sizeof k->subject);
    X509_NAME_oneline(X509_get_issuer_name(cert), k->issuer, sizeof k->issuer);
    p->subject = k->subject;
    p->issuer = k->issuer;
    int l = i2d_X509(cert, NULL);
    if (l <= 0 || !(k->der = malloc((size_t)l))) return MW_ENOMEM;
    unsigned char *w = k->der;
    i2d_X509(cert, &w);
    p->der = k->der;
    p->der_len = (size_t)l;
    unsigned int hl = 0;
    if (!EVP_Digest(k->der, (size_t)l, p->cert_sha256, &hl, EVP_sha256(), NULL)) return MW_ENOMEM;
    unsigned char *spki = NULL;
    int sl = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &spki);
    if (sl <= 0) return MW_ENOMEM;
    int ok = EVP_Digest(spki, (size_t)sl, p->spki_sha256, &hl, EVP_sha256(), NULL);
    OPENSSL_free(spki);
    if (!ok) return MW_ENOMEM;
    p->protocol = SSL_get_version(ssl);
    p->cipher = SSL_get_cipher_name(ssl);
    p->verify_error = k->verify_error;
    return 0;
}

static int pin_mismatch(const mwi_tls_peerinfo *k, const mwi_tls_conf *c, const char *who,
                        mw_error *err)
{
    char want[52], gc[52], gk[52];
    mwi_tls_pin_text(c->pins[0], want);
    mwi_tls_pin_text(k->peer.cert_sha256, gc);
    mwi_tls_pin_text(k->peer.spki_sha256, gk);
    return mwi_err_set(err, MW_ECERT,
                       "certificate of %s not accepted: pin mismatch: expected %s%s, got %s "
                       "(certificate) / %s (public key)",
                       who, want, c->npins > 1 ? " (or another pin)" : "", gc, gk);
}

int mwi_tls_check_decide(mwi_tls_check *k, SSL *ssl, const mwi_tls_conf *c, const char *host,
                         mw_error *err)
{
    const char *who = host ? host : "the server";
    X509 *cert = SSL_get0_peer_certificate(ssl);
    if (!cert) return mwi_err_set(err, MW_ECERT, "%s presented no certificate", who);
    long vr = k->first_vr != X509_V_OK ? k->first_vr : SSL_get_verify_result(ssl);
    if (k->strict && !k->keep_peer) {
        /* Verification alone decides, and nothing shows the peer later:
         * no copy of it (memory per loop session). */
        char why[320];
        if (vr == X509_V_OK) return 0;
        verify_reason(vr, cert, why, sizeof why);
        return mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s", who, why);
    }
    mwi_tls_peerinfo *pi = k->pi = calloc(1, sizeof *pi); /* none before: once a connection */
    if (!pi || fill_peer(pi, ssl, cert)) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (vr != X509_V_OK) verify_reason(vr, cert, pi->verify_error, sizeof pi->verify_error);
    pi->peer.verified = vr == X509_V_OK;
    int pinned = 0;
    for (int i = 0; i < c->npins; i++)
        if (!memcmp(c->pins[i], pi->peer.cert_sha256, 32) ||
            !memcmp(c->pins[i], pi->peer.spki_sha256, 32))
            pinned = 1;
    if (c->npins && !pinned) return pin_mismatch(pi, c, who, err);
    if (c->policy) {
        if (c->policy(&pi->peer, c->policy_userdata) == 0) return 0;
        if (pi->peer.verified)
            return mwi_err_set(err, MW_ECERT, "certificate of %s refused by the caller's policy",
                               who);
        return mwi_err_set(err, MW_ECERT,
                           "certificate of %s refused by the caller's policy (not verified: %s)",
                           who, pi->verify_error);
    }
    /* A matching pin is enough (mw_tls_opts.pin); insecure is explicit. */
    if (pinned || c->insecure || pi->peer.verified) return 0;
    return mwi_err_set(err, MW_ECERT, "certificate of %s not accepted: %s", who, pi->verify_error);
}

const mw_tls_peer *mwi_tls_check_peer(const mwi_tls_check *k)
{
    return k->pi && k->pi->der ? &k->pi->peer : NULL;
}

void mwi_tls_check_free(mwi_tls_check *k)
{
    X509_free(k->bad_cert);
    k->bad_cert = NULL;
    if (k->pi) free(k->pi->der);
    free(k->pi);
    k->pi = NULL;
}

const char *mwi_tls_channel_binding_best(SSL *ssl, unsigned char *cb, size_t *len)
{
    static const char *const types[] = {"tls-exporter", "tls-unique"};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (mwi_tls_channel_binding(ssl, types[i], cb, 64, len) == 0 && *len) return types[i];
    *len = 0;
    return NULL;
}

int mwi_tls_channel_binding(SSL *ssl, const char *type, unsigned char *buf, size_t len,
                            size_t *out_len)
{
    int tls13 = SSL_version(ssl) >= TLS1_3_VERSION;
    unsigned char tmp[64];
    size_t n;
    *out_len = 0;
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
