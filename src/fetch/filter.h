/* Internal: the fetch filter (mw_fetch_opts.filter) in two halves: what
 * does no waiting (filter.c: starting the command, its verdict from how
 * it ended, the verdict into the plan), shared by the blocking runner
 * (filter_run.c) and the loop's (src/loop/fetch_job.c over lchild.h). */
#ifndef MW_FETCH_FILTER_H
#define MW_FETCH_FILTER_H

#include "fetch/fetch_int.h"
#include "util/proc.h"

#include <stddef.h>

/* Starts the filter command: its stdin a non-blocking pipe (pr->in), its
 * stdout /dev/null, stderr inherited, "/bin/sh -c" (util/proc.h).
 * Returns 0, or MW_EIO with why set. */
int mwi_filter_spawn(mwi_proc *pr, const char *command, char *why, size_t whylen);
/* filter_timeout_ms, or its default (30 s). */
int mwi_filter_timeout_ms(const mw_fetch_opts *o);

/* How one run of the filter ended. */
typedef struct mwi_filter_end {
    int waited;     /* 1: it exited before its deadline (status), 0: it was
                     * killed at its deadline, -1: it could not be waited for */
    int status;     /* as waitpid gives it */
    int wait_errno; /* waited -1: why */
    int input_late; /* its stdin was not all written by the deadline */
    int timeout_ms; /* the deadline's length, for the words */
} mwi_filter_end;

/* The verdict (mpop's: exit 0 fetch, 1 delete, 2 skip) into *decision
 * (MW_FETCH_GET, MW_FETCH_DELETE, MW_FETCH_SKIP); else an error code
 * (MW_ETIMEOUT, MW_EIO) with why set. */
int mwi_filter_verdict(const mwi_filter_end *e, int *decision, char *why, size_t whylen);
/* The message's action from a verdict (rc 0) or a failure (rc, why): a
 * failed filter leaves the message on the server, an error of the run. */
void mwi_filter_apply(fctx *c, plan *p, int rc, int decision, const char *why);

#endif
