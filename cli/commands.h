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

/* cli/cmd_oauth.c: mailwire oauth login|status|logout ACCOUNT */
int mw_cmd_oauth(int argc, char **argv);

#endif
