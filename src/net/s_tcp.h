/* Internal: the TCP stream kind (s_tcp.c): name lookup with a deadline,
 * Happy Eyeballs (RFC 8305) and the stream over the winning socket.
 * mw_stream_tcp itself (direct or through a proxy) is in dial.c. */
#ifndef MW_NET_S_TCP_H
#define MW_NET_S_TCP_H

#include "mailwire/error.h"
#include "mailwire/net.h"
#include "util/addrorder.h"

#include <stddef.h>
#include <stdint.h>

struct addrinfo;

/* The order of attempts (families alternating) and the racing connect.
 * The unit tests call them with hand-made address lists. */
#define MW_TCP_MAX_ADDRS        32
#define MW_TCP_ATTEMPT_DELAY_MS MWI_HE_ATTEMPT_DELAY_MS /* util/addrorder.h */
size_t mwi_tcp_order(const struct addrinfo *res, const struct addrinfo **out, size_t max);
int mwi_tcp_connect_happy(const struct addrinfo *res, int timeout_ms, int delay_ms,
                          mw_cancel *cancel, int *fdout, int *tried, int *last_errno, char *last,
                          size_t lastsz);

/* Resolves name (with opts' connect timeout, family and cancel token)
 * into *res (freeaddrinfo it).  Returns 0 or an mw_code with err set. */
int mwi_tcp_lookup(const char *name, unsigned port, const mw_net_opts *opts, struct addrinfo **res,
                   mw_error *err);

/* A TCP stream to name (unbracketed) port, its addresses raced.  host is
 * the name as the caller gave it, for messages; opts a checked current-
 * version copy; start is when the session began (its max_time_ms, if any,
 * bounds the lookup and the race together). */
int mwi_tcp_direct(mw_stream **out, const char *name, const char *host, unsigned port,
                   const mw_net_opts *opts, int64_t start, mw_error *err);

#endif
