/* `mailwire fetch` (cmd_fetch.c): its options, and the jobs built from
 * them and from the accounts file (fetch_jobs.c).  Public API only. */
#ifndef MW_CLI_FETCH_CLI_H
#define MW_CLI_FETCH_CLI_H

#include "connopts.h"

#include "mailwire/config.h"
#include "mailwire/fetch.h"
#include "mailwire/loop.h"

#include <stddef.h>
#include <stdint.h>

/* One account to fetch: its options, and its results. */
typedef struct job {
    char name[300];
    char host[256];
    mw_pop3_opts po;
    mw_tls_opts tls;
    mw_net_opts net;
    mw_store_options so;
    mw_fetch_opts fo;
    char *password;       /* owned, wiped */
    char netrc_user[256]; /* the ~/.netrc login, when the account names none */
    char state_path[4096];
    char target[4096];
    /* results */
    int rc;
    mw_fetch_result res;
    mw_error err;
    double seconds;
    /* progress display */
    int64_t start_ms;
    mw_fetch_progress prog; /* the latest, under runner.mu */
    int active;
    const mw_account *oauth; /* tokens from the OAuth store (cli/cmd_oauth.c) */
    int token_failed;        /* the store or the provider failed (not the server) */
    mw_loop_job *lj;         /* running on the loop (--jobs above 1) */
    int blocking;            /* the loop cannot take it: fetched after, one at a time */
} job;

/* The command line of `mailwire fetch`. */
typedef struct fetch_args {
    mw_cli_conn conn;
    const char *config, *state, *filter;
    const char *maildir, *mbox, *mda;
    int all, jobs, quiet, keep, only_new, keep_crlf, host_given;
    int engine; /* mw_cli_engine (cli/engine.h): MAILWIRE_ENGINE */
    uint64_t size_limit;
    char **names; /* ACCOUNT arguments (and --account) */
    size_t nnames;
} fetch_args;

/* The one job of a one-shot fetch (--host): the command line is the
 * account.  *js and *nj are set as soon as the job exists (the caller
 * frees its password).  0 or an exit code (printed). */
int mw_cli_fetch_job_oneshot(fetch_args *fa, const char *home, job **js, size_t *nj);
/* The jobs of the named accounts (--all: every one; none: "default", else
 * the first) from the accounts file, which stays in *cfg.  0 or an exit
 * code (printed). */
int mw_cli_fetch_jobs_config(fetch_args *fa, const char *home, mw_config **cfg, job **js,
                             size_t *nj);

#endif
