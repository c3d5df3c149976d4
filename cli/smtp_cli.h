/* The SMTP side of the CLI shared by `mailwire smtp` (cmd_smtp.c),
 * `mailwire send` (cmd_send.c) and `mailwire queue` (cmd_queue.c):
 * options, opening a session, printing results; in smtp_cli.c. */
#ifndef MW_CLI_SMTP_CLI_H
#define MW_CLI_SMTP_CLI_H

#include "connopts.h"

#include "mailwire/loop.h"
#include "mailwire/smtp.h"

#define MAX_LIST 32

typedef struct smtp_cli {
    mw_cli_conn conn;
    const char *prog;
    char *servers_buf;
    const char *servers[MAX_LIST];
    size_t nservers;
    unsigned ports[MAX_LIST];
    size_t nports;
    int opportunistic;
    const char *client;
    int maxsecs;
    int queue;
    const char *headers[MAX_LIST + 1]; /* --header "Name: value" (+1 for -F) */
    size_t nheaders;
    mw_tls_opts tls;
    mw_net_opts net;
    /* OAuth 2.0 bearer token for XOAUTH2/OAUTHBEARER: the first line of a
     * file or of a command's output (never an argument: ps shows those). */
    const char *token_file, *token_eval;
    char *token;
    int dsn_orcpt; /* --dsn-orcpt: ORCPT=rfc822;ADDR on each RCPT (RFC 3461 §4.2) */
} smtp_cli;

/* Options shared by `send` and `smtp`; 1 consumed, 0 not ours, -1 usage
 * error (printed). */
int smtp_option(smtp_cli *c, int argc, char **argv, int *i);
/* Host/port defaults (and the account) once the options are read. */
int smtp_finish(smtp_cli *c);
/* A sysexits code for a library code. */
int exit_for(int rc);
/* The OAuth token of --oauth-token-file / --oauth-token-eval into
 * c->token; 0 or a sysexits code (printed). */
int smtp_load_token(smtp_cli *c);
/* Opens a session (with login when `login`); 0 or a sysexits code, the
 * failure printed (and as JSON with --json). */
int smtp_open(smtp_cli *c, mw_smtp **s, int login);
/* The same, with the library's error copied to *out when opening failed
 * (out->code stays 0 when the failure was before connecting). */
int smtp_open_err(smtp_cli *c, mw_smtp **s, int login, mw_error *out);
/* One transaction's outcome: JSON line, or the rejections on stderr. */
void print_result(const smtp_cli *c, const char *name, int rc, const mw_smtp_result *r,
                  const mw_error *err);
/* Exit code of one transaction: 0, 67 a recipient rejected, 75, 65 ... */
int tx_exit(int rc, const mw_smtp_result *r);
/* The --json error object of a failed transaction (after its result); ex
 * is tx_exit's code, name the file or NULL. */
void json_tx_error(int ex, int rc, const mw_smtp_result *r, const mw_error *err, const char *name);
void smtp_cli_free(smtp_cli *c);

/* ---- smtp_loop.c: the session on the loop engine (engine.h) ---- */
/* The loop job's options as smtp_open gives mw_smtp_open its own
 * (credentials only with `login`). */
void smtp_loop_opts(smtp_cli *c, mw_loop_smtp_opts *o, int login);
/* The token or password loaded, as smtp_open does first; 0 or a sysexits
 * code (printed). */
int smtp_loop_creds(smtp_cli *c, int login);
/* Runs a batch job per server and port (mw_smtp_open's failover) on a
 * private loop until one got ready (*ready > 0: the whole batch ran on
 * it) or a failure that stops the failover.  *err: that job's outcome
 * (err->code 0: QUIT after every message).  Returns 0, or the loop's own
 * failure (in err). */
int smtp_loop_run(smtp_cli *c, const mw_loop_smtp_batch *b, int login, int *ready, mw_error *err);
/* Adds the job for o's host and port: mw_loop_add_smtp_batch, or a
 * single send's wrapper of the same shape (b unused). */
typedef int (*smtp_loop_add_fn)(mw_loop *loop, mw_loop_job **job, const mw_loop_smtp_opts *o,
                                const mw_loop_smtp_batch *b, mw_loop_done_fn done, void *ud,
                                mw_error *err);
/* mw_smtp_open's failover on loop (every port of a server before the
 * next, one job at a time) until a job got ready (*o->ready > 0) or a
 * failure that stops it; after AUTH refused an OAuth account's token, the
 * token refreshed once and the whole again.  what: the command noted in
 * MAILWIRE_ENGINE_LOG.  *outcome: the last job's (code 0: it ended well);
 * a send's *o->result is the last attempt's.  Returns 0, or the loop's
 * own failure (in err). */
int smtp_loop_failover(smtp_cli *c, mw_loop *loop, mw_loop_smtp_opts *o, const char *what,
                       smtp_loop_add_fn add, const mw_loop_smtp_batch *b, mw_error *outcome,
                       mw_error *err);
/* A session that could not be opened, printed as smtp_open prints it;
 * the exit code. */
int smtp_loop_failed(const smtp_cli *c, int rc, const mw_error *err);

#endif
