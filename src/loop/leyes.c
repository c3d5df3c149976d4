/* Happy Eyeballs on the loop (leyes.h). */
#include "loop/leyes.h"
#include "resolve/resolve.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct mwi_leyes {
    int fd[MWI_LOOP_XFD_MAX];    /* connects in flight */
    size_t ai[MWI_LOOP_XFD_MAX]; /* and their addresses in c->addrs */
    size_t np;
    size_t next;     /* the next address of c->addrs to try */
    int64_t next_at; /* when it is due */
    int64_t end;     /* the race's deadline */
    int race_ms;     /* what `end` came from, for the words */
    int delay_ms;
    int tried, last_errno;
    char last[INET6_ADDRSTRLEN]; /* the last address tried */
};

static void addr_text(const mwi_raddr *a, char *buf, size_t cap)
{
    if (!inet_ntop(a->family, a->addr, buf, (socklen_t)cap)) snprintf(buf, cap, "?");
}

static socklen_t sockaddr_of(const mwi_raddr *a, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (a->family == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        memcpy(&s4->sin_addr, a->addr, 4);
        return sizeof *s4;
    }
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    memcpy(&s6->sin6_addr, a->addr, 16);
    return sizeof *s6;
}

/* Starts the attempts that are due: the next address when none is in
 * flight or the attempt delay since the last start is over; one that
 * fails at once makes way for the next.  Returns a socket that connected
 * at once, or -1. */
static int start_due(mwi_lconn *c, struct mwi_leyes *r, int64_t now)
{
    while (r->next < c->naddrs && r->np < MWI_LOOP_XFD_MAX && (r->np == 0 || now >= r->next_at)) {
        const mwi_raddr *a = &c->addrs[r->next++];
        struct sockaddr_storage ss;
        socklen_t sl = sockaddr_of(a, c->port, &ss);
        r->tried++;
        addr_text(a, r->last, sizeof r->last);
        int s = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s >= 0 && connect(s, (struct sockaddr *)&ss, sl) == 0) {
            mwi_lconn_info(c, "connected to %s (%s) port %u at once", c->host, r->last, c->port);
            return s;
        }
        if (s >= 0 && (errno == EINPROGRESS || errno == EINTR)) {
            r->ai[r->np] = r->next - 1;
            r->fd[r->np++] = s;
            r->next_at = now + r->delay_ms;
            mwi_lconn_info(c, "connecting to %s (%s) port %u", c->host, r->last, c->port);
            break;
        }
        r->last_errno = errno;
        if (s >= 0) close(s);
        mwi_lconn_info(c, "connect to %s (%s) port %u: %s", c->host, r->last, c->port,
                       MW_ERRNO_TEXT(r->last_errno));
    }
    return -1;
}

/* The connects in flight that finished (poll without waiting: the event
 * that woke the job may have been any of them).  Failed ones are closed
 * and make the next attempt due at once.  Returns the socket that
 * connected, or -1. */
static int settle(mwi_lconn *c, struct mwi_leyes *r, int64_t now)
{
    struct pollfd pf[MWI_LOOP_XFD_MAX];
    for (size_t k = 0; k < r->np; k++)
        pf[k] = (struct pollfd){.fd = r->fd[k], .events = POLLOUT};
    if (!r->np || poll(pf, r->np, 0) <= 0) return -1;
    int gone[MWI_LOOP_XFD_MAX], winner = -1;
    size_t ngone = 0;
    for (size_t k = r->np; k-- > 0;) {
        if (!pf[k].revents) continue;
        int soerr = 0, fd = r->fd[k];
        size_t ai = r->ai[k];
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr == EINPROGRESS || soerr == EALREADY) continue;
        r->np--;
        r->fd[k] = r->fd[r->np];
        r->ai[k] = r->ai[r->np];
        if (soerr == 0 && winner < 0) {
            winner = fd;
            continue;
        }
        if (soerr == 0) soerr = ECONNABORTED; /* a second winner: not taken */
        gone[ngone++] = fd;
        r->last_errno = soerr;
        r->next_at = now; /* a failure starts the next attempt at once */
        char at[INET6_ADDRSTRLEN];
        addr_text(&c->addrs[ai], at, sizeof at);
        mwi_lconn_info(c, "connect to %s (%s) port %u: %s", c->host, at, c->port,
                       MW_ERRNO_TEXT(soerr));
    }
    mwi_loop_set_xfds(c->job, r->fd, r->np); /* forgotten before they are closed */
    for (size_t k = 0; k < ngone; k++)
        close(gone[k]);
    return winner;
}

/* fd connected: the job's descriptor, the other attempts closed. */
static int won(mwi_lconn *c, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one); /* no Nagle for commands */
    mwi_leyes_free(c);
    int rc = mwi_loop_set_fd(c->job, fd);
    if (rc) {
        close(fd);
        mwi_err_set(&c->job->err, rc, "descriptor %d cannot be watched", fd);
        c->ops->fail(c->impl, rc, c->job->err.message);
        return -1;
    }
    return 1;
}

static int lost(mwi_lconn *c, struct mwi_leyes *r, int code)
{
    char msg[320];
    if (code == MW_ETIMEOUT)
        snprintf(msg, sizeof msg,
                 "connect to %s port %u timed out after %d ms (%d address%s tried, last %s)",
                 c->host, c->port, r->race_ms, r->tried, r->tried == 1 ? "" : "es", r->last);
    else
        snprintf(msg, sizeof msg, "cannot connect to %s port %u: %s (%d address%s tried, last %s)",
                 c->host, c->port, MW_ERRNO_TEXT(r->last_errno), r->tried,
                 r->tried == 1 ? "" : "es", r->last);
    c->ops->fail(c->impl, code, msg); /* ends the job, which frees the race */
    return -1;
}

int mwi_leyes_step(mwi_lconn *c)
{
    struct mwi_leyes *r = c->race;
    if (!r) return 0;
    int64_t now = mw_now_ms();
    int w = settle(c, r, now);
    size_t before = r->np;
    if (w < 0) w = start_due(c, r, now);
    if (w >= 0) return won(c, w);
    if (r->np == 0 && r->next >= c->naddrs) return lost(c, r, MW_ENET);
    if (now >= r->end) {
        if (c->max_time_ms > 0 && now >= c->total_deadline) return 0; /* lconn's words */
        return lost(c, r, MW_ETIMEOUT);
    }
    if (r->np != before && mwi_loop_set_xfds(c->job, r->fd, r->np) != 0) {
        mwi_err_set(&c->job->err, MW_ENOMEM, "out of memory");
        c->ops->fail(c->impl, MW_ENOMEM, c->job->err.message);
        return -1;
    }
    return 0;
}

int mwi_leyes_start(mwi_lconn *c)
{
    struct mwi_leyes *r = calloc(1, sizeof *r);
    if (!r) {
        c->ops->fail(c->impl, MW_ENOMEM, "out of memory");
        return -1;
    }
    int64_t now = mw_now_ms();
    /* As src/net/s_tcp.c: the connect timeout again for the race, after
     * the lookup; the session's max-time still bounds it. */
    if (c->connect_timeout_ms > 0) c->step_deadline = now + c->connect_timeout_ms;
    r->end = c->step_deadline < c->total_deadline ? c->step_deadline : c->total_deadline;
    r->race_ms = c->connect_timeout_ms;
    r->delay_ms = mwi_loop_attempt_delay(c->job->loop);
    r->last_errno = ECONNREFUSED;
    r->next_at = now;
    c->race = r;
    /* A connect that succeeded at once: the job's descriptor, whose
     * first OUT event lconn.c takes as any connect's. */
    return mwi_leyes_step(c) < 0 ? -1 : 0;
}

int64_t mwi_leyes_deadline(const mwi_lconn *c)
{
    const struct mwi_leyes *r = c->race;
    if (!r) return MW_NO_DEADLINE;
    if (r->next < c->naddrs && r->np > 0 && r->next_at < r->end) return r->next_at;
    return r->end;
}

void mwi_leyes_free(mwi_lconn *c)
{
    struct mwi_leyes *r = c->race;
    if (!r) return;
    mwi_loop_set_xfds(c->job, NULL, 0);
    for (size_t k = 0; k < r->np; k++)
        close(r->fd[k]);
    free(r);
    c->race = NULL;
}
