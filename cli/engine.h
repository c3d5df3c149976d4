/* Which engine a command runs its sessions on.  MAILWIRE_ENGINE=loop runs
 * them on the event loop (include/mailwire/loop.h) instead of the blocking
 * API, and a session the loop cannot run yet is an error, never a quiet
 * fallback: tests/script/run_cases.py --engines runs every scripted case
 * through both and compares the transcripts. */
#ifndef MW_CLI_ENGINE_H
#define MW_CLI_ENGINE_H

#define MW_CLI_ENGINE_BLOCKING 0
#define MW_CLI_ENGINE_LOOP     1

/* MW_CLI_ENGINE_BLOCKING when MAILWIRE_ENGINE is unset, empty or
 * "blocking"; MW_CLI_ENGINE_LOOP for "loop"; -1 (after a message on
 * stderr naming `cmd`) for anything else. */
int mw_cli_engine(const char *cmd);

/* A session was added to a loop (MAILWIRE_ENGINE=loop): appends `what`
 * and a newline to the file MAILWIRE_ENGINE_LOG names, when set, so the
 * scripted runner can tell a loop run from a run that used no loop. */
void mw_cli_engine_note(const char *what);

#endif
