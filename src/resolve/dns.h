/* Internal: DNS messages for the stub resolver (resolve.h), without I/O.
 * A query for one name and type (RFC 1035 §4.1), and the check of a reply
 * against it: ID, question, RCODE, TC, then the A or AAAA records of the
 * name at the end of the CNAME chain in the answer section.  Every length
 * is checked against the message; compression pointers (RFC 1035 §4.1.4)
 * must point backwards and are bounded in number, so a loop cannot hang. */
#ifndef MW_RESOLVE_DNS_H
#define MW_RESOLVE_DNS_H

#include <stddef.h>
#include <stdint.h>

#define MWI_DNS_T_A          1
#define MWI_DNS_T_CNAME      5
#define MWI_DNS_T_AAAA       28
#define MWI_DNS_NAME_MAX     255 /* octets of a name in wire form (RFC 1035 §2.3.4) */
#define MWI_DNS_QUERY_MAX    (12 + MWI_DNS_NAME_MAX + 4)
#define MWI_DNS_UDP_MAX      512 /* a reply over UDP without EDNS0 (RFC 1035 §4.2.1) */
#define MWI_DNS_ADDRS_MAX    16  /* addresses kept of one reply */
#define MWI_DNS_CNAME_MAX    8   /* CNAME hops followed in one answer */
#define MWI_DNS_POINTERS_MAX 32  /* compression pointers followed in one name */

/* Outcomes of mwi_dns_parse. */
enum {
    MWI_DNS_OK = 0,        /* addrs hold the records (naddrs may be 0: no data) */
    MWI_DNS_NOT_OURS = 1,  /* another ID, or not a reply: ignore it, wait on */
    MWI_DNS_TRUNCATED = 2, /* TC set: ask again over TCP (RFC 1035 §4.2.1) */
    MWI_DNS_NXDOMAIN = 3,  /* RCODE 3: the name does not exist */
    MWI_DNS_SERVFAIL = 4,  /* RCODE 2, 5 or another: ask another server */
    MWI_DNS_BAD = 5        /* malformed, or the question does not match: why says */
};

/* Writes name (text, dots between labels, an optional final dot) in wire
 * form into out (MWI_DNS_NAME_MAX octets at least), lowercased.  Returns
 * its length, or 0 when name is empty, has an empty label, a label over 63
 * octets, a byte that is no printable ASCII or a backslash, or is over 255
 * octets. */
size_t mwi_dns_name_wire(const char *name, uint8_t *out);

/* Builds a query (RD set, one question of class IN) for the wire name
 * qname[0..qlen) and type; out holds MWI_DNS_QUERY_MAX octets.  Returns its
 * length. */
size_t mwi_dns_build_query(uint8_t *out, uint16_t id, const uint8_t *qname, size_t qlen,
                           uint16_t type);

typedef struct mwi_dns_reply {
    uint8_t addrs[MWI_DNS_ADDRS_MAX][16]; /* 4 octets each for A, 16 for AAAA */
    size_t naddrs;
    uint32_t ttl; /* seconds: the least TTL of the CNAMEs followed and the records taken */
    int rcode;
    const char *why; /* MWI_DNS_BAD: what was wrong (a static string) */
} mwi_dns_reply;

/* Checks msg[0..len) as the reply to the query with this id, wire name
 * and type, and takes its addresses.  Returns an MWI_DNS_* outcome. */
int mwi_dns_parse(const uint8_t *msg, size_t len, uint16_t id, const uint8_t *qname, size_t qlen,
                  uint16_t type, mwi_dns_reply *out);

/* The ID of a message (0 when shorter than two octets). */
uint16_t mwi_dns_id(const uint8_t *msg, size_t len);

#endif
