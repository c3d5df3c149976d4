/* Internal: TLS and plain socket I/O for the loop's jobs, never waiting.
 * The configuration, the context and the checks are src/net/tls_conf.h's,
 * the blocking TLS stream's own: every mw_tls_opts field (CAs, floor,
 * client certificate, CRLs, pins, policy, insecure, servername), with the
 * same error words. */
#ifndef MW_LOOP_LOOP_TLS_H
#define MW_LOOP_LOOP_TLS_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/tls_conf.h"

#include <stddef.h>

typedef struct mwi_ltls_cfg {
    mwi_tls_conf conf;
    int handshake_timeout_ms; /* the conf's, or 30000 when it has none */
    int keep_peer;            /* the peer kept after the decision (mwi_ltls_peer) */
} mwi_ltls_cfg;

typedef struct mwi_ltls mwi_ltls;

/* Checks and copies o (NULL: defaults).  Returns 0, MW_EINVAL, MW_ENOMEM.
 * A policy's userdata must live as long as the job. */
int mwi_ltls_cfg_init(mwi_ltls_cfg *cfg, const mw_tls_opts *o, mw_error *err);
void mwi_ltls_cfg_free(mwi_ltls_cfg *cfg);

/* The loop's TLS context, kept for the next job with the same trust
 * configuration (a context is not changed once made). */
typedef struct mwi_ltls_cache mwi_ltls_cache;
void mwi_ltls_cache_free(mwi_ltls_cache *c);

/* A client over the non-blocking socket fd (not owned), checking the
 * certificate against cfg->servername or host.  cache (may be NULL): the
 * loop's context, used when it fits, replaced when it does not. */
int mwi_ltls_new(mwi_ltls **out, const mwi_ltls_cfg *cfg, mwi_ltls_cache **cache, int fd,
                 const char *host, mw_error *err);
void mwi_ltls_free(mwi_ltls *t);
/* 1: handshake done and the certificate accepted; 0: call again when fd
 * is ready for *want (MW_LOOP_IN / MW_LOOP_OUT); < 0: the error (err set:
 * MW_ECERT, MW_ETLS, MW_ENET). */
int mwi_ltls_handshake(mwi_ltls *t, int *want, mw_error *err);
/* Reads: *n bytes (0 when it would wait; *want then says for what beyond
 * MW_LOOP_IN), *eof at the end of the stream.  Returns 0 or an error. */
int mwi_ltls_read(mwi_ltls *t, void *buf, size_t len, size_t *n, int *want, int *eof,
                  mw_error *err);
/* Writes: *n bytes taken (0 when it would wait, *want says for what). */
int mwi_ltls_write(mwi_ltls *t, const void *buf, size_t len, size_t *n, int *want, mw_error *err);
const char *mwi_ltls_version(const mwi_ltls *t);
/* The accepted peer, with cfg->keep_peer; else NULL. */
const mw_tls_peer *mwi_ltls_peer(const mwi_ltls *t);
/* The channel binding a SCRAM-*-PLUS login takes on an accepted
 * connection: mwi_tls_channel_binding_best (net/tls_conf.h); NULL, *len 0,
 * when it is not up yet or has none. */
const char *mwi_ltls_channel_binding_best(mwi_ltls *t, unsigned char *cb, size_t *len);

int mwi_lplain_read(int fd, void *buf, size_t len, size_t *n, int *eof, mw_error *err);
int mwi_lplain_write(int fd, const void *buf, size_t len, size_t *n, int *want, mw_error *err);

#endif
