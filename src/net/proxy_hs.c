/* A proxy's URL and its handshake without I/O (proxy_hs.h).  The same
 * octets, limits and words as the blocking handshake always had: SOCKS5
 * (RFC 1928) with user/password (RFC 1929) offered only when we have them,
 * HTTP CONNECT (RFC 9110 §9.3.6) with Basic credentials (RFC 7617), its
 * answer's head 8 KiB at most. */
#include "net/proxy_hs.h"

#include "util/base64.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the URL ---------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into dst (cap bytes with the NUL); refuses
 * NUL, CR and LF (they would end up in a header line). */
static int decode(char *dst, size_t cap, const char *src, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)src[i];
        if (c == '%' && i + 2 < n && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = hexval(src[i + 1]) * 16 + hexval(src[i + 2]);
            i += 2;
        }
        if (c == 0 || c == '\r' || c == '\n' || o + 1 >= cap) return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return 0;
}

int mwi_proxy_parse(mw_proxy *px, const char *url, mw_error *err)
{
    memset(px, 0, sizeof *px);
    const char *p;
    if (!strncasecmp(url, "socks5://", 9)) {
        px->kind = MW_PROXY_SOCKS5;
        p = url + 9;
    } else if (!strncasecmp(url, "socks5h://", 10)) {
        px->kind = MW_PROXY_SOCKS5H;
        p = url + 10;
    } else if (!strncasecmp(url, "http://", 7)) {
        px->kind = MW_PROXY_HTTP;
        p = url + 7;
    } else {
        return mwi_err_set(err, MW_EINVAL,
                           "proxy: want socks5://, socks5h:// or http://HOST[:PORT]");
    }
    px->port = px->kind == MW_PROXY_HTTP ? 8080 : 1080;
    size_t n = strcspn(p, "/?#");
    if (p[n] && strcmp(p + n, "/") != 0)
        return mwi_err_set(err, MW_EINVAL, "proxy: nothing may follow HOST:PORT but \"/\"");
    const char *at = memchr(p, '@', n);
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (decode(px->user, sizeof px->user, p, ul) != 0 ||
            (colon && decode(px->pass, sizeof px->pass, colon + 1, (size_t)(at - colon - 1)) != 0))
            return mwi_err_set(err, MW_EINVAL, "proxy: bad or too long user name or password");
        px->has_auth = 1;
        n -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *hend;
    if (n > 0 && p[0] == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb) return mwi_err_set(err, MW_EINVAL, "proxy: unterminated [IPv6] host");
        if ((size_t)(rb - p - 1) >= sizeof px->host)
            return mwi_err_set(err, MW_EINVAL, "proxy: host too long");
        memcpy(px->host, p + 1, (size_t)(rb - p - 1));
        hend = rb + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        hend = colon ? colon : p + n;
        if ((size_t)(hend - p) >= sizeof px->host)
            return mwi_err_set(err, MW_EINVAL, "proxy: host too long");
        memcpy(px->host, p, (size_t)(hend - p));
    }
    if (!px->host[0]) return mwi_err_set(err, MW_EINVAL, "proxy: no host");
    if (hend < p + n) {
        if (*hend != ':') return mwi_err_set(err, MW_EINVAL, "proxy: junk after the host");
        char *e;
        unsigned long v = strtoul(hend + 1, &e, 10);
        if (e == hend + 1 || e != p + n || v == 0 || v > 65535)
            return mwi_err_set(err, MW_EINVAL, "proxy: bad port");
        px->port = (unsigned)v;
    }
    return 0;
}

/* ---- the handshake ------------------------------------------------------------ */

enum {
    HS_S5_METHOD = 1, /* greeting sent: 2 octets, the method chosen */
    HS_S5_AUTH,       /* RFC 1929 request sent: 2 octets, its status */
    HS_S5_REPLY,      /* CONNECT sent: VER REP RSV ATYP */
    HS_S5_ALEN,       /* a domain name bound: its length octet */
    HS_S5_BOUND,      /* the bound address and port */
    HS_HTTP_HEAD,     /* CONNECT sent: the answer up to its empty line */
    HS_DONE,
    HS_FAILED
};

static void set_out(mwi_pxhs *h, const void *b, size_t n)
{
    memcpy(h->out, b, n);
    h->out_len = n;
    h->out_off = 0;
}

/* Expects n more octets in state st. */
static int expect(mwi_pxhs *h, int st, size_t n)
{
    h->state = st;
    h->in_len = 0;
    h->in_want = n;
    return MWI_PXHS_MORE;
}

static int failed(mwi_pxhs *h)
{
    h->state = HS_FAILED;
    h->in_want = 0;
    return 0;
}

static const char *socks_reason(int rep)
{
    static const char *const r[] = {"succeeded",
                                    "general SOCKS server failure",
                                    "connection not allowed by ruleset",
                                    "network unreachable",
                                    "host unreachable",
                                    "connection refused",
                                    "TTL expired",
                                    "command not supported",
                                    "address type not supported"};
    return rep >= 0 && rep < (int)(sizeof r / sizeof r[0]) ? r[rep] : "unknown failure code";
}

/* RFC 1928 §4: CONNECT to an IPv4/IPv6 address or (socks5h) a name. */
static int socks_request(mwi_pxhs *h, mw_error *err)
{
    unsigned char *b = h->req;
    size_t n = 0;
    b[n++] = 5;
    b[n++] = 1;
    b[n++] = 0;
    unsigned char a6[16];
    if (inet_pton(AF_INET, h->host, b + n + 1) == 1) {
        b[n] = 1;
        n += 5;
    } else if (inet_pton(AF_INET6, h->host, a6) == 1) {
        b[n++] = 4;
        memcpy(b + n, a6, 16);
        n += 16;
    } else if (h->px.kind == MW_PROXY_SOCKS5H) {
        size_t hl = strlen(h->host);
        if (hl > 255) return mwi_err_set(err, MW_EINVAL, "host name too long for SOCKS5");
        b[n++] = 3;
        b[n++] = (unsigned char)hl;
        memcpy(b + n, h->host, hl);
        n += hl;
    } else {
        /* socks5:// resolves names itself and hands an address here. */
        return mwi_err_set(err, MW_EINVAL, "SOCKS5 without remote resolution needs an address");
    }
    b[n++] = (unsigned char)(h->port >> 8);
    b[n++] = (unsigned char)(h->port & 0xFF);
    h->req_len = n;
    /* §3: "no authentication", and user/password when we have them (only
     * then: a proxy must not get to ask for them). */
    unsigned char g[4] = {5, (unsigned char)(h->px.has_auth ? 2 : 1), 0, 2};
    set_out(h, g, h->px.has_auth ? 4 : 3);
    expect(h, HS_S5_METHOD, 2);
    return 0;
}

static int http_request(mwi_pxhs *h, mw_error *err)
{
    char *req = (char *)h->out;
    size_t cap = sizeof h->out;
    int v6 = strchr(h->host, ':') != NULL;
    const char *l = v6 ? "[" : "", *r = v6 ? "]" : "";
    int n = snprintf(req, cap, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n", l, h->host, r,
                     h->port, l, h->host, r, h->port);
    if (n > 0 && (size_t)n < cap && h->px.has_auth) {
        char cred[520], b64[700];
        int cl = snprintf(cred, sizeof cred, "%s:%s", h->px.user, h->px.pass);
        mwi_base64_encode(b64, (const unsigned char *)cred, (size_t)cl);
        explicit_bzero(cred, sizeof cred);
        n += snprintf(req + n, cap - (size_t)n, "Proxy-Authorization: Basic %s\r\n", b64);
        explicit_bzero(b64, sizeof b64);
    }
    if (n > 0 && (size_t)n < cap) n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (n <= 0 || (size_t)n >= cap) {
        explicit_bzero(h->out, sizeof h->out);
        return mwi_err_set(err, MW_EINVAL, "proxy: the CONNECT request would be too long");
    }
    h->out_len = (size_t)n;
    h->out_off = 0;
    expect(h, HS_HTTP_HEAD, 0);
    return 0;
}

int mwi_pxhs_start(mwi_pxhs *h, const mw_proxy *px, const char *host, unsigned port, mw_error *err)
{
    memset(h, 0, sizeof *h);
    h->px = *px;
    h->port = port;
    h->state = HS_FAILED;
    size_t hl = host ? strlen(host) : 0;
    int bad = hl == 0;
    for (size_t i = 0; i < hl; i++)
        if ((unsigned char)host[i] <= 0x20 || host[i] == 0x7F) bad = 1;
    if (bad) return mwi_err_set(err, MW_EINVAL, "invalid host name");
    if (hl >= sizeof h->host)
        return mwi_err_set(err, MW_EINVAL, "host name too long for %s",
                           px->kind == MW_PROXY_HTTP ? "CONNECT" : "SOCKS5");
    memcpy(h->host, host, hl + 1);
    return px->kind == MW_PROXY_HTTP ? http_request(h, err) : socks_request(h, err);
}

const unsigned char *mwi_pxhs_output(const mwi_pxhs *h, size_t *n)
{
    *n = h->state == HS_FAILED ? 0 : h->out_len - h->out_off;
    return h->out + h->out_off;
}

void mwi_pxhs_sent(mwi_pxhs *h, size_t n)
{
    if (n > h->out_len - h->out_off) n = h->out_len - h->out_off;
    h->out_off += n;
    if (h->out_off == h->out_len) { /* the password may be in there */
        explicit_bzero(h->out, h->out_len);
        h->out_len = h->out_off = 0;
    }
}

/* HTTP: the head ends with "\n\n" or "\n\r\n"; reading one or two octets
 * at a time never passes it (two only when no ending can complete with
 * the next one).  Bounded by the head's room. */
static size_t http_need(const mwi_pxhs *h)
{
    const unsigned char *b = h->in;
    size_t hl = h->in_len, room = sizeof h->in - 1 - hl;
    size_t n = (hl >= 1 && b[hl - 1] == '\n') || (hl >= 2 && b[hl - 2] == '\n' && b[hl - 1] == '\r')
                   ? 1
                   : 2;
    return n < room ? n : room;
}

size_t mwi_pxhs_need(const mwi_pxhs *h)
{
    if (h->out_len > h->out_off || h->state == HS_DONE || h->state == HS_FAILED) return 0;
    if (h->state == HS_HTTP_HEAD) return http_need(h);
    return h->in_want - h->in_len;
}

/* The status code of "HTTP/1.x SP 3DIGIT SP reason" (RFC 9112 §4) from the
 * text after "HTTP/1.x"; -1 when it is not there. */
static int http_status(const char *p)
{
    if (p[0] != ' ' || p[1] < '1' || p[1] > '5') return -1;
    for (int i = 2; i <= 3; i++)
        if (p[i] < '0' || p[i] > '9') return -1;
    if (p[4] != ' ' && p[4] != '\r' && p[4] != '\n') return -1;
    return (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
}

/* The head is in (NUL-terminated): 2xx opens the tunnel. */
static int http_answer(mwi_pxhs *h, mw_error *err)
{
    const char *head = (const char *)h->in;
    int code = 0;
    if (strncmp(head, "HTTP/1.", 7) != 0 || (code = http_status(head + 8)) < 0)
        return mwi_err_set(err, MW_EPROTO, "not an HTTP proxy's answer to CONNECT");
    if (code / 100 == 2) {
        h->state = HS_DONE;
        return MWI_PXHS_DONE;
    }
    char line[200];
    mwi_copy_printable(line, sizeof line, head, strcspn(head, "\r\n"));
    if (code == 407)
        return mwi_err_set(err, MW_EAUTH, "the HTTP proxy wants%s credentials: %s",
                           h->px.has_auth ? " other" : "", line);
    return mwi_err_set(err, MW_ENET, "the HTTP proxy could not connect to %s port %u: %s", h->host,
                       h->port, line);
}

static int http_feed(mwi_pxhs *h, mw_error *err)
{
    const unsigned char *b = h->in;
    size_t hl = h->in_len;
    h->in[hl] = '\0';
    if (hl >= 2 && b[hl - 1] == '\n' &&
        (b[hl - 2] == '\n' || (hl >= 3 && b[hl - 2] == '\r' && b[hl - 3] == '\n')))
        return http_answer(h, err);
    if (hl + 1 >= sizeof h->in)
        return mwi_err_set(err, MW_EPROTO, "the proxy's answer to CONNECT is over 8 KiB");
    return MWI_PXHS_MORE;
}

/* RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD. */
static void socks_auth(mwi_pxhs *h)
{
    size_t ul = strlen(h->px.user), pl = strlen(h->px.pass), n = 0;
    unsigned char *b = h->out;
    b[n++] = 1;
    b[n++] = (unsigned char)ul;
    memcpy(b + n, h->px.user, ul);
    n += ul;
    b[n++] = (unsigned char)pl;
    memcpy(b + n, h->px.pass, pl);
    n += pl;
    h->out_len = n;
    h->out_off = 0;
}

static int socks_method(mwi_pxhs *h, mw_error *err)
{
    const unsigned char *b = h->in;
    if (b[0] != 5) return mwi_err_set(err, MW_EPROTO, "not a SOCKS5 proxy (version %u)", b[0]);
    if (b[1] == 0xFF)
        return mwi_err_set(err, MW_EAUTH, "the SOCKS5 proxy accepts none of our methods%s",
                           h->px.has_auth ? "" : " (it may want a user name and password)");
    if (b[1] == 2 && h->px.has_auth) {
        socks_auth(h);
        return expect(h, HS_S5_AUTH, 2);
    }
    if (b[1] != 0)
        return mwi_err_set(err, MW_EPROTO, "the SOCKS5 proxy chose method %u, not offered", b[1]);
    set_out(h, h->req, h->req_len);
    return expect(h, HS_S5_REPLY, 4);
}

static int socks_reply(mwi_pxhs *h, mw_error *err)
{
    const unsigned char *b = h->in;
    if (b[0] != 5) return mwi_err_set(err, MW_EPROTO, "not a SOCKS5 reply (version %u)", b[0]);
    if (b[1] != 0)
        return mwi_err_set(err, MW_ENET, "the SOCKS5 proxy could not connect to %s port %u: %s",
                           h->host, h->port, socks_reason(b[1]));
    /* The bound address, whose length its type gives, then the port. */
    if (b[3] == 3) return expect(h, HS_S5_ALEN, 1);
    if (b[3] != 1 && b[3] != 4)
        return mwi_err_set(err, MW_EPROTO, "SOCKS5 reply with address type %u", b[3]);
    return expect(h, HS_S5_BOUND, (b[3] == 1 ? 4 : 16) + 2);
}

/* A whole piece of a SOCKS5 answer is in. */
static int socks_feed(mwi_pxhs *h, mw_error *err)
{
    switch (h->state) {
    case HS_S5_METHOD:
        return socks_method(h, err);
    case HS_S5_AUTH:
        if (h->in[1] != 0)
            return mwi_err_set(err, MW_EAUTH, "the SOCKS5 proxy refused the user name or password");
        set_out(h, h->req, h->req_len);
        return expect(h, HS_S5_REPLY, 4);
    case HS_S5_REPLY:
        return socks_reply(h, err);
    case HS_S5_ALEN:
        return expect(h, HS_S5_BOUND, (size_t)h->in[0] + 2);
    default: /* HS_S5_BOUND */
        h->state = HS_DONE;
        return MWI_PXHS_DONE;
    }
}

int mwi_pxhs_feed(mwi_pxhs *h, const unsigned char *b, size_t n, mw_error *err)
{
    size_t need = mwi_pxhs_need(h);
    if (n == 0 || n > need) {
        failed(h);
        return mwi_err_set(err, MW_EINVAL, "proxy handshake: %zu octets fed, %zu wanted", n, need);
    }
    memcpy(h->in + h->in_len, b, n);
    h->in_len += n;
    int rc = MWI_PXHS_MORE;
    if (h->state == HS_HTTP_HEAD)
        rc = http_feed(h, err);
    else if (h->in_len == h->in_want)
        rc = socks_feed(h, err);
    if (rc < 0) failed(h);
    return rc;
}

int mwi_pxhs_closed(mwi_pxhs *h, mw_error *err)
{
    failed(h);
    return mwi_err_set(err, MW_EPROTO, "the proxy closed the connection");
}

int mwi_pxhs_over(const mwi_pxhs *h)
{
    return h->state == HS_DONE || h->state == HS_FAILED;
}

void mwi_pxhs_wipe(mwi_pxhs *h)
{
    explicit_bzero(h, sizeof *h);
}
