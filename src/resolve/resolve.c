/* The stub resolver's driver: candidates, servers, UDP and TCP
 * (resolve.h).  The messages are dns.c's, the files conf.c's. */
#include "resolve/resolve.h"
#include "mailwire/common.h"
#include "mailwire/loop.h"
#include "resolve/dns.h"
#include "util/err.h"
#include "util/random.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_MSG_MAX (2 + 65535)
#define NCAND_MAX   (MWI_RSLV_SEARCH_MAX + 1)

typedef struct query {
    uint16_t type, id;
    int state; /* 0 waiting, 1 answered */
    int nx;    /* answered NXDOMAIN */
    mwi_dns_reply rep;
} query;

struct mwi_rslv {
    char name[254];
    int family;
    mwi_rslv_conf conf;
    int64_t deadline, try_deadline;
    char cand[NCAND_MAX][254];
    size_t ncand, icand;
    uint8_t qname[MWI_DNS_NAME_MAX];
    size_t qlen;
    query q[2];
    size_t nq;
    size_t iserver;
    int attempt;
    int fd, tcp, connecting;
    uint8_t *tin; /* TCP input, TCP_MSG_MAX octets */
    size_t tin_len;
    uint8_t tout[2 * (2 + MWI_DNS_QUERY_MAX)];
    size_t tout_len, tout_off;
    mwi_raddr addrs[MWI_RSLV_ADDRS_MAX];
    size_t naddrs;
    uint32_t ttl; /* of the DNS answers taken; 0 from the hosts file */
    int done, code;
    int heard;      /* a server answered in this round (not all silent) */
    char last[240]; /* the last server's failure, for the final error */
    char asked[270];
    int last_code;
    mw_error err;
};

static void close_fd(mwi_rslv *r)
{
    if (r->fd >= 0) close(r->fd);
    r->fd = -1;
    r->tcp = r->connecting = 0;
    r->tin_len = r->tout_len = r->tout_off = 0;
}

static void ns_text(const mwi_raddr *a, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    inet_ntop(a->family, a->addr, ip, sizeof ip);
    snprintf(buf, cap, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a->port);
}

static void fail(mwi_rslv *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(mwi_rslv *r, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[sizeof r->err.message];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    mwi_err_set(&r->err, code, "%s", msg);
    r->code = code;
    close_fd(r);
}

/* Remembers what the current server did wrong, for the final error. */
static void server_failed(mwi_rslv *r, int code, const char *what)
{
    char ns[64];
    ns_text(&r->conf.ns[r->iserver], ns, sizeof ns);
    snprintf(r->last, sizeof r->last, "%s (from %s)", what, ns);
    r->last_code = code;
    r->heard = 1;
}

static socklen_t to_sockaddr(const mwi_raddr *a, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET) {
        struct sockaddr_in *s = (struct sockaddr_in *)ss;
        s->sin_family = AF_INET;
        s->sin_port = htons((uint16_t)a->port);
        memcpy(&s->sin_addr, a->addr, 4);
        return sizeof *s;
    }
    struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
    s->sin6_family = AF_INET6;
    s->sin6_port = htons((uint16_t)a->port);
    memcpy(&s->sin6_addr, a->addr, 16);
    return sizeof *s;
}

/* A fresh ID for every waiting query, each different (RFC 5452 §9.2). */
static int new_ids(mwi_rslv *r)
{
    uint16_t ids[2];
    if (mwi_random_bytes(ids, sizeof ids, &r->err)) return -1;
    if (ids[1] == ids[0]) ids[1] ^= 0x5a5a;
    for (size_t i = 0; i < r->nq; i++)
        r->q[i].id = ids[i];
    return 0;
}

/* A UDP socket bound to a random port (RFC 5452 §9.2), else to the one
 * the kernel picks. */
static int udp_socket(int family)
{
    int s = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    for (int tries = 0; tries < 8; tries++) {
        uint16_t p;
        if (mwi_random_bytes(&p, sizeof p, NULL)) break;
        mwi_raddr any = {.family = family, .port = 1024 + p % (65536 - 1024)};
        struct sockaddr_storage ss;
        socklen_t sl = to_sockaddr(&any, &ss);
        if (bind(s, (struct sockaddr *)&ss, sl) == 0) return s;
    }
    return s;
}

/* Sends the waiting queries to the current server over UDP.  Returns 0,
 * or -1 with the server's failure noted. */
static int send_udp(mwi_rslv *r)
{
    close_fd(r);
    const mwi_raddr *ns = &r->conf.ns[r->iserver];
    struct sockaddr_storage ss;
    socklen_t sl = to_sockaddr(ns, &ss);
    if (new_ids(r)) return -1;
    r->fd = udp_socket(ns->family);
    if (r->fd < 0 || connect(r->fd, (struct sockaddr *)&ss, sl) != 0) {
        server_failed(r, MW_ENET, MW_ERRNO_TEXT(errno));
        close_fd(r);
        return -1;
    }
    for (size_t i = 0; i < r->nq; i++) {
        if (r->q[i].state) continue;
        uint8_t m[MWI_DNS_QUERY_MAX];
        size_t n = mwi_dns_build_query(m, r->q[i].id, r->qname, r->qlen, r->q[i].type);
        if (send(r->fd, m, n, 0) != (ssize_t)n) {
            server_failed(r, MW_ENET, MW_ERRNO_TEXT(errno));
            close_fd(r);
            return -1;
        }
    }
    return 0;
}

/* Asks the current server again over TCP, every query not answered yet,
 * each length-prefixed (RFC 1035 §4.2.2).  Returns 0 or -1. */
static int start_tcp(mwi_rslv *r)
{
    close_fd(r);
    if (!r->tin && !(r->tin = malloc(TCP_MSG_MAX)))
        return mwi_err_set(&r->err, MW_ENOMEM, "out of memory"), -1;
    const mwi_raddr *ns = &r->conf.ns[r->iserver];
    struct sockaddr_storage ss;
    socklen_t sl = to_sockaddr(ns, &ss);
    if (new_ids(r)) return -1;
    r->fd = socket(ns->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (r->fd < 0 || (connect(r->fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS)) {
        server_failed(r, MW_ENET, MW_ERRNO_TEXT(errno));
        close_fd(r);
        return -1;
    }
    r->tcp = r->connecting = 1;
    for (size_t i = 0; i < r->nq; i++) {
        if (r->q[i].state) continue;
        uint8_t *m = r->tout + r->tout_len;
        size_t n = mwi_dns_build_query(m + 2, r->q[i].id, r->qname, r->qlen, r->q[i].type);
        m[0] = (uint8_t)(n >> 8);
        m[1] = (uint8_t)n;
        r->tout_len += 2 + n;
    }
    return 0;
}

static void next_server(mwi_rslv *r);

/* For an error: the name asked, when the search list made another. */
static const char *asked_as(mwi_rslv *r)
{
    static const char none[] = "";
    if (!strcmp(r->cand[r->icand], r->name)) return none;
    snprintf(r->asked, sizeof r->asked, " (asked as %s)", r->cand[r->icand]);
    return r->asked;
}

/* The current server failed (what): on to the next. */
static void drop_server(mwi_rslv *r, int code, const char *what)
{
    server_failed(r, code, what);
    next_server(r);
}

/* The next server, or the next round (attempts), until one takes the
 * queries; at the end the lookup fails with what the servers did. */
static void next_server(mwi_rslv *r)
{
    for (;;) {
        if (++r->iserver >= r->conf.nns) {
            r->iserver = 0;
            if (++r->attempt >= r->conf.attempts) break;
        }
        if (send_udp(r) == 0) {
            r->try_deadline = mw_now_ms() + r->conf.timeout_ms;
            return;
        }
        if (r->err.code) break; /* no random bytes: no query */
    }
    if (r->err.code) {
        fail(r, r->err.code, "%s: %s%s", r->name, r->err.message, asked_as(r));
    } else if (r->last[0]) {
        fail(r, r->last_code, "%s: %s%s", r->name, r->last, asked_as(r));
    } else {
        fail(r, MW_ETIMEOUT, "%s: no answer within %d ms from %zu server%s (%d attempt%s each)%s",
             r->name, r->conf.timeout_ms, r->conf.nns, r->conf.nns == 1 ? "" : "s",
             r->conf.attempts, r->conf.attempts == 1 ? "" : "s", asked_as(r));
    }
}

/* Asks for candidate i from the first server. */
static void begin_candidate(mwi_rslv *r, size_t i)
{
    r->icand = i;
    r->qlen = mwi_dns_name_wire(r->cand[i], r->qname);
    for (size_t k = 0; k < r->nq; k++) {
        r->q[k].state = r->q[k].nx = 0;
        r->q[k].rep.naddrs = 0;
    }
    r->iserver = r->conf.nns - 1;
    r->attempt = -1;
    r->last[0] = 0;
    next_server(r);
}

static void take(mwi_rslv *r, const query *q)
{
    if (q->rep.naddrs && (!r->naddrs || q->rep.ttl < r->ttl)) r->ttl = q->rep.ttl;
    for (size_t i = 0; i < q->rep.naddrs && r->naddrs < MWI_RSLV_ADDRS_MAX; i++) {
        mwi_raddr *a = &r->addrs[r->naddrs++];
        memset(a, 0, sizeof *a);
        a->family = q->type == MWI_DNS_T_A ? AF_INET : AF_INET6;
        memcpy(a->addr, q->rep.addrs[i], q->type == MWI_DNS_T_A ? 4 : 16);
    }
}

/* Every query of the candidate answered: done, or the next candidate. */
static void candidate_done(mwi_rslv *r)
{
    close_fd(r);
    for (size_t i = 0; i < r->nq; i++)
        take(r, &r->q[i]);
    if (r->naddrs) {
        mwi_rslv_interleave(r->addrs, r->naddrs);
        r->done = 1;
        return;
    }
    int nx = 1;
    for (size_t i = 0; i < r->nq; i++)
        nx &= r->q[i].nx;
    char ns[64];
    ns_text(&r->conf.ns[r->iserver], ns, sizeof ns);
    if (r->icand + 1 < r->ncand) {
        begin_candidate(r, r->icand + 1);
        return;
    }
    fail(r, MW_ENET, "%s: %s from %s%s", r->name,
         nx               ? "no such name (NXDOMAIN)"
         : r->family == 4 ? "no address (no A record)"
         : r->family == 6 ? "no address (no AAAA record)"
                          : "no address (no A or AAAA record)",
         ns, r->ncand > 1 ? " (also with the search list)" : "");
}

static const char *rcode_text(int rc)
{
    static const char *const t[] = {"NOERROR",  "FORMERR", "SERVFAIL",
                                    "NXDOMAIN", "NOTIMP",  "REFUSED"};
    return rc >= 0 && rc < 6 ? t[rc] : "another RCODE";
}

/* One message from the current server.  Returns 1 when the lookup moved
 * on (another server, TCP, the next candidate, the end). */
static int on_message(mwi_rslv *r, const uint8_t *m, size_t len)
{
    uint16_t id = mwi_dns_id(m, len);
    query *q = NULL;
    for (size_t i = 0; i < r->nq; i++)
        if (!r->q[i].state && r->q[i].id == id) q = &r->q[i];
    if (!q) return 0; /* another ID: not ours, ignored (RFC 5452 §9.1) */
    int o = mwi_dns_parse(m, len, id, r->qname, r->qlen, q->type, &q->rep);
    char what[160];
    switch (o) {
    case MWI_DNS_NOT_OURS:
        return 0;
    case MWI_DNS_OK:
    case MWI_DNS_NXDOMAIN:
        break;
    case MWI_DNS_TRUNCATED:
        if (!r->tcp) {
            if (start_tcp(r) == 0) {
                r->try_deadline = mw_now_ms() + r->conf.timeout_ms;
                return 1;
            }
            if (r->err.code) return fail(r, r->err.code, "%s", r->err.message), 1;
            next_server(r);
            return 1;
        }
        drop_server(r, MW_EPROTO, "the reply over TCP is truncated");
        return 1;
    case MWI_DNS_SERVFAIL:
        snprintf(what, sizeof what, "server failure (%s)", rcode_text(q->rep.rcode));
        drop_server(r, MW_ENET, what);
        return 1;
    default:
        drop_server(r, MW_EPROTO, q->rep.why);
        return 1;
    }
    q->state = 1;
    q->nx = o == MWI_DNS_NXDOMAIN;
    for (size_t i = 0; i < r->nq; i++)
        if (!r->q[i].state) return 0;
    candidate_done(r);
    return 1;
}

static int same_source(const mwi_raddr *ns, const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET && ns->family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)ss;
        return ntohs(s->sin_port) == ns->port && !memcmp(&s->sin_addr, ns->addr, 4);
    }
    if (ss->ss_family == AF_INET6 && ns->family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)ss;
        return ntohs(s->sin6_port) == ns->port && !memcmp(&s->sin6_addr, ns->addr, 16);
    }
    return 0;
}

static int waiting_id(const mwi_rslv *r, uint16_t id)
{
    for (size_t i = 0; i < r->nq; i++)
        if (!r->q[i].state && r->q[i].id == id) return 1;
    return 0;
}

static void udp_read(mwi_rslv *r)
{
    for (int n = 0; n < 64 && r->fd >= 0 && !r->tcp; n++) {
        uint8_t m[MWI_DNS_UDP_MAX + 1];
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t got = recvfrom(r->fd, m, sizeof m, MSG_TRUNC, (struct sockaddr *)&from, &fl);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            drop_server(r, MW_ENET, MW_ERRNO_TEXT(errno)); /* ICMP: port unreachable */
            return;
        }
        if (!same_source(&r->conf.ns[r->iserver], &from)) continue;
        if ((size_t)got > MWI_DNS_UDP_MAX) {
            if (!waiting_id(r, mwi_dns_id(m, 2))) continue; /* not ours */
            drop_server(r, MW_EPROTO, "a UDP reply is over 512 octets (RFC 1035 §4.2.1)");
            return;
        }
        if (on_message(r, m, (size_t)got)) return;
    }
}

static int tcp_write(mwi_rslv *r)
{
    while (r->tout_off < r->tout_len) {
        ssize_t n = send(r->fd, r->tout + r->tout_off, r->tout_len - r->tout_off, MSG_NOSIGNAL);
        if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
        r->tout_off += (size_t)n;
    }
    return 0;
}

/* The TCP connection: connect, write the queries, read the replies (each
 * after its two-octet length). */
static void tcp_io(mwi_rslv *r, int events)
{
    if (r->connecting) {
        int e = 0;
        socklen_t el = sizeof e;
        if (!(events & MW_LOOP_OUT)) return;
        if (getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
        if (e == EINPROGRESS || e == EALREADY) return;
        if (e) {
            drop_server(r, MW_ENET, MW_ERRNO_TEXT(e));
            return;
        }
        r->connecting = 0;
    }
    if (tcp_write(r)) {
        drop_server(r, MW_ENET, MW_ERRNO_TEXT(errno));
        return;
    }
    if (!(events & MW_LOOP_IN)) return;
    for (;;) {
        ssize_t n = recv(r->fd, r->tin + r->tin_len, TCP_MSG_MAX - r->tin_len, 0);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                drop_server(r, MW_ENET, MW_ERRNO_TEXT(errno));
            return;
        }
        if (n == 0) {
            drop_server(r, MW_ENET, "the TCP connection closed before the reply");
            return;
        }
        r->tin_len += (size_t)n;
        while (r->tin_len >= 2) {
            size_t ml = (size_t)r->tin[0] << 8 | r->tin[1];
            if (r->tin_len < 2 + ml) break;
            if (on_message(r, r->tin + 2, ml)) return;
            memmove(r->tin, r->tin + 2 + ml, r->tin_len - 2 - ml);
            r->tin_len -= 2 + ml;
        }
    }
}

/* The names to ask, in order (resolv.conf(5) ndots and search): a name
 * with a final dot as it is; one with ndots dots or more first as it is,
 * then with the search domains; else the other way round. */
static void candidates(mwi_rslv *r, int absolute)
{
    size_t dots = 0, nl = strlen(r->name); /* under 254: set_name checked */
    for (const char *p = r->name; *p; p++)
        dots += *p == '.';
    int first = absolute || dots >= (size_t)r->conf.ndots;
    if (first) memcpy(r->cand[r->ncand++], r->name, nl + 1);
    for (size_t i = 0; !absolute && i < r->conf.nsearch; i++) {
        char *c = r->cand[r->ncand];
        size_t sl = strlen(r->conf.search[i]);
        uint8_t w[MWI_DNS_NAME_MAX];
        if (nl + 1 + sl >= sizeof r->cand[0]) continue;
        memcpy(c, r->name, nl);
        c[nl] = '.';
        memcpy(c + nl + 1, r->conf.search[i], sl + 1);
        if (mwi_dns_name_wire(c, w)) r->ncand++;
    }
    if (!first) memcpy(r->cand[r->ncand++], r->name, nl + 1);
}

/* Checks the name and takes it into r.  Returns 0 or MW_EINVAL. */
static int set_name(mwi_rslv *r, const char *name, int *absolute, mw_error *err)
{
    uint8_t w[MWI_DNS_NAME_MAX];
    size_t n = strlen(name);
    if (!mwi_dns_name_wire(name, w) || n - (name[n - 1] == '.') >= sizeof r->name)
        return mwi_err_set(err, MW_EINVAL,
                           "host name \"%.64s\" is empty, has an empty label, a label over 63 "
                           "octets, a space or control character, or is over 253 octets",
                           name);
    *absolute = name[n - 1] == '.';
    memcpy(r->name, name, n - (size_t)*absolute);
    r->name[n - (size_t)*absolute] = 0;
    return 0;
}

static int from_hosts(mwi_rslv *r, const mwi_rslv_paths *paths, mw_error *err)
{
    const char *hp = paths && paths->hosts ? paths->hosts : "/etc/hosts";
    int rc =
        mwi_hosts_lookup(hp, r->name, r->family, r->addrs, &r->naddrs, MWI_RSLV_ADDRS_MAX, err);
    if (!rc && r->naddrs) {
        mwi_rslv_interleave(r->addrs, r->naddrs);
        r->done = 1;
    }
    return rc;
}

int mwi_rslv_start(mwi_rslv **out, const char *name, int family, const mwi_rslv_paths *paths,
                   int64_t deadline, mw_error *err)
{
    *out = NULL;
    mwi_rslv *r = calloc(1, sizeof *r);
    if (!r) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    r->fd = -1;
    r->family = family;
    r->deadline = deadline;
    int absolute = 0;
    int rc = set_name(r, name, &absolute, err);
    if (!rc) rc = from_hosts(r, paths, err);
    if (!rc && !r->done)
        rc = mwi_rslv_conf_load(
            &r->conf, paths && paths->resolv_conf ? paths->resolv_conf : "/etc/resolv.conf", err);
    if (rc) {
        mwi_rslv_free(r);
        return rc;
    }
    *out = r;
    if (r->done) return 0;
    if (family != 4) r->q[r->nq++].type = MWI_DNS_T_AAAA;
    if (family != 6) r->q[r->nq++].type = MWI_DNS_T_A;
    candidates(r, absolute);
    begin_candidate(r, 0);
    if (r->code) {
        rc = r->code;
        if (err) *err = r->err;
        mwi_rslv_free(r);
        *out = NULL;
    }
    return rc;
}

int mwi_rslv_step(mwi_rslv *r, int events, mw_error *err)
{
    if (!r->done && !r->code && r->fd >= 0 && events) {
        if (r->tcp)
            tcp_io(r, events);
        else if (events & MW_LOOP_IN)
            udp_read(r);
    }
    int64_t now = mw_now_ms();
    if (!r->done && !r->code && now >= r->deadline)
        fail(r, MW_ETIMEOUT, "%s: no answer before the deadline (%s%s)", r->name,
             r->last[0] ? "last: " : "asking ", r->last[0] ? r->last : "the nameservers");
    if (!r->done && !r->code && now >= r->try_deadline) next_server(r);
    if (r->code) {
        if (err) *err = r->err;
        return r->code;
    }
    return r->done;
}

int mwi_rslv_fd(const mwi_rslv *r)
{
    return r->done || r->code ? -1 : r->fd;
}

int mwi_rslv_want(const mwi_rslv *r)
{
    if (mwi_rslv_fd(r) < 0) return 0;
    if (r->tcp && (r->connecting || r->tout_off < r->tout_len)) return MW_LOOP_OUT | MW_LOOP_IN;
    return MW_LOOP_IN;
}

int64_t mwi_rslv_deadline(const mwi_rslv *r)
{
    if (r->done || r->code) return 0;
    return r->try_deadline < r->deadline ? r->try_deadline : r->deadline;
}

int mwi_rslv_done(const mwi_rslv *r)
{
    return r->done;
}

uint32_t mwi_rslv_ttl(const mwi_rslv *r)
{
    return r->done ? r->ttl : 0;
}

const mwi_raddr *mwi_rslv_addrs(const mwi_rslv *r, size_t *n)
{
    *n = r->done ? r->naddrs : 0;
    return r->addrs;
}

void mwi_rslv_free(mwi_rslv *r)
{
    if (!r) return;
    close_fd(r);
    free(r->tin);
    free(r);
}
