/* The process runner of src/util/proc.h. */
#include "util/proc.h"

#include "mailwire/common.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void close_pair(int fd[2])
{
    if (fd[0] >= 0) close(fd[0]);
    if (fd[1] >= 0) close(fd[1]);
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int mwi_proc_start(mwi_proc *p, const char *command, unsigned flags, mw_error *err)
{
    p->pid = -1;
    p->in = p->out = -1;
    int in[2] = {-1, -1}, out[2] = {-1, -1};
    const char *what = NULL;
    int e = 0;
    if (flags & MWI_PROC_SOCKET) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) != 0) what = "socketpair";
    } else {
        if ((flags & MWI_PROC_IN_PIPE) && pipe2(in, O_CLOEXEC) != 0) what = "pipe";
        if (!what && (flags & MWI_PROC_OUT_PIPE) && pipe2(out, O_CLOEXEC) != 0) what = "pipe";
    }
    if (what) {
        e = errno;
        close_pair(in);
        close_pair(out);
        return mwi_err_set(err, MW_EIO, "cannot start '%.60s': %s: %s", command, what,
                           MW_ERRNO_TEXT(e));
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    if (flags & MWI_PROC_SOCKET) {
        posix_spawn_file_actions_adddup2(&fa, in[1], 0);
        posix_spawn_file_actions_adddup2(&fa, in[1], 1);
    } else {
        if (flags & MWI_PROC_IN_PIPE) posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        if (flags & MWI_PROC_OUT_PIPE) posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        if (flags & MWI_PROC_OUT_NULL)
            posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    }
#ifdef __GLIBC__
    /* Nothing beyond stdin, stdout and stderr reaches the command, even a
     * descriptor the caller opened without O_CLOEXEC (ours all have it). */
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)command, NULL};
    pid_t pid;
    e = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (flags & MWI_PROC_SOCKET) {
        close(in[1]);
        in[1] = -1;
    } else {
        if (in[0] >= 0) close(in[0]);
        if (out[1] >= 0) close(out[1]);
        in[0] = out[1] = -1;
    }
    if (e) {
        close_pair(in);
        close_pair(out);
        return mwi_err_set(err, MW_EIO, "cannot start '%.60s': %s", command, MW_ERRNO_TEXT(e));
    }
    p->pid = pid;
    if (flags & MWI_PROC_SOCKET) {
        p->in = p->out = in[0];
        set_nonblock(in[0]);
    } else {
        p->in = in[1];
        p->out = out[0];
        if (p->in >= 0) set_nonblock(p->in);
        if (p->out >= 0 && (flags & MWI_PROC_NONBLOCK_IO)) set_nonblock(p->out);
    }
    return 0;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int mwi_proc_wait(mwi_proc *p, int64_t deadline, int *status)
{
    int st = 0;
    if (p->pid <= 0) return -1;
    for (;;) {
        pid_t r = waitpid(p->pid, &st, deadline == MW_NO_DEADLINE ? 0 : WNOHANG);
        if (r == p->pid) {
            p->pid = -1;
            if (status) *status = st;
            return 1;
        }
        if (r < 0 && errno != EINTR) return -1;
        if (r == 0 && mw_now_ms() >= deadline) return 0;
        if (r == 0) nap_ms(5); /* a child has no descriptor to poll; 5 ms steps */
    }
}

void mwi_proc_end(mwi_proc *p, int grace_ms, int *status)
{
    if (p->in >= 0) close(p->in);
    if (p->out >= 0 && p->out != p->in) close(p->out);
    p->in = p->out = -1;
    if (p->pid <= 0) return;
    if (mwi_proc_wait(p, mw_now_ms() + grace_ms, status) != 0) return;
    kill(p->pid, SIGTERM);
    if (mwi_proc_wait(p, mw_now_ms() + 500, status) != 0) return;
    kill(p->pid, SIGKILL);
    mwi_proc_wait(p, MW_NO_DEADLINE, status);
}

long mwi_proc_write(int fd, const void *data, size_t len)
{
    sigset_t set, old, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    int was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    ssize_t w = write(fd, data, len);
    int e = errno;
    if (w < 0 && e == EPIPE && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return (long)w;
}
