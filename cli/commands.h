/* The mailwire command: each subcommand is one function in its own file.
 * The CLI uses only the public API (include/mailwire). */
#ifndef MW_CLI_COMMANDS_H
#define MW_CLI_COMMANDS_H

/* sysexits(3) codes used by every command. */
enum {
    EX_OK_ = 0,
    EX_USAGE_ = 64,
    EX_DATAERR_ = 65,
    EX_NOUSER_ = 67,
    EX_UNAVAILABLE_ = 69,
    EX_SOFTWARE_ = 70,
    EX_IOERR_ = 74,
    EX_TEMPFAIL_ = 75,
    EX_PROTOCOL_ = 76,
    EX_NOPERM_ = 77,
};

typedef int (*mw_cmd_fn)(int argc, char **argv);

struct mw_cli_command {
    const char *name;
    mw_cmd_fn run;
    const char *summary;
};

/* Maps a library error code to the exit code documented for the CLI. */
int mw_cli_exit_code(int mw_code);
/* The text of an errno value, from a buffer of the calling thread's own
 * (strerror's is shared by all threads). */
const char *mw_cli_errno_text(int e);

/* POP3: `mailwire pop3` (cmd_pop3.c). */
int mw_cmd_pop3(int argc, char **argv);

/* SMTP: `mailwire send` (sendmail-compatible) and `mailwire smtp` (cmd_smtp.c). */
int mw_cmd_send(int argc, char **argv);
int mw_cmd_smtp(int argc, char **argv);
int mw_cli_sendmail(int argc, char **argv);

/* cli/cmd_mime.c: mailwire mime parse|build */
int mw_cmd_mime(int argc, char **argv);

/* cli/cmd_fetch.c: mailwire fetch [ACCOUNT...] */
int mw_cmd_fetch(int argc, char **argv);

/* --json errors (cli/json_err.c): with --json, a failing command prints one
 * error object as the last line of stdout (mailwire(1), JSON ERRORS).
 * main() calls start before the command and finish after it; finish prints
 * a generic object (exit code, first error line of stderr) when the command
 * printed none itself.  Commands that know the library's error record call
 * mw_cli_json_error (a no-op without --json, and after the first object);
 * message NULL: e's message. */
#include "mailwire/error.h"
void mw_cli_json_start(const char *program, int argc, char **argv);
int mw_cli_json_on(void);
void mw_cli_json_error(int exit_code, int mw_code, const mw_error *e, const char *message);
int mw_cli_json_finish(int exit_code);
/* A command whose own JSON output already carries its errors (fetch: one
 * record per account) says so: no separate object then. */
void mw_cli_json_handled(void);
/* The detail fields of the error object (,"command":...,"resp_code":...). */
#include <stdio.h>
void mw_cli_json_error_fields(FILE *f, const mw_error *e);

/* cli/serverinfo.c: the TLS details of `pop3|smtp serverinfo`, as text
 * lines or as a JSON value (null when t is NULL); how: "STLS", "implicit". */
#include "mailwire/net.h"
#include <stdio.h>
void mw_cli_print_tls_info(FILE *f, const mw_tls_info *t, const char *how, int json);
/* cli/cmd_queue.c: mailwire queue run|flush|list|drop */
int mw_cmd_queue(int argc, char **argv);
/* cli/cmd_oauth.c: mailwire oauth login|status|logout ACCOUNT */
int mw_cmd_oauth(int argc, char **argv);

#endif
