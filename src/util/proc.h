/* One way to run a command: "/bin/sh -c COMMAND" with chosen stdin and
 * stdout, nothing else inherited, a deadline on waiting for it, and an
 * end that never leaves a zombie (EOF, a grace time, TERM, then KILL).
 * Used by the command stream (src/net/s_cmd.c), the MDA
 * (src/store/mda.c), the fetch filter (src/fetch/filter_run.c; on the loop
 * src/loop/lchild.c), the secret commands (src/util/secret.c) and the
 * OAuth token store's commands (src/oauth/tokstore.c). */
#ifndef MW_UTIL_PROC_H
#define MW_UTIL_PROC_H

#include "mailwire/error.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MWI_PROC_IN_PIPE     0x1  /* the child's stdin is a pipe: in (non-blocking) */
#define MWI_PROC_OUT_PIPE    0x2  /* its stdout is a pipe: out (blocking) */
#define MWI_PROC_OUT_NULL    0x4  /* its stdout is /dev/null */
#define MWI_PROC_SOCKET      0x8  /* one socketpair end is its stdin and stdout: in == out */
#define MWI_PROC_NONBLOCK_IO 0x10 /* out (or the socket) non-blocking too */

typedef struct mwi_proc {
    pid_t pid;
    int in;  /* to the child's stdin, or -1 */
    int out; /* from its stdout, or -1 */
} mwi_proc;

/* Starts the command with the standard streams flags asks for (what it
 * does not ask for is inherited: stderr always).  Descriptors 3 and up are
 * closed in the child, SIGPIPE is back to its default and no signal is
 * blocked.  Returns 0 or MW_EIO (named: what could not be made). */
int mwi_proc_start(mwi_proc *p, const char *command, unsigned flags, mw_error *err);
/* Waits for the child until deadline (a mw_now_ms value, MW_NO_DEADLINE:
 * as long as it takes): 1 when it ended (*status as waitpid gives it),
 * 0 when the deadline came first, -1 when it cannot be waited for. */
int mwi_proc_wait(mwi_proc *p, int64_t deadline, int *status);
/* Closes our ends of its streams (the child sees EOF), gives it grace_ms
 * to finish, then TERM and 500 ms, then KILL; always reaps it.  *status
 * (may be NULL) as waitpid gives it.  Fine on a child already reaped. */
void mwi_proc_end(mwi_proc *p, int grace_ms, int *status);
/* One write(2) to a child's stdin with SIGPIPE blocked for this thread
 * (and a SIGPIPE it raised taken back), so a child that stopped reading
 * gives EPIPE instead of killing the process; no handler installed.
 * Returns what write gives, errno kept. */
long mwi_proc_write(int fd, const void *data, size_t len);

#endif
