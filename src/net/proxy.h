/* Internal: connecting through a proxy (mw_net_opts.proxy) — SOCKS5
 * (RFC 1928, user/password RFC 1929) and HTTP CONNECT (RFC 9110 §9.3.6)
 * over a blocking stream.  The URL and the handshake's octets are
 * proxy_hs.h's. */
#ifndef MW_NET_PROXY_H
#define MW_NET_PROXY_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "net/proxy_hs.h"

#include <stdint.h>

/* Over s, already connected to the proxy: asks it for host:port, all
 * before `deadline`.  For socks5:// host must be an address literal (the
 * caller resolves names, with its deadline).  Returns 0 (s now carries the
 * tunnel), MW_ENET (the proxy refused: its reason named), MW_EAUTH (proxy
 * credentials refused or needed), MW_EPROTO (not a proxy answer),
 * MW_ETIMEOUT, MW_ECANCELED, MW_EINVAL. */
int mwi_proxy_handshake(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                        int64_t deadline, mw_error *err);

#endif
