/* Internal: one TLS client configuration and its checks, shared by the
 * blocking TLS stream (tls.c, over a BIO) and the loop's TLS over a
 * non-blocking socket (src/loop/loop_tls.c): the options taken and
 * checked once (mwi_tls_conf), the SSL_CTX made from them (trust store,
 * TLS floor, client certificate, CRLs), the per-connection name check and
 * SNI, the decision after the handshake (pin, policy, verification) with
 * its words, and the channel binding (RFC 5929, RFC 9266). */
#ifndef MW_NET_TLS_CONF_H
#define MW_NET_TLS_CONF_H

#include "mailwire/error.h"
#include "mailwire/net.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stddef.h>

#define MWI_TLS_MAX_PINS 8

/* mw_tls_opts as a connection uses it: strings owned, pins decoded. */
typedef struct mwi_tls_conf {
    char *ca_file, *ca_dir, *cert_file, *key_file, *crl_file, *servername;
    unsigned char (*pins)[32]; /* npins digests, allocated only when a pin is given */
    int npins;
    int min_version;          /* 0, 12 or 13 */
    int handshake_timeout_ms; /* as given (0: none of its own) */
    int insecure;
    mw_tls_policy_fn policy;
    void *policy_userdata;
} mwi_tls_conf;

/* Checks and copies o (NULL: defaults): the version, min_version, the
 * pins, the server name.  Returns 0, MW_EINVAL (err names what), MW_ENOMEM;
 * on error c needs no free. */
int mwi_tls_conf_init(mwi_tls_conf *c, const mw_tls_opts *o, mw_error *err);
void mwi_tls_conf_free(mwi_tls_conf *c);
/* 1 when a context made for a fits b too (the same files and floor). */
int mwi_tls_conf_same_ctx(const mwi_tls_conf *a, const mwi_tls_conf *b);

/* The SSL_CTX of a configuration, with what must outlive its trust store;
 * counted references (one thread at a time). */
typedef struct mwi_tls_ctx mwi_tls_ctx;
/* TLS 1.2 floor (or 1.3), the CAs given or the system's (loaded lazily),
 * the CRLs with the whole-chain rule, the client certificate and its key.
 * Errors: MW_ETLS naming the file and why, MW_ENOMEM. */
int mwi_tls_ctx_new(mwi_tls_ctx **out, const mwi_tls_conf *c, mw_error *err);
SSL_CTX *mwi_tls_ctx_get(const mwi_tls_ctx *x);
mwi_tls_ctx *mwi_tls_ctx_ref(mwi_tls_ctx *x);
void mwi_tls_ctx_unref(mwi_tls_ctx *x);

/* The peer as the decision saw it (mwi_tls_check_peer). */
typedef struct mwi_tls_peerinfo {
    mw_tls_peer peer;
    unsigned char *der; /* peer.der */
    char subject[256];
    char issuer[256];
    char verify_error[320];
} mwi_tls_peerinfo;

/* One connection's verification state; the peer it learned is allocated
 * by the decision, so a connection that keeps none (the loop's) holds
 * only these few words. */
typedef struct mwi_tls_check {
    int strict;
    int keep_peer;  /* the caller shows the peer later (mw_stream_tls_peer) */
    long first_vr;  /* the first verification error seen, or X509_V_OK */
    X509 *bad_cert; /* the certificate it was about (for names), ref held */
    mwi_tls_peerinfo *pi;
} mwi_tls_check;

/* Before the handshake: k zeroed and tied to ssl (its app data), the
 * verification mode, the host name or IP address to check and the SNI
 * (none for an address, RFC 6066 §3).  host may be NULL only when the
 * configuration does not need it (see mwi_tls_conf_host).  keep_peer 0:
 * the peer is copied only when a pin or a policy needs it.  Returns 0,
 * MW_EINVAL. */
int mwi_tls_check_setup(mwi_tls_check *k, SSL *ssl, const mwi_tls_conf *c, const char *host,
                        int keep_peer, mw_error *err);
/* The name to check: the configured servername, else host; MW_EINVAL
 * when there is none and nothing else (insecure, pin, policy) decides. */
int mwi_tls_conf_host(const mwi_tls_conf *c, const char *host, const char **out, mw_error *err);
/* A handshake that failed: MW_ECERT with the words of the verification
 * error when OpenSSL ended it for that, else 0 (some other failure). */
int mwi_tls_check_refused(mwi_tls_check *k, const char *host, mw_error *err);
/* After the handshake: pin, policy, verification, in that order.  Returns
 * 0 (accepted; the peer kept when asked for, mwi_tls_check_peer),
 * MW_ECERT, MW_ENOMEM. */
int mwi_tls_check_decide(mwi_tls_check *k, SSL *ssl, const mwi_tls_conf *c, const char *host,
                         mw_error *err);
/* The peer of a decided connection, or NULL. */
const mw_tls_peer *mwi_tls_check_peer(const mwi_tls_check *k);
/* mw_stream_tls_info's details of a peer (tls_info.c): 0, or
 * MW_EUNSUPPORTED (p NULL: *out zeroed). */
int mwi_tls_info_of_peer(const mw_tls_peer *p, mw_tls_info *out);
/* Frees what k holds (the peer with it); k stays usable. */
void mwi_tls_check_free(mwi_tls_check *k);

/* RFC 9266 "tls-exporter" or RFC 5929 "tls-unique" of an established
 * connection, as mw_stream_channel_binding returns it. */
int mwi_tls_channel_binding(SSL *ssl, const char *type, unsigned char *buf, size_t len,
                            size_t *out_len);
/* The binding a SCRAM-*-PLUS login takes: "tls-exporter" (RFC 9266), else
 * "tls-unique" (RFC 5929), its data in cb[64] and *len; NULL (*len 0)
 * when neither can be had.  The one order, for every session. */
const char *mwi_tls_channel_binding_best(SSL *ssl, unsigned char *cb, size_t *len);

/* The first OpenSSL error of this thread, in words. */
const char *mwi_tls_ssl_reason(char *buf, size_t len);
/* "sha256:BASE64" of a 32-byte digest, as mw_tls_opts.pin takes it. */
void mwi_tls_pin_text(const unsigned char d[32], char out[52]);

#endif
