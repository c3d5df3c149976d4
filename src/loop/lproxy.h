/* Internal: a loop job's connection through a proxy (socks5://,
 * socks5h://, http:// CONNECT), the phase between the TCP connect and TLS
 * or the greeting in lconn.c.  The octets and the words are src/net's
 * handshake machine's (net/proxy_hs.h), driven here over the non-blocking
 * socket.  The phases:
 *
 *   target   socks5:// to a host that is a name: lconn looks the name up
 *            (src/resolve) and the proxy is asked for its first address;
 *   dial     lconn connects to the proxy (its name looked up on the loop
 *            when it is one); c->host and c->port are the proxy's;
 *   shake    the handshake, within a connect timeout of its own as in
 *            src/net/dial.c; c->host and c->port the mail server's again;
 *   up       the tunnel is open: the protocol's connected hook runs, then
 *            TLS, which verifies the mail server, never the proxy.
 *
 * lconn.c calls these hooks only when c->proxy is set. */
#ifndef MW_LOOP_LPROXY_H
#define MW_LOOP_LPROXY_H

#include "loop/lconn.h"

/* Makes c connect through the proxy of url (c->host and c->port are the
 * mail server's; before the job's first connect).  Returns 0, MW_EINVAL
 * (a bad URL: src/net's words), MW_ENOMEM. */
int mwi_lproxy_setup(mwi_lconn *c, const char *url, int connect_timeout_ms, mw_error *err);
/* lconn's name lookup ended (c->addrs): 1 when it was the target's, taken
 * here (the proxy is dialled next), 0 when lconn goes on connecting. */
int mwi_lproxy_resolved(mwi_lconn *c);
/* The TCP connect to the proxy is up: the handshake starts (c->proxying). */
void mwi_lproxy_begin(mwi_lconn *c);
/* The handshake as far as it goes.  Returns 1 when the tunnel is up and
 * the job goes on (the protocol's connected hook has run), 0 to wait
 * (mwi_lproxy_want), -1 when the job ended. */
int mwi_lproxy_step(mwi_lconn *c);
/* The events the handshake waits for. */
int mwi_lproxy_want(const mwi_lconn *c);
/* The words a job's end gets while the proxy is dialled or asked: as
 * src/net/dial.c says them ("proxy: cannot connect to ...", "the proxy
 * ... did not answer within ..."); msg itself otherwise.  Uses buf. */
const char *mwi_lproxy_words(const mwi_lconn *c, int code, const char *msg, char *buf, size_t cap);
/* Frees what the proxy phase holds (the credentials wiped). */
void mwi_lproxy_free(mwi_lconn *c);

#endif
