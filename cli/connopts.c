/* Shared connection options of the mailwire commands (see connopts.h). */
#include "connopts.h"
#include "oauth_cli.h"

#include "commands.h"
#include "mailwire/config.h"
#include "mailwire/netrc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void mw_cli_conn_init(mw_cli_conn *c, const char *prog, unsigned default_port,
                      unsigned implicit_port)
{
    memset(c, 0, sizeof *c);
    c->prog = prog;
    c->default_port = default_port;
    c->implicit_port = implicit_port;
    c->tls = MW_CLI_TLS_STARTTLS;
    c->auth = "auto";
    c->timeout_s = 60;
    c->speed_limit = MW_NET_DEFAULT_SPEED_LIMIT;
    c->speed_time_ms = MW_NET_DEFAULT_SPEED_TIME_MS;
}

/* SECONDS with up to three decimals ("2.5"), from min_ms to max_ms.  -1
 * when it is not that. */
static int parse_seconds_ms(const char *v, long min_ms, long max_ms, int *out)
{
    long ms = 0;
    const char *p = v;
    if (!(*p >= '0' && *p <= '9')) return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        ms = ms * 10 + (*p - '0');
        if (ms > max_ms) return -1;
    }
    ms *= 1000;
    if (*p == '.') {
        long scale = 100;
        if (!(p[1] >= '0' && p[1] <= '9')) return -1;
        for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10) {
            if (scale == 0) return -1; /* finer than a millisecond */
            ms += (*p - '0') * scale;
        }
    }
    if (*p || ms < min_ms || ms > max_ms) return -1;
    *out = (int)ms;
    return 0;
}

/* "--name VALUE" or "--name=VALUE".  Returns 1 and sets *val when argv[*i]
 * is this option; -1 when the value is missing. */
static int opt_value(const char *name, int argc, char **argv, int *i, const char **val)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != '\0') return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "mailwire: option %s needs a value\n", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

static int parse_port(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v == 0 || v > 65535 || s[0] == '-' || s[0] == '+') return -1;
    *out = (unsigned)v;
    return 0;
}

/* The options whose value is checked: --tls, --timeout, --max-time,
 * --speed-time, --speed-limit (1 taken, 0 not one, -1 bad). */
static int checked_option(mw_cli_conn *c, int argc, char **argv, int *i)
{
    const char *v = NULL;
    int r;
    if ((r = opt_value("--tls", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        c->tls_given = 1;
        if (!strcmp(v, "starttls"))
            c->tls = MW_CLI_TLS_STARTTLS;
        else if (!strcmp(v, "implicit"))
            c->tls = MW_CLI_TLS_IMPLICIT;
        else if (!strcmp(v, "none"))
            c->tls = MW_CLI_TLS_NONE;
        else {
            fprintf(stderr, "mailwire %s: --tls wants starttls, implicit or none, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        return 1;
    }
    if ((r = opt_value("--timeout", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        char *end;
        errno = 0;
        long t = strtol(v, &end, 10);
        if (errno || end == v || *end || t < 1 || t > 86400) {
            fprintf(stderr, "mailwire %s: --timeout wants seconds from 1 to 86400, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        c->timeout_s = (int)t;
        c->timeout_given = 1;
        return 1;
    }
    if ((r = opt_value("--max-time", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        if (parse_seconds_ms(v, 0, 604800L * 1000, &c->max_time_ms)) {
            fprintf(stderr,
                    "mailwire %s: --max-time wants seconds from 0 (none) to 604800, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        c->max_time_given = 1;
        return 1;
    }
    if ((r = opt_value("--speed-time", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        if (parse_seconds_ms(v, 1, 86400L * 1000, &c->speed_time_ms)) {
            fprintf(stderr,
                    "mailwire %s: --speed-time wants seconds from 0.001 to 86400, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        c->speed_time_given = 1;
        return 1;
    }
    if ((r = opt_value("--speed-limit", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        char *end;
        errno = 0;
        unsigned long b = strtoul(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || v[0] == '+' || b > 1000000000UL) {
            fprintf(stderr,
                    "mailwire %s: --speed-limit wants bytes per second from 0 (none) to "
                    "1000000000, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        c->speed_limit = (unsigned)b;
        c->speed_limit_given = 1;
        return 1;
    }
    return 0;
}

int mw_cli_conn_option(mw_cli_conn *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i], *v = NULL;
    int r;
    if (!strcmp(a, "--allow-plaintext-password")) {
        c->allow_plaintext = 1;
        return 1;
    }
    if (!strcmp(a, "--json")) {
        c->json = 1;
        return 1;
    }
    if (!strcmp(a, "--password") || !strncmp(a, "--password=", 11)) {
        fprintf(stderr,
                "mailwire %s: a password is never taken from the command line (others can "
                "read it); use MAILWIRE_PASSWORD, --password-file, --passwordeval or ~/.netrc\n",
                c->prog);
        return -1;
    }
#define STR_OPT(name, field)                                                                       \
    if ((r = opt_value(name, argc, argv, i, &v)) != 0) {                                           \
        if (r < 0) return -1;                                                                      \
        c->field = v;                                                                              \
        return 1;                                                                                  \
    }
    STR_OPT("--host", host)
    STR_OPT("--user", user)
    STR_OPT("--auth", auth)
    STR_OPT("--cafile", cafile)
    STR_OPT("--crlfile", crlfile)
    STR_OPT("--proxy", proxy)
    STR_OPT("--pin", pin)
    STR_OPT("--cert", cert)
    STR_OPT("--key", key)
    STR_OPT("--trace", trace_path)
    STR_OPT("--password-file", password_file)
    STR_OPT("--passwordeval", passwordeval)
    STR_OPT("--account", account)
    STR_OPT("--config", config_path)
#undef STR_OPT
    if ((r = opt_value("--port", argc, argv, i, &v)) != 0) {
        if (r < 0) return -1;
        if (parse_port(v, &c->port)) {
            fprintf(stderr, "mailwire %s: --port wants a number from 1 to 65535, not '%s'\n",
                    c->prog, v);
            return -1;
        }
        return 1;
    }
    return checked_option(c, argc, argv, i);
}

static void trace_to_file(int dir, const char *line, size_t len, void *ud)
{
    FILE *f = ud;
    const char *tag = dir == MW_TRACE_SEND ? "C: " : dir == MW_TRACE_RECV ? "S: " : "* ";
    flockfile(f); /* one line whole: a token worker (token_async.c) traces too */
    fputs(tag, f);
    /* Control bytes other than TAB are shown as '?' so a trace stays one
     * line per line. */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        fputc((ch < 0x20 && ch != '\t') || ch == 0x7F ? '?' : ch, f);
    }
    fputc('\n', f);
    fflush(f);
    funlockfile(f);
}

/* Loads the accounts file (--config, else the XDG default) into c->config.
 * With `optional`, a default file that does not exist is not an error: *found
 * is then 0. */
static int load_accounts(mw_cli_conn *c, int optional, int *found, char *path, size_t pathsize)
{
    const char *file = c->config_path;
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    *found = 0;
    if (!file) {
        if (x && *x)
            snprintf(path, pathsize, "%s/mailwire/config", x);
        else if (home && *home)
            snprintf(path, pathsize, "%s/.config/mailwire/config", home);
        else if (optional)
            return 0;
        else {
            fprintf(stderr, "mailwire %s: --account needs --config, $XDG_CONFIG_HOME or $HOME\n",
                    c->prog);
            return EX_USAGE_;
        }
        if (optional && access(path, F_OK) != 0) return 0;
    } else {
        snprintf(path, pathsize, "%s", file);
    }
    mw_config_options co = MW_CONFIG_OPTIONS_INIT;
    co.home = home;
    mw_error err;
    mw_error_clear(&err);
    int rc = mw_config_load(&c->config, path, &co, &err);
    if (rc) {
        fprintf(stderr, "mailwire %s: %s\n", c->prog, err.message);
        return rc == MW_EPOLICY ? EX_NOPERM_ : 78; /* EX_CONFIG */
    }
    *found = 1;
    return 0;
}

/* --account (or the account chosen by from_address): what the command line
 * did not set comes from the account. */
static int apply_account(mw_cli_conn *c)
{
    char path[4096];
    int found = 0;
    const mw_account *a = NULL;
    if (c->account) {
        int ex = load_accounts(c, 0, &found, path, sizeof path);
        if (ex) return ex;
        a = mw_config_find(c->config, c->account);
        if (!a) {
            fprintf(stderr, "mailwire %s: no account '%s' in %s\n", c->prog, c->account, path);
            return EX_USAGE_;
        }
    } else {
        int ex = load_accounts(c, 1, &found, path, sizeof path);
        if (ex || !found) return ex;
        a = mw_config_find_by_from(c->config, c->from_address);
        if (!a) a = mw_config_find(c->config, "default"); /* as msmtp and fetch */
        if (!a) return 0; /* no account for this sender: the usual defaults */
        c->account = a->name;
    }
    if (!c->host) c->host = a->host;
    if (!c->port && a->port > 0) c->port = (unsigned)a->port;
    if (!c->tls_given && a->tls)
        c->tls = a->tls == MW_CONFIG_TLS_OFF        ? MW_CLI_TLS_NONE
                 : a->tls == MW_CONFIG_TLS_IMPLICIT ? MW_CLI_TLS_IMPLICIT
                                                    : MW_CLI_TLS_STARTTLS;
    if (!c->user) c->user = a->user;
    if (!strcmp(c->auth, "auto") && a->auth && strcmp(a->auth, "on") && strcmp(a->auth, "off"))
        c->auth = a->auth;
    if (!strcmp(c->auth, "auto") && mw_cli_oauth_enabled(a)) c->auth = mw_cli_oauth_mechanism(a);
    if (!c->cafile) c->cafile = a->cafile;
    if (!c->crlfile) c->crlfile = a->crlfile;
    if (!c->proxy) c->proxy = a->proxy;
    if (!c->pin) c->pin = a->pin;
    if (!c->cert && !c->key) {
        c->cert = a->cert;
        c->key = a->key;
    }
    if (!c->timeout_given && a->timeout_s > 0) c->timeout_s = a->timeout_s;
    if (!c->max_time_given && a->max_time_ms > 0) c->max_time_ms = a->max_time_ms;
    if (!c->speed_limit_given && a->speed_limit >= 0) c->speed_limit = (unsigned)a->speed_limit;
    if (!c->speed_time_given && a->speed_time_ms > 0) c->speed_time_ms = a->speed_time_ms;
    if (!c->password_file && !c->passwordeval && !c->password) {
        c->password_file = a->password_file;
        c->passwordeval = a->passwordeval;
        if (a->password && !(c->password = strdup(a->password))) return EX_SOFTWARE_;
    }
    return 0;
}

int mw_cli_conn_open_trace(mw_cli_conn *c)
{
    if (c->trace) return 0;
    if (c->trace_path) {
        if (!strcmp(c->trace_path, "-")) {
            c->trace = stderr;
        } else {
            int fd = open(c->trace_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            c->trace = fd >= 0 ? fdopen(fd, "w") : NULL;
            if (!c->trace) {
                fprintf(stderr, "mailwire %s: cannot write trace file %s: %s\n", c->prog,
                        c->trace_path, mw_cli_errno_text(errno));
                if (fd >= 0) close(fd);
                return EX_IOERR_;
            }
        }
        c->trace_fn = trace_to_file;
        c->trace_ud = c->trace;
    }
    return 0;
}

int mw_cli_conn_finish(mw_cli_conn *c)
{
    if (c->account || (c->from_address && !c->host)) {
        int ex = apply_account(c);
        if (ex) return ex;
    }
    if (!c->host) c->host = mw_mailhost();
    if (!c->host || !*c->host) {
        fprintf(stderr, "mailwire %s: no server: give --host or set MAILHOST\n", c->prog);
        return EX_USAGE_;
    }
    if (!c->port) c->port = c->tls == MW_CLI_TLS_IMPLICIT ? c->implicit_port : c->default_port;
    if ((c->cert && !c->key) || (c->key && !c->cert)) {
        fprintf(stderr, "mailwire %s: --cert and --key go together\n", c->prog);
        return EX_USAGE_;
    }
    if (c->tls == MW_CLI_TLS_NONE && (c->cafile || c->crlfile || c->pin || c->cert)) {
        fprintf(stderr,
                "mailwire %s: --cafile/--crlfile/--pin/--cert make no sense with --tls none\n",
                c->prog);
        return EX_USAGE_;
    }
    /* scsh: the login (and the password, kept for later) from ~/.netrc when
     * not given. */
    char path[4096];
    if (mw_netrc_default_path(path, sizeof path) == 0) {
        mw_netrc_entry e;
        mw_error err;
        mw_error_clear(&err);
        int r = mw_netrc_lookup(&e, path, c->host, c->user, &err);
        if (r < 0 && (r != MW_EPOLICY || !c->user)) {
            /* A netrc we must not trust only matters when we needed it. */
            fprintf(stderr, "mailwire %s: %s\n", c->prog, err.message);
            return r == MW_EPOLICY ? EX_NOPERM_ : EX_DATAERR_;
        }
        if (r == 1) {
            if (!c->user && e.login[0]) {
                memcpy(c->user_buf, e.login, sizeof c->user_buf);
                c->user = c->user_buf;
            }
            if (e.password[0]) {
                memcpy(c->netrc_password, e.password, sizeof c->netrc_password);
                c->have_netrc_password = 1;
            }
        }
        mw_netrc_entry_clear(&e);
    }
    int tex = mw_cli_conn_open_trace(c);
    if (tex) return tex;
    return 0;
}

/* The first line of fd, or of a command's output, through the library's
 * one secret reader (at most MW_SECRET_MAX bytes).  NULL with *why set
 * (to text that lives until the next call) on failure. */
static _Thread_local char why_text[sizeof(((mw_error *)0)->message)];

static char *secret_or_why(int rc, char *secret, const mw_error *e, const char **why)
{
    if (rc == 0) return secret;
    snprintf(why_text, sizeof why_text, "%s", e->message);
    *why = why_text;
    return NULL;
}

static char *read_first_line(int fd, const char **why)
{
    char *pw = NULL;
    mw_error e;
    mw_error_clear(&e);
    int rc = mw_secret_from_fd(&pw, fd, "the terminal", &e);
    return secret_or_why(rc, pw, &e, why);
}

char *mw_cli_password_from_command(const char *cmd, const char **why)
{
    char *pw = NULL;
    mw_error e;
    mw_error_clear(&e);
    int rc = mw_secret_from_command(&pw, cmd, &e);
    return secret_or_why(rc, pw, &e, why);
}

static char *password_from_terminal(const char *user, const char *host, const char **why)
{
    if (!isatty(0)) {
        *why = "no terminal to ask on";
        return NULL;
    }
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *why = "cannot open /dev/tty";
        return NULL;
    }
    char prompt[600];
    int n = snprintf(prompt, sizeof prompt, "Password for %s@%s: ", user ? user : "", host);
    if (n > 0 && write(fd, prompt, (size_t)n < sizeof prompt ? (size_t)n : sizeof prompt - 1) < 0)
        n = 0;
    struct termios old, quiet;
    int restored = tcgetattr(fd, &old) != 0;
    if (!restored) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    char *pw = read_first_line(fd, why);
    if (!restored) tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) n = 0;
    close(fd);
    return pw;
}

int mw_cli_conn_password(mw_cli_conn *c)
{
    /* An account with OAuth settings: the token store (cli/cmd_oauth.c). */
    if (mw_cli_auth_is_token(c->auth) && mw_cli_oauth_account(c))
        return mw_cli_oauth_conn_token(c, 0);
    if (c->password) return 0;
    const char *why = NULL, *src = NULL;
    if (c->password_file) {
        /* The same rule as ~/.netrc and the accounts file: a file holding a
         * password that group or others can read is refused, not used. */
        mw_error e;
        mw_error_clear(&e);
        int rc = mw_config_read_password_file(&c->password, c->password_file, &e);
        if (rc != 0) {
            fprintf(stderr, "mailwire %s: password file: %s\n", c->prog, e.message);
            return rc == MW_EPOLICY ? EX_NOPERM_ : rc == MW_EIO ? EX_IOERR_ : EX_DATAERR_;
        }
        return 0;
    } else if (c->passwordeval) {
        src = "--passwordeval";
        c->password = mw_cli_password_from_command(c->passwordeval, &why);
    } else if (getenv("MAILWIRE_PASSWORD") && *getenv("MAILWIRE_PASSWORD")) {
        c->password = strdup(getenv("MAILWIRE_PASSWORD"));
        src = "MAILWIRE_PASSWORD";
        why = "out of memory";
    } else if (c->have_netrc_password) {
        c->password = strdup(c->netrc_password);
        src = "~/.netrc";
        why = "out of memory";
    } else {
        src = "the terminal";
        c->password = password_from_terminal(c->user, c->host, &why);
        if (!c->password && !strcmp(why, "no terminal to ask on")) {
            fprintf(stderr,
                    "mailwire %s: no password: set MAILWIRE_PASSWORD, or use --password-file, "
                    "--passwordeval or ~/.netrc\n",
                    c->prog);
            return EX_USAGE_;
        }
    }
    if (!c->password) {
        fprintf(stderr, "mailwire %s: no password from %s: %s\n", c->prog, src,
                why ? why : "unknown error");
        return EX_IOERR_;
    }
    return 0;
}

int mw_cli_auth_is_token(const char *auth)
{
    return auth && (!strcasecmp(auth, "XOAUTH2") || !strcasecmp(auth, "OAUTHBEARER"));
}

void mw_cli_conn_tls_opts(const mw_cli_conn *c, mw_tls_opts *out)
{
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.ca_file = c->cafile;
    t.crl_file = c->crlfile;
    t.pin = c->pin;
    t.cert_file = c->cert;
    t.key_file = c->key;
    t.handshake_timeout_ms = c->timeout_s * 1000;
    *out = t;
}

void mw_cli_conn_net_opts(const mw_cli_conn *c, mw_net_opts *out)
{
    mw_net_opts n = MW_NET_OPTS_INIT;
    n.connect_timeout_ms = c->timeout_s * 1000;
    n.io_timeout_ms = c->timeout_s * 1000;
    n.proxy = c->proxy;
    n.max_time_ms = c->max_time_ms;
    n.speed_limit = c->speed_limit;
    n.speed_time_ms = c->speed_time_ms;
    *out = n;
}

void mw_cli_conn_limits(const mw_cli_conn *c, const mw_account *a, mw_net_opts *n)
{
    if (a && a->max_time_ms > 0) n->max_time_ms = a->max_time_ms;
    if (a && a->speed_limit >= 0) n->speed_limit = (unsigned)a->speed_limit;
    if (a && a->speed_time_ms > 0) n->speed_time_ms = a->speed_time_ms;
    if (c->max_time_given) n->max_time_ms = c->max_time_ms;
    if (c->speed_limit_given) n->speed_limit = c->speed_limit;
    if (c->speed_time_given) n->speed_time_ms = c->speed_time_ms;
}

void mw_cli_conn_free(mw_cli_conn *c)
{
    if (c->password) {
        wipe(c->password, strlen(c->password));
        free(c->password);
        c->password = NULL;
    }
    wipe(c->netrc_password, sizeof c->netrc_password);
    if (c->trace && c->trace != stderr) fclose(c->trace);
    c->trace = NULL;
    mw_config_free(c->config);
    c->config = NULL;
}

void mw_cli_conn_usage(FILE *f)
{
    fputs("connection options:\n"
          "  --host HOST            server (default: $MAILHOST)\n"
          "  --port N               port (default: the protocol's; implicit TLS has its own)\n"
          "  --tls MODE             starttls (default), implicit, none\n"
          "  --user NAME            login (default: the ~/.netrc login for the host)\n"
          "  --auth MECH            auto (default), user, apop, or a SASL mechanism\n"
          "  --cafile FILE          trust the CAs in FILE instead of the system store\n"
          "  --crlfile FILE         refuse certificates revoked by the CRLs in FILE (PEM)\n"
          "  --proxy URL            connect through socks5://, socks5h:// or http:// (CONNECT)\n"
          "  --pin sha256:BASE64    require this certificate or public-key hash\n"
          "  --cert FILE --key FILE client certificate and key\n"
          "  --allow-plaintext-password  allow a login (any mechanism) over an unencrypted link\n"
          "  --timeout SECONDS      limit for each network read or write (default 60)\n"
          "  --max-time SECONDS     limit for the whole session (default 0: none)\n"
          "  --speed-limit BYTES    end a session slower than BYTES/s (default 1; 0: never)\n"
          "  --speed-time SECONDS   ... averaged over SECONDS of waiting (default 300)\n"
          "  --trace FILE           write the conversation to FILE, secrets masked\n"
          "  --json                 output as JSON\n"
          "  --password-file FILE   the password is the first line of FILE\n"
          "  --passwordeval CMD     the password is the first line CMD prints\n"
          "  --account NAME         settings of account NAME in the accounts file fill the\n"
          "                         options not given (--config FILE: that file)\n"
          "password sources, first found wins: --password-file, --passwordeval,\n"
          "$MAILWIRE_PASSWORD, ~/.netrc, a prompt on the terminal.\n",
          f);
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if (n < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return len;
}

void mw_cli_json_string(FILE *f, const char *s, size_t len)
{
    /* Valid JSON whatever the bytes: control characters escaped, bytes that
     * are not well-formed UTF-8 replaced by U+FFFD (the byte-exact data is
     * what the non-JSON output is for). */
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < len;) {
        unsigned char ch = p[i];
        if (ch >= 0x80) {
            size_t n = utf8_seq(p + i, len - i);
            if (n) {
                fwrite(p + i, 1, n, f);
                i += n;
            } else {
                fputs("\\ufffd", f);
                i++;
            }
            continue;
        }
        switch (ch) {
        case '"':
            fputs("\\\"", f);
            break;
        case '\\':
            fputs("\\\\", f);
            break;
        case '\n':
            fputs("\\n", f);
            break;
        case '\r':
            fputs("\\r", f);
            break;
        case '\t':
            fputs("\\t", f);
            break;
        default:
            if (ch < 0x20 || ch == 0x7F)
                fprintf(f, "\\u%04x", ch);
            else
                fputc(ch, f);
        }
        i++;
    }
    fputc('"', f);
}
