/* Internal: TLS and plain socket I/O for the loop's jobs, never waiting.
 * Verification is as strict as src/net/tls.c's default path: the peer's
 * chain must verify against the given CAs (or the system's), the host name
 * (or IP address) must match, TLS 1.2 at least.  What tls.c adds on top
 * (pins, a caller's policy, client certificates, CRLs, insecure) is not
 * here yet and is refused when asked for, never ignored. */
#ifndef MW_LOOP_LOOP_TLS_H
#define MW_LOOP_LOOP_TLS_H

#include "mailwire/error.h"
#include "mailwire/net.h"

#include <stddef.h>

typedef struct mwi_ltls_cfg {
    char *ca_file, *ca_dir, *servername;
    int min_version;
    int handshake_timeout_ms;
} mwi_ltls_cfg;

typedef struct mwi_ltls mwi_ltls;

/* Copies what the loop supports from o (NULL: defaults).  Returns 0,
 * MW_EUNSUPPORTED (a feature the loop lacks), MW_EINVAL, MW_ENOMEM. */
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

int mwi_lplain_read(int fd, void *buf, size_t len, size_t *n, int *eof, mw_error *err);
int mwi_lplain_write(int fd, const void *buf, size_t len, size_t *n, int *want, mw_error *err);

#endif
