/* The TCP stream kind: the name lookup (with a deadline and the cancel
 * token), Happy Eyeballs (RFC 8305) and the stream over the winning
 * socket.  Its I/O is the descriptor kind's (s_fd.c), with one addition
 * on the hot path: the socket is ours, so it is left blocking and a read
 * with no cancel token to watch is one recv under SO_RCVTIMEO. */
#include "net/s_tcp.h"
#include "net/s_fd.h"
#include "util/addrorder.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ---- the stream ---------------------------------------------------------------- */

/* A socket read that blocks in the kernel until data, the end of the
 * stream, or SO_RCVTIMEO: one system call per reply instead of poll + read
 * (about 3 µs a round trip on loopback).  Used only when no cancel token is
 * set (a token needs poll to watch its pipe) and the deadline is ahead.
 * The timeout set is never later than the deadline; it is changed only when
 * it would be (a shrinking operation deadline), and a timeout that fires
 * before the deadline just loops.  Returns 1 when it did not apply. */
static int sock_timed_read(struct mwi_fd *f, void *buf, size_t len, size_t *got, int64_t deadline,
                           mw_error *err)
{
    for (;;) {
        int64_t left = 0;
        if (deadline != MW_NO_DEADLINE) {
            left = deadline - mw_now_ms();
            if (left <= 0) return 1; /* the poll path reports the timeout */
            if (left > INT_MAX / 2) left = INT_MAX / 2;
        }
        if ((left == 0 && f->rcvtimeo_ms != 0) ||
            (left > 0 && (f->rcvtimeo_ms == 0 || f->rcvtimeo_ms > left))) {
            struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                                 .tv_usec = (suseconds_t)(left % 1000) * 1000};
            if (setsockopt(f->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
                f->sock_timed = 0; /* poll from now on */
                return 1;
            }
            f->rcvtimeo_ms = (int)left;
        }
        ssize_t n = recv(f->rfd, buf, len, 0);
        if (n >= 0) {
            *got = (size_t)n;
            f->rd_short = (size_t)n < len;
            return 0;
        }
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return mwi_err_set(err, MW_ENET, "read failed: %s", MW_ERRNO_TEXT(errno));
    }
}

static int tcp_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                    mw_error *err)
{
    struct mwi_fd *f = s->impl;
    if (f->sock_timed && !s->cancel) {
        int rc = sock_timed_read(f, buf, len, got, deadline, err);
        if (rc != 1) return rc;
    }
    return mwi_fd_read(s, buf, len, got, deadline, err);
}

static const mwi_stream_vt tcp_vt = {"tcp", tcp_read, mwi_fd_write, mwi_fd_pollfd, mwi_fd_close};

/* ---- Happy Eyeballs ---------------------------------------------------------- */

static void addr_text(const struct addrinfo *ai, char *buf, size_t len)
{
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST))
        snprintf(buf, len, "?");
}

/* RFC 8305 §4: the addresses in the order to try them (util/addrorder.h,
 * the loop's order too), starting with the resolver's first choice, which
 * follows RFC 6724.  The first 2 * MW_TCP_MAX_ADDRS of the list are
 * considered. */
size_t mwi_tcp_order(const struct addrinfo *res, const struct addrinfo **out, size_t max)
{
    const struct addrinfo *all[2 * MW_TCP_MAX_ADDRS];
    int fam[2 * MW_TCP_MAX_ADDRS];
    size_t idx[MW_TCP_MAX_ADDRS], n = 0;
    if (max > MW_TCP_MAX_ADDRS) max = MW_TCP_MAX_ADDRS;
    for (const struct addrinfo *p = res; p && n < 2 * MW_TCP_MAX_ADDRS; p = p->ai_next) {
        all[n] = p;
        fam[n++] = p->ai_family;
    }
    size_t k = mwi_he_order(fam, n, 0, idx, max);
    for (size_t i = 0; i < k; i++)
        out[i] = all[idx[i]];
    return k;
}

/* A race of connection attempts (RFC 8305 §5) in progress. */
struct race {
    const struct addrinfo *order[MW_TCP_MAX_ADDRS];
    size_t n, next;             /* addresses, and the next to try */
    int pend[MW_TCP_MAX_ADDRS]; /* attempts still connecting */
    size_t np;
    int64_t next_at; /* when the next attempt is due */
    int delay_ms;
    int *tried, *last_errno;
    char *last;
    size_t lastsz;
};

/* Starts the next attempt when it is due (at once when none is pending),
 * one per delay; an address that fails at once makes way for the next.
 * Returns a socket that connected at once, or -1. */
static int race_start(struct race *r, int64_t now)
{
    while (r->next < r->n && (r->np == 0 || now >= r->next_at)) {
        const struct addrinfo *ai = r->order[r->next++];
        (*r->tried)++;
        addr_text(ai, r->last, r->lastsz);
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            *r->last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) return fd;
        if (errno != EINPROGRESS && errno != EINTR) {
            *r->last_errno = errno;
            close(fd);
            continue;
        }
        r->pend[r->np++] = fd;
        r->next_at = now + r->delay_ms;
        break;
    }
    return -1;
}

/* Waits for the pending attempts until the next is due, the deadline or
 * a cancel, and settles those that finished.  Returns the socket that
 * connected, -1 (none yet) or -2 (poll failed: *last_errno). */
static int race_wait(struct race *r, int64_t now, int64_t deadline, mw_cancel *cancel)
{
    struct pollfd pf[MW_TCP_MAX_ADDRS + 1];
    for (size_t k = 0; k < r->np; k++)
        pf[k] = (struct pollfd){.fd = r->pend[k], .events = POLLOUT};
    int cfd = mwi_cancel_fd(cancel);
    pf[r->np] = (struct pollfd){.fd = cfd, .events = POLLIN};
    int64_t wait = -1;
    if (r->next < r->n) wait = r->next_at > now ? r->next_at - now : 0;
    if (deadline != MW_NO_DEADLINE && (wait < 0 || deadline - now < wait)) wait = deadline - now;
    if (wait > INT_MAX) wait = INT_MAX;
    int rc = poll(pf, r->np + (cfd >= 0), (int)wait);
    if (rc < 0) {
        if (errno == EINTR) return -1;
        *r->last_errno = errno;
        return -2;
    }
    for (size_t k = r->np; k-- > 0;) {
        if (!pf[k].revents) continue;
        int soerr = 0, fd = r->pend[k];
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        r->pend[k] = r->pend[--r->np];
        if (soerr == 0) return fd;
        *r->last_errno = soerr;
        close(fd);
        r->next_at = now; /* a failure starts the next attempt at once */
    }
    return -1;
}

/* Happy Eyeballs (RFC 8305 §5): one connection attempt is started, and the
 * next after `delay_ms` if none has connected by then (at once when one
 * fails); the first to connect wins and the others are closed.  Every
 * attempt runs under one deadline, timeout_ms from the start (0: none).
 * Returns 0 with *fdout, MW_ETIMEOUT, MW_ECANCELED or MW_ENET (the last
 * failure's errno in *last_errno); *tried counts attempts started and
 * `last` names the last address tried. */
int mwi_tcp_connect_happy(const struct addrinfo *res, int timeout_ms, int delay_ms,
                          mw_cancel *cancel, int *fdout, int *tried, int *last_errno, char *last,
                          size_t lastsz)
{
    struct race r = {.delay_ms = delay_ms,
                     .tried = tried,
                     .last_errno = last_errno,
                     .last = last,
                     .lastsz = lastsz};
    r.n = mwi_tcp_order(res, r.order, MW_TCP_MAX_ADDRS);
    int64_t now = mw_now_ms();
    int64_t deadline = timeout_ms > 0 ? now + timeout_ms : MW_NO_DEADLINE;
    r.next_at = now;
    int rc = MW_ENET, winner = -1;
    *tried = 0;
    *last_errno = ECONNREFUSED;
    if (lastsz) last[0] = '\0';
    for (;;) {
        if (mw_cancel_requested(cancel)) {
            rc = MW_ECANCELED;
            break;
        }
        now = mw_now_ms();
        if (deadline != MW_NO_DEADLINE && now >= deadline) {
            rc = MW_ETIMEOUT;
            break;
        }
        if ((winner = race_start(&r, now)) >= 0) break;
        if (r.np == 0) {
            if (r.next >= r.n) break; /* every address failed */
            continue;
        }
        if ((winner = race_wait(&r, now, deadline, cancel)) != -1) break;
    }
    for (size_t k = 0; k < r.np; k++)
        close(r.pend[k]);
    if (winner < 0) return rc;
    /* Small commands must not wait for delayed ACKs (Nagle). */
    int one = 1;
    setsockopt(winner, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *fdout = winner;
    return 0;
}

/* Name lookup with a deadline and the cancel token.  getaddrinfo(3) has
 * neither, so names (not address literals) go through glibc's
 * getaddrinfo_a: we poll for completion in short steps and may walk away
 * from a lookup that is still running.  The request then still belongs to
 * glibc's worker, so it lives on the heap with two references — ours and
 * the completion notification's — and the last one frees it. */
#define EAI_CANCELED_MW (-10001)
#define EAI_TIMEOUT_MW  (-10002)

struct lookup {
    atomic_int refs;
    struct gaicb cb;
    struct addrinfo hints;
    char name[260];
    char port[8];
};

static void lookup_unref(struct lookup *l)
{
    if (atomic_fetch_sub(&l->refs, 1) == 1) {
        if (l->cb.ar_result) freeaddrinfo(l->cb.ar_result);
        free(l);
    }
}

static void lookup_done(union sigval sv)
{
    lookup_unref(sv.sival_ptr);
}

static int resolve(const char *name, const char *port, const struct addrinfo *hints,
                   int64_t deadline, mw_cancel *cancel, struct addrinfo **res)
{
    *res = NULL;
    if (mw_cancel_requested(cancel)) return EAI_CANCELED_MW;
    /* Address literals need no lookup: answer at once, no thread. */
    struct addrinfo numeric = *hints;
    numeric.ai_flags |= AI_NUMERICHOST;
    int g = getaddrinfo(name, port, &numeric, res);
    if (g != EAI_NONAME) return g;
    struct lookup *l = calloc(1, sizeof *l);
    if (!l) return EAI_MEMORY;
    snprintf(l->name, sizeof l->name, "%s", name);
    snprintf(l->port, sizeof l->port, "%s", port);
    l->hints = *hints;
    l->cb.ar_name = l->name;
    l->cb.ar_service = l->port;
    l->cb.ar_request = &l->hints;
    atomic_init(&l->refs, 2);
    struct sigevent sev;
    memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_THREAD;
    sev.sigev_notify_function = lookup_done;
    sev.sigev_value.sival_ptr = l;
    struct gaicb *list[1] = {&l->cb};
    if ((g = getaddrinfo_a(GAI_NOWAIT, list, 1, &sev)) != 0) {
        free(l); /* not queued: no notification will come */
        return g;
    }
    while ((g = gai_error(&l->cb)) == EAI_INPROGRESS) {
        if (mw_cancel_requested(cancel)) {
            g = EAI_CANCELED_MW;
            break;
        }
        int64_t left = deadline == MW_NO_DEADLINE ? 50 : deadline - mw_now_ms();
        if (left <= 0) {
            g = EAI_TIMEOUT_MW;
            break;
        }
        /* Short steps so the cancel token is seen within 50 ms. */
        if (left > 50) left = 50;
        struct timespec ts = {0, (long)left * 1000000L};
        gai_suspend((const struct gaicb *const *)list, 1, &ts);
    }
    if (g == 0) {
        *res = l->cb.ar_result;
        l->cb.ar_result = NULL; /* ours now; lookup_unref must not free it */
    }
    lookup_unref(l);
    return g;
}

/* Resolves name (with the connect deadline and the cancel token) into
 * *res.  Returns 0 or an mw_code with err set. */
int mwi_tcp_lookup(const char *name, unsigned port, const mw_net_opts *opts, struct addrinfo **res,
                   mw_error *err)
{
    char portstr[8];
    snprintf(portstr, sizeof portstr, "%u", port);
    struct addrinfo hints = {0}, *r = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = opts->family == 4 ? AF_INET : opts->family == 6 ? AF_INET6 : AF_UNSPEC;
    int64_t lookup_deadline =
        opts->connect_timeout_ms > 0 ? mw_now_ms() + opts->connect_timeout_ms : MW_NO_DEADLINE;
    int g = resolve(name, portstr, &hints, lookup_deadline, opts->cancel, &r);
    if (g == EAI_CANCELED_MW)
        return mwi_err_set(err, MW_ECANCELED, "operation canceled while resolving %s", name);
    if (g == EAI_TIMEOUT_MW)
        return mwi_err_set(err, MW_ETIMEOUT, "name lookup of %s timed out after %d ms", name,
                           opts->connect_timeout_ms);
    if (g != 0)
        return mwi_err_set(err, MW_ENET, "cannot resolve %s: %s", name,
                           g == EAI_SYSTEM ? MW_ERRNO_TEXT(errno) : gai_strerror(g));
    *res = r;
    return 0;
}

/* A TCP connection to name (unbracketed) port, its addresses raced.  host
 * is the name as the caller gave it, for messages; start is when the
 * session began (its max_time_ms, if any, bounds the lookup and the race
 * together). */
int mwi_tcp_direct(mw_stream **out, const char *name, const char *host, unsigned port,
                   const mw_net_opts *opts, int64_t start, mw_error *err)
{
    struct addrinfo *res = NULL;
    int lrc = mwi_tcp_lookup(name, port, opts, &res, err);
    if (lrc) return lrc;
    int fd = -1, tried = 0, last_errno = 0;
    char last[64] = "";
    int race_ms = opts->connect_timeout_ms;
    if (opts->max_time_ms > 0) {
        int64_t left = start + opts->max_time_ms - mw_now_ms();
        if (left < 1) left = 1;
        if (race_ms <= 0 || left < race_ms) race_ms = (int)left;
    }
    int rc = mwi_tcp_connect_happy(res, race_ms, MW_TCP_ATTEMPT_DELAY_MS, opts->cancel, &fd, &tried,
                                   &last_errno, last, sizeof last);
    freeaddrinfo(res);
    if (rc == MW_ECANCELED)
        return mwi_err_set(err, rc, "operation canceled while connecting to %s", host);
    if (rc == MW_ETIMEOUT)
        return mwi_err_set(
            err, rc, "connect to %s port %u timed out after %d ms (%d address%s tried, last %s)",
            host, port, race_ms, tried, tried == 1 ? "" : "es", last);
    if (rc != 0)
        return mwi_err_set(err, rc,
                           "cannot connect to %s port %u: %s (%d address%s tried, last %s)", host,
                           port, MW_ERRNO_TEXT(last_errno), tried, tried == 1 ? "" : "es", last);
    mw_stream *s = mwi_stream_new(&tcp_vt, sizeof(struct mwi_fd));
    char *h = strdup(name);
    if (!s || !h) {
        free(s);
        free(h);
        close(fd);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    struct mwi_fd *f = s->impl;
    f->rfd = f->wfd = fd;
    f->own = 1;
    f->wfd_socket = 1;
    s->host = h;
    /* Our own socket, so its mode is ours to choose: blocking, with every
     * call that must not wait passing MSG_DONTWAIT (see sock_timed_read). */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0) f->sock_timed = 1;
    mwi_stream_apply_opts(s, opts, start);
    *out = s;
    return 0;
}
