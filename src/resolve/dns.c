/* DNS messages without I/O (dns.h). */
#include "resolve/dns.h"

#include <string.h>

static uint8_t lower(uint8_t c)
{
    return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

size_t mwi_dns_name_wire(const char *name, uint8_t *out)
{
    size_t n = strlen(name), o = 0, i = 0;
    if (n == 0 || (n == 1 && name[0] == '.')) return 0;
    if (name[n - 1] == '.') n--;
    while (i < n) {
        size_t start = i;
        while (i < n && name[i] != '.')
            i++;
        size_t l = i - start;
        if (l == 0 || l > 63 || o + 1 + l + 1 > MWI_DNS_NAME_MAX) return 0;
        out[o++] = (uint8_t)l;
        for (size_t k = start; k < i; k++) {
            uint8_t c = (uint8_t)name[k];
            if (c <= ' ' || c >= 0x7f || c == '\\') return 0;
            out[o++] = lower(c);
        }
        if (i < n) i++;                             /* the dot */
        if (i == n && name[n - 1] == '.') return 0; /* "a..": an empty label */
    }
    out[o++] = 0;
    return o;
}

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static unsigned get16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

size_t mwi_dns_build_query(uint8_t *out, uint16_t id, const uint8_t *qname, size_t qlen,
                           uint16_t type)
{
    memset(out, 0, 12);
    put16(out, id);
    out[2] = 0x01; /* RD (RFC 1035 §4.1.1) */
    put16(out + 4, 1);
    memcpy(out + 12, qname, qlen);
    put16(out + 12 + qlen, type);
    put16(out + 14 + qlen, 1); /* class IN */
    return 16 + qlen;
}

uint16_t mwi_dns_id(const uint8_t *msg, size_t len)
{
    return len >= 2 ? (uint16_t)get16(msg) : 0;
}

/* Reads the name at msg[*pos] into out (wire form, lowercased, pointers
 * resolved); *pos moves past it.  Returns its length, or 0 with *why. */
static size_t read_name(const uint8_t *msg, size_t len, size_t *pos, uint8_t *out, const char **why)
{
    size_t p = *pos, o = 0, next = 0;
    int jumped = 0, hops = 0;
    for (;;) {
        if (p >= len) return *why = "a name runs past the end of the reply", 0;
        uint8_t c = msg[p];
        if ((c & 0xc0) == 0xc0) {
            if (p + 1 >= len) return *why = "a name runs past the end of the reply", 0;
            size_t target = (size_t)(c & 0x3f) << 8 | msg[p + 1];
            if (!jumped) next = p + 2;
            /* Only backwards, and only so many: no loop (RFC 1035 §4.1.4
             * names a prior occurrence). */
            if (target >= p || ++hops > MWI_DNS_POINTERS_MAX)
                return *why = "a compression pointer loops or points forward", 0;
            p = target;
            jumped = 1;
            continue;
        }
        if (c & 0xc0) return *why = "a name has a label type that is not defined", 0;
        if (o + 1 + c > MWI_DNS_NAME_MAX) return *why = "a name is over 255 octets", 0;
        if (p + 1 + c > len) return *why = "a name runs past the end of the reply", 0;
        out[o++] = c;
        for (size_t k = 0; k < c; k++)
            out[o++] = lower(msg[p + 1 + k]);
        if (c == 0) {
            *pos = jumped ? next : p + 1;
            return o;
        }
        p += 1 + (size_t)c;
    }
}

typedef struct rr {
    uint8_t owner[MWI_DNS_NAME_MAX];
    size_t olen;
    unsigned type, cls;
    uint32_t ttl;        /* seconds; one with the top bit set is 0 (RFC 2181 §8) */
    size_t rdata, rdlen; /* offset and length in msg */
} rr;

/* Reads the resource record at *pos (RFC 1035 §4.1.3).  Returns 0 or -1
 * with *why. */
static int read_rr(const uint8_t *msg, size_t len, size_t *pos, rr *r, const char **why)
{
    if (!(r->olen = read_name(msg, len, pos, r->owner, why))) return -1;
    if (len - *pos < 10) return *why = "a record runs past the end of the reply", -1;
    const uint8_t *p = msg + *pos;
    r->type = get16(p);
    r->cls = get16(p + 2);
    r->ttl = (uint32_t)get16(p + 4) << 16 | get16(p + 6);
    if (r->ttl & 0x80000000u) r->ttl = 0;
    r->rdlen = get16(p + 8);
    r->rdata = *pos + 10;
    if (r->rdlen > len - r->rdata)
        return *why = "a record's data runs past the end of the reply", -1;
    *pos = r->rdata + r->rdlen;
    return 0;
}

static int same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    return al == bl && memcmp(a, b, al) == 0;
}

/* Follows the CNAME chain from qname through the answer section at
 * msg[start], ancount records; the final name into cur.  Returns 0 or -1
 * with *why. */
static int follow_cnames(const uint8_t *msg, size_t len, size_t start, unsigned ancount,
                         uint8_t *cur, size_t *clen, uint32_t *ttl, const char **why)
{
    rr r;
    for (int hops = 0;; hops++) {
        size_t pos = start;
        int found = 0;
        for (unsigned i = 0; i < ancount && !found; i++) {
            if (read_rr(msg, len, &pos, &r, why)) return -1;
            if (r.type != MWI_DNS_T_CNAME || r.cls != 1 || !same(r.owner, r.olen, cur, *clen))
                continue;
            if (hops >= MWI_DNS_CNAME_MAX)
                return *why = "the CNAME chain is longer than 8 names", -1;
            size_t p = r.rdata;
            uint8_t target[MWI_DNS_NAME_MAX];
            size_t tl = read_name(msg, len, &p, target, why);
            if (!tl) return -1;
            if (p != r.rdata + r.rdlen) return *why = "a CNAME's data is not one name", -1;
            memcpy(cur, target, tl);
            *clen = tl;
            if (r.ttl < *ttl) *ttl = r.ttl;
            found = 1;
        }
        if (!found) return 0;
    }
}

static int bad(mwi_dns_reply *out, const char *why)
{
    out->why = why;
    out->naddrs = 0; /* nothing of a bad reply is used */
    out->ttl = 0;
    return MWI_DNS_BAD;
}

/* The records of type for the name cur, into out. */
static int take_addrs(const uint8_t *msg, size_t len, size_t pos, unsigned ancount,
                      const uint8_t *cur, size_t clen, uint16_t type, mwi_dns_reply *out)
{
    rr r;
    const char *why = NULL;
    size_t want = type == MWI_DNS_T_A ? 4 : 16;
    for (unsigned i = 0; i < ancount; i++) {
        if (read_rr(msg, len, &pos, &r, &why)) return bad(out, why);
        if (r.type != type || r.cls != 1 || !same(r.owner, r.olen, cur, clen)) continue;
        if (r.rdlen != want)
            return bad(out, type == MWI_DNS_T_A ? "an A record is not 4 octets"
                                                : "an AAAA record is not 16 octets");
        if (out->naddrs < MWI_DNS_ADDRS_MAX) memcpy(out->addrs[out->naddrs++], msg + r.rdata, want);
        if (r.ttl < out->ttl) out->ttl = r.ttl;
    }
    if (!out->naddrs) out->ttl = 0;
    return MWI_DNS_OK;
}

int mwi_dns_parse(const uint8_t *msg, size_t len, uint16_t id, const uint8_t *qname, size_t qlen,
                  uint16_t type, mwi_dns_reply *out)
{
    memset(out, 0, sizeof *out);
    if (len < 2 || get16(msg) != id) return MWI_DNS_NOT_OURS;
    if (len < 12) return bad(out, "the reply is shorter than a DNS header");
    if (!(msg[2] & 0x80)) return MWI_DNS_NOT_OURS; /* a query, not a reply */
    if ((msg[2] >> 3 & 0x0f) != 0) return bad(out, "the reply has another opcode");
    out->rcode = msg[3] & 0x0f;
    unsigned qdcount = get16(msg + 4), ancount = get16(msg + 6);
    if (qdcount != 1) return bad(out, "the reply's question does not match");
    size_t pos = 12;
    uint8_t name[MWI_DNS_NAME_MAX];
    const char *why = NULL;
    size_t nl = read_name(msg, len, &pos, name, &why);
    if (!nl) return bad(out, why);
    if (len - pos < 4) return bad(out, "the reply's question runs past its end");
    if (!same(name, nl, qname, qlen) || get16(msg + pos) != type || get16(msg + pos + 2) != 1)
        return bad(out, "the reply's question does not match");
    pos += 4;
    if (msg[2] & 0x02) return MWI_DNS_TRUNCATED;
    if (out->rcode == 3) return MWI_DNS_NXDOMAIN;
    if (out->rcode != 0) return MWI_DNS_SERVFAIL;
    uint8_t cur[MWI_DNS_NAME_MAX];
    size_t clen = qlen;
    memcpy(cur, qname, qlen);
    out->ttl = UINT32_MAX; /* the least of the chain's and the records' */
    if (follow_cnames(msg, len, pos, ancount, cur, &clen, &out->ttl, &why)) return bad(out, why);
    return take_addrs(msg, len, pos, ancount, cur, clen, type, out);
}
