/* The blocking runner of the fetch filter (filter.h): the headers
 * written to its stdin and its exit waited for, in the caller's thread,
 * within filter_timeout_ms.  Used by the blocking fetch (mw_fetch_account:
 * the fetch machine driven over a blocking stream, src/loop/fetch_job.c);
 * on a loop the filter runs as events of the job instead. */
#include "fetch/filter.h"
#include "util/err.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Writes all of data to fd before the deadline; a filter that exits early
 * cannot kill the process (mwi_proc_write). */
static int write_all(int fd, const char *data, size_t len, int64_t deadline)
{
    while (len) {
        int64_t left = deadline - mw_now_ms();
        if (left <= 0) return MW_ETIMEOUT;
        struct pollfd pfd = {fd, POLLOUT, 0};
        int pr = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno != EINTR) return MW_EIO;
        if (pr <= 0) continue;
        long w = mwi_proc_write(fd, data, len);
        if (w < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return 0; /* EPIPE: a filter that does not read its input may still answer */
        }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Runs the filter with the headers on stdin: its verdict, or an error. */
static int run_filter(const mw_fetch_opts *o, const char *hdr, size_t len, int *decision, char *why,
                      size_t whylen)
{
    mwi_proc pr;
    int rc = mwi_filter_spawn(&pr, o->filter, why, whylen);
    if (rc) return rc;
    mwi_filter_end e;
    memset(&e, 0, sizeof e);
    e.timeout_ms = mwi_filter_timeout_ms(o);
    int64_t deadline = mw_now_ms() + e.timeout_ms;
    e.input_late = write_all(pr.in, hdr, len, deadline) == MW_ETIMEOUT;
    close(pr.in);
    pr.in = -1;
    e.waited = mwi_proc_wait(&pr, deadline, &e.status);
    if (e.waited < 0) e.wait_errno = errno;
    if (e.waited <= 0) mwi_proc_end(&pr, 0, &e.status); /* TERM, then KILL; reaped */
    return mwi_filter_verdict(&e, decision, why, whylen);
}

/* Decides one message from its headers (the filter command). */
void mwi_fetch_filter_one(fctx *c, plan *p, const char *hdr, size_t len)
{
    int decision = MW_FETCH_GET;
    char why[200];
    int rc = run_filter(c->o, hdr, len, &decision, why, sizeof why);
    mwi_filter_apply(c, p, rc, decision, why);
}
