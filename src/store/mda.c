/* The MDA backend: the message goes to a command's stdin (a non-blocking
 * pipe, every wait bounded by the delivery's deadline); it is delivered
 * only when the command read it all and exited 0.  Called through
 * mwi_store_mda_ops by store.c. */
#include "store/store_int.h"
#include "util/err.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int mda_begin(mw_store *s, const char *from)
{
    (void)from;
    int rc = mwi_proc_start(&s->mda, s->target, MWI_PROC_IN_PIPE, &s->err);
    if (rc) return rc;
    s->fd = s->mda.in; /* the delivery writes it; s->mda.in is not closed twice */
    s->mda.in = -1;
    s->deadline = mw_now_ms() + s->mda_timeout_ms;
    return 0;
}

/* Waits for the MDA until the deadline; returns 1 with *status, 0 on
 * timeout, -1 on error (errno). */
static int mda_wait(mw_store *s, int *status)
{
    return mwi_proc_wait(&s->mda, s->deadline, status);
}

static void mda_kill(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->mda.pid > 0) {
        kill(s->mda.pid, SIGKILL);
        mwi_proc_wait(&s->mda, MW_NO_DEADLINE, NULL);
    }
    s->mda.pid = -1;
}

/* The MDA stopped reading early: say how it ended, then make sure it is gone. */
static void mda_reap_after_epipe(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    int status = 0;
    if (mda_wait(s, &status) == 1) {
        size_t len = strlen(s->err.message);
        if (WIFEXITED(status))
            snprintf(s->err.message + len, sizeof s->err.message - len, " (exit status %d)",
                     WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(s->err.message + len, sizeof s->err.message - len, " (killed by signal %d)",
                     WTERMSIG(status));
    }
    mda_kill(s);
}

static int mda_commit(mw_store *s)
{
    int rc = mwi_store_flush(s);
    int epipe = s->mda_epipe;
    if (rc && !epipe) return rc;
    close(s->fd);
    s->fd = -1;
    int status = 0;
    int w = mda_wait(s, &status);
    if (w == 0)
        return mwi_err_set(&s->err, MW_ETIMEOUT, "MDA command '%s' did not finish within %d ms",
                           s->target, s->mda_timeout_ms);
    if (w < 0) {
        int e = errno;
        s->mda.pid = -1;
        return mwi_store_sys_fail(s, "wait for MDA command", s->target, e);
    }
    if (WIFSIGNALED(status))
        return mwi_err_set(&s->err, MW_EIO, "MDA command '%s' was killed by signal %d", s->target,
                           WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return mwi_err_set(&s->err, MW_EIO, "MDA command '%s' failed with exit status %d%s",
                           s->target, WEXITSTATUS(status),
                           epipe ? " (it did not read the whole message)" : "");
    if (epipe)
        return mwi_err_set(
            &s->err, MW_EIO,
            "MDA command '%s' exited 0 without reading the whole message (%llu bytes read)",
            s->target, (unsigned long long)s->written);
    s->last_path[0] = '\0';
    s->last_size = s->written;
    return 0;
}

static int mda_undo(mw_store *s)
{
    if (s->mda_epipe && s->mda.pid > 0)
        mda_reap_after_epipe(s);
    else
        mda_kill(s);
    return 0;
}

static const char *mda_fd_name(const mw_store *s)
{
    (void)s;
    return "the MDA's input";
}

const struct mwi_store_ops mwi_store_mda_ops = {
    .mboxrd = 0,
    .to_pipe = 1,
    .open = NULL,
    .begin = mda_begin,
    .commit = mda_commit,
    .undo = mda_undo,
    .sync = NULL,
    .fd_name = mda_fd_name,
};
