/* The fetch filter's part that never waits (filter.h): the command as it
 * is started, and what its exit says.  The runners: filter_run.c
 * (blocking, within its deadline) and src/loop/fetch_job.c (on the loop:
 * its stdin and exit as events of the job, lchild.h). */
#include "fetch/filter.h"
#include "util/err.h"

#include <stdio.h>
#include <sys/wait.h>

int mwi_filter_spawn(mwi_proc *pr, const char *command, char *why, size_t whylen)
{
    mw_error e;
    if (mwi_proc_start(pr, command, MWI_PROC_IN_PIPE | MWI_PROC_OUT_NULL, &e)) {
        snprintf(why, whylen, "the filter: %.180s", e.message);
        return MW_EIO;
    }
    return 0;
}

int mwi_filter_timeout_ms(const mw_fetch_opts *o)
{
    return o->filter_timeout_ms > 0 ? o->filter_timeout_ms : 30000;
}

int mwi_filter_verdict(const mwi_filter_end *e, int *decision, char *why, size_t whylen)
{
    if (e->waited < 0) {
        snprintf(why, whylen, "waitpid: %s", MW_ERRNO_TEXT(e->wait_errno));
        return MW_EIO;
    }
    if (e->waited == 0) {
        snprintf(why, whylen, "the filter ran longer than %d ms and was killed", e->timeout_ms);
        return MW_ETIMEOUT;
    }
    if (e->input_late) {
        snprintf(why, whylen, "the filter did not read its input within %d ms", e->timeout_ms);
        return MW_ETIMEOUT;
    }
    int status = e->status;
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

void mwi_filter_apply(fctx *c, plan *p, int rc, int decision, const char *why)
{
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
