/* Internal: a proxy's URL and its handshake without I/O — SOCKS5
 * (RFC 1928, user/password RFC 1929) and HTTP CONNECT (RFC 9110 §9.3.6,
 * Basic credentials RFC 7617).  The handshake is a small state machine:
 * it says which octets to send and how many it may read next, takes what
 * arrived, and says "more", "done" or the error.  It never reads past the
 * proxy's answer, so what the server says after the tunnel opens stays in
 * the socket.  The blocking streams (proxy.c) and the event loop
 * (src/loop/lproxy.c) both drive it. */
#ifndef MW_NET_PROXY_HS_H
#define MW_NET_PROXY_HS_H

#include "mailwire/error.h"

#include <stddef.h>

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

/* The HTTP answer's head is read up to its empty line, this size at most
 * (with the NUL). */
#define MWI_PXHS_HEAD_MAX 8192

typedef struct mwi_pxhs {
    mw_proxy px;    /* a copy: the credentials are sent when asked for */
    char host[256]; /* the target, as asked for */
    unsigned port;
    int state;               /* proxy_hs.c's enum */
    unsigned char out[1400]; /* what to send now */
    size_t out_len, out_off;
    unsigned char req[264]; /* SOCKS5: the CONNECT request, built (and checked) first */
    size_t req_len;
    unsigned char in[MWI_PXHS_HEAD_MAX]; /* the answer being read */
    size_t in_len, in_want;
} mwi_pxhs;

#define MWI_PXHS_MORE 0
#define MWI_PXHS_DONE 1

/* Starts a handshake asking the proxy px for host:port.  For socks5://
 * host must be an address literal (the caller resolves names).  Returns 0,
 * or MW_EINVAL (a host that does not fit or holds control characters). */
int mwi_pxhs_start(mwi_pxhs *h, const mw_proxy *px, const char *host, unsigned port, mw_error *err);
/* The octets to send now (*n == 0: none; read instead). */
const unsigned char *mwi_pxhs_output(const mwi_pxhs *h, size_t *n);
/* n of them were written; the credentials are wiped once sent. */
void mwi_pxhs_sent(mwi_pxhs *h, size_t n);
/* How many octets may be read now without reading past the proxy's
 * answer (0: send first, or the handshake is over).  At most 257. */
size_t mwi_pxhs_need(const mwi_pxhs *h);
/* Takes n octets that arrived (1 <= n <= mwi_pxhs_need).  Returns
 * MWI_PXHS_MORE, MWI_PXHS_DONE (the tunnel is open), or MW_ENET (the
 * proxy refused: its reason named), MW_EAUTH (proxy credentials refused
 * or needed), MW_EPROTO (not a proxy's answer, or over the limits),
 * MW_EINVAL (misuse). */
int mwi_pxhs_feed(mwi_pxhs *h, const unsigned char *b, size_t n, mw_error *err);
/* The proxy closed the connection before its answer ended: MW_EPROTO. */
int mwi_pxhs_closed(mwi_pxhs *h, mw_error *err);
/* 1 once the handshake ended (done or failed). */
int mwi_pxhs_over(const mwi_pxhs *h);
/* Wipes h (the credentials with it). */
void mwi_pxhs_wipe(mwi_pxhs *h);

#endif
