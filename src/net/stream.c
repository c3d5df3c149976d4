/* Streams over descriptors (fd, TCP, command) and caller callbacks, and the
 * dispatch every stream kind goes through. */
#include "net/stream_int.h"
#include "net/proxy.h"
#include "util/err.h"
#include "util/proc.h"

#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------------- */

mw_stream *mwi_stream_alloc(int kind)
{
    mw_stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->kind = kind;
    s->rfd = s->wfd = -1;
    s->pid = -1;
    s->op_deadline = MW_NO_DEADLINE;
    return s;
}

/* A limit for a message: "5 s" when whole seconds, else "1500 ms". */
static void ms_text(char *buf, size_t n, int ms)
{
    if (ms % 1000 == 0)
        snprintf(buf, n, "%d s", ms / 1000);
    else
        snprintf(buf, n, "%d ms", ms);
}

int64_t mwi_deadline_min(int64_t deadline_ms, int io_timeout_ms)
{
    if (io_timeout_ms <= 0) return deadline_ms;
    int64_t io = mw_now_ms() + io_timeout_ms;
    return io < deadline_ms ? io : deadline_ms;
}

void mwi_stream_set_cancel(mw_stream *s, mw_cancel *cancel)
{
    for (; s; s = s->inner)
        s->cancel = cancel;
}

const char *mwi_stream_host(const mw_stream *s)
{
    for (; s; s = s->inner)
        if (s->host) return s->host;
    return NULL;
}

static int canceled(mw_cancel *c, mw_error *err)
{
    (void)c;
    return mwi_err_set(err, MW_ECANCELED, "operation canceled");
}

int mwi_wait_fd(int fd, short events, int64_t deadline_ms, mw_cancel *cancel, const char *what,
                mw_error *err)
{
    for (;;) {
        if (mw_cancel_requested(cancel)) return canceled(cancel, err);
        int timeout = -1;
        if (deadline_ms != MW_NO_DEADLINE) {
            int64_t left = deadline_ms - mw_now_ms();
            if (left <= 0) return mwi_err_set(err, MW_ETIMEOUT, "timed out %s", what);
            timeout = left > INT_MAX ? INT_MAX : (int)left;
        }
        struct pollfd p[2] = {{.fd = fd, .events = events},
                              {.fd = mwi_cancel_fd(cancel), .events = POLLIN}};
        int r = poll(p, p[1].fd >= 0 ? 2 : 1, timeout);
        if (r < 0) {
            if (errno == EINTR) continue;
            return mwi_err_set(err, MW_ENET, "poll failed while %s: %s", what,
                               MW_ERRNO_TEXT(errno));
        }
        if (mw_cancel_requested(cancel)) return canceled(cancel, err);
        /* POLLHUP/POLLERR: let the following read/write report what happened. */
        if (r > 0 && p[0].revents) return 0;
    }
}

/* ---- descriptor streams ---------------------------------------------------- */

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return (fl & O_NONBLOCK) ? 0 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* A socket read that blocks in the kernel until data, the end of the
 * stream, or SO_RCVTIMEO: one system call per reply instead of poll + read
 * (about 3 µs a round trip on loopback).  Used only when no cancel token is
 * set (a token needs poll to watch its pipe) and the deadline is ahead.
 * The timeout set is never later than the deadline; it is changed only when
 * it would be (a shrinking operation deadline), and a timeout that fires
 * before the deadline just loops.  Returns 1 when it did not apply. */
static int sock_timed_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                           mw_error *err)
{
    for (;;) {
        int64_t left = 0;
        if (deadline != MW_NO_DEADLINE) {
            left = deadline - mw_now_ms();
            if (left <= 0) return 1; /* the poll path reports the timeout */
            if (left > INT_MAX / 2) left = INT_MAX / 2;
        }
        if ((left == 0 && s->rcvtimeo_ms != 0) ||
            (left > 0 && (s->rcvtimeo_ms == 0 || s->rcvtimeo_ms > left))) {
            struct timeval tv = {.tv_sec = (time_t)(left / 1000),
                                 .tv_usec = (suseconds_t)(left % 1000) * 1000};
            if (setsockopt(s->rfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) {
                s->sock_timed = 0; /* poll from now on */
                return 1;
            }
            s->rcvtimeo_ms = (int)left;
        }
        ssize_t n = recv(s->rfd, buf, len, 0);
        if (n >= 0) {
            *got = (size_t)n;
            s->rd_short = (size_t)n < len;
            return 0;
        }
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
        return mwi_err_set(err, MW_ENET, "read failed: %s", MW_ERRNO_TEXT(errno));
    }
}

static int fd_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                   mw_error *err)
{
    if (s->sock_timed && !s->cancel) {
        int rc = sock_timed_read(s, buf, len, got, deadline, err);
        if (rc != 1) return rc;
    }
    /* A read that came back short emptied the descriptor, so the next one
     * (typically for the reply to a command just sent) would most likely
     * fail with EAGAIN: one system call spent before the poll.  Then wait
     * first.  After a full read more may be queued: read first.  Past the
     * deadline, read first as well, so data already there is still taken. */
    if (s->rd_short && (deadline == MW_NO_DEADLINE || deadline > mw_now_ms())) {
        int rc = mwi_wait_fd(s->rfd, POLLIN, deadline, s->cancel, "waiting for data", err);
        if (rc) return rc;
    }
    for (;;) {
        ssize_t n = s->sock_timed ? recv(s->rfd, buf, len, MSG_DONTWAIT) : read(s->rfd, buf, len);
        if (n >= 0) {
            *got = (size_t)n;
            s->rd_short = (size_t)n < len;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return mwi_err_set(err, MW_ENET, "read failed: %s", MW_ERRNO_TEXT(errno));
        int rc = mwi_wait_fd(s->rfd, POLLIN, deadline, s->cancel, "waiting for data", err);
        if (rc) return rc;
    }
}

/* Writing to a pipe whose reader is gone raises SIGPIPE, which would kill a
 * caller that did not ignore it; the library must not change the process's
 * signal dispositions, so the signal is blocked in this thread around the
 * write and a SIGPIPE it caused is consumed before unblocking. */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, old, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    int was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = write(fd, buf, len);
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = saved;
    return n;
}

static int fd_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                    mw_error *err)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = s->wfd_socket
                        ? send(s->wfd, p, len, MSG_NOSIGNAL | (s->sock_timed ? MSG_DONTWAIT : 0))
                        : write_nosigpipe(s->wfd, p, len);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            *done += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            if (errno == EPIPE || errno == ECONNRESET)
                return mwi_err_set(err, MW_ENET, "write failed: the peer closed the connection");
            return mwi_err_set(err, MW_ENET, "write failed: %s", MW_ERRNO_TEXT(errno));
        }
        int rc = mwi_wait_fd(s->wfd, POLLOUT, deadline, s->cancel, "waiting to send", err);
        if (rc) return rc;
    }
    return 0;
}

/* opts is a current-version copy (mw_net_opts_copy); start is when the
 * session began (max_time_ms counts from there). */
static void apply_opts(mw_stream *s, const mw_net_opts *opts, int64_t start)
{
    s->io_timeout_ms = opts->io_timeout_ms > 0 ? opts->io_timeout_ms : 0;
    s->cancel = opts->cancel;
    s->max_time_ms = opts->max_time_ms > 0 ? opts->max_time_ms : 0;
    s->op_deadline = s->max_time_ms ? start + s->max_time_ms : MW_NO_DEADLINE;
    s->speed_limit = opts->speed_limit;
    s->speed_time_ms = opts->speed_time_ms;
    mwi_rate_init(&s->rate, opts->speed_limit, opts->speed_time_ms);
}

/* The limits of version 3 must make sense: a negative time is a mistake. */
static int check_limits(const mw_net_opts *o, mw_error *err)
{
    if (o->max_time_ms < 0)
        return mwi_err_set(err, MW_EINVAL, "invalid max_time_ms %d (0 = none)", o->max_time_ms);
    if (o->speed_limit && o->speed_time_ms <= 0)
        return mwi_err_set(err, MW_EINVAL, "speed_limit %u needs a speed_time_ms above 0",
                           o->speed_limit);
    return 0;
}

int mw_stream_fd(mw_stream **out, int rfd, int wfd, int own, const mw_net_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (rfd < 0 || wfd < 0) return mwi_err_set(err, MW_EINVAL, "invalid file descriptor");
    mw_net_opts o;
    if (mw_net_opts_copy(&o, opts) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", opts->version);
    int lrc = check_limits(&o, err);
    if (lrc) return lrc;
    /* Non-blocking so that no single read or write can outlive a deadline. */
    if (set_nonblock(rfd) != 0 || set_nonblock(wfd) != 0)
        return mwi_err_set(err, MW_EINVAL, "cannot make descriptor non-blocking: %s",
                           MW_ERRNO_TEXT(errno));
    mw_stream *s = mwi_stream_alloc(MW_STREAM_FD);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    s->rfd = rfd;
    s->wfd = wfd;
    s->own = own;
    s->wfd_socket = is_socket(wfd);
    if (opts) apply_opts(s, &o, mw_now_ms()); /* NULL: no timeout, no limits (as ever) */
    *out = s;
    return 0;
}

/* ---- TCP --------------------------------------------------------------- */

static int valid_host(const char *host)
{
    if (!host || !*host || strlen(host) > 253 + 2 /* [IPv6] */) return 0;
    for (const char *p = host; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7F) return 0;
    return 1;
}

static void addr_text(const struct addrinfo *ai, char *buf, size_t len)
{
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, buf, (socklen_t)len, NULL, 0, NI_NUMERICHOST))
        snprintf(buf, len, "?");
}

/* RFC 8305 §4: the addresses in the order to try them — the families
 * alternating, starting with the resolver's first choice (which follows
 * RFC 6724), so that one broken family costs one attempt delay, not every
 * address of it in turn. */
size_t mwi_tcp_order(const struct addrinfo *res, const struct addrinfo **out, size_t max)
{
    const struct addrinfo *a[MW_TCP_MAX_ADDRS], *b[MW_TCP_MAX_ADDRS];
    size_t na = 0, nb = 0, n = 0, i = 0, j = 0;
    if (max > MW_TCP_MAX_ADDRS) max = MW_TCP_MAX_ADDRS;
    int fam = res ? res->ai_family : 0;
    for (const struct addrinfo *p = res; p; p = p->ai_next) {
        if (p->ai_family == fam) {
            if (na < max) a[na++] = p;
        } else if (nb < max) {
            b[nb++] = p;
        }
    }
    while ((i < na || j < nb) && n < max) {
        if (i < na) out[n++] = a[i++];
        if (j < nb && n < max) out[n++] = b[j++];
    }
    return n;
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
    const struct addrinfo *order[MW_TCP_MAX_ADDRS];
    size_t n = mwi_tcp_order(res, order, MW_TCP_MAX_ADDRS);
    int pend[MW_TCP_MAX_ADDRS];
    size_t np = 0, next = 0;
    int64_t now = mw_now_ms();
    int64_t deadline = timeout_ms > 0 ? now + timeout_ms : MW_NO_DEADLINE;
    int64_t next_at = now;
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
        /* Start the next attempt when it is due (at once when none is
         * pending), one per delay. */
        while (next < n && (np == 0 || now >= next_at)) {
            const struct addrinfo *ai = order[next++];
            (*tried)++;
            addr_text(ai, last, lastsz);
            int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                            ai->ai_protocol);
            if (fd < 0) {
                *last_errno = errno;
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                winner = fd;
                break;
            }
            if (errno != EINPROGRESS && errno != EINTR) {
                *last_errno = errno;
                close(fd);
                continue;
            }
            pend[np++] = fd;
            next_at = now + delay_ms;
            break;
        }
        if (winner >= 0) break;
        if (np == 0) {
            if (next >= n) break; /* every address failed */
            continue;
        }
        struct pollfd pf[MW_TCP_MAX_ADDRS + 1];
        for (size_t k = 0; k < np; k++)
            pf[k] = (struct pollfd){.fd = pend[k], .events = POLLOUT};
        int cfd = mwi_cancel_fd(cancel);
        pf[np] = (struct pollfd){.fd = cfd, .events = POLLIN};
        int64_t wait = -1;
        if (next < n) wait = next_at > now ? next_at - now : 0;
        if (deadline != MW_NO_DEADLINE && (wait < 0 || deadline - now < wait))
            wait = deadline - now;
        if (wait > INT_MAX) wait = INT_MAX;
        int r = poll(pf, np + (cfd >= 0), (int)wait);
        if (r < 0) {
            if (errno == EINTR) continue;
            *last_errno = errno;
            break;
        }
        for (size_t k = np; k-- > 0;) {
            if (!pf[k].revents) continue;
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (getsockopt(pend[k], SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
            if (soerr == 0) {
                winner = pend[k];
                pend[k] = pend[--np];
                break;
            }
            *last_errno = soerr;
            close(pend[k]);
            pend[k] = pend[--np];
            next_at = now; /* a failure starts the next attempt at once */
        }
        if (winner >= 0) break;
    }
    for (size_t k = 0; k < np; k++)
        close(pend[k]);
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
static int lookup(const char *name, unsigned port, const mw_net_opts *opts, struct addrinfo **res,
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
static int tcp_direct(mw_stream **out, const char *name, const char *host, unsigned port,
                      const mw_net_opts *opts, int64_t start, mw_error *err)
{
    struct addrinfo *res = NULL;
    int lrc = lookup(name, port, opts, &res, err);
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
    mw_stream *s = mwi_stream_alloc(MW_STREAM_FD);
    char *h = strdup(name);
    if (!s || !h) {
        free(s);
        free(h);
        close(fd);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    s->rfd = s->wfd = fd;
    s->own = 1;
    s->wfd_socket = 1;
    s->host = h;
    /* Our own socket, so its mode is ours to choose: blocking, with every
     * call that must not wait passing MSG_DONTWAIT (see sock_timed_read). */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0 && fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0) s->sock_timed = 1;
    apply_opts(s, opts, start);
    *out = s;
    return 0;
}

int mw_net_opts_copy(mw_net_opts *dst, const mw_net_opts *src)
{
    mw_net_opts d = MW_NET_OPTS_INIT;
    *dst = d;
    if (!src) return 0;
    if (src->version == 1 || src->version == 2) {
        /* Version 1 ends before proxy, version 2 before max_time_ms: copy
         * only what the caller's struct has; the rest keeps its default. */
        memcpy(dst, src,
               src->version == 1 ? offsetof(mw_net_opts, proxy)
                                 : offsetof(mw_net_opts, max_time_ms));
        dst->version = MW_NET_OPTS_VERSION;
        return 0;
    }
    if (src->version != MW_NET_OPTS_VERSION) return MW_EINVAL;
    *dst = *src;
    return 0;
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
    if ((rc = tcp_direct(&s, px.host, px.host, px.port, opts, start, &pe)) != 0)
        return mwi_err_set(err, rc, "proxy: %s", pe.message);
    char target[INET6_ADDRSTRLEN + 1];
    const char *ask = name;
    unsigned char tmp[16];
    if (px.kind == MW_PROXY_SOCKS5 && inet_pton(AF_INET, name, tmp) != 1 &&
        inet_pton(AF_INET6, name, tmp) != 1) {
        /* socks5:// (not socks5h://): the name is resolved here. */
        struct addrinfo *res = NULL;
        if ((rc = lookup(name, port, opts, &res, err)) != 0) {
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
    if (mw_net_opts_copy(&o, opts) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", opts->version);
    if (o.family != 0 && o.family != 4 && o.family != 6)
        return mwi_err_set(err, MW_EINVAL, "invalid address family %d (0, 4 or 6)", o.family);
    int rc = check_limits(&o, err);
    if (rc) return rc;
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
        rc = tcp_direct(out, name, host, port, &o, start, err);
    if (rc == MW_ETIMEOUT && o.max_time_ms > 0 && mw_now_ms() >= start + o.max_time_ms) {
        char t[32];
        ms_text(t, sizeof t, o.max_time_ms);
        return mwi_err_set(err, rc,
                           "session exceeded its max-time of %s while connecting to %s port %u", t,
                           host, port);
    }
    return rc;
}

/* ---- command stream ----------------------------------------------------- */

int mw_stream_command(mw_stream **out, const char *command, const mw_net_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (!command || !*command) return mwi_err_set(err, MW_EINVAL, "empty command");
    mw_net_opts o;
    if (mw_net_opts_copy(&o, opts) != 0)
        return mwi_err_set(err, MW_EINVAL, "mw_net_opts version %u not supported", opts->version);
    int lrc = check_limits(&o, err);
    if (lrc) return lrc;
    mw_stream *s = mwi_stream_alloc(MW_STREAM_FD);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    /* One socketpair end is the child's stdin and stdout: a socket lets us
     * send with MSG_NOSIGNAL, and shutdown gives the child its EOF. */
    mwi_proc pr;
    int prc = mwi_proc_start(&pr, command, MWI_PROC_SOCKET, err);
    if (prc) {
        free(s);
        return prc;
    }
    s->rfd = s->wfd = pr.in;
    s->own = 1;
    s->wfd_socket = 1;
    s->pid = pr.pid;
    if (opts) apply_opts(s, &o, mw_now_ms()); /* NULL: no timeout, no limits (as ever) */
    *out = s;
    return 0;
}

/* The command gets EOF on stdin (the caller closed it) and a bounded time to
 * finish, then TERM, then KILL, so freeing a stream never leaves a zombie
 * nor hangs for long. */
static void reap_child(pid_t pid)
{
    mwi_proc pr = {pid, -1, -1};
    mwi_proc_end(&pr, 1000, NULL);
}

/* ---- callbacks stream ---------------------------------------------------- */

int mw_stream_callbacks(mw_stream **out, const mw_stream_ops *ops, void *userdata, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (!ops || !ops->read || !ops->write)
        return mwi_err_set(err, MW_EINVAL, "stream callbacks need read and write");
    mw_stream *s = mwi_stream_alloc(MW_STREAM_CB);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    s->ops = *ops;
    s->userdata = userdata;
    *out = s;
    return 0;
}

static int cb_result(long n, size_t len, const char *what, mw_error *err)
{
    if (n < 0) {
        int code = (n >= MW_ERROR_LAST) ? (int)n : MW_EIO;
        return mwi_err_set(err, code, "stream callback failed %s: %s", what, mw_strerror(code));
    }
    if ((size_t)n > len)
        return mwi_err_set(err, MW_EINVAL, "stream callback returned %ld bytes for a %zu-byte %s",
                           n, len, what);
    return 0;
}

static int cb_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                   mw_error *err)
{
    long n = s->ops.read(buf, len, deadline, s->userdata);
    int rc = cb_result(n, len, "reading", err);
    if (rc) return rc;
    *got = (size_t)n;
    return 0;
}

static int cb_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                    mw_error *err)
{
    const char *p = buf;
    while (len > 0) {
        if (mw_cancel_requested(s->cancel))
            return mwi_err_set(err, MW_ECANCELED, "operation canceled");
        if (deadline != MW_NO_DEADLINE && mw_now_ms() >= deadline)
            return mwi_err_set(err, MW_ETIMEOUT, "timed out waiting to send");
        long n = s->ops.write(p, len, deadline, s->userdata);
        int rc = cb_result(n, len, "writing", err);
        if (rc) return rc;
        if (n == 0) return mwi_err_set(err, MW_ENET, "stream callback wrote nothing");
        p += n;
        len -= (size_t)n;
        *done += (size_t)n;
    }
    return 0;
}

/* ---- public dispatch ------------------------------------------------------- */

static int kind_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline,
                     mw_error *err)
{
    switch (s->kind) {
    case MW_STREAM_FD:
        return fd_read(s, buf, len, got, deadline, err);
    case MW_STREAM_CB:
        return cb_read(s, buf, len, got, deadline, err);
    case MW_STREAM_TLS:
        return mwi_tls_read(s, buf, len, got, deadline, err);
    }
    return mwi_err_set(err, MW_EINVAL, "unknown stream kind");
}

/* Writes what it can by the deadline; *done counts the bytes that went out
 * (also on failure, so a limit check can go on from there). */
static int kind_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                      mw_error *err)
{
    int rc;
    switch (s->kind) {
    case MW_STREAM_FD:
        return fd_write(s, buf, len, done, deadline, err);
    case MW_STREAM_CB:
        return cb_write(s, buf, len, done, deadline, err);
    case MW_STREAM_TLS:
        rc = mwi_tls_write(s, buf, len, deadline, err);
        if (!rc) *done = len;
        return rc;
    }
    return mwi_err_set(err, MW_EINVAL, "unknown stream kind");
}

/* ---- session limits (mw_net_opts version 3) ----------------------------------- */

enum { LIM_NONE, LIM_OP, LIM_RATE };

static int has_limits(const mw_stream *s)
{
    return s->op_deadline != MW_NO_DEADLINE || mwi_rate_on(&s->rate);
}

/* The earliest of deadline, the session's max-time deadline and the end of
 * the rate window (counted from now); *which says if it is one of the last
 * two. */
static int64_t limit_deadline(const mw_stream *s, int64_t deadline, int64_t now, int *which)
{
    *which = LIM_NONE;
    if (s->op_deadline <= deadline) {
        deadline = s->op_deadline;
        *which = LIM_OP;
    }
    if (mwi_rate_on(&s->rate)) {
        int64_t end = now + mwi_rate_budget(&s->rate);
        if (end < deadline) {
            deadline = end;
            *which = LIM_RATE;
        }
    }
    return deadline;
}

static int max_time_exceeded(mw_stream *s, const char *what, mw_error *err)
{
    char t[32];
    ms_text(t, sizeof t, s->max_time_ms);
    s->limit_hit = 1;
    return mwi_err_set(err, MW_ETIMEOUT, "session exceeded its max-time of %s while %s", t, what);
}

static int too_slow(mw_stream *s, const char *what, mw_error *err)
{
    char t[32];
    ms_text(t, sizeof t, s->speed_time_ms);
    s->limit_hit = 1;
    return mwi_err_set(
        err, MW_ETIMEOUT, "transfer slower than %u byte%s/s over %s (%llu byte%s moved) while %s",
        s->speed_limit, s->speed_limit == 1 ? "" : "s", t, (unsigned long long)s->rate.failed_bytes,
        s->rate.failed_bytes == 1 ? "" : "s", what);
}

int mwi_stream_limit_hit(const mw_stream *s)
{
    for (; s; s = s->inner)
        if (s->limit_hit) return 1;
    return 0;
}

int mw_stream_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline_ms,
                   mw_error *err)
{
    if (!got) return mwi_err_set(err, MW_EINVAL, "no output length pointer");
    *got = 0;
    if (!s || (!buf && len)) return mwi_err_set(err, MW_EINVAL, "invalid stream read arguments");
    if (len == 0) return 0;
    if (mw_cancel_requested(s->cancel)) return mwi_err_set(err, MW_ECANCELED, "operation canceled");
    int64_t deadline = mwi_deadline_min(deadline_ms, s->io_timeout_ms);
    s->limit_hit = 0;
    if (!has_limits(s)) return kind_read(s, buf, len, got, deadline, err);
    for (;;) {
        int which;
        int64_t t0 = mw_now_ms();
        int64_t dl = limit_deadline(s, deadline, t0, &which);
        if (which == LIM_OP && t0 >= dl) return max_time_exceeded(s, "waiting for data", err);
        int rc = kind_read(s, buf, len, got, dl, err);
        if (mwi_rate_account(&s->rate, mw_now_ms() - t0, *got) != 0) {
            *got = 0;
            return too_slow(s, "waiting for data", err);
        }
        if (rc == MW_ETIMEOUT && which == LIM_RATE) continue; /* window not over yet */
        if (rc == MW_ETIMEOUT && which == LIM_OP)
            return max_time_exceeded(s, "waiting for data", err);
        return rc;
    }
}

int mw_stream_write(mw_stream *s, const void *buf, size_t len, int64_t deadline_ms, mw_error *err)
{
    if (!s || (!buf && len)) return mwi_err_set(err, MW_EINVAL, "invalid stream write arguments");
    if (len == 0) return 0;
    if (mw_cancel_requested(s->cancel)) return mwi_err_set(err, MW_ECANCELED, "operation canceled");
    int64_t deadline = mwi_deadline_min(deadline_ms, s->io_timeout_ms);
    s->limit_hit = 0;
    size_t done = 0;
    if (!has_limits(s)) return kind_write(s, buf, len, &done, deadline, err);
    const char *p = buf;
    for (;;) {
        int which;
        int64_t t0 = mw_now_ms();
        int64_t dl = limit_deadline(s, deadline, t0, &which);
        if (which == LIM_OP && t0 >= dl) return max_time_exceeded(s, "sending", err);
        done = 0;
        int rc = kind_write(s, p, len, &done, dl, err);
        if (mwi_rate_account(&s->rate, mw_now_ms() - t0, done) != 0)
            return too_slow(s, "sending", err);
        p += done;
        len -= done;
        if (rc == MW_ETIMEOUT && which == LIM_RATE && len > 0) continue;
        if (rc == MW_ETIMEOUT && which == LIM_OP) return max_time_exceeded(s, "sending", err);
        return rc;
    }
}

void mw_stream_free(mw_stream *s)
{
    if (!s) return;
    switch (s->kind) {
    case MW_STREAM_FD:
        if (s->own) {
            if (s->rfd >= 0) close(s->rfd);
            if (s->wfd >= 0 && s->wfd != s->rfd) close(s->wfd);
        }
        if (s->pid > 0) reap_child(s->pid);
        break;
    case MW_STREAM_CB:
        if (s->ops.close) s->ops.close(s->userdata);
        break;
    case MW_STREAM_TLS:
        mwi_tls_close(s); /* frees s->inner too */
        break;
    }
    free(s->host);
    free(s);
}
