/* Internal: a child process as events of a loop job, never waited for:
 * its stdin written as far as the pipe takes it (the job's extra
 * descriptor, MW_LOOP_OUT), its exit seen on a pidfd (MW_LOOP_IN; Linux
 * 5.3) or, where there is none, by waitpid(WNOHANG) every few ms, and a
 * deadline past which it gets TERM, then KILL 500 ms later, as
 * util/proc.h's mwi_proc_end does it.  No signal handler, no global. */
#ifndef MW_LOOP_LCHILD_H
#define MW_LOOP_LCHILD_H

#include "loop/loop_int.h"
#include "util/proc.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mwi_lchild {
    mwi_proc pr;    /* pr.in: its stdin until all is written (then closed) */
    int pidfd;      /* readable once it ended, or -1 (polled) */
    const char *in; /* what goes to its stdin: the caller's, valid while it runs */
    size_t in_len, in_off;
    int64_t deadline; /* TERM then */
    int64_t kill_at;  /* after TERM: KILL then (0: TERM not sent) */
    int64_t poll_at;  /* no pidfd: the next waitpid */
    int kill_sent;
    int killed;     /* stopped at its deadline */
    int input_late; /* the deadline came before its stdin was all written */
    int ended;      /* 1: reaped (status), -1: cannot be waited for (wait_errno) */
    int status, wait_errno;
} mwi_lchild;

/* Takes a started child (pr: its stdin a non-blocking pipe, or -1) that
 * gets in[0..len) on its stdin and timeout_ms to end. */
void mwi_lchild_start(mwi_lchild *ch, const mwi_proc *pr, const char *in, size_t len,
                      int timeout_ms);
/* Writes what the pipe takes, reaps the child if it ended, stops it past
 * its deadline, and sets job's extra descriptors to what it waits on.
 * Returns 1 once it ended (ended, status, killed, input_late say how),
 * 0 while it runs: then wait for the job's events or mwi_lchild_deadline. */
int mwi_lchild_step(mwi_lchild *ch, mw_loop_job *job);
int64_t mwi_lchild_deadline(const mwi_lchild *ch);
/* Its descriptors off job (may be NULL) and closed; a child still running
 * is killed (KILL) and reaped here, the one wait of this file. */
void mwi_lchild_free(mwi_lchild *ch, mw_loop_job *job);

#endif
