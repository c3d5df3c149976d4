/* The SMTP side of the CLI shared by `mailwire smtp` (cmd_smtp.c),
 * `mailwire send` (cmd_send.c) and `mailwire queue` (cmd_queue.c): the
 * options, opening a session (token, login), printing results and exit
 * codes (smtp_cli.h).  Public API only. */
#include "commands.h"
#include "connopts.h"
#include "smtp_cli.h"
#include "oauth_cli.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static int split_list(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_LIST) return -1;
        out[(*n)++] = t;
    }
    return *n ? 0 : -1;
}

/* --ports P1,P2,...: each 1..65535. */
static int parse_ports(smtp_cli *c, const char *v)
{
    char tmp[512];
    const char *p[MAX_LIST];
    snprintf(tmp, sizeof tmp, "%s", v);
    if (split_list(tmp, p, &c->nports)) {
        fprintf(stderr, "mailwire %s: --ports wants P1,P2,...\n", c->prog);
        return -1;
    }
    for (size_t j = 0; j < c->nports; j++) {
        char *end;
        errno = 0;
        unsigned long n = strtoul(p[j], &end, 10);
        if (errno || *end || n == 0 || n > 65535 || p[j][0] == '-') {
            fprintf(stderr, "mailwire %s: bad port '%s'\n", c->prog, p[j]);
            return -1;
        }
        c->ports[j] = (unsigned)n;
    }
    return 0;
}

/* The value of --servers (k 0), --ports (1), --client (2), --maxsecs (3);
 * 0, or -1 when bad (printed). */
static int set_valued(smtp_cli *c, size_t k, const char *v)
{
    if (k == 0) {
        free(c->servers_buf);
        c->servers_buf = strdup(v);
        if (!c->servers_buf || split_list(c->servers_buf, c->servers, &c->nservers)) {
            fprintf(stderr, "mailwire %s: --servers wants H1,H2,... (at most %d)\n", c->prog,
                    MAX_LIST);
            return -1;
        }
    } else if (k == 1) {
        return parse_ports(c, v);
    } else if (k == 2) {
        c->client = v;
    } else {
        char *end;
        long n = strtol(v, &end, 10);
        if (*end || n < 0 || n > 86400) {
            fprintf(stderr, "mailwire %s: bad --maxsecs '%s'\n", c->prog, v);
            return -1;
        }
        c->maxsecs = (int)n;
    }
    return 0;
}

/* Options shared by `send` and `smtp`: the connection options plus
 * --servers, --ports, --tls opportunistic, --client, --maxsecs.  Returns 1
 * consumed, 0 not ours, -1 usage error (printed). */
int smtp_option(smtp_cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *v = NULL;
    const char *names[] = {"--servers", "--ports", "--client", "--maxsecs"};
    for (size_t k = 0; k < 4; k++) {
        size_t nl = strlen(names[k]);
        if (strncmp(a, names[k], nl) != 0 || (a[nl] != '\0' && a[nl] != '=')) continue;
        if (a[nl] == '=')
            v = a + nl + 1;
        else if (*i + 1 < argc)
            v = argv[++*i];
        else {
            fprintf(stderr, "mailwire %s: %s needs a value\n", c->prog, names[k]);
            return -1;
        }
        return set_valued(c, k, v) ? -1 : 1;
    }
    if (!strcmp(a, "--header") || !strncmp(a, "--header=", 9)) {
        const char *hv = a[8] == '=' ? a + 9 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (!hv || c->nheaders >= MAX_LIST || !strchr(hv, ':')) {
            fprintf(stderr, "mailwire %s: --header wants \"Name: value\" (at most %d)\n", c->prog,
                    MAX_LIST);
            return -1;
        }
        c->headers[c->nheaders++] = hv;
        return 1;
    }
    if (!strcmp(a, "--queue")) {
        c->queue = 1;
        return 1;
    }
    if (!strcmp(a, "--dsn-orcpt")) {
        c->dsn_orcpt = 1;
        return 1;
    }
    if (!strcmp(a, "--oauth-token-file") || !strcmp(a, "--oauth-token-eval")) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "mailwire %s: %s needs a value\n", c->prog, a);
            return -1;
        }
        if (a[14] == 'f')
            c->token_file = argv[++*i];
        else
            c->token_eval = argv[++*i];
        return 1;
    }
    if (!strcmp(a, "--tls=opportunistic") ||
        (!strcmp(a, "--tls") && *i + 1 < argc && !strcmp(argv[*i + 1], "opportunistic"))) {
        if (a[5] == '\0') ++*i;
        c->opportunistic = 1;
        c->conn.tls = MW_CLI_TLS_STARTTLS;
        return 1;
    }
    return mw_cli_conn_option(&c->conn, argc, argv, i);
}

int smtp_finish(smtp_cli *c)
{
    if (c->nservers && !c->conn.host) c->conn.host = c->servers[0];
    int rc = mw_cli_conn_finish(&c->conn);
    if (rc) return rc;
    if (!c->nservers) {
        c->servers[0] = c->conn.host;
        c->nservers = 1;
    }
    if (!c->nports) {
        c->ports[0] = c->conn.port;
        c->nports = 1;
    }
    return 0;
}

int exit_for(int rc)
{
    if (rc == MW_ETOOBIG || rc == MW_EFORMAT) return EX_DATAERR_;
    if (rc == MW_EUNSUPPORTED) return EX_UNAVAILABLE_;
    return mw_cli_exit_code(rc);
}

int smtp_load_token(smtp_cli *c)
{
    /* The library's one secret reader: the first line, at most
     * MW_SECRET_MAX bytes, from the file or the command's output. */
    mw_error e;
    mw_error_clear(&e);
    const char *why = NULL;
    if (c->token_file) {
        int fd = open(c->token_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            fprintf(stderr, "mailwire %s: cannot read --oauth-token-file %s: %s\n", c->prog,
                    c->token_file, strerror(errno));
            return EX_IOERR_;
        }
        if (mw_secret_from_fd(&c->token, fd, c->token_file, &e)) why = e.message;
        close(fd);
    } else {
        fflush(NULL);
        if (mw_secret_from_command(&c->token, c->token_eval, &e)) why = e.message;
    }
    if (!c->token) {
        fprintf(stderr, "mailwire %s: no OAuth token from %s: %s\n", c->prog,
                c->token_file ? c->token_file : "--oauth-token-eval", why ? why : "unknown error");
        return EX_IOERR_;
    }
    return 0;
}

static void json_str(const char *s)
{
    mw_cli_json_string(stdout, s ? s : "", s ? strlen(s) : 0);
}

int smtp_open(smtp_cli *c, mw_smtp **s, int login)
{
    return smtp_open_err(c, s, login, NULL);
}

int smtp_open_err(smtp_cli *c, mw_smtp **s, int login, mw_error *out)
{
    int want_token = login && (c->token_file || c->token_eval);
    if (want_token && !c->token) {
        int rc = smtp_load_token(c);
        if (rc) return rc;
    }
    if (login && c->conn.user && !want_token) {
        int rc = mw_cli_conn_password(&c->conn);
        if (rc) return rc;
    }
    mw_cli_conn_tls_opts(&c->conn, &c->tls);
    mw_cli_conn_net_opts(&c->conn, &c->net);
    mw_smtp_opts o = MW_SMTP_OPTS_INIT;
    o.servers = c->servers;
    o.nservers = c->nservers;
    o.ports = c->ports;
    o.nports = c->nports;
    o.client = c->client;
    o.tls = c->opportunistic                     ? MW_TLS_OPPORTUNISTIC
            : c->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
            : c->conn.tls == MW_CLI_TLS_NONE     ? MW_TLS_NONE
                                                 : MW_TLS_STARTTLS;
    o.tls_opts = &c->tls;
    o.net = &c->net;
    if (want_token) {
        /* XOAUTH2 needs the user name; OAUTHBEARER takes it when given. */
        o.user = c->conn.user;
        o.token = c->token;
        o.sasl_mechs = (c->conn.auth && strcasecmp(c->conn.auth, "auto")) ? c->conn.auth : NULL;
    } else if (login && c->conn.user) {
        o.user = c->conn.user;
        o.password = c->conn.password;
        o.sasl_mechs = (c->conn.auth && strcasecmp(c->conn.auth, "auto")) ? c->conn.auth : NULL;
        if (mw_cli_auth_is_token(c->conn.auth)) {
            o.token = o.password; /* the password sources hold the token */
            o.password = NULL;
        }
    }
    o.allow_plaintext = c->conn.allow_plaintext;
    o.queue = c->queue;
    o.trace = c->conn.trace_fn;
    o.trace_userdata = c->conn.trace_ud;
    mw_error err;
    mw_error_clear(&err);
    int rc = mw_smtp_open(s, &o, &err);
    if (rc == MW_EAUTH && o.token && !want_token && mw_cli_oauth_account(&c->conn)) {
        /* The server refused the token: refresh once (cli/cmd_oauth.c). */
        int ex = mw_cli_oauth_conn_token(&c->conn, 1);
        if (ex) return ex;
        o.token = c->conn.password;
        mw_error_clear(&err);
        rc = mw_smtp_open(s, &o, &err);
    }
    if (rc && out) *out = err;
    if (rc) {
        fprintf(stderr, "mailwire %s: %s\n", c->prog, err.message);
        /* Programs get the failure as JSON too (nothing was sent). */
        mw_cli_json_error(exit_for(rc), rc, &err, NULL);
        return exit_for(rc);
    }
    mw_smtp_set_maxtime(*s, c->maxsecs * 1000);
    return 0;
}

void print_result(const smtp_cli *c, const char *name, int rc, const mw_smtp_result *r,
                  const mw_error *err)
{
    if (c->conn.json) {
        printf("{\"message\":");
        json_str(name);
        printf(",\"sent\":%s", r && r->sent ? "true" : "false");
        if (rc) {
            printf(",\"error\":");
            json_str(err->message);
            printf(",\"category\":");
            json_str(mw_error_category(rc));
        }
        if (r) {
            printf(",\"server\":");
            json_str(r->server);
            printf(",\"port\":%u,\"originator\":", r->port);
            json_str(r->originator);
            printf(",\"code\":%d,\"text\":", r->final_code);
            json_str(r->final_text);
            printf(",\"chunking\":%s,\"octets\":%llu,\"recipients\":[",
                   r->chunking ? "true" : "false", (unsigned long long)r->octets);
            for (size_t i = 0; i < r->nrcpt; i++) {
                const mw_smtp_rcpt *p = &r->rcpt[i];
                printf("%s{\"address\":", i ? "," : "");
                json_str(p->address);
                printf(",\"code\":%d,\"enhanced\":", p->code);
                json_str(p->enhanced);
                printf(",\"text\":");
                json_str(p->text);
                printf(",\"accepted\":%s,\"permanent\":%s}", p->accepted ? "true" : "false",
                       p->permanent ? "true" : "false");
            }
            printf("]");
        }
        printf("}\n");
        return;
    }
    /* Rejected recipients on stderr, one per line (Tcllib's list). */
    if (r)
        for (size_t i = 0; i < r->nrcpt; i++)
            if (!r->rcpt[i].accepted && r->rcpt[i].code)
                fprintf(stderr, "mailwire %s: %s: %d %s%s%s\n", c->prog, r->rcpt[i].address,
                        r->rcpt[i].code, r->rcpt[i].enhanced, r->rcpt[i].enhanced[0] ? " " : "",
                        r->rcpt[i].text ? r->rcpt[i].text : "");
    if (rc)
        fprintf(stderr, "mailwire %s: %s%s%s\n", c->prog, name ? name : "", name ? ": " : "",
                err->message);
}

/* The --json error object of a failed transaction (after its result). */
void json_tx_error(int ex, int rc, const mw_smtp_result *r, const mw_error *err, const char *name)
{
    if (!ex || !mw_cli_json_on()) return;
    char msg[600];
    if (rc) {
        snprintf(msg, sizeof msg, "%s%s%s", name ? name : "", name ? ": " : "", err->message);
        mw_cli_json_error(ex, rc, err, msg);
        return;
    }
    /* Sent, but some recipients were refused (exit 67 or 75). */
    mw_error e;
    mw_error_clear(&e);
    for (size_t i = 0; r && i < r->nrcpt; i++) {
        const mw_smtp_rcpt *p = &r->rcpt[i];
        if (p->accepted) continue;
        snprintf(msg, sizeof msg, "%s%s%zu recipient%s refused; first: %s: %d %s", name ? name : "",
                 name ? ": " : "", r->nrejected, r->nrejected == 1 ? "" : "s", p->address, p->code,
                 p->text ? p->text : "");
        snprintf(e.command, sizeof e.command, "RCPT TO:<%s>", p->address);
        snprintf(e.reply, sizeof e.reply, "%s", p->text ? p->text : "");
        e.reply_code = p->code;
        snprintf(e.enhanced, sizeof e.enhanced, "%s", p->enhanced);
        break;
    }
    mw_cli_json_error(ex, 0, &e, msg);
}

/* Exit code of one transaction: 0 sent to all, 67 a recipient
 * rejected, 75 temporary, 65 bad message, ... */
int tx_exit(int rc, const mw_smtp_result *r)
{
    if (r && r->nrejected) {
        int perm = 0;
        for (size_t i = 0; i < r->nrcpt; i++)
            if (!r->rcpt[i].accepted && r->rcpt[i].permanent) perm = 1;
        if (rc == 0 || rc == MW_ESERVER || rc == MW_ETEMP) return perm ? EX_NOUSER_ : EX_TEMPFAIL_;
    }
    return rc ? exit_for(rc) : 0;
}

void smtp_cli_free(smtp_cli *c)
{
    mw_cli_conn_free(&c->conn);
    free(c->servers_buf);
    if (c->token) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
    }
}
