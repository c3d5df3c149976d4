/* Internal: a stub resolver that never blocks, for the event loop
 * (src/loop/lconn.c).  A lookup of one name reads the hosts file first
 * (as the system's default "hosts: files dns"), then asks the nameservers
 * of resolv.conf over UDP, A and AAAA at once on one socket, each server in
 * turn for `attempts` rounds of `timeout` (resolv.conf options), over TCP
 * when a reply is truncated (RFC 1035 §4.2.1, §4.2.2).  IDs and source
 * ports are random and a reply must match ID, question and source address
 * (RFC 5452 §9).  It holds one descriptor at a time: the caller waits on
 * mwi_rslv_fd for mwi_rslv_want until mwi_rslv_deadline, then calls
 * mwi_rslv_step.  No thread, no signal, no global state.
 *
 * Not handled: EDNS0 (replies over UDP are 512 octets at most, larger ones
 * come over TCP), DNSSEC, DNS over TLS, the "rotate" and "single-request"
 * options, search domains taken from the host name, sortlist, and the
 * nsswitch.conf order (always files, then dns). */
#ifndef MW_RESOLVE_RESOLVE_H
#define MW_RESOLVE_RESOLVE_H

#include "mailwire/error.h"

#include <stddef.h>
#include <stdint.h>

#define MWI_RSLV_NS_MAX     3  /* nameservers used, as the system's resolver */
#define MWI_RSLV_SEARCH_MAX 6  /* search domains used */
#define MWI_RSLV_ADDRS_MAX  16 /* addresses a lookup gives */

/* Where the configuration is read from; NULL: the system's files. */
typedef struct mwi_rslv_paths {
    const char *resolv_conf; /* /etc/resolv.conf */
    const char *hosts;       /* /etc/hosts */
} mwi_rslv_paths;

typedef struct mwi_raddr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned port; /* nameservers only */
} mwi_raddr;

/* resolv.conf, parsed (conf.c). */
typedef struct mwi_rslv_conf {
    mwi_raddr ns[MWI_RSLV_NS_MAX];
    size_t nns;
    char search[MWI_RSLV_SEARCH_MAX][254];
    size_t nsearch;
    int ndots, timeout_ms, attempts;
} mwi_rslv_conf;

/* Parses resolv.conf text (len octets): nameserver (an address, or
 * "[address]:port" as OpenBSD's resolv.conf allows), search, domain and
 * options ndots:N timeout:N attempts:N, capped as the system's resolver
 * caps them (15, 30 s, 5).  Other lines are ignored.  No nameserver:
 * 127.0.0.1.  Never fails. */
void mwi_rslv_conf_parse(mwi_rslv_conf *c, const char *text, size_t len);
/* Reads and parses the file (at most 64 KiB of it); a missing file gives
 * the defaults.  Returns 0 or MW_EIO. */
int mwi_rslv_conf_load(mwi_rslv_conf *c, const char *path, mw_error *err);
/* The addresses of name (no final dot, compared without case) in hosts
 * text of one line: adds to out (up to max, skipping families other than
 * family, 0: any).  Returns the new count. */
size_t mwi_hosts_line(const char *line, const char *name, int family, mwi_raddr *out, size_t n,
                      size_t max);
/* The same over a hosts file (a missing file: none).  Returns 0 or
 * MW_EIO. */
int mwi_hosts_lookup(const char *path, const char *name, int family, mwi_raddr *out, size_t *n,
                     size_t max, mw_error *err);
/* Orders addresses for Happy Eyeballs (RFC 8305 §4): families
 * interleaved, IPv6 first, each family's order kept. */
void mwi_rslv_interleave(mwi_raddr *a, size_t n);

typedef struct mwi_rslv mwi_rslv;

/* Starts a lookup of name for family (0 any, 4 or 6), giving up at
 * deadline (mw_now_ms clock, MW_NO_DEADLINE: only the resolv.conf
 * bounds).  A name found in the hosts file is done at once
 * (mwi_rslv_done).  Returns 0 or an MW_E* code with err filled. */
int mwi_rslv_start(mwi_rslv **out, const char *name, int family, const mwi_rslv_paths *paths,
                   int64_t deadline, mw_error *err);
/* The descriptor to wait on (-1: none, call mwi_rslv_step at the
 * deadline), the MW_LOOP_IN / MW_LOOP_OUT events, and when to call
 * mwi_rslv_step anyway. */
int mwi_rslv_fd(const mwi_rslv *r);
int mwi_rslv_want(const mwi_rslv *r);
int64_t mwi_rslv_deadline(const mwi_rslv *r);
/* Goes on after events on the descriptor (0 for the deadline).  Returns 1
 * when done (mwi_rslv_addrs), 0 to wait on, or an MW_E* code with err
 * naming the name, what was wrong and the server. */
int mwi_rslv_step(mwi_rslv *r, int events, mw_error *err);
/* 1 when the addresses are there. */
int mwi_rslv_done(const mwi_rslv *r);
/* The addresses found, in Happy Eyeballs order. */
const mwi_raddr *mwi_rslv_addrs(const mwi_rslv *r, size_t *n);
/* How long the addresses may be kept, in seconds: the least TTL of the
 * DNS records they came from (RFC 1035 §3.2.1); 0 for the hosts file's or
 * when not done. */
uint32_t mwi_rslv_ttl(const mwi_rslv *r);
/* Closes the descriptor and frees r (NULL is fine). */
void mwi_rslv_free(mwi_rslv *r);

#endif
