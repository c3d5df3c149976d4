/* mailwire smtp [OPTIONS] send|capa, and the engine of `mailwire send`
 * (cmd_send.c): SMTP submission from the command line, public API only. */
#include "commands.h"
#include "connopts.h"
#include "oauth_cli.h"

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

#define MAX_LIST 32
/* `mailwire send` streams the message from stdin; only --bcc-digest (whose
 * digest copy is built in memory) holds it all, up to this much. */
#define SEND_MAX_MESSAGE (256u * 1024 * 1024)
/* The header block read ahead of the connection (account by From, -F). */
#define SEND_MAX_HEADER (1024u * 1024)

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

static int split_list(char *s, const char **out, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *t = strtok_r(s, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (*n >= MAX_LIST) return -1;
        out[(*n)++] = t;
    }
    return *n ? 0 : -1;
}

/* Options shared by `send` and `smtp`: the connection options plus
 * --servers, --ports, --tls opportunistic, --client, --maxsecs.  Returns 1
 * consumed, 0 not ours, -1 usage error (printed). */
static int smtp_option(smtp_cli *c, int argc, char **argv, int *i)
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
        if (k == 0) {
            free(c->servers_buf);
            c->servers_buf = strdup(v);
            if (!c->servers_buf || split_list(c->servers_buf, c->servers, &c->nservers)) {
                fprintf(stderr, "mailwire %s: --servers wants H1,H2,... (at most %d)\n", c->prog,
                        MAX_LIST);
                return -1;
            }
        } else if (k == 1) {
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
        return 1;
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

static int smtp_finish(smtp_cli *c)
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

static int exit_for(int rc)
{
    if (rc == MW_ETOOBIG || rc == MW_EFORMAT) return EX_DATAERR_;
    if (rc == MW_EUNSUPPORTED) return EX_UNAVAILABLE_;
    return mw_cli_exit_code(rc);
}

/* The first line of what `f` gives, at most 16 KiB (an OAuth token is a
 * few KiB at most); NULL with *why set on failure. */
static char *first_line(FILE *f, const char **why)
{
    size_t cap = 16384, n = 0;
    char *b = malloc(cap);
    if (!b) {
        *why = "out of memory";
        return NULL;
    }
    int ch;
    while ((ch = getc(f)) != EOF && ch != '\n') {
        if (n + 1 >= cap) {
            explicit_bzero(b, n);
            free(b);
            *why = "the first line is over 16 KiB";
            return NULL;
        }
        b[n++] = (char)ch;
    }
    if (n > 0 && b[n - 1] == '\r') n--;
    b[n] = '\0';
    if (n == 0 || memchr(b, '\0', n) != NULL || strchr(b, '\r')) {
        explicit_bzero(b, n);
        free(b);
        *why = n == 0 ? "it is empty" : "it holds a NUL or CR";
        return NULL;
    }
    return b;
}

static int load_token(smtp_cli *c)
{
    const char *why = NULL;
    if (c->token_file) {
        FILE *f = fopen(c->token_file, "re");
        if (!f) {
            fprintf(stderr, "mailwire %s: cannot read --oauth-token-file %s: %s\n", c->prog,
                    c->token_file, strerror(errno));
            return EX_IOERR_;
        }
        c->token = first_line(f, &why);
        fclose(f);
    } else {
        fflush(NULL);
        FILE *f = popen(c->token_eval, "re");
        if (!f) {
            fprintf(stderr, "mailwire %s: cannot run --oauth-token-eval: %s\n", c->prog,
                    strerror(errno));
            return EX_IOERR_;
        }
        c->token = first_line(f, &why);
        /* Drain so the command does not die of SIGPIPE, then its status. */
        while (getc(f) != EOF) {}
        int st = pclose(f);
        if (c->token && st != 0) {
            explicit_bzero(c->token, strlen(c->token));
            free(c->token);
            c->token = NULL;
            why = "the command failed";
        }
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

static int smtp_open(smtp_cli *c, mw_smtp **s, int login)
{
    int want_token = login && (c->token_file || c->token_eval);
    if (want_token && !c->token) {
        int rc = load_token(c);
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
    o.tls = c->opportunistic                     ? MW_SMTP_TLS_OPPORTUNISTIC
            : c->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_SMTP_TLS_IMPLICIT
            : c->conn.tls == MW_CLI_TLS_NONE     ? MW_SMTP_TLS_NONE
                                                 : MW_SMTP_TLS_STARTTLS;
    o.tls_opts = &c->tls;
    o.net = &c->net;
    if (want_token) {
        /* XOAUTH2 needs the user name; OAUTHBEARER takes it when given. */
        o.username = c->conn.user;
        o.token = c->token;
        o.auth = (c->conn.auth && strcasecmp(c->conn.auth, "auto")) ? c->conn.auth : NULL;
    } else if (login && c->conn.user) {
        o.username = c->conn.user;
        o.password = c->conn.password;
        o.auth = (c->conn.auth && strcasecmp(c->conn.auth, "auto")) ? c->conn.auth : NULL;
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
    if (rc) {
        fprintf(stderr, "mailwire %s: %s\n", c->prog, err.message);
        if (c->conn.json) {
            /* Programs get the failure as JSON too: nothing was sent. */
            printf("{\"sent\":false,\"error\":");
            json_str(err.message);
            printf(",\"category\":");
            json_str(mw_error_category(rc));
            printf(",\"command\":");
            json_str(err.command);
            printf(",\"code\":%d,\"enhanced\":", err.reply_code);
            json_str(err.enhanced);
            printf(",\"text\":");
            json_str(err.reply);
            printf("}\n");
        }
        return exit_for(rc);
    }
    mw_smtp_set_maxtime(*s, c->maxsecs * 1000);
    return 0;
}

static void print_result(const smtp_cli *c, const char *name, int rc, const mw_smtp_result *r,
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

/* Exit code of one transaction (issue 4): 0 sent to all, 67 a recipient
 * rejected, 75 temporary, 65 bad message, ... */
static int tx_exit(int rc, const mw_smtp_result *r)
{
    if (r && r->nrejected) {
        int perm = 0;
        for (size_t i = 0; i < r->nrcpt; i++)
            if (!r->rcpt[i].accepted && r->rcpt[i].permanent) perm = 1;
        if (rc == 0 || rc == MW_ESERVER || rc == MW_ETEMP) return perm ? EX_NOUSER_ : EX_TEMPFAIL_;
    }
    return rc ? exit_for(rc) : 0;
}

static void smtp_cli_free(smtp_cli *c)
{
    mw_cli_conn_free(&c->conn);
    free(c->servers_buf);
    if (c->token) {
        explicit_bzero(c->token, strlen(c->token));
        free(c->token);
    }
}

static void smtp_usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire smtp [OPTIONS] send [--from ADDR] [--to ADDR]... "
            "[--all-or-nothing]\n"
            "                              [--no-message-pipelining] FILE...\n"
            "       mailwire smtp [OPTIONS] capa\n"
            "SMTP options: --servers H1,H2  --ports P1,P2  --tls opportunistic  --client NAME"
            "  --maxsecs N  --queue\n"
            "              --header \"Name: value\" (added to each message; repeatable)\n"
            "              --dsn-orcpt (ORCPT=rfc822;ADDR on each RCPT, RFC 3461)\n"
            "              --oauth-token-file FILE | --oauth-token-eval CMD (XOAUTH2 or\n"
            "                OAUTHBEARER with the token on the first line, --user for XOAUTH2)\n");
    mw_cli_conn_usage(f);
}

static int cmd_capa(smtp_cli *c, mw_smtp *s)
{
    const char *t[2] = {mw_smtp_ehlo_text(s, 0), mw_smtp_ehlo_text(s, 1)};
    unsigned port;
    const char *srv = mw_smtp_server(s, &port);
    if (c->conn.json) {
        printf("{\"server\":");
        json_str(srv);
        printf(",\"port\":%u,\"tls\":%s", port, mw_smtp_is_tls(s) ? "true" : "false");
        for (int w = 0; w < 2; w++) {
            printf(",\"%s\":[", w ? "after_tls" : "before_tls");
            const char *p = t[w];
            int first = 1;
            while (*p) {
                const char *nl = strchr(p, '\n');
                size_t l = nl ? (size_t)(nl - p) : strlen(p);
                printf("%s", first ? "" : ",");
                mw_cli_json_string(stdout, p, l);
                first = 0;
                p += l + (nl ? 1 : 0);
            }
            printf("]");
        }
        printf("}\n");
    } else {
        for (int w = 0; w < 2; w++) {
            if (w == 1 && !*t[1]) break;
            printf("# %s\n",
                   w ? "after TLS" : (mw_smtp_is_tls(s) && !*t[1] ? "over TLS" : "before TLS"));
            fputs(t[w], stdout);
        }
    }
    return 0;
}

/* `smtp send FILE…` as a batch: the library asks for the next file while
 * the server is still answering the previous one. */
typedef struct batch {
    smtp_cli *c;
    mw_smtp *s;
    char **files;
    size_t nfiles;
    /* This connection's share: files[todo[0..ntodo)], taken so far; those
     * lost with the connection go to retry[] for the next one. */
    size_t *todo, ntodo, taken;
    size_t *retry, nretry;
    int may_retry;
    int *fd;      /* fd[i]: the open file of message i (several are in hand at once) */
    size_t *name; /* name[i]: its index in files[] */
    const char *from;
    const char *const *to;
    size_t nto;
    int atleastone;
    int rc; /* exit status so far */
    /* The progress line on a terminal (stderr), as fetch has. */
    int tty, shown;
    size_t done, sent;
    uint64_t octets;
    int64_t start_ms, last_ms;
} batch;

/* Messages done and sent, megabytes and rate, redrawn at most 5 times a
 * second; `final` draws it once more and ends the line. */
static void batch_progress(batch *b, int final)
{
    int64_t now = mw_now_ms();
    if (!final && b->shown && now - b->last_ms < 200) return;
    b->last_ms = now;
    double secs = (double)(now - b->start_ms) / 1000.0;
    double mb = (double)b->octets / 1e6;
    fprintf(stderr, "\r\033[Kmailwire smtp: %zu/%zu messages, %zu sent, %.1f MB, %.1f MB/s%s",
            b->done, b->nfiles, b->sent, mb, secs > 0 ? mb / secs : 0.0, final ? "\n" : "");
    fflush(stderr);
    b->shown = !final;
}

static int batch_next(void *ud, size_t index, mw_smtp_msg *m)
{
    batch *b = ud;
    while (b->taken < b->ntodo) {
        size_t f = b->todo[b->taken++];
        const char *path = b->files[f];
        /* Streamed from the file: a large message costs no memory. */
        int fd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
        if (fd < 0) {
            fprintf(stderr, "mailwire smtp: cannot read %s: %s\n", path, strerror(errno));
            if (!b->rc) b->rc = EX_IOERR_;
            continue;
        }
        b->fd[index] = fd;
        b->name[index] = f;
        m->fd = fd;
        m->originator = b->from;
        m->recipients = b->nto ? b->to : NULL;
        m->nrecipients = b->nto;
        m->atleastone = b->atleastone;
        m->dsn_orcpt = b->c->dsn_orcpt;
        m->headers = b->c->headers;
        m->nheaders = b->c->nheaders;
        return 1;
    }
    return 0;
}

/* Failures that say nothing about the message: the connection went away
 * (or the server closed it, 421) before its end was accepted. */
static int lost_with_connection(int rc)
{
    return rc == MW_ENET || rc == MW_ETIMEOUT || rc == MW_ESTATE || rc == MW_ETEMP;
}

static void batch_done(void *ud, size_t index, int rc, const mw_smtp_result *r, const mw_error *err)
{
    batch *b = ud;
    if (rc && b->may_retry && lost_with_connection(rc) && !mw_smtp_alive(b->s)) {
        /* Sent again over a new connection (at worst a duplicate, if the
         * server took it and its reply was lost: RFC 5321 §6.1). */
        if (b->fd[index] != 0) close(b->fd[index]);
        b->retry[b->nretry++] = b->name[index];
        return;
    }
    if (b->shown && (rc || (r && r->nrejected))) {
        fputs("\r\033[K", stderr); /* the error lines take the progress line's place */
        b->shown = 0;
    }
    print_result(b->c, b->files[b->name[index]], rc, r, err);
    int e = tx_exit(rc, r);
    if (e && !b->rc) b->rc = e;
    if (b->fd[index] != 0) close(b->fd[index]);
    b->done++;
    if (r && r->sent) {
        b->sent++;
        b->octets += r->octets;
    }
    if (b->tty) batch_progress(b, 0);
}

int mw_cmd_smtp(int argc, char **argv)
{
    smtp_cli c;
    memset(&c, 0, sizeof c);
    c.prog = "smtp";
    mw_cli_conn_init(&c.conn, "smtp", 587, 465);
    const char *from = NULL;
    const char *to[MAX_LIST * 8];
    size_t nto = 0;
    int all_or_nothing = 0, no_msg_pipelining = 0;
    const char *sub = NULL;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    size_t nfiles = 0;
    int rc = 0;
    if (!files) return EX_SOFTWARE_;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            smtp_usage(stdout);
            goto out;
        }
        if (sub && !strcmp(sub, "send")) {
            if ((!strcmp(a, "--from") || !strcmp(a, "--to")) && i + 1 < argc) {
                if (a[2] == 'f')
                    from = argv[++i];
                else if (nto < sizeof to / sizeof to[0])
                    to[nto++] = argv[++i];
                else {
                    fprintf(stderr, "mailwire smtp: too many --to\n");
                    rc = EX_USAGE_;
                    goto out;
                }
                continue;
            }
            if (!strcmp(a, "--all-or-nothing")) {
                all_or_nothing = 1;
                continue;
            }
            if (!strcmp(a, "--no-message-pipelining")) {
                no_msg_pipelining = 1;
                continue;
            }
        }
        int r = smtp_option(&c, argc, argv, &i);
        if (r < 0) {
            rc = EX_USAGE_;
            goto out;
        }
        if (r > 0) continue;
        if (!sub && (!strcmp(a, "send") || !strcmp(a, "capa"))) {
            sub = a;
            continue;
        }
        if (sub && !strcmp(sub, "send") && (a[0] != '-' || !strcmp(a, "-"))) {
            files[nfiles++] = argv[i];
            continue;
        }
        fprintf(stderr, "mailwire smtp: unexpected argument '%s'\n", a);
        smtp_usage(stderr);
        rc = EX_USAGE_;
        goto out;
    }
    if (!sub || (!strcmp(sub, "send") && nfiles == 0)) {
        smtp_usage(stderr);
        rc = EX_USAGE_;
        goto out;
    }
    if ((rc = smtp_finish(&c)) != 0) goto out;
    mw_smtp *s = NULL;
    if ((rc = smtp_open(&c, &s, !strcmp(sub, "send"))) != 0) goto out;
    if (!strcmp(sub, "capa")) {
        rc = cmd_capa(&c, s);
    } else {
        /* Every file over the one connection: one login for the batch,
         * and each file opened while the server answers the previous.  A
         * connection lost (or closed by the server: a per-connection
         * message limit) is made again for the files left, as long as
         * each connection gets at least one message through (3 tries). */
        batch b = {.c = &c,
                   .files = files,
                   .nfiles = nfiles,
                   .from = from,
                   .to = to,
                   .nto = nto,
                   .atleastone = !all_or_nothing};
        b.tty = !c.conn.json && nfiles > 1 && isatty(2);
        b.start_ms = mw_now_ms();
        b.fd = calloc(nfiles, sizeof *b.fd);
        b.name = calloc(nfiles, sizeof *b.name);
        b.todo = calloc(nfiles, sizeof *b.todo);
        b.retry = calloc(nfiles, sizeof *b.retry);
        if (!b.fd || !b.name || !b.todo || !b.retry) {
            rc = EX_SOFTWARE_;
            nfiles = 0;
        }
        for (size_t f = 0; f < nfiles; f++)
            b.todo[f] = f;
        b.ntodo = nfiles;
        int fruitless = 0;
        while (b.ntodo > 0) {
            if (no_msg_pipelining) mw_smtp_set_message_pipelining(s, 0);
            b.s = s;
            b.taken = 0;
            b.nretry = 0;
            b.may_retry = fruitless < 2;
            size_t sent_before = b.sent;
            int brc = mw_smtp_send_batch(s, batch_next, batch_done, &b);
            if (brc == MW_ENOMEM && !b.rc) b.rc = EX_SOFTWARE_;
            if (mw_smtp_alive(s)) break;
            /* Left: those lost with the connection, then those not taken. */
            size_t left = b.nretry;
            for (size_t k = b.taken; k < b.ntodo; k++)
                b.retry[left++] = b.todo[k];
            memcpy(b.todo, b.retry, left * sizeof *b.todo);
            b.ntodo = left;
            if (left == 0) break;
            fruitless = b.sent > sent_before ? 0 : fruitless + 1;
            mw_smtp_free(s);
            s = NULL;
            if (b.may_retry) {
                if (b.shown) fputs("\r\033[K", stderr);
                b.shown = 0;
                fprintf(stderr,
                        "mailwire smtp: the connection was lost; connecting again for the %zu "
                        "message%s left\n",
                        left, left == 1 ? "" : "s");
                if (smtp_open(&c, &s, 1) == 0) continue;
            }
            /* The remaining files are not sent. */
            for (size_t k = 0; k < b.ntodo; k++)
                fprintf(stderr, "mailwire smtp: %s: not sent (connection lost)\n",
                        files[b.todo[k]]);
            if (!b.rc) b.rc = EX_TEMPFAIL_;
            break;
        }
        free(b.fd);
        free(b.name);
        free(b.todo);
        free(b.retry);
        if (b.tty && b.done) batch_progress(&b, 1);
        if (b.rc && !rc) rc = b.rc;
    }
    mw_smtp_quit(s);
    mw_smtp_free(s);
out:
    free(files);
    smtp_cli_free(&c);
    return rc;
}

/* ---- mailwire send: sendmail-compatible ---- */

static void send_usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire send [OPTIONS] [-t] [-f ADDR] [-F NAME] [-i|-oi] [-N NOTIFY]\n"
            "                     [-R full|hdrs] [-V ENVID] [--all-or-nothing] [--bcc-digest]\n"
            "                     [RECIPIENT...]\n"
            "Recipients rejected go to stderr (exit 67); --all-or-nothing sends to none then.\n"
            "The message is read from stdin; without -i a line with a single '.' ends it.\n"
            "SMTP options: --servers H1,H2  --ports P1,P2  --tls opportunistic  --client NAME"
            "  --maxsecs N  --queue\n"
            "              --header \"Name: value\" (added to each message; repeatable)\n"
            "              --dsn-orcpt (ORCPT=rfc822;ADDR on each RCPT, RFC 3461)\n"
            "              --oauth-token-file FILE | --oauth-token-eval CMD (XOAUTH2 or\n"
            "                OAUTHBEARER with the token on the first line, --user for XOAUTH2)\n");
    mw_cli_conn_usage(f);
}

/* stdin as a message source for `mailwire send`, streamed: without -i a
 * line holding only "." ends it (and the rest is not part of the message),
 * as sendmail does, across reads.  The header block is read ahead into
 * `head` (to pick the account by From and to see whether -F must add one);
 * the library gets head, then the rest. */
typedef struct stdin_src {
    char buf[65536];
    size_t start, end;
    int eof, done, bol, ignore_dots, failed;
    char *head;
    size_t hlen, hpos;
} stdin_src;

static int sin_refill(stdin_src *S)
{
    if (S->start > 0) {
        memmove(S->buf, S->buf + S->start, S->end - S->start);
        S->end -= S->start;
        S->start = 0;
    }
    for (;;) {
        ssize_t r = read(0, S->buf + S->end, sizeof S->buf - S->end);
        if (r > 0) {
            S->end += (size_t)r;
            return 0;
        }
        if (r == 0) {
            S->eof = 1;
            return 0;
        }
        if (errno != EINTR) {
            S->failed = errno;
            return -1;
        }
    }
}

/* Up to len octets of the message from stdin, stopping at the end line. */
static long sin_read(stdin_src *S, char *o, size_t len)
{
    size_t n = 0;
    while (n < len && !S->done) {
        if (S->end - S->start < 3 && !S->eof) {
            if (sin_refill(S) != 0) return n ? (long)n : -1;
            continue;
        }
        size_t a = S->end - S->start;
        if (a == 0) {
            S->done = 1;
            break;
        }
        const char *p = S->buf + S->start;
        if (S->bol && !S->ignore_dots && p[0] == '.' &&
            ((a == 1 && S->eof) || (a >= 2 && p[1] == '\n') ||
             (a >= 2 && p[1] == '\r' && ((a == 2 && S->eof) || (a >= 3 && p[2] == '\n'))))) {
            S->done = 1;
            break;
        }
        size_t want = len - n < a ? len - n : a;
        const char *nl = memchr(p, '\n', want);
        size_t k = nl ? (size_t)(nl - p) + 1 : want;
        memcpy(o + n, p, k);
        n += k;
        S->start += k;
        S->bol = nl != NULL;
    }
    return (long)n;
}

/* Length of the header block in d (through its empty line), 0 if none yet. */
static size_t header_block_end(const char *d, size_t n)
{
    for (size_t i = 0; i < n;) {
        if (d[i] == '\n') return i + 1;
        if (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n') return i + 2;
        const char *nl = memchr(d + i, '\n', n - i);
        if (!nl) return 0;
        i = (size_t)(nl - d) + 1;
    }
    return 0;
}

/* Reads ahead into head: the header block (and what came with its last
 * read), or with `whole` the entire message (--bcc-digest builds its copy
 * in memory).  EFBIG past SEND_MAX_HEADER / SEND_MAX_MESSAGE. */
static int sin_read_ahead(stdin_src *S, int whole)
{
    size_t cap = 0, max = whole ? SEND_MAX_MESSAGE : SEND_MAX_HEADER;
    S->bol = 1;
    while (!S->done && (whole || !(S->hlen && header_block_end(S->head, S->hlen)))) {
        if (S->hlen + 65536 > cap) {
            if (cap >= max) {
                errno = EFBIG;
                return -1;
            }
            size_t nc = cap ? cap * 2 : 65536;
            char *nh = realloc(S->head, nc);
            if (!nh) return -1;
            S->head = nh;
            cap = nc;
        }
        long r = sin_read(S, S->head + S->hlen, 65536);
        if (r < 0) {
            errno = S->failed;
            return -1;
        }
        S->hlen += (size_t)r;
    }
    return 0;
}

static long send_source_read(void *buf, size_t len, void *ud)
{
    stdin_src *S = ud;
    if (S->hpos < S->hlen) {
        size_t k = S->hlen - S->hpos < len ? S->hlen - S->hpos : len;
        memcpy(buf, S->head + S->hpos, k);
        S->hpos += k;
        return (long)k;
    }
    return sin_read(S, buf, len);
}

static int has_header(const char *d, size_t n, const char *name)
{
    size_t nl = strlen(name), i = 0;
    while (i < n) {
        if (d[i] == '\n' || (d[i] == '\r' && i + 1 < n && d[i + 1] == '\n'))
            return 0; /* end of the header block */
        if (n - i > nl && !strncasecmp(d + i, name, nl) && d[i + nl] == ':') return 1;
        const char *e = memchr(d + i, '\n', n - i);
        if (!e) return 0;
        i = (size_t)(e - d) + 1;
    }
    return 0;
}

/* The first address of the message's From field, malloc'd, or NULL. */
static char *from_field_address(const char *d, size_t n)
{
    mw_mime_headers *h = NULL;
    char *addr = NULL;
    if (mw_mime_headers_parse(&h, d, n, NULL, NULL, NULL) != 0) return NULL;
    const char *v = mw_mime_headers_get(h, "From", 0);
    mw_mime_addrlist *l = NULL;
    if (v && mw_mime_addrlist_parse(&l, v, strlen(v), NULL) == 0) {
        const mw_mime_address *a = mw_mime_addrlist_count(l) ? mw_mime_addrlist_at(l, 0) : NULL;
        if (a && a->address) addr = strdup(a->address);
        mw_mime_addrlist_free(l);
    }
    mw_mime_headers_free(h);
    return addr;
}

int mw_cli_sendmail(int argc, char **argv)
{
    smtp_cli c;
    memset(&c, 0, sizeof c);
    c.prog = "send";
    mw_cli_conn_init(&c.conn, "send", 587, 465);
    const char *from = NULL, *fullname = NULL, *notify = NULL, *ret = NULL, *envid = NULL;
    int extract = 0, ignore_dots = 0, all_or_nothing = 0, bcc_digest = 0;
    const char **rcpt = calloc((size_t)argc + 1, sizeof *rcpt);
    size_t nrcpt = 0;
    int rc = 0;
    stdin_src *sin = NULL;
    char *fromhdr = NULL, *sender = NULL;
    mw_smtp_result *r = NULL;
    if (!rcpt) return EX_SOFTWARE_;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            send_usage(stdout);
            goto out;
        }
        if (!strcmp(a, "-t")) {
            extract = 1;
            continue;
        }
        if (!strcmp(a, "-i") || !strcmp(a, "-oi")) {
            ignore_dots = 1;
            continue;
        }
        if (!strcmp(a, "--all-or-nothing")) {
            all_or_nothing = 1;
            continue;
        }
        if (!strcmp(a, "--bcc-digest")) {
            bcc_digest = 1;
            continue;
        }
        /* -f ADDR / -fADDR and the like, as sendmail takes them. */
        char opt = 0;
        if (a[0] == '-' && strchr("fFNRV", a[1]) && a[1]) {
            opt = a[1];
            if (a[2])
                val = a + 2;
            else if (i + 1 < argc)
                val = argv[++i];
            else {
                fprintf(stderr, "mailwire send: -%c needs a value\n", opt);
                rc = EX_USAGE_;
                goto out;
            }
        }
        switch (opt) {
        case 'f':
            from = val;
            continue;
        case 'F':
            fullname = val;
            continue;
        case 'N':
            notify = val;
            continue;
        case 'R':
            ret = val;
            continue;
        case 'V':
            envid = val;
            continue;
        default:
            break;
        }
        int r2 = smtp_option(&c, argc, argv, &i);
        if (r2 < 0) {
            rc = EX_USAGE_;
            goto out;
        }
        if (r2 > 0) continue;
        if (a[0] == '-') {
            fprintf(stderr, "mailwire send: unknown option '%s'\n", a);
            send_usage(stderr);
            rc = EX_USAGE_;
            goto out;
        }
        rcpt[nrcpt++] = a;
    }
    if (!extract && nrcpt == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments or use -t\n");
        rc = EX_USAGE_;
        goto out;
    }
    if (ret && strcasecmp(ret, "full") && strcasecmp(ret, "hdrs")) {
        fprintf(stderr, "mailwire send: -R takes full or hdrs\n");
        rc = EX_USAGE_;
        goto out;
    }
    /* Streamed: only the header block is read before connecting (all of
     * the message with --bcc-digest). */
    if (!(sin = calloc(1, sizeof *sin))) {
        rc = EX_SOFTWARE_;
        goto out;
    }
    sin->ignore_dots = ignore_dots;
    if (sin_read_ahead(sin, bcc_digest) != 0) {
        fprintf(stderr, "mailwire send: cannot read the message: %s\n",
                errno != EFBIG ? strerror(errno)
                : bcc_digest   ? "over 256 MiB (--bcc-digest holds it in memory)"
                               : "no end of the header block in its first 1 MiB");
        rc = errno == EFBIG ? EX_DATAERR_ : EX_IOERR_;
        goto out;
    }
    const char *data = sin->head;
    size_t len = sin->hlen;
    /* Without --account or --host, the sender picks the account (-f, else
     * the From field), as msmtp's --read-envelope-from does. */
    sender = from ? strdup(from) : from_field_address(data, len);
    c.conn.from_address = sender;
    if ((rc = smtp_finish(&c)) != 0) goto out;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    struct stat st;
    if (!sin->done) {
        m.read = send_source_read;
        m.read_userdata = sin;
        /* SIZE= from a regular file on stdin (an estimate, RFC 1870 §4). */
        if (fstat(0, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
            m.size_hint = (uint64_t)st.st_size;
    } else {
        /* Read whole already (all of a short message came with its
         * header): from memory, so SIZE and the 8-bit check are exact. */
        m.data = data;
        m.len = len;
    }
    m.originator = from;
    /* -t: the recipients come from To/Cc/Bcc (the library removes Bcc),
     * plus any recipient arguments, as Postfix's sendmail ("added to any
     * recipients specified on the command line") and msmtp do; Sendmail 8
     * and Exim by default remove the argument addresses instead, which
     * would silently drop mail the caller named, so we add. */
    m.recipients = nrcpt ? rcpt : NULL;
    m.nrecipients = nrcpt;
    m.header_recipients = extract;
    m.headers = c.headers;
    m.nheaders = c.nheaders;
    if (fullname && from && !has_header(data, len, "From")) {
        size_t fl = strlen(fullname) + strlen(from) + 16;
        fromhdr = malloc(fl);
        if (!fromhdr) {
            rc = EX_SOFTWARE_;
            goto out;
        }
        snprintf(fromhdr, fl, "From: %s <%s>", fullname, from);
        c.headers[c.nheaders++] = fromhdr;
        m.nheaders = c.nheaders;
    }
    m.atleastone = !all_or_nothing;
    m.bcc_digest = bcc_digest;
    m.dsn_notify = notify;
    m.dsn_ret = ret;
    m.dsn_envid = envid;
    m.dsn_orcpt = c.dsn_orcpt;
    mw_smtp *s = NULL;
    if ((rc = smtp_open(&c, &s, 1)) != 0) goto out;
    int src = mw_smtp_send(s, &m, &r);
    print_result(&c, NULL, src, r, mw_smtp_error(s));
    rc = tx_exit(src, r);
    mw_smtp_quit(s);
    mw_smtp_free(s);
out:
    mw_smtp_result_free(r);
    free(fromhdr);
    free(sender);
    if (sin) free(sin->head);
    free(sin);
    free(rcpt);
    smtp_cli_free(&c);
    return rc;
}
