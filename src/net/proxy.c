/* Connecting through a proxy: SOCKS5 (RFC 1928) with optional
 * user/password authentication (RFC 1929), and HTTP CONNECT (RFC 9110
 * §9.3.6) with optional Basic credentials (RFC 7617).  The handshake runs
 * over the stream already connected to the proxy, with the connect
 * deadline; afterwards the stream carries the tunnel and TLS (if any) is
 * verified against the target host, never the proxy. */
#include "net/proxy.h"

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

/* ---- I/O within the deadline -------------------------------------------------- */

static int put(mw_stream *s, const void *b, size_t n, int64_t deadline, mw_error *err)
{
    return mw_stream_write(s, b, n, deadline, err);
}

/* Exactly n octets (the proxy's answers have known lengths: nothing of
 * what the server says after the tunnel opens is read here). */
static int get(mw_stream *s, unsigned char *b, size_t n, int64_t deadline, mw_error *err)
{
    while (n > 0) {
        size_t got = 0;
        int rc = mw_stream_read(s, b, n, &got, deadline, err);
        if (rc) return rc;
        if (got == 0) return mwi_err_set(err, MW_EPROTO, "the proxy closed the connection");
        b += got;
        n -= got;
    }
    return 0;
}

/* ---- SOCKS5 ----------------------------------------------------------------- */

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

static int socks5(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                  int64_t deadline, mw_error *err)
{
    unsigned char b[600];
    int rc;
    /* RFC 1928 §3: offer "no authentication", and user/password when we
     * have them (only then: a proxy must not get to ask for them). */
    b[0] = 5;
    b[1] = px->has_auth ? 2 : 1;
    b[2] = 0;
    b[3] = 2;
    if ((rc = put(s, b, px->has_auth ? 4 : 3, deadline, err)) || (rc = get(s, b, 2, deadline, err)))
        return rc;
    if (b[0] != 5) return mwi_err_set(err, MW_EPROTO, "not a SOCKS5 proxy (version %u)", b[0]);
    if (b[1] == 0xFF)
        return mwi_err_set(err, MW_EAUTH, "the SOCKS5 proxy accepts none of our methods%s",
                           px->has_auth ? "" : " (it may want a user name and password)");
    if (b[1] == 2 && px->has_auth) {
        /* RFC 1929 §2: VER 1, ULEN, UNAME, PLEN, PASSWD. */
        size_t ul = strlen(px->user), pl = strlen(px->pass), n = 0;
        b[n++] = 1;
        b[n++] = (unsigned char)ul;
        memcpy(b + n, px->user, ul);
        n += ul;
        b[n++] = (unsigned char)pl;
        memcpy(b + n, px->pass, pl);
        n += pl;
        rc = put(s, b, n, deadline, err);
        memset(b, 0, n); /* the password */
        if (rc || (rc = get(s, b, 2, deadline, err))) return rc;
        if (b[1] != 0)
            return mwi_err_set(err, MW_EAUTH, "the SOCKS5 proxy refused the user name or password");
    } else if (b[1] != 0) {
        return mwi_err_set(err, MW_EPROTO, "the SOCKS5 proxy chose method %u, not offered", b[1]);
    }
    /* RFC 1928 §4: CONNECT to an IPv4/IPv6 address or a domain name. */
    size_t n = 0;
    b[n++] = 5;
    b[n++] = 1;
    b[n++] = 0;
    unsigned char a6[16];
    if (inet_pton(AF_INET, host, b + n + 1) == 1) {
        b[n] = 1;
        n += 5;
    } else if (inet_pton(AF_INET6, host, a6) == 1) {
        b[n++] = 4;
        memcpy(b + n, a6, 16);
        n += 16;
    } else if (px->kind == MW_PROXY_SOCKS5H) {
        size_t hl = strlen(host);
        if (hl > 255) return mwi_err_set(err, MW_EINVAL, "host name too long for SOCKS5");
        b[n++] = 3;
        b[n++] = (unsigned char)hl;
        memcpy(b + n, host, hl);
        n += hl;
    } else {
        /* socks5:// resolves names itself (mw_stream_tcp, with the
         * deadline) and hands an address literal here. */
        return mwi_err_set(err, MW_EINVAL, "SOCKS5 without remote resolution needs an address");
    }
    b[n++] = (unsigned char)(port >> 8);
    b[n++] = (unsigned char)(port & 0xFF);
    if ((rc = put(s, b, n, deadline, err)) || (rc = get(s, b, 4, deadline, err))) return rc;
    if (b[0] != 5) return mwi_err_set(err, MW_EPROTO, "not a SOCKS5 reply (version %u)", b[0]);
    if (b[1] != 0)
        return mwi_err_set(err, MW_ENET, "the SOCKS5 proxy could not connect to %s port %u: %s",
                           host, port, socks_reason(b[1]));
    /* The bound address, whose length its type gives, then the port. */
    size_t alen = b[3] == 1 ? 4 : b[3] == 4 ? 16 : 0;
    if (b[3] == 3) {
        if ((rc = get(s, b, 1, deadline, err))) return rc;
        alen = b[0];
    } else if (!alen) {
        return mwi_err_set(err, MW_EPROTO, "SOCKS5 reply with address type %u", b[3]);
    }
    return get(s, b, alen + 2, deadline, err);
}

/* ---- HTTP CONNECT -------------------------------------------------------------- */

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

static int http_connect(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                        int64_t deadline, mw_error *err)
{
    char req[1400];
    int v6 = strchr(host, ':') != NULL;
    int n = snprintf(req, sizeof req, "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n",
                     v6 ? "[" : "", host, v6 ? "]" : "", port, v6 ? "[" : "", host, v6 ? "]" : "",
                     port);
    if (px->has_auth) {
        char cred[520], b64[700];
        int cl = snprintf(cred, sizeof cred, "%s:%s", px->user, px->pass);
        mwi_base64_encode(b64, (const unsigned char *)cred, (size_t)cl);
        memset(cred, 0, sizeof cred);
        n += snprintf(req + n, sizeof req - (size_t)n, "Proxy-Authorization: Basic %s\r\n", b64);
        memset(b64, 0, sizeof b64);
    }
    n += snprintf(req + n, sizeof req - (size_t)n, "\r\n");
    int rc = put(s, req, (size_t)n, deadline, err);
    memset(req, 0, sizeof req);
    if (rc) return rc;
    /* The answer, one octet at a time up to its empty line: what follows
     * it is the server's, and must stay in the stream.  8 KiB at most. */
    char head[8192];
    size_t hl = 0;
    for (;;) {
        if (hl + 1 >= sizeof head)
            return mwi_err_set(err, MW_EPROTO, "the proxy's answer to CONNECT is over 8 KiB");
        if ((rc = get(s, (unsigned char *)head + hl, 1, deadline, err))) return rc;
        hl++;
        if (hl >= 2 && head[hl - 1] == '\n' &&
            (head[hl - 2] == '\n' || (hl >= 3 && head[hl - 2] == '\r' && head[hl - 3] == '\n')))
            break;
    }
    head[hl] = '\0';
    int code = 0;
    if (strncmp(head, "HTTP/1.", 7) != 0 || (code = http_status(head + 8)) < 0)
        return mwi_err_set(err, MW_EPROTO, "not an HTTP proxy's answer to CONNECT");
    if (code / 100 == 2) return 0;
    char line[200];
    mwi_copy_printable(line, sizeof line, head, strcspn(head, "\r\n"));
    if (code == 407)
        return mwi_err_set(err, MW_EAUTH, "the HTTP proxy wants%s credentials: %s",
                           px->has_auth ? " other" : "", line);
    return mwi_err_set(err, MW_ENET, "the HTTP proxy could not connect to %s port %u: %s", host,
                       port, line);
}

int mwi_proxy_handshake(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                        int64_t deadline, mw_error *err)
{
    if (px->kind == MW_PROXY_HTTP) return http_connect(s, px, host, port, deadline, err);
    return socks5(s, px, host, port, deadline, err);
}
