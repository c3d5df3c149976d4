/* Internal: the TLS stream kind (tls.c): OpenSSL over any inner stream,
 * which it reaches only through mw_stream_read/mw_stream_write; its
 * configuration and checks are tls_conf.h's, shared with the loop. */
#ifndef MW_NET_TLS_H
#define MW_NET_TLS_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/tls_conf.h"

/* mwi_tls_channel_binding_best of a TLS stream (NULL, *len 0, for any
 * other stream or before the handshake). */
const char *mwi_stream_channel_binding_best(mw_stream *s, unsigned char *cb, size_t *len);

#endif
