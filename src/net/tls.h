/* Internal: the TLS stream kind (tls.c): OpenSSL over any inner stream,
 * which it reaches only through mw_stream_read/mw_stream_write; its
 * configuration and checks are tls_conf.h's, shared with the loop. */
#ifndef MW_NET_TLS_H
#define MW_NET_TLS_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/tls_conf.h"

#include <stdint.h>

/* The handshake within a deadline as well (the earlier of deadline_ms and
 * now + opts->handshake_timeout_ms applies): the blocking sessions' drivers
 * give their operation deadline (src/loop/pop3_drive.c, smtp_held.c).
 * Owns `inner` as mw_stream_tls does. */
int mwi_tls_wrap(mw_stream **out, mw_stream *inner, const mw_tls_opts *opts, int64_t deadline_ms,
                 mw_error *err);

/* mwi_tls_channel_binding_best of a TLS stream (NULL, *len 0, for any
 * other stream or before the handshake). */
const char *mwi_stream_channel_binding_best(mw_stream *s, unsigned char *cb, size_t *len);

#endif
