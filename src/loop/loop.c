/* The event loop: descriptors to jobs, deadlines, ending jobs, and the
 * runner, on epoll(7) where there is one, else poll(2)
 * (include/mailwire/loop.h). */
#include "loop/lcache.h"
#include "loop/loop_int.h"
#include "loop/loop_tls.h"
#include "loop/ltoken.h"
#include "resolve/resolve.h"
#include "store/store_defer.h"
#include "util/addrorder.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#ifdef __linux__
#include <sys/epoll.h>
#endif
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#define MW_LOOP_DEFAULT_MAX_JOBS 100000
/* Steps of one job per action before it yields to the others. */
#define MW_LOOP_FDMAP_MAX (1 << 24)

struct mw_loop {
    size_t max_jobs;
    size_t njobs;
    struct mw_loop_job *head, *tail;
    struct mw_loop_job **fdmap; /* descriptor -> job */
    size_t fdmap_len;
    struct pollfd *pfd; /* mw_loop_run's array */
    mw_loop_fd *lfd;
    size_t pfd_cap;
    int reaping;
    mwi_ltls_cache *tls_cache;
    int epfd;                   /* mw_loop_run's epoll set, -1 until made */
    mwi_rslv_paths rslv_paths;  /* NULL members: the system's files */
    int attempt_delay_ms;       /* 0: MWI_HE_ATTEMPT_DELAY_MS */
    mwi_lcache *dns_cache;      /* made at the first lookup */
    struct mwi_ltok *tok;       /* token answers (ltoken.h), made at the first asked */
    int tok_reg;                /* its wake descriptor is in the epoll set */
    mwi_store_budget store_fds; /* the fetch jobs' deferred files (fetch_job.c) */
};

mwi_store_budget *mwi_loop_store_budget(mw_loop *loop)
{
    return &loop->store_fds;
}

struct mwi_ltok **mwi_loop_tok(mw_loop *loop)
{
    return &loop->tok;
}

mwi_lcache **mwi_loop_dns_cache(mw_loop *loop)
{
    return &loop->dns_cache;
}

void mwi_loop_wake_dns(mw_loop *loop)
{
    for (struct mw_loop_job *j = loop->head; j; j = j->next)
        if (j->dns_wait) {
            j->dns_wait = 0;
            j->again = 1;
        }
}

int mwi_loop_attempt_delay(const mw_loop *loop)
{
    return loop->attempt_delay_ms > 0 ? loop->attempt_delay_ms : MWI_HE_ATTEMPT_DELAY_MS;
}

void mwi_loop_set_attempt_delay(mw_loop *loop, int ms)
{
    loop->attempt_delay_ms = ms;
}

int mwi_loop_set_resolv_paths(mw_loop *loop, const char *resolv_conf, const char *hosts)
{
    char *a = resolv_conf ? strdup(resolv_conf) : NULL, *b = hosts ? strdup(hosts) : NULL;
    if ((resolv_conf && !a) || (hosts && !b)) {
        free(a);
        free(b);
        return MW_ENOMEM;
    }
    free((char *)loop->rslv_paths.resolv_conf);
    free((char *)loop->rslv_paths.hosts);
    loop->rslv_paths.resolv_conf = a;
    loop->rslv_paths.hosts = b;
    return 0;
}

const mwi_rslv_paths *mwi_loop_resolv_paths(mw_loop *loop)
{
    return &loop->rslv_paths;
}

mwi_ltls_cache **mwi_loop_tls_cache(mw_loop *loop)
{
    return &loop->tls_cache;
}

int mw_loop_new(mw_loop **out, const mw_loop_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output loop pointer");
    *out = NULL;
    if (opts && opts->version != MW_LOOP_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_loop_opts version %u not supported", opts->version);
    mw_loop *l = calloc(1, sizeof *l);
    if (!l) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    l->max_jobs = opts && opts->max_jobs ? opts->max_jobs : MW_LOOP_DEFAULT_MAX_JOBS;
    l->epfd = -1;
    *out = l;
    return 0;
}

static void unlink_job(mw_loop *l, struct mw_loop_job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        l->head = j->next;
    if (j->next)
        j->next->prev = j->prev;
    else
        l->tail = j->prev;
    j->prev = j->next = NULL;
    mwi_ltok_forget(l, j);
    mwi_loop_set_fd(j, -1);
    mwi_loop_set_xfds(j, NULL, 0);
    free(j->xfd);
    free(j->xev);
    j->xfd = NULL;
    j->xev = NULL;
    l->njobs--;
}

void mw_loop_free(mw_loop *loop)
{
    if (!loop) return;
    while (loop->head) {
        struct mw_loop_job *j = loop->head;
        j->ops->destroy(j); /* closes the job's descriptor: before unlinking forgets it */
        unlink_job(loop, j);
        if (j->ud_free) j->ud_free(j->userdata); /* no done callback comes */
        free(j);
    }
    mwi_ltls_cache_free(loop->tls_cache);
    mwi_lcache_free(loop->dns_cache);
    mwi_ltok_free(loop->tok);
    free(loop->fdmap);
    free(loop->pfd);
    free(loop->lfd);
    if (loop->epfd >= 0) close(loop->epfd);
    mwi_loop_set_resolv_paths(loop, NULL, NULL);
    free(loop);
}

int mwi_loop_attach(mw_loop *loop, struct mw_loop_job *job, mw_error *err)
{
    if (loop->njobs >= loop->max_jobs)
        return mwi_err_set(err, MW_ETOOBIG, "the loop already runs %zu jobs (max_jobs)",
                           loop->njobs);
    job->loop = loop;
    job->fd = -1;
    job->reg_fd = -1;
    job->prev = loop->tail;
    job->next = NULL;
    if (loop->tail)
        loop->tail->next = job;
    else
        loop->head = job;
    loop->tail = job;
    loop->njobs++;
    return 0;
}

/* Maps fd to job in the descriptor map.  Returns 0, MW_ETOOBIG, MW_ENOMEM. */
static int map_fd(mw_loop *l, int fd, struct mw_loop_job *job)
{
    if (fd >= MW_LOOP_FDMAP_MAX) return MW_ETOOBIG;
    if ((size_t)fd >= l->fdmap_len) {
        size_t n = l->fdmap_len ? l->fdmap_len : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct mw_loop_job **m = realloc(l->fdmap, n * sizeof *m);
        if (!m) return MW_ENOMEM;
        memset(m + l->fdmap_len, 0, (n - l->fdmap_len) * sizeof *m);
        l->fdmap = m;
        l->fdmap_len = n;
    }
    l->fdmap[fd] = job;
    return 0;
}

int mwi_loop_set_fd(struct mw_loop_job *job, int fd)
{
    mw_loop *l = job->loop;
    if (job->fd >= 0 && (size_t)job->fd < l->fdmap_len && l->fdmap[job->fd] == job)
        l->fdmap[job->fd] = NULL;
#ifdef __linux__
    /* Out of mw_loop_run's epoll set now (a job that changes descriptors,
     * as a name lookup does, may get the same number again for another
     * socket: epoll_sync must add that one anew). */
    if (job->reg_fd >= 0 && fd != job->reg_fd) {
        if (l->epfd >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, job->reg_fd, NULL);
        job->reg_fd = -1;
        job->reg_want = 0;
    }
#endif
    job->fd = -1;
    if (fd < 0) return 0;
    int rc = map_fd(l, fd, job);
    if (!rc) job->fd = fd;
    return rc;
}

int mwi_loop_set_xfds(struct mw_loop_job *job, const int *fds, size_t n)
{
    return mwi_loop_set_xfds_ev(job, fds, NULL, n);
}

int mwi_loop_set_xfds_ev(struct mw_loop_job *job, const int *fds, const int *events, size_t n)
{
    mw_loop *l = job->loop;
    for (size_t k = 0; k < job->nxfd; k++) {
        int fd = job->xfd[k];
        if ((size_t)fd < l->fdmap_len && l->fdmap[fd] == job) l->fdmap[fd] = NULL;
#ifdef __linux__
        if (job->xreg && l->epfd >= 0) epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
#endif
    }
    job->nxfd = 0;
    job->xreg = 0;
    if (!n) return 0;
    if (n > MWI_LOOP_XFD_MAX) return MW_ETOOBIG;
    if (!job->xfd && !(job->xfd = malloc(MWI_LOOP_XFD_MAX * sizeof *job->xfd))) return MW_ENOMEM;
    if (!job->xev && !(job->xev = malloc(MWI_LOOP_XFD_MAX * sizeof *job->xev))) return MW_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        int rc = fds[k] < 0 ? MW_EINVAL : map_fd(l, fds[k], job);
        if (rc) {
            mwi_loop_set_xfds(job, NULL, 0);
            return rc;
        }
        job->xev[job->nxfd] = events ? events[k] & (MW_LOOP_IN | MW_LOOP_OUT) : MW_LOOP_OUT;
        job->xfd[job->nxfd++] = fds[k];
    }
    return 0;
}

size_t mw_loop_fds(mw_loop *loop, mw_loop_fd *fds, size_t cap)
{
    size_t n = 0;
    if (!loop) return 0;
    for (struct mw_loop_job *j = loop->head; j; j = j->next) {
        if (j->done || j->fd < 0 || !j->want) continue;
        if (fds && n < cap) {
            fds[n].fd = j->fd;
            fds[n].events = j->want;
        }
        n++;
    }
    for (struct mw_loop_job *j = loop->head; j; j = j->next) {
        for (size_t k = 0; !j->done && k < j->nxfd; k++, n++) {
            if (fds && n < cap) {
                fds[n].fd = j->xfd[k];
                fds[n].events = j->xev[k];
            }
        }
    }
    if (loop->tok) { /* the token answers' wake-up (ltoken.h) */
        if (fds && n < cap) {
            fds[n].fd = mwi_ltok_fd(loop->tok);
            fds[n].events = MW_LOOP_IN;
        }
        n++;
    }
    return n;
}

int mw_loop_timeout_ms(mw_loop *loop)
{
    if (!loop || !loop->head) return -1;
    int64_t now = mw_now_ms(), first = MW_NO_DEADLINE;
    for (struct mw_loop_job *j = loop->head; j; j = j->next) {
        if (j->done || j->again || j->cancel_rc) return 0;
        if (j->deadline < first) first = j->deadline;
    }
    if (first == MW_NO_DEADLINE) return -1;
    if (first <= now) return 0;
    return first - now > 24 * 3600 * 1000 ? 24 * 3600 * 1000 : (int)(first - now);
}

size_t mw_loop_running(const mw_loop *loop)
{
    return loop ? loop->njobs : 0;
}

/* Calls the done callbacks of the jobs that ended, and frees them.  A
 * callback may add jobs (appended at the tail) and cancel others. */
static void reap(mw_loop *l)
{
    if (l->reaping) return;
    l->reaping = 1;
    struct mw_loop_job *j = l->head;
    while (j) {
        struct mw_loop_job *next = j->next;
        if (j->done) {
            j->ops->destroy(j);
            unlink_job(l, j);
            j->result.code = j->err.code;
            j->result.err = &j->err;
            if (j->done_fn) j->done_fn(j, &j->result, j->userdata);
            free(j);
            next = l->head; /* the callback may have changed the list */
            while (next && !next->done)
                next = next->next;
        }
        j = next;
    }
    l->reaping = 0;
}

size_t mw_loop_action(mw_loop *loop, int fd, int events)
{
    if (!loop) return 0;
    if (fd >= 0 && loop->tok && fd == mwi_ltok_fd(loop->tok)) {
        mwi_ltok_wake(loop); /* the jobs answered are stepped below */
        fd = MW_LOOP_TIMEOUT;
    }
    if (fd >= 0) {
        if ((size_t)fd < loop->fdmap_len && loop->fdmap[fd] && !loop->fdmap[fd]->done) {
            struct mw_loop_job *j = loop->fdmap[fd];
            int ev = events & (MW_LOOP_IN | MW_LOOP_OUT);
            if (events & MW_LOOP_ERR) ev |= MW_LOOP_IN | (j->want & MW_LOOP_OUT);
            j->again = 0;
            j->ops->step(j, ev);
            if (!j->done) return loop->njobs; /* nothing to reap */
        }
    } else {
        int64_t now = mw_now_ms();
        for (struct mw_loop_job *j = loop->head; j; j = j->next) {
            if (j->done) continue;
            if (j->again || j->cancel_rc || j->deadline <= now) {
                j->again = 0;
                j->ops->step(j, 0);
            }
        }
    }
    reap(loop);
    return loop->njobs;
}

int mw_loop_cancel(mw_loop *loop, mw_loop_job *job)
{
    if (!loop || !job || job->loop != loop) return MW_EINVAL;
    if (job->done || job->cancel_rc) return MW_ESTATE;
    job->cancel_rc = MW_ECANCELED;
    return 0;
}

int mw_loop_set_speed_limit(mw_loop *loop, mw_loop_job *job, unsigned bytes_per_s,
                            int speed_time_ms)
{
    if (!loop || !job || job->loop != loop || job->done) return MW_EINVAL;
    if (bytes_per_s && speed_time_ms <= 0) return MW_EINVAL;
    job->speed_limit = bytes_per_s;
    job->speed_time_ms = bytes_per_s ? speed_time_ms : 0;
    return 0;
}

/* The wait of mw_loop_run: t ms at most (-1: no bound). */
static int run_timeout(mw_loop *loop, int64_t deadline_ms, int64_t now)
{
    int t = mw_loop_timeout_ms(loop);
    if (deadline_ms != MW_NO_DEADLINE && (t < 0 || deadline_ms - now < t))
        t = (int)(deadline_ms - now);
    return t;
}

/* poll(2): every descriptor handed to the kernel at every wait. */
int mwi_loop_run_poll(mw_loop *loop, int64_t deadline_ms, mw_error *err)
{
    while (loop->njobs) {
        size_t n = mw_loop_fds(loop, loop->lfd, loop->pfd_cap);
        if (n > loop->pfd_cap) {
            size_t cap = n + n / 2 + 16;
            struct pollfd *p = realloc(loop->pfd, cap * sizeof *p);
            if (p) loop->pfd = p;
            mw_loop_fd *q = p ? realloc(loop->lfd, cap * sizeof *q) : NULL;
            if (q) loop->lfd = q;
            if (!p || !q) return mwi_err_set(err, MW_ENOMEM, "out of memory");
            loop->pfd_cap = cap;
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            loop->pfd[i].fd = loop->lfd[i].fd;
            loop->pfd[i].events = (short)(((loop->lfd[i].events & MW_LOOP_IN) ? POLLIN : 0) |
                                          ((loop->lfd[i].events & MW_LOOP_OUT) ? POLLOUT : 0));
            loop->pfd[i].revents = 0;
        }
        int64_t now = mw_now_ms();
        if (deadline_ms != MW_NO_DEADLINE && now >= deadline_ms)
            return mwi_err_set(err, MW_ETIMEOUT, "%zu jobs still running at the deadline",
                               loop->njobs);
        int r = poll(loop->pfd, (nfds_t)n, run_timeout(loop, deadline_ms, now));
        if (r < 0) {
            if (errno == EINTR) continue;
            return mwi_err_set(err, MW_ENET, "poll: %s", MW_ERRNO_TEXT(errno));
        }
        for (size_t i = 0; r > 0 && i < n; i++) {
            short re = loop->pfd[i].revents;
            if (!re) continue;
            int ev = ((re & POLLIN) ? MW_LOOP_IN : 0) | ((re & POLLOUT) ? MW_LOOP_OUT : 0) |
                     ((re & (POLLERR | POLLHUP | POLLNVAL)) ? MW_LOOP_ERR : 0);
            mw_loop_action(loop, loop->pfd[i].fd, ev);
        }
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    }
    return 0;
}

#ifdef __linux__
/* Brings the epoll set in line with what each job waits for.  A closed
 * descriptor left the set by itself (epoll(7)); a number used again is
 * added anew. */
static void epoll_sync(mw_loop *loop)
{
    for (struct mw_loop_job *j = loop->head; j; j = j->next) {
        int want = j->done || j->fd < 0 ? 0 : j->want;
        if (j->reg_fd == j->fd && j->reg_want == want) continue;
        if (!want) {
            if (j->reg_fd >= 0 && j->reg_fd == j->fd)
                epoll_ctl(loop->epfd, EPOLL_CTL_DEL, j->fd, NULL);
            j->reg_fd = -1;
            j->reg_want = 0;
            continue;
        }
        struct epoll_event e;
        memset(&e, 0, sizeof e);
        e.events = ((want & MW_LOOP_IN) ? EPOLLIN : 0) | ((want & MW_LOOP_OUT) ? EPOLLOUT : 0);
        e.data.fd = j->fd;
        int op = j->reg_fd == j->fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        int rc = epoll_ctl(loop->epfd, op, j->fd, &e);
        if (rc != 0 && errno == ENOENT) rc = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, j->fd, &e);
        if (rc != 0 && errno == EEXIST) rc = epoll_ctl(loop->epfd, EPOLL_CTL_MOD, j->fd, &e);
        j->reg_fd = rc == 0 ? j->fd : -1;
        j->reg_want = rc == 0 ? want : 0;
    }
}

/* The jobs' other descriptors (a race's connects) into the set. */
static void epoll_sync_xfds(mw_loop *loop)
{
    for (struct mw_loop_job *j = loop->head; j; j = j->next) {
        if (j->done || j->xreg || !j->nxfd) continue;
        for (size_t k = 0; k < j->nxfd; k++) {
            struct epoll_event e;
            memset(&e, 0, sizeof e);
            e.events = ((j->xev[k] & MW_LOOP_IN) ? EPOLLIN : 0) |
                       ((j->xev[k] & MW_LOOP_OUT) ? EPOLLOUT : 0);
            e.data.fd = j->xfd[k];
            if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, j->xfd[k], &e) != 0 && errno == EEXIST)
                epoll_ctl(loop->epfd, EPOLL_CTL_MOD, j->xfd[k], &e);
        }
        j->xreg = 1;
    }
}

/* epoll(7): the kernel keeps the set; a wait costs what is ready, not
 * what is watched. */
static int run_epoll(mw_loop *loop, int64_t deadline_ms, mw_error *err)
{
    struct epoll_event ev[256];
    while (loop->njobs) {
        epoll_sync(loop);
        epoll_sync_xfds(loop);
        if (loop->tok && !loop->tok_reg) {
            struct epoll_event e;
            memset(&e, 0, sizeof e);
            e.events = EPOLLIN;
            e.data.fd = mwi_ltok_fd(loop->tok);
            loop->tok_reg = epoll_ctl(loop->epfd, EPOLL_CTL_ADD, e.data.fd, &e) == 0;
        }
        int64_t now = mw_now_ms();
        if (deadline_ms != MW_NO_DEADLINE && now >= deadline_ms)
            return mwi_err_set(err, MW_ETIMEOUT, "%zu jobs still running at the deadline",
                               loop->njobs);
        int r = epoll_wait(loop->epfd, ev, (int)(sizeof ev / sizeof ev[0]),
                           run_timeout(loop, deadline_ms, now));
        if (r < 0) {
            if (errno == EINTR) continue;
            return mwi_err_set(err, MW_ENET, "epoll_wait: %s", MW_ERRNO_TEXT(errno));
        }
        for (int i = 0; i < r; i++) {
            uint32_t re = ev[i].events;
            int e = ((re & EPOLLIN) ? MW_LOOP_IN : 0) | ((re & EPOLLOUT) ? MW_LOOP_OUT : 0) |
                    ((re & (EPOLLERR | EPOLLHUP)) ? MW_LOOP_ERR : 0);
            mw_loop_action(loop, ev[i].data.fd, e);
        }
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    }
    return 0;
}
#endif

int mw_loop_run(mw_loop *loop, int64_t deadline_ms, mw_error *err)
{
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
#ifdef __linux__
    if (loop->epfd < 0) loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd >= 0) return run_epoll(loop, deadline_ms, err);
#endif
    return mwi_loop_run_poll(loop, deadline_ms, err);
}

int mwi_loop_tcp_socket(const char *host, unsigned port, int *fd, int *connect_rc,
                        int *connect_errno, mw_error *err)
{
    struct addrinfo hints = {0}, *res = NULL;
    char ps[16];
    *fd = -1;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(ps, sizeof ps, "%u", port);
    unsigned char lit[16];
    /* A plain address literal is connected to at the first step too, as
     * a race of one (leyes.c), for src/net's words; a scoped IPv6 one
     * ("fe80::1%eth0") here. */
    if (inet_pton(AF_INET, host, lit) == 1 || inet_pton(AF_INET6, host, lit) == 1 ||
        getaddrinfo(host, ps, &hints, &res) != 0 || !res) {
        *connect_rc = -1; /* a name: looked up on the loop (lconn.h) */
        *connect_errno = EINPROGRESS;
        return 0;
    }
    int s = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        int e = errno;
        freeaddrinfo(res);
        return mwi_err_set(err, MW_ENET, "socket: %s", MW_ERRNO_TEXT(e));
    }
    int one = 1;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    *connect_rc = connect(s, res->ai_addr, res->ai_addrlen);
    *connect_errno = *connect_rc ? errno : 0;
    freeaddrinfo(res);
    *fd = s;
    return 0;
}
