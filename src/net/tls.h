/* Internal: the TLS stream kind (tls.c): OpenSSL over any inner stream,
 * which it reaches only through mw_stream_read/mw_stream_write. */
#ifndef MW_NET_TLS_H
#define MW_NET_TLS_H

#include "mailwire/error.h"
#include "mailwire/net.h"

#include <openssl/x509.h>
#include <stdint.h>

/* The handshake with an explicit overall deadline (the earlier of it and
 * now + opts->handshake_timeout_ms applies).  Owns `inner` as
 * mw_stream_tls does. */
int mwi_tls_wrap(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts, int64_t deadline_ms,
                 mw_error *err);

/* "sha256:BASE64" of a 32-byte digest, as mw_tls_opts.pin takes it. */
void mwi_tls_pin_text(const unsigned char d[32], char out[52]);

/* Why certificate verification failed (vr from SSL_get_verify_result),
 * as every error of ours says it; cert (may be NULL) names the host a
 * mismatch was for.  Used by the loop's TLS too (src/loop/loop_tls.c). */
void mwi_tls_verify_reason(long vr, X509 *cert, char *buf, size_t len);

#endif
