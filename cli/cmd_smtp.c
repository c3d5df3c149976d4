/* mailwire smtp [OPTIONS] send|capa, and the engine of `mailwire send`
 * (cmd_send.c): SMTP submission from the command line, public API only. */
#include "commands.h"
#include "connopts.h"
#include "engine.h"
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

static int load_token(smtp_cli *c)
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

/* Exit code of one transaction (issue 4): 0 sent to all, 67 a recipient
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

static void smtp_usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire smtp [OPTIONS] send [--from ADDR] [--to ADDR]... "
            "[--all-or-nothing]\n"
            "                              [--no-message-pipelining] FILE...\n"
            "       mailwire smtp [OPTIONS] capa\n"
            "       mailwire smtp [OPTIONS] serverinfo   (greeting, TLS, capabilities; no login)\n"
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

/* What an EHLO keyword means (RFC 5321 and the extension RFCs), for
 * serverinfo. */
static const struct {
    const char *kw, *what;
} ehlo_words[] = {
    {"SIZE", "largest message accepted (RFC 1870)"},
    {"PIPELINING", "commands grouped in one write (RFC 2920)"},
    {"STARTTLS", "TLS via STARTTLS (RFC 3207)"},
    {"AUTH", "authentication mechanisms (RFC 4954)"},
    {"8BITMIME", "8-bit message bodies (RFC 6152)"},
    {"SMTPUTF8", "UTF-8 addresses and headers (RFC 6531)"},
    {"DSN", "delivery status notifications (RFC 3461)"},
    {"ENHANCEDSTATUSCODES", "enhanced status codes (RFC 2034)"},
    {"CHUNKING", "BDAT (RFC 3030)"},
    {"BINARYMIME", "binary bodies (RFC 3030)"},
    {"VRFY", "address verification (RFC 5321 §3.5)"},
    {"ETRN", "remote queue start (RFC 1985)"},
    {"DELIVERBY", "deliver by a time (RFC 2852)"},
    {"REQUIRETLS", "TLS required along the way (RFC 8689)"},
    {"MT-PRIORITY", "message priorities (RFC 6710)"},
    {"XQUE", "queue, do not deliver now (QUED)"},
};

/* The server's bytes on a terminal: control octets as '?'. */
static void put_printable(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        putchar((unsigned char)p[i] < 0x20 || p[i] == 0x7F ? '?' : p[i]);
}

/* The keyword of an EHLO line, its length. */
static size_t ehlo_kw(const char *l, size_t len)
{
    size_t k = 0;
    while (k < len && l[k] != ' ' && l[k] != '=')
        k++;
    return k;
}

/* serverinfo: greeting, TLS and the EHLO keywords before login (after
 * STARTTLS when TLS is on), as msmtp --serverinfo shows them.  A server that
 * refuses EHLO (HELO only) is no error. */
static int cmd_serverinfo(smtp_cli *c, mw_smtp *s)
{
    unsigned port;
    const char *srv = mw_smtp_server(s, &port);
    const char *g = mw_smtp_greeting(s);
    int esmtp = mw_smtp_esmtp(s);
    const char *ehlo = *mw_smtp_ehlo_text(s, 1) ? mw_smtp_ehlo_text(s, 1) : mw_smtp_ehlo_text(s, 0);
    mw_tls_info ti;
    int tls = mw_smtp_tls_info(s, &ti) == 0;
    const char *how = c->conn.tls == MW_CLI_TLS_IMPLICIT ? "implicit" : "STARTTLS";
    /* The first line of the EHLO reply is the server's name; then keywords. */
    const char *kws = strchr(ehlo, '\n');
    kws = esmtp && kws ? kws + 1 : "";
    const char *first_nl = strchr(ehlo, '\n');
    size_t namelen = first_nl ? (size_t)(first_nl - ehlo) : strlen(ehlo);
    unsigned long long size = 0;
    int size_given = 0;
    const char *auth = NULL;
    size_t authlen = 0;
    for (const char *p = kws; *p;) {
        size_t l = strcspn(p, "\n");
        size_t k = ehlo_kw(p, l);
        if (k == 4 && !strncasecmp(p, "SIZE", 4)) {
            size_given = 1;
            size = l > 5 ? strtoull(p + 5, NULL, 10) : 0;
        }
        if (k == 4 && !strncasecmp(p, "AUTH", 4) && !auth) {
            auth = l > 5 ? p + 5 : "";
            authlen = l > 5 ? l - 5 : 0;
        }
        p += l + (p[l] == '\n');
    }
    static const char noesmtp[] = "the server does not speak ESMTP (EHLO refused, HELO "
                                  "accepted): no extensions";
    if (c->conn.json) {
        printf("{\"protocol\":\"smtp\",\"host\":");
        json_str(srv);
        printf(",\"port\":%u,\"greeting\":", port);
        json_str(g);
        printf(",\"esmtp\":%s,\"name\":", esmtp ? "true" : "false");
        mw_cli_json_string(stdout, ehlo, namelen);
        printf(",\"tls\":");
        mw_cli_print_tls_info(stdout, tls ? &ti : NULL, how, 1);
        printf(",\"capabilities\":[");
        int first = 1;
        for (const char *p = kws; *p;) {
            size_t l = strcspn(p, "\n");
            if (l) {
                printf("%s", first ? "" : ",");
                mw_cli_json_string(stdout, p, l);
                first = 0;
            }
            p += l + (p[l] == '\n');
        }
        printf("],\"size\":");
        if (size_given)
            printf("%llu", size);
        else
            printf("null");
        printf(",\"auth\":[");
        first = 1;
        for (size_t i = 0; auth && i < authlen;) {
            size_t l = strcspn(auth + i, " ");
            if (l > authlen - i) l = authlen - i;
            if (l) {
                printf("%s", first ? "" : ",");
                mw_cli_json_string(stdout, auth + i, l);
                first = 0;
            }
            i += l + 1;
        }
        printf("]");
        if (!esmtp) {
            printf(",\"note\":");
            json_str(noesmtp);
        }
        printf("}\n");
        return 0;
    }
    printf("SMTP server at %s port %u\nGreeting: 220 ", srv, port);
    for (const char *p = g; *p; p++) { /* a multi-line greeting, one line each */
        if (*p == '\n')
            fputs("\n              ", stdout);
        else
            putchar(*p);
    }
    putchar('\n');
    mw_cli_print_tls_info(stdout, tls ? &ti : NULL, how, 0);
    if (!esmtp) {
        printf("Capabilities: %s\n", noesmtp);
        return 0;
    }
    printf("EHLO name: ");
    put_printable(ehlo, namelen);
    putchar('\n');
    printf("Capabilities (before login%s):\n", tls ? ", over TLS" : "");
    int starttls = 0;
    for (const char *p = kws; *p;) {
        size_t l = strcspn(p, "\n");
        size_t k = ehlo_kw(p, l);
        const char *what = NULL;
        for (size_t i = 0; i < sizeof ehlo_words / sizeof ehlo_words[0]; i++)
            if (strlen(ehlo_words[i].kw) == k && !strncasecmp(p, ehlo_words[i].kw, k))
                what = ehlo_words[i].what;
        if (l) {
            printf("    ");
            put_printable(p, l);
            if (what) printf("%*s  %s", l < 24 ? (int)(24 - l) : 0, "", what);
            putchar('\n');
        }
        if (k == 8 && !strncasecmp(p, "STARTTLS", 8)) starttls = 1;
        p += l + (p[l] == '\n');
    }
    if (size_given && size)
        printf("Maximum message size: %llu bytes (%.2f MiB)\n", size, (double)size / 1048576.0);
    else if (size_given)
        printf("Maximum message size: no fixed limit (SIZE 0)\n");
    printf("Authentication: ");
    put_printable(auth ? auth : "none", auth ? authlen : 4);
    putchar('\n');
    if (!tls && starttls)
        printf("(A server may offer more, or other, mechanisms after STARTTLS.)\n");
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

static int batch_next(size_t index, mw_smtp_msg *m, void *ud)
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

static void batch_done(size_t index, int rc, const mw_smtp_result *r, const mw_error *err, void *ud)
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
    if (e && !b->rc) json_tx_error(e, rc, r, err, b->files[b->name[index]]); /* the first */
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
    /* MAILWIRE_ENGINE (engine.h): never a quiet fallback to blocking. */
    int engine = mw_cli_engine("smtp");
    if (engine < 0) return EX_USAGE_;
    if (engine == MW_CLI_ENGINE_LOOP) {
        fprintf(stderr, "mailwire smtp: not on the loop engine yet: mailwire smtp runs blocking "
                        "only\n");
        return EX_UNAVAILABLE_;
    }
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
        if (!sub && (!strcmp(a, "send") || !strcmp(a, "capa") || !strcmp(a, "serverinfo"))) {
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
    } else if (!strcmp(sub, "serverinfo")) {
        rc = cmd_serverinfo(&c, s);
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
            if (!b.rc) {
                char m[300];
                snprintf(m, sizeof m, "%zu message%s not sent: the connection was lost", b.ntodo,
                         b.ntodo == 1 ? "" : "s");
                mw_cli_json_error(EX_TEMPFAIL_, 0, NULL, m);
            }
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
