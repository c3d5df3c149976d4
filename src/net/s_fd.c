/* The descriptor stream kind: mw_stream_fd, and the non-blocking read,
 * write and wait that the TCP and command kinds reuse.  Descriptors are
 * non-blocking (or, for a TCP socket of our own, every call that must not
 * wait passes MSG_DONTWAIT), so no single system call outlives a
 * deadline. */
#include "net/s_fd.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Waits until fd is ready for `events` (POLLIN/POLLOUT), watching the cancel
 * token.  Returns 0, MW_ETIMEOUT, MW_ECANCELED or MW_ENET (poll failure).
 * `what` names the wait in the error message. */
static int wait_fd(int fd, short events, int64_t deadline_ms, mw_cancel *cancel, const char *what,
                   mw_error *err)
{
    for (;;) {
        if (mw_cancel_requested(cancel))
            return mwi_err_set(err, MW_ECANCELED, "operation canceled");
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
        if (mw_cancel_requested(cancel))
            return mwi_err_set(err, MW_ECANCELED, "operation canceled");
        /* POLLHUP/POLLERR: let the following read/write report what happened. */
        if (r > 0 && p[0].revents) return 0;
    }
}

int mwi_fd_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline, mw_error *err)
{
    struct mwi_fd *f = s->impl;
    /* A read that came back short emptied the descriptor, so the next one
     * (typically for the reply to a command just sent) would most likely
     * fail with EAGAIN: one system call spent before the poll.  Then wait
     * first.  After a full read more may be queued: read first.  Past the
     * deadline, read first as well, so data already there is still taken. */
    if (f->rd_short && (deadline == MW_NO_DEADLINE || deadline > mw_now_ms())) {
        int rc = wait_fd(f->rfd, POLLIN, deadline, s->cancel, "waiting for data", err);
        if (rc) return rc;
    }
    for (;;) {
        ssize_t n = f->sock_timed ? recv(f->rfd, buf, len, MSG_DONTWAIT) : read(f->rfd, buf, len);
        if (n >= 0) {
            *got = (size_t)n;
            f->rd_short = (size_t)n < len;
            return 0;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return mwi_err_set(err, MW_ENET, "read failed: %s", MW_ERRNO_TEXT(errno));
        int rc = wait_fd(f->rfd, POLLIN, deadline, s->cancel, "waiting for data", err);
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

int mwi_fd_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                 mw_error *err)
{
    struct mwi_fd *f = s->impl;
    const char *p = buf;
    while (len > 0) {
        ssize_t n = f->wfd_socket
                        ? send(f->wfd, p, len, MSG_NOSIGNAL | (f->sock_timed ? MSG_DONTWAIT : 0))
                        : write_nosigpipe(f->wfd, p, len);
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
        int rc = wait_fd(f->wfd, POLLOUT, deadline, s->cancel, "waiting to send", err);
        if (rc) return rc;
    }
    return 0;
}

int mwi_fd_pollfd(const mw_stream *s)
{
    const struct mwi_fd *f = s->impl;
    return f->rfd;
}

void mwi_fd_close(mw_stream *s)
{
    struct mwi_fd *f = s->impl;
    if (!f->own) return;
    if (f->rfd >= 0) close(f->rfd);
    if (f->wfd >= 0 && f->wfd != f->rfd) close(f->wfd);
    f->rfd = f->wfd = -1;
}

static int is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* A stream of kind vt (whose state begins with struct mwi_fd; impl_size
 * its size) over rfd/wfd, which are not touched.  NULL on no memory. */
static mw_stream *fd_stream_new(const mwi_stream_vt *vt, size_t impl_size, int rfd, int wfd,
                                int own)
{
    mw_stream *s = mwi_stream_new(vt, impl_size);
    if (!s) return NULL;
    struct mwi_fd *f = s->impl;
    f->rfd = rfd;
    f->wfd = wfd;
    f->own = own;
    f->wfd_socket = is_socket(wfd);
    return s;
}

/* ---- mw_stream_fd ------------------------------------------------------------ */

static const mwi_stream_vt fd_vt = {"fd", mwi_fd_read, mwi_fd_write, mwi_fd_pollfd, mwi_fd_close};

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0) return -1;
    return (fl & O_NONBLOCK) ? 0 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int mw_stream_fd(mw_stream **out, int rfd, int wfd, int own, const mw_net_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (rfd < 0 || wfd < 0) return mwi_err_set(err, MW_EINVAL, "invalid file descriptor");
    mw_net_opts o;
    int rc = mwi_net_opts_load(&o, opts, err);
    if (rc) return rc;
    /* Non-blocking so that no single read or write can outlive a deadline. */
    if (set_nonblock(rfd) != 0 || set_nonblock(wfd) != 0)
        return mwi_err_set(err, MW_EINVAL, "cannot make descriptor non-blocking: %s",
                           MW_ERRNO_TEXT(errno));
    mw_stream *s = fd_stream_new(&fd_vt, sizeof(struct mwi_fd), rfd, wfd, own);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (opts) mwi_stream_apply_opts(s, &o, mw_now_ms()); /* NULL: no timeout, no limits (as ever) */
    *out = s;
    return 0;
}
