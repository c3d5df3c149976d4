/* mw_stream_tcp: a TCP stream to a host, direct (s_tcp.c) or through the
 * proxy of the options, whose handshake (proxy.c) runs over the TCP
 * stream to the proxy and hands that stream on as the tunnel. */
#include "net/proxy.h"
#include "net/s_tcp.h"
#include "net/stream.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static int valid_host(const char *host)
{
    if (!host || !*host || strlen(host) > 253 + 2 /* [IPv6] */) return 0;
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7F) return 0;
    return 1;
}

/* Through the proxy of opts: a connection to it, then its handshake for
 * name port (the connect timeout again for that).  The stream then names
 * the target host, which TLS verifies — never the proxy. */
static int tcp_via_proxy(mw_stream **out, const char *name, const char *host, unsigned port,
                         const mw_net_opts *opts, int64_t start, mw_error *err)
{
    mw_proxy px;
    int rc = mwi_proxy_parse(&px, opts->proxy, err);
    if (rc) return rc;
    mw_stream *s = NULL;
    mw_error pe = {0};
    if ((rc = mwi_tcp_direct(&s, px.host, px.host, px.port, opts, start, &pe)) != 0)
        return mwi_err_set(err, rc, "proxy: %s", pe.message);
    char target[INET6_ADDRSTRLEN + 1];
    const char *ask = name;
    unsigned char tmp[16];
    if (px.kind == MW_PROXY_SOCKS5 && inet_pton(AF_INET, name, tmp) != 1 &&
        inet_pton(AF_INET6, name, tmp) != 1) {
        /* socks5:// (not socks5h://): the name is resolved here. */
        struct addrinfo *res = NULL;
        if ((rc = mwi_tcp_lookup(name, port, opts, &res, err)) != 0) {
            mw_stream_free(s);
            return rc;
        }
        const void *a = res->ai_family == AF_INET
                            ? (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr
                            : (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr;
        inet_ntop(res->ai_family, a, target, sizeof target);
        freeaddrinfo(res);
        ask = target;
    }
    int64_t deadline =
        opts->connect_timeout_ms > 0 ? mw_now_ms() + opts->connect_timeout_ms : MW_NO_DEADLINE;
    rc = mwi_proxy_handshake(s, &px, ask, port, deadline, err);
    if (rc) {
        if (rc == MW_ETIMEOUT && err)
            mwi_err_set(err, rc, "the proxy %s port %u did not answer within %d ms", px.host,
                        px.port, opts->connect_timeout_ms);
        mw_stream_free(s);
        return rc;
    }
    char *h = strdup(name);
    if (!h) {
        mw_stream_free(s);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    free(s->host);
    s->host = h;
    *out = s;
    return 0;
}

int mw_stream_tcp(mw_stream **out, const char *host, unsigned port, const mw_net_opts *opts,
                  mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (!valid_host(host)) return mwi_err_set(err, MW_EINVAL, "invalid host name");
    if (port == 0 || port > 65535)
        return mwi_err_set(err, MW_EINVAL, "invalid port %u (1-65535)", port);
    mw_net_opts o;
    int rc = mwi_net_opts_load(&o, opts, err);
    if (rc) return rc;
    if (o.family != 0 && o.family != 4 && o.family != 6)
        return mwi_err_set(err, MW_EINVAL, "invalid address family %d (0, 4 or 6)", o.family);
    /* max_time_ms counts from here: it bounds the lookup and the connect
     * too, as a connect timeout when it is the shorter. */
    int64_t start = mw_now_ms();
    if (o.max_time_ms > 0 && (o.connect_timeout_ms <= 0 || o.max_time_ms < o.connect_timeout_ms))
        o.connect_timeout_ms = o.max_time_ms;
    /* An IPv6 literal may come bracketed, as in a URL. */
    char name[260];
    size_t hl = strlen(host);
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memcpy(name, host + 1, hl - 2);
        name[hl - 2] = '\0';
    } else {
        snprintf(name, sizeof name, "%s", host);
    }
    if (o.proxy && *o.proxy)
        rc = tcp_via_proxy(out, name, host, port, &o, start, err);
    else
        rc = mwi_tcp_direct(out, name, host, port, &o, start, err);
    if (rc == MW_ETIMEOUT && o.max_time_ms > 0 && mw_now_ms() >= start + o.max_time_ms) {
        char t[32];
        mwi_ms_text(t, sizeof t, o.max_time_ms);
        return mwi_err_set(err, rc,
                           "session exceeded its max-time of %s while connecting to %s port %u", t,
                           host, port);
    }
    return rc;
}
