/* A child process as events of a loop job (lchild.h). */
#include "loop/lchild.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LCHILD_POLL_MS  10  /* no pidfd: waitpid(WNOHANG) this often */
#define LCHILD_GRACE_MS 500 /* TERM, then KILL (util/proc.c's mwi_proc_end) */

static int pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        /* pidfd_open gives O_CLOEXEC descriptors (pidfd_open(2)). */
        return fd;
    }
#else
    (void)pid;
#endif
    return -1;
}

void mwi_lchild_start(mwi_lchild *ch, const mwi_proc *pr, const char *in, size_t len,
                      int timeout_ms)
{
    memset(ch, 0, sizeof *ch);
    ch->pr = *pr;
    ch->in = in;
    ch->in_len = len;
    ch->deadline = mw_now_ms() + timeout_ms;
    ch->pidfd = pidfd_of(pr->pid);
}

static void close_in(mwi_lchild *ch)
{
    if (ch->pr.in >= 0) close(ch->pr.in);
    ch->pr.in = -1;
}

/* The job's extra descriptors: stdin while there is more for it, the
 * pidfd while the child runs.  Called before one of them is closed. */
static void set_fds(mwi_lchild *ch, mw_loop_job *job, int keep_in)
{
    if (!job || !job->loop) return;
    int fds[2], ev[2];
    size_t n = 0;
    if (keep_in && ch->pr.in >= 0) {
        fds[n] = ch->pr.in;
        ev[n++] = MW_LOOP_OUT;
    }
    if (!ch->ended && ch->pidfd >= 0) {
        fds[n] = ch->pidfd;
        ev[n++] = MW_LOOP_IN;
    }
    if (mwi_loop_set_xfds_ev(job, fds, ev, n) != 0) {
        /* Not watched: the deadline still comes, and polling takes over. */
        if (ch->pidfd >= 0) close(ch->pidfd);
        ch->pidfd = -1;
        mwi_loop_set_xfds_ev(job, NULL, NULL, 0);
    }
}

/* Writes stdin as far as the pipe takes it; all written, or a child that
 * stopped reading it (EPIPE: it may still answer), closes it: EOF. */
static void feed(mwi_lchild *ch, mw_loop_job *job)
{
    while (ch->pr.in >= 0 && ch->in_off < ch->in_len) {
        long w = mwi_proc_write(ch->pr.in, ch->in + ch->in_off, ch->in_len - ch->in_off);
        if (w > 0) {
            ch->in_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return;
        ch->in_off = ch->in_len; /* EPIPE or another failure: no more input */
    }
    if (ch->pr.in >= 0) {
        set_fds(ch, job, 0);
        close_in(ch);
    }
}

static void reap(mwi_lchild *ch)
{
    int st = 0;
    pid_t r;
    do
        r = waitpid(ch->pr.pid, &st, WNOHANG);
    while (r < 0 && errno == EINTR);
    if (r == ch->pr.pid) {
        ch->ended = 1;
        ch->status = st;
        ch->pr.pid = -1;
    } else if (r < 0) {
        ch->ended = -1;
        ch->wait_errno = errno;
    }
}

int mwi_lchild_step(mwi_lchild *ch, mw_loop_job *job)
{
    if (ch->ended) return 1;
    int64_t now = mw_now_ms();
    if (!ch->kill_at) feed(ch, job);
    reap(ch);
    if (!ch->ended && !ch->kill_at && now >= ch->deadline) {
        ch->killed = 1;
        ch->input_late = ch->in_off < ch->in_len;
        set_fds(ch, job, 0);
        close_in(ch);
        kill(ch->pr.pid, SIGTERM);
        ch->kill_at = now + LCHILD_GRACE_MS;
    } else if (!ch->ended && ch->kill_at && !ch->kill_sent && now >= ch->kill_at) {
        kill(ch->pr.pid, SIGKILL);
        ch->kill_sent = 1;
    }
    if (ch->ended) {
        set_fds(ch, job, 0);
        close_in(ch);
        if (ch->pidfd >= 0) close(ch->pidfd);
        ch->pidfd = -1;
        return 1;
    }
    if (ch->pidfd < 0) ch->poll_at = now + LCHILD_POLL_MS;
    set_fds(ch, job, 1);
    return 0;
}

int64_t mwi_lchild_deadline(const mwi_lchild *ch)
{
    int64_t d = MW_NO_DEADLINE;
    if (ch->ended) return d;
    if (!ch->kill_at)
        d = ch->deadline;
    else if (!ch->kill_sent)
        d = ch->kill_at;
    if (ch->pidfd < 0 && ch->poll_at < d) d = ch->poll_at;
    return d;
}

void mwi_lchild_free(mwi_lchild *ch, mw_loop_job *job)
{
    set_fds(ch, job, 0);
    if (job && job->loop) mwi_loop_set_xfds_ev(job, NULL, NULL, 0);
    close_in(ch);
    if (ch->pidfd >= 0) close(ch->pidfd);
    ch->pidfd = -1;
    if (!ch->ended && ch->pr.pid > 0) {
        kill(ch->pr.pid, SIGKILL);
        while (waitpid(ch->pr.pid, NULL, 0) < 0 && errno == EINTR) {}
        ch->ended = -1;
    }
    ch->pr.pid = -1;
}
