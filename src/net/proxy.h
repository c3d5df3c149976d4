/* Internal: connecting through a proxy (mw_net_opts.proxy) — SOCKS5
 * (RFC 1928, user/password RFC 1929) and HTTP CONNECT (RFC 9110 §9.3.6). */
#ifndef MW_NET_PROXY_H
#define MW_NET_PROXY_H

#include "mailwire/error.h"
#include "mailwire/net.h"

#include <stdint.h>

enum mw_proxy_kind { MW_PROXY_SOCKS5 = 1, MW_PROXY_SOCKS5H = 2, MW_PROXY_HTTP = 3 };

typedef struct mw_proxy {
    int kind;
    char host[256];
    unsigned port;
    char user[256], pass[256]; /* "" when none; percent-decoded */
    int has_auth;
} mw_proxy;

/* Parses "socks5://[USER[:PASS]@]HOST[:PORT]" (names resolved here),
 * "socks5h://…" (names resolved by the proxy) or "http://…" (CONNECT);
 * default ports 1080 and 8080; an IPv6 HOST in brackets.  Errors never
 * repeat the password.  Returns 0 or MW_EINVAL. */
int mwi_proxy_parse(mw_proxy *px, const char *url, mw_error *err);

/* Over s, already connected to the proxy: asks it for host:port, all
 * before `deadline`.  For socks5:// host must be an address literal (the
 * caller resolves names, with its deadline).  Returns 0 (s now carries the
 * tunnel), MW_ENET (the proxy refused: its reason named), MW_EAUTH (proxy
 * credentials refused or needed), MW_EPROTO (not a proxy answer),
 * MW_ETIMEOUT, MW_ECANCELED, MW_EINVAL. */
int mwi_proxy_handshake(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                        int64_t deadline, mw_error *err);

#endif
