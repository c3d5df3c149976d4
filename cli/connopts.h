/* The connection options shared by `mailwire pop3`, `fetch`, `send` and
 * `smtp`: where to connect, how to protect it, who to log in as, and where
 * the password comes from.  Uses only the public API.
 *
 * Options (each also as --name=value):
 *   --host HOST          default: $MAILHOST
 *   --port N             default: the protocol's (caller passes it)
 *   --tls MODE           starttls (default) | implicit | none
 *   --user NAME          default: the ~/.netrc login for the host
 *   --auth MECH          auto (default) | user | apop | PLAIN | SCRAM-SHA-256 | ...
 *   --cafile FILE        trust these CAs instead of the system store
 *   --crlfile FILE       refuse certificates revoked by these CRLs (PEM)
 *   --proxy URL          socks5://, socks5h:// or http:// (CONNECT) proxy
 *   --pin sha256:BASE64  require this certificate / public key hash
 *   --cert FILE --key FILE   client certificate
 *   --allow-plaintext-password   allow a password over an unencrypted link
 *   --timeout SECONDS    each network read/write (default 60)
 *   --max-time SECONDS   the whole session (default 0: none)
 *   --speed-limit BYTES --speed-time SECONDS   end a session slower than
 *                        BYTES/s over SECONDS of waiting (default 1 over 300)
 *   --trace FILE         the conversation, secrets masked ("-" = stderr)
 *   --json               machine-readable output
 *   --password-file FILE first line of FILE is the password
 *   --passwordeval CMD   first line of CMD's output (run with /bin/sh -c)
 * The password is never a plain argument.  Its sources, first found wins:
 *   --password-file, --passwordeval, $MAILWIRE_PASSWORD, ~/.netrc (machine
 *   = host, login = user), a prompt on the terminal (only when stdin is one).
 *
 * Use:
 *   mw_cli_conn c; mw_cli_conn_init(&c, "pop3", 110, 995);
 *   for (i = 1; i < argc; i++) {
 *       int r = mw_cli_conn_option(&c, argc, argv, &i);
 *       if (r < 0) return EX_USAGE_;   (message already printed)
 *       if (r > 0) continue;           (consumed, i advanced past its value)
 *       ... the command's own options/arguments ...
 *   }
 *   if ((rc = mw_cli_conn_finish(&c)) != 0) return rc;   host, port, user, trace
 *   if ((rc = mw_cli_conn_password(&c)) != 0) return rc; when a login needs one
 *   ... c.host, c.port, c.tls, c.user, c.password, mw_cli_conn_tls_opts(&c, &t),
 *       mw_cli_conn_net_opts(&c, &n), c.trace_fn / c.trace_ud ...
 *   mw_cli_conn_free(&c);   wipes the password, closes the trace file
 */
#ifndef MW_CLI_CONNOPTS_H
#define MW_CLI_CONNOPTS_H

#include "mailwire/config.h"
#include "mailwire/net.h"
#include "mailwire/trace.h"

#include <stdio.h>

enum mw_cli_tls_mode { MW_CLI_TLS_STARTTLS = 0, MW_CLI_TLS_IMPLICIT, MW_CLI_TLS_NONE };

typedef struct mw_cli_conn {
    const char *prog;      /* "pop3", for messages: "mailwire pop3: ..." */
    unsigned default_port; /* plain / STARTTLS */
    unsigned implicit_port;

    const char *host; /* after finish: never NULL */
    unsigned port;    /* after finish: never 0 */
    int tls;          /* enum mw_cli_tls_mode */
    const char *user; /* after finish: --user or the netrc login, or NULL */
    const char *auth; /* "auto" unless given */
    const char *cafile, *crlfile, *pin, *cert, *key, *proxy;
    int allow_plaintext;
    int timeout_s;
    const char *trace_path;
    int json;
    const char *password_file;
    const char *passwordeval;

    char *password;       /* after mw_cli_conn_password: owned, wiped by free */
    FILE *trace;          /* after finish, when --trace was given */
    mw_trace_fn trace_fn; /* NULL without --trace */
    void *trace_ud;

    char user_buf[256];
    char netrc_password[256]; /* kept from the netrc lookup in finish */
    int have_netrc_password;

    /* --account NAME [--config FILE] (added for `fetch`/`pop3`/`send`): in
     * finish, the account's settings (mailwire.conf, include/mailwire/
     * config.h) fill what the command line left unset: host, port, tls,
     * user, auth, cafile, pin, cert, key, timeout, and the password source
     * (password_file, passwordeval, or a `password` line).  Default file:
     * $XDG_CONFIG_HOME/mailwire/config, else ~/.config/mailwire/config. */
    const char *account;
    const char *config_path;
    int tls_given, timeout_given;
    /* --max-time, --speed-limit, --speed-time (ms and bytes/s; *_given: set
     * on the command line, so the account does not override them). */
    int max_time_ms, speed_time_ms;
    unsigned speed_limit;
    int max_time_given, speed_limit_given, speed_time_given;
    mw_config *config; /* owned, freed by mw_cli_conn_free */
    /* `send`: the sender's address.  With neither --account nor --host, the
     * account whose `from` equals it (case-insensitively) is used, when the
     * accounts file exists and has one (as msmtp's --read-envelope-from),
     * else the account called "default"; "" (no sender) picks "default". */
    const char *from_address;
} mw_cli_conn;

void mw_cli_conn_init(mw_cli_conn *c, const char *prog, unsigned default_port,
                      unsigned implicit_port);
/* Looks at argv[*i].  Returns 1 when it was a connection option (and *i now
 * points at its last word), 0 when it is not one, -1 on a usage error (a
 * message was printed to stderr). */
int mw_cli_conn_option(mw_cli_conn *c, int argc, char **argv, int *i);
/* Fills the defaults (host from $MAILHOST, port from the TLS mode, user from
 * ~/.netrc) and opens the trace file.  Returns 0 or a sysexits code (a
 * message was printed). */
int mw_cli_conn_finish(mw_cli_conn *c);
/* Opens --trace FILE (done by finish; for commands that do not call it).
 * Returns 0 or a sysexits code (a message was printed). */
int mw_cli_conn_open_trace(mw_cli_conn *c);
/* Finds the password (see above).  Returns 0 or a sysexits code. */
int mw_cli_conn_password(mw_cli_conn *c);
/* 1 when auth names an OAuth 2.0 mechanism (XOAUTH2, OAUTHBEARER): then
 * the "password" the sources give is the access token, as with mpop's and
 * msmtp's passwordeval. */
int mw_cli_auth_is_token(const char *auth);
/* TLS and network options reflecting the command line (strings point into
 * the mw_cli_conn). */
void mw_cli_conn_tls_opts(const mw_cli_conn *c, mw_tls_opts *out);
void mw_cli_conn_net_opts(const mw_cli_conn *c, mw_net_opts *out);
/* The session limits of an account (max_time, speed_limit, speed_time),
 * overridden by those given on the command line, into *n (for commands
 * that build their options from an account without mw_cli_conn_finish). */
void mw_cli_conn_limits(const mw_cli_conn *c, const mw_account *a, mw_net_opts *n);
void mw_cli_conn_free(mw_cli_conn *c);
/* Runs cmd with /bin/sh -c and returns its first output line (at most 1024
 * bytes, line end removed), malloc'd; the caller wipes and frees it.  NULL
 * with *why set when the command fails, prints nothing, or prints too much. */
char *mw_cli_password_from_command(const char *cmd, const char **why);
/* Prints the option summary above, for --help. */
void mw_cli_conn_usage(FILE *f);

/* JSON helper shared by commands: writes s[0..len) as a JSON string. */
void mw_cli_json_string(FILE *f, const char *s, size_t len);

#endif
