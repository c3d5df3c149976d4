/* killat: an LD_PRELOAD shim that turns a run's own progress into kill points.
 *
 * It counts the calls through which a process changes anything outside
 * itself (writes to files and sockets, fsync, rename, link, unlink) and, when
 * MW_KILLAT=N is set, sends itself a signal just before the N-th one is made:
 * the process dies with N-1 of them done.  Every state that a crash can leave
 * behind is one of these prefixes, so drawing N over [1, count+1] reaches each
 * of them, on a fast machine or a loaded one alike.
 *
 *   MW_KILLAT=N           signal before the N-th counted call (unset: never)
 *   MW_KILLAT_SIG=S       the signal (default SIGKILL); any other signal is
 *                         sent once and the call then goes ahead
 *   MW_KILLAT_COUNT=PATH  at normal exit, write the number of counted calls
 *
 * Writes to descriptors 0-2 are not counted (diagnostics vary, state does
 * not).  Used by tests/interop/fetch/test_fetch.py.  Under ASan, set
 * ASAN_OPTIONS=verify_asan_link_order=0. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_long calls;
static long kill_at = -1;
static int kill_sig = SIGKILL;

__attribute__((constructor)) static void killat_init(void)
{
    const char *n = getenv("MW_KILLAT");
    const char *s = getenv("MW_KILLAT_SIG");
    if (n && *n) kill_at = strtol(n, NULL, 10);
    if (s && *s) kill_sig = (int)strtol(s, NULL, 10);
}

__attribute__((destructor)) static void killat_fini(void)
{
    const char *path = getenv("MW_KILLAT_COUNT");
    if (!path || !*path) return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)atomic_load(&calls));
        fclose(f);
    }
}

static void tick(void)
{
    long k = atomic_fetch_add(&calls, 1) + 1;
    if (k == kill_at) raise(kill_sig);
}

/* The build hides symbols by default; these must interpose. */
#define SHIM       __attribute__((visibility("default")))
#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

SHIM ssize_t write(int fd, const void *buf, size_t n)
{
    if (fd > 2) tick();
    return NEXT(write)(fd, buf, n);
}

SHIM ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    if (fd > 2) tick();
    return NEXT(writev)(fd, iov, cnt);
}

SHIM ssize_t send(int fd, const void *buf, size_t n, int flags)
{
    tick();
    return NEXT(send)(fd, buf, n, flags);
}

SHIM ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *a,
                    socklen_t alen)
{
    tick();
    return NEXT(sendto)(fd, buf, n, flags, a, alen);
}

SHIM ssize_t sendmsg(int fd, const struct msghdr *m, int flags)
{
    tick();
    return NEXT(sendmsg)(fd, m, flags);
}

SHIM int fsync(int fd)
{
    tick();
    return NEXT(fsync)(fd);
}

SHIM int fdatasync(int fd)
{
    tick();
    return NEXT(fdatasync)(fd);
}

SHIM int rename(const char *a, const char *b)
{
    tick();
    return NEXT(rename)(a, b);
}

SHIM int renameat(int da, const char *a, int db, const char *b)
{
    tick();
    return NEXT(renameat)(da, a, db, b);
}

SHIM int link(const char *a, const char *b)
{
    tick();
    return NEXT(link)(a, b);
}

SHIM int linkat(int da, const char *a, int db, const char *b, int flags)
{
    tick();
    return NEXT(linkat)(da, a, db, b, flags);
}

SHIM int unlink(const char *p)
{
    tick();
    return NEXT(unlink)(p);
}

SHIM int unlinkat(int d, const char *p, int flags)
{
    tick();
    return NEXT(unlinkat)(d, p, flags);
}
