/* The fetch filter (mw_fetch_opts.filter): an external command that reads
 * a message's headers on stdin and decides it by its exit status.  Shared
 * by the blocking fetch (fetch.c) and the fetch on the loop
 * (src/loop/fetch_job.c); it runs synchronously, within its own deadline. */
#include "fetch/fetch_int.h"
#include "util/err.h"
#include "util/proc.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Writes all of data to fd before the deadline; SIGPIPE is blocked for this
 * thread so a filter that exits early cannot kill the process. */
static int write_all(int fd, const char *data, size_t len, int64_t deadline)
{
    sigset_t set, old, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    int was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    int rc = 0, epipe = 0;
    while (len) {
        int64_t left = deadline - mw_now_ms();
        if (left <= 0) {
            rc = MW_ETIMEOUT;
            break;
        }
        struct pollfd pfd = {fd, POLLOUT, 0};
        int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno != EINTR) {
            rc = MW_EIO;
            break;
        }
        if (pr <= 0) continue;
        ssize_t w = write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == EPIPE) epipe = 1;
            /* A filter that does not read its input may still answer. */
            break;
        }
        data += w;
        len -= (size_t)w;
    }
    if (epipe && !was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Runs the filter with the headers on stdin; *decision from its exit
 * status (mpop: 0 fetch, 1 delete, 2 skip). */
static int run_filter(fctx *c, const char *hdr, size_t len, int *decision, char *why, size_t whylen)
{
    mwi_proc pr;
    mw_error e;
    if (mwi_proc_start(&pr, c->o->filter, MWI_PROC_IN_PIPE | MWI_PROC_OUT_NULL, &e)) {
        snprintf(why, whylen, "the filter: %.180s", e.message);
        return MW_EIO;
    }
    int tmo = c->o->filter_timeout_ms > 0 ? c->o->filter_timeout_ms : 30000;
    int64_t deadline = mw_now_ms() + tmo;
    int rc = write_all(pr.in, hdr, len, deadline);
    close(pr.in);
    pr.in = -1;
    int status = 0;
    int w = mwi_proc_wait(&pr, deadline, &status);
    if (w < 0) {
        snprintf(why, whylen, "waitpid: %s", MW_ERRNO_TEXT(errno));
        mwi_proc_end(&pr, 0, NULL);
        return MW_EIO;
    }
    if (w == 0) {
        mwi_proc_end(&pr, 0, &status);
        snprintf(why, whylen, "the filter ran longer than %d ms and was killed", tmo);
        return MW_ETIMEOUT;
    }
    if (rc == MW_ETIMEOUT) {
        snprintf(why, whylen, "the filter did not read its input within %d ms", tmo);
        return rc;
    }
    if (!WIFEXITED(status)) {
        snprintf(why, whylen, "the filter was killed by signal %d", WTERMSIG(status));
        return MW_EIO;
    }
    switch (WEXITSTATUS(status)) {
    case 0:
        *decision = MW_FETCH_GET;
        return 0;
    case 1:
        *decision = MW_FETCH_DELETE;
        return 0;
    case 2:
        *decision = MW_FETCH_SKIP;
        return 0;
    default:
        snprintf(why, whylen, "the filter exited with status %d (0 fetch, 1 delete, 2 skip)",
                 WEXITSTATUS(status));
        return MW_EIO;
    }
}

/* Decides one message from its headers (the filter command). */
void mwi_fetch_filter_one(fctx *c, plan *p, const char *hdr, size_t len)
{
    int decision = MW_FETCH_GET;
    char why[200];
    int rc = run_filter(c, hdr, len, &decision, why, sizeof why);
    if (rc) {
        char msg[300];
        snprintf(msg, sizeof msg, "message %llu: %s; left on the server",
                 (unsigned long long)p->num, why);
        mwi_fetch_fail(c, rc, "filter", NULL, msg);
        p->action = A_SKIP;
        c->res->errors++;
        return;
    }
    p->action = decision == MW_FETCH_GET ? A_GET : decision == MW_FETCH_DELETE ? A_DELE : A_SKIP;
}
