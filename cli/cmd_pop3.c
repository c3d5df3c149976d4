/* mailwire pop3 [OPTIONS] COMMAND [ARGS]: one POP3 session — connect, log
 * in, COMMAND, QUIT.  Uses only the public API. */
#include "commands.h"
#include "connopts.h"
#include "engine.h"
#include "pop3_cli.h"
#include "oauth_cli.h"

#include "mailwire/pop3.h"
#include "mailwire/sasl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs("usage: mailwire pop3 [OPTIONS] COMMAND [ARGS]\n"
          "commands:\n"
          "  stat                  COUNT OCTETS\n"
          "  list [N]              N SIZE lines\n"
          "  uidl [N]              N UID lines\n"
          "  top N LINES           the header and LINES lines of the body\n"
          "  retr N                the message on stdout, as the server holds it\n"
          "  retr RANGE -o DIR     one file per message, DIR/N.eml\n"
          "                        (RANGE: N, A-B, all, next)\n"
          "  dele N|RANGE          mark for deletion (applied at QUIT)\n"
          "  last                  the highest message number accessed (old servers)\n"
          "  capa                  the server's capabilities\n"
          "  noop                  nothing; checks the session\n"
          "  serverinfo            greeting, TLS details, capabilities before login\n"
          "                        (no login, no password asked)\n"
          "pop3 options:\n"
          "  -o DIR                directory for retr RANGE\n"
          "  --msex                end commands in a bare LF (old Exchange)\n"
          "  --retr-mode MODE      retr (default), list or slow: how sizes are learned\n"
          "  --no-pipelining       one command at a time even when PIPELINING is offered\n",
          f);
    mw_cli_conn_usage(f);
}

int mw_cli_pop3_report_err(const mw_error *e, int rc)
{
    const char *msg = e && e->message[0] ? e->message : mw_strerror(rc);
    fprintf(stderr, "mailwire pop3: %s", msg);
    if (e && e->command[0] && !strstr(msg, e->command))
        fprintf(stderr, " (command: %s)", e->command);
    fputc('\n', stderr);
    mw_cli_json_error(mw_cli_exit_code(rc), rc, e, NULL);
    return mw_cli_exit_code(rc);
}

static int report(mw_pop3 *p, int rc)
{
    return mw_cli_pop3_report_err(mw_pop3_error(p), rc);
}

int mw_cli_pop3_parse_num(const char *s, uint64_t *v)
{
    if (!s || !*s || strlen(s) > 18) return -1;
    uint64_t x = 0;
    for (const char *c = s; *c; c++) {
        if (*c < '0' || *c > '9') return -1;
        x = x * 10 + (uint64_t)(*c - '0');
    }
    *v = x;
    return 0;
}

/* RANGE: N, A-B, all, next → Tcllib start/end keywords. */
int mw_cli_pop3_range_words(const char *r, char *a, char *b, size_t n, int *has_end)
{
    *has_end = 1;
    if (!strcmp(r, "all")) {
        snprintf(a, n, "start");
        snprintf(b, n, "end");
        return 0;
    }
    if (!strcmp(r, "next")) {
        snprintf(a, n, "next");
        snprintf(b, n, "end");
        return 0;
    }
    const char *dash = strchr(r, '-');
    uint64_t x, y;
    if (!dash) {
        if (mw_cli_pop3_parse_num(r, &x) || x == 0) return -1;
        snprintf(a, n, "%s", r);
        *has_end = 0;
        return 0;
    }
    char left[32];
    size_t ll = (size_t)(dash - r);
    if (ll == 0 || ll >= sizeof left) return -1;
    memcpy(left, r, ll);
    left[ll] = '\0';
    if (mw_cli_pop3_parse_num(left, &x) || mw_cli_pop3_parse_num(dash + 1, &y) || x == 0 || y < x)
        return -1;
    snprintf(a, n, "%s", left);
    snprintf(b, n, "%s", dash + 1);
    return 0;
}

int mw_cli_pop3_stdout_sink(const char *data, size_t len, void *ud)
{
    cli_state *s = ud;
    if (fwrite(data, 1, len, s->out) != len) {
        s->write_failed = 1;
        return MW_EIO;
    }
    return 0;
}

static void json_sep(cli_state *s)
{
    if (!s->json_first) fputc(',', s->out);
    s->json_first = 0;
}

int mw_cli_pop3_file_msg(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                         void *ud)
{
    cli_state *s = ud;
    if (s->fd < 0 || s->fd_msg != msg) {
        snprintf(s->path, sizeof s->path, "%s/%llu.eml", s->outdir, (unsigned long long)msg);
        s->fd = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        s->fd_msg = msg;
        if (s->fd < 0) {
            fprintf(stderr, "mailwire pop3: cannot create %s: %s\n", s->path,
                    mw_cli_errno_text(errno));
            s->write_failed = 1;
            return MW_EIO;
        }
    }
    while (len > 0) {
        ssize_t n = write(s->fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            fprintf(stderr, "mailwire pop3: cannot write %s: %s\n", s->path,
                    mw_cli_errno_text(errno));
            s->write_failed = 1;
            return MW_EIO;
        }
        data += n;
        len -= (size_t)n;
    }
    if (info) {
        int rc = close(s->fd);
        s->fd = -1;
        if (rc) {
            fprintf(stderr, "mailwire pop3: cannot write %s: %s\n", s->path,
                    mw_cli_errno_text(errno));
            s->write_failed = 1;
            return MW_EIO;
        }
        if (info->size_mismatch)
            fprintf(stderr,
                    "mailwire pop3: warning: message %llu: the server announced %llu octets "
                    "but sent %llu\n",
                    (unsigned long long)msg, (unsigned long long)info->declared,
                    (unsigned long long)info->octets);
        if (s->json) {
            json_sep(s);
            fprintf(s->out, "{\"msg\":%llu,\"file\":", (unsigned long long)msg);
            mw_cli_json_string(s->out, s->path, strlen(s->path));
            fprintf(s->out, ",\"octets\":%llu,\"size_mismatch\":%s}",
                    (unsigned long long)info->octets, info->size_mismatch ? "true" : "false");
        } else {
            fprintf(s->out, "%s\n", s->path);
        }
    }
    return 0;
}

int mw_cli_pop3_grow_sink(const char *data, size_t len, void *ud)
{
    grow *g = ud;
    if (g->len + len > ((size_t)256 << 20)) return MW_ETOOBIG;
    if (g->len + len > g->cap) {
        size_t nc = g->cap ? g->cap : 65536;
        while (nc < g->len + len)
            nc *= 2;
        char *n = realloc(g->data, nc);
        if (!n) return MW_ENOMEM;
        g->data = n;
        g->cap = nc;
    }
    memcpy(g->data + g->len, data, len);
    g->len += len;
    return 0;
}

/* An APOP timestamp in the greeting: <...@...> (RFC 1939 §7). */
static int has_timestamp(const char *g)
{
    const char *lt = strchr(g, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    const char *at = lt ? strchr(lt, '@') : NULL;
    return gt && at && at < gt;
}

static const char nocapa[] = "no CAPA: the server predates RFC 2449";

/* serverinfo's facts (pop3_cli.h): the SASL mechanisms, USER and APOP
 * from the lines and the greeting. */
static void server_derive(mw_cli_server_facts *f)
{
    f->sasl = NULL;
    f->user = 0; /* without CAPA unknown: USER/PASS is optional in RFC 1939 §7 */
    for (size_t i = 0; i < f->nc; i++) {
        const char *l = f->lines[i];
        if (!strncasecmp(l, "SASL", 4) && (l[4] == ' ' || !l[4])) f->sasl = l[4] ? l + 5 : "";
        if (!strcasecmp(l, "USER")) f->user = 1;
    }
    f->apop = has_timestamp(f->greeting);
}

/* serverinfo with --json: one object. */
static void print_server_json(cli_state *s, const mw_cli_server_facts *f)
{
    FILE *o = s->out;
    fputs("{\"protocol\":\"pop3\",\"host\":", o);
    mw_cli_json_string(o, f->host, strlen(f->host));
    fprintf(o, ",\"port\":%u,\"greeting\":", f->port);
    mw_cli_json_string(o, f->greeting, strlen(f->greeting));
    fputs(",\"tls\":", o);
    mw_cli_print_tls_info(o, f->tls ? &f->ti : NULL, f->how, 1);
    fprintf(o, ",\"capa\":%s,\"capabilities\":[", f->capa ? "true" : "false");
    for (size_t i = 0; i < f->nc; i++) {
        if (i) fputc(',', o);
        mw_cli_json_string(o, f->lines[i], strlen(f->lines[i]));
    }
    fputs("],\"sasl\":[", o);
    int first = 1;
    for (const char *w = f->sasl; w && *w;) {
        size_t l = strcspn(w, " ");
        if (l) {
            if (!first) fputc(',', o);
            mw_cli_json_string(o, w, l);
            first = 0;
        }
        w += l;
        w += strspn(w, " ");
    }
    fprintf(o, "],\"user\":%s,\"apop\":%s",
            !f->capa  ? "null"
            : f->user ? "true"
                      : "false",
            f->apop ? "true" : "false");
    if (!f->capa) {
        fputs(",\"note\":", o);
        mw_cli_json_string(o, nocapa, strlen(nocapa));
    }
    fputs("}\n", o);
}

/* serverinfo as text, as mpop --serverinfo prints it. */
static void print_server_text(cli_state *s, const mw_cli_server_facts *f)
{
    FILE *o = s->out;
    fprintf(o, "POP3 server at %s port %u\nGreeting: +OK %s\n", f->host, f->port, f->greeting);
    mw_cli_print_tls_info(o, f->tls ? &f->ti : NULL, f->how, 0);
    if (!f->capa) {
        fprintf(o, "Capabilities: %s\n", nocapa);
    } else {
        fprintf(o, "Capabilities (before login%s):\n", f->tls ? ", over TLS" : "");
        for (size_t i = 0; i < f->nc; i++)
            fprintf(o, "    %s\n", f->lines[i]);
        if (f->nc == 0) fputs("    (none: CAPA gave an empty list)\n", o);
    }
    char login[700] = "";
    if (f->sasl && *f->sasl) snprintf(login, sizeof login, "SASL %.600s", f->sasl);
    if (f->user)
        snprintf(login + strlen(login), sizeof login - strlen(login), "%sUSER", *login ? ", " : "");
    if (f->apop)
        snprintf(login + strlen(login), sizeof login - strlen(login), "%sAPOP", *login ? ", " : "");
    if (!f->capa)
        fprintf(o, "Login: %s%s(USER/PASS not known without CAPA)\n", login, *login ? " " : "");
    else
        fprintf(o, "Login: %s\n", *login ? login : "none offered");
}

void mw_cli_pop3_print_server(cli_state *s, mw_cli_server_facts *f)
{
    f->how = s->conn.tls == MW_CLI_TLS_IMPLICIT ? "implicit" : "STLS";
    server_derive(f);
    if (s->json)
        print_server_json(s, f);
    else
        print_server_text(s, f);
}

/* serverinfo: what the server shows before login (after STLS when TLS is
 * on), as mpop --serverinfo does.  A server that refuses CAPA (RFC 2449
 * came after it) is no error.  When the open learned no line, CAPA is
 * asked again: mw_pop3 says no more than "no lines", and the answer tells
 * a refusal from an empty list (the loop engine asks the same:
 * MW_LOOP_POP3_CAPA_IF_NONE). */
static int serverinfo(mw_pop3 *p, cli_state *s)
{
    mw_cli_server_facts f;
    memset(&f, 0, sizeof f);
    mw_pop3_config cf;
    mw_pop3_config_get(p, &cf);
    f.host = cf.host;
    f.port = cf.port;
    f.greeting = cf.greeting;
    f.tls = mw_pop3_tls_info(p, &f.ti) == 0;
    f.capa = 1;
    if (mw_pop3_capa_count(p) == 0) {
        int rc = mw_pop3_capa(p);
        if (rc == MW_EUNSUPPORTED || rc == MW_ESERVER) {
            f.capa = 0;
            rc = 0;
        }
        if (rc) return rc;
    }
    f.nc = mw_pop3_capa_count(p);
    const char **lines = calloc(f.nc ? f.nc : 1, sizeof *lines);
    if (!lines) return MW_ENOMEM;
    for (size_t i = 0; i < f.nc; i++)
        lines[i] = mw_pop3_capa_line(p, i);
    f.lines = lines;
    mw_cli_pop3_print_server(s, &f);
    free(lines);
    return 0;
}

/* ---- the output of each command (pop3_cli.h) ------------------------------ */

void mw_cli_pop3_print_stat(cli_state *s, uint64_t n, uint64_t m)
{
    if (s->json)
        fprintf(s->out, "{\"count\":%llu,\"octets\":%llu}\n", (unsigned long long)n,
                (unsigned long long)m);
    else
        fprintf(s->out, "%llu %llu\n", (unsigned long long)n, (unsigned long long)m);
}

void mw_cli_pop3_print_entry(cli_state *s, int uidl, uint64_t n, uint64_t m, const char *uid)
{
    FILE *o = s->out;
    if (s->json) {
        fprintf(o, "{\"msg\":%llu,", (unsigned long long)n);
        if (uidl) {
            fputs("\"uid\":", o);
            mw_cli_json_string(o, uid, strlen(uid));
        } else {
            fprintf(o, "\"size\":%llu", (unsigned long long)m);
        }
        fputs("}\n", o);
    } else if (uidl) {
        fprintf(o, "%llu %s\n", (unsigned long long)n, uid);
    } else {
        fprintf(o, "%llu %llu\n", (unsigned long long)n, (unsigned long long)m);
    }
}

void mw_cli_pop3_print_uidl(cli_state *s, const mw_pop3_uid *u, size_t cnt)
{
    FILE *o = s->out;
    if (s->json) fputc('[', o);
    for (size_t i = 0; i < cnt; i++) {
        if (s->json) {
            fprintf(o, "%s{\"msg\":%llu,\"uid\":", i ? "," : "", (unsigned long long)u[i].msg);
            mw_cli_json_string(o, u[i].uid, strlen(u[i].uid));
            fputc('}', o);
        } else {
            fprintf(o, "%llu %s\n", (unsigned long long)u[i].msg, u[i].uid);
        }
    }
    if (s->json) fputs("]\n", o);
}

void mw_cli_pop3_print_list(cli_state *s, const mw_pop3_listing *l, size_t cnt)
{
    FILE *o = s->out;
    if (s->json) fputc('[', o);
    for (size_t i = 0; i < cnt; i++) {
        if (s->json)
            fprintf(o, "%s{\"msg\":%llu,\"size\":%llu}", i ? "," : "", (unsigned long long)l[i].msg,
                    (unsigned long long)l[i].size);
        else
            fprintf(o, "%llu %llu\n", (unsigned long long)l[i].msg, (unsigned long long)l[i].size);
    }
    if (s->json) fputs("]\n", o);
}

/* After a RETR or TOP: the JSON record (g: the message, NULL when it went
 * to stdout as it came) and a size that was not as announced. */
void mw_cli_pop3_print_message(cli_state *s, int top, uint64_t n, const grow *g,
                               const mw_pop3_retr_info *info)
{
    FILE *o = s->out;
    if (g) {
        fprintf(o, "{\"msg\":%llu,\"octets\":%zu,", (unsigned long long)n, g->len);
        if (!top) fprintf(o, "\"size_mismatch\":%s,", info->size_mismatch ? "true" : "false");
        fputs("\"data\":", o);
        mw_cli_json_string(o, g->data ? g->data : "", g->len);
        fputs("}\n", o);
    }
    if (info->size_mismatch)
        fprintf(stderr,
                "mailwire pop3: warning: message %llu: the server announced %llu octets but "
                "sent %llu\n",
                (unsigned long long)n, (unsigned long long)info->declared,
                (unsigned long long)info->octets);
}

void mw_cli_pop3_print_capa(cli_state *s, const char *const *lines, size_t c)
{
    FILE *o = s->out;
    if (s->json) fputc('[', o);
    for (size_t i = 0; i < c; i++) {
        if (s->json) {
            if (i) fputc(',', o);
            mw_cli_json_string(o, lines[i], strlen(lines[i]));
        } else {
            fprintf(o, "%s\n", lines[i]);
        }
    }
    if (s->json) fputs("]\n", o);
}

/* list|uidl [N]: one entry, or the whole listing. */
static int cmd_listing(mw_pop3 *p, cli_state *s, int uidl, int argc, char **argv)
{
    int rc = 0;
    uint64_t n = 0, m = 0;
    if (argc > 2 || (argc == 2 && (mw_cli_pop3_parse_num(argv[1], &n) || n == 0))) return USAGE_ERR;
    if (argc == 2) {
        char uid[71];
        rc = uidl ? mw_pop3_uidl_one(p, n, uid) : mw_pop3_list_one(p, n, &m);
        if (rc) return rc;
        mw_cli_pop3_print_entry(s, uidl, n, m, uid);
        return 0;
    }
    size_t cnt = 0;
    if (uidl) {
        mw_pop3_uid *u;
        if ((rc = mw_pop3_uidl(p, &u, &cnt))) return rc;
        mw_cli_pop3_print_uidl(s, u, cnt);
        mw_pop3_uidl_free(u);
    } else {
        mw_pop3_listing *l;
        if ((rc = mw_pop3_list(p, &l, &cnt))) return rc;
        mw_cli_pop3_print_list(s, l, cnt);
        mw_pop3_list_free(l);
    }
    return 0;
}

/* top N LINES | retr N: one message, on stdout as it comes or in a JSON
 * record. */
static int cmd_message(mw_pop3 *p, cli_state *s, int top, int argc, char **argv)
{
    int rc;
    uint64_t n = 0, m = 0;
    if ((top && argc != 3) || mw_cli_pop3_parse_num(argv[1], &n) || n == 0 ||
        (top && mw_cli_pop3_parse_num(argv[2], &m)))
        return USAGE_ERR;
    mw_pop3_retr_info info;
    memset(&info, 0, sizeof info);
    if (s->json) {
        grow g = {NULL, 0, 0};
        rc = top ? mw_pop3_top(p, n, m, mw_cli_pop3_grow_sink, &g)
                 : mw_pop3_retr(p, n, mw_cli_pop3_grow_sink, &g, &info);
        if (!rc) mw_cli_pop3_print_message(s, top, n, &g, &info);
        free(g.data);
    } else {
        rc = top ? mw_pop3_top(p, n, m, mw_cli_pop3_stdout_sink, s)
                 : mw_pop3_retr(p, n, mw_cli_pop3_stdout_sink, s, &info);
        if (!rc) mw_cli_pop3_print_message(s, top, n, NULL, &info);
    }
    return rc;
}

/* retr RANGE -o DIR | dele N|RANGE: a range, one file a message or marked
 * for deletion. */
static int cmd_range(mw_pop3 *p, cli_state *s, int dele, int argc, char **argv)
{
    FILE *o = s->out;
    int rc;
    char a[32], b[32];
    int has_end;
    if (argc != 2 || mw_cli_pop3_range_words(argv[1], a, b, sizeof a, &has_end)) return USAGE_ERR;
    if (!dele && !s->outdir) {
        fprintf(stderr, "mailwire pop3: retr of a range needs -o DIR\n");
        return USAGE_ERR;
    }
    uint64_t first, last;
    if ((rc = mw_pop3_range(p, a, has_end ? b : NULL, &first, &last))) return rc;
    if (!has_end && first > mw_pop3_count(p)) {
        /* A single number over the count: let the library say so. */
        return dele ? mw_pop3_dele(p, first)
                    : mw_pop3_retr(p, first, mw_cli_pop3_stdout_sink, s, NULL);
    }
    if (s->json) fputs(dele ? "{\"deleted\":[" : "[", o);
    if (dele) {
        rc = mw_pop3_dele_range(p, first, last);
        if (s->json && !rc)
            for (uint64_t i = first; i <= last; i++)
                fprintf(o, "%s%llu", i == first ? "" : ",", (unsigned long long)i);
    } else {
        s->json_first = 1;
        rc = mw_pop3_retr_range(p, first, last, -1, mw_cli_pop3_file_msg, s);
        if (s->fd >= 0) {
            /* Stopped mid-message: no partial file is left behind. */
            close(s->fd);
            s->fd = -1;
            unlink(s->path);
        }
    }
    if (s->json) fputs(dele ? "]}\n" : "]\n", o);
    return rc;
}

/* capa: the capabilities, asked again (at most 128 lines). */
static int cmd_capa(mw_pop3 *p, cli_state *s)
{
    int rc = mw_pop3_capa(p);
    if (rc) return rc;
    size_t c = mw_pop3_capa_count(p);
    const char *lines[128];
    for (size_t i = 0; i < c && i < 128; i++)
        lines[i] = mw_pop3_capa_line(p, i);
    mw_cli_pop3_print_capa(s, lines, c < 128 ? c : 128);
    return 0;
}

/* The command argv[0..argc) on the open session: 0, a library code, or
 * USAGE_ERR. */
static int run_command(mw_pop3 *p, cli_state *s, int argc, char **argv)
{
    const char *cmd = argv[0];
    FILE *o = s->out;
    int rc = 0;
    uint64_t n = 0, m = 0;
    if (!strcmp(cmd, "list") || !strcmp(cmd, "uidl"))
        return cmd_listing(p, s, cmd[0] == 'u', argc, argv);
    if (!strcmp(cmd, "top") || (!strcmp(cmd, "retr") && argc == 2 && !s->outdir))
        return cmd_message(p, s, cmd[0] == 't', argc, argv);
    if (!strcmp(cmd, "retr") || !strcmp(cmd, "dele"))
        return cmd_range(p, s, cmd[0] == 'd', argc, argv);
    if (argc != 1) return USAGE_ERR; /* the rest take no arguments */
    if (!strcmp(cmd, "stat")) {
        if ((rc = mw_pop3_stat(p, &n, &m))) return rc;
        mw_cli_pop3_print_stat(s, n, m);
    } else if (!strcmp(cmd, "last")) {
        if ((rc = mw_pop3_last(p, &n))) return rc;
        fprintf(o, s->json ? "{\"last\":%llu}\n" : "%llu\n", (unsigned long long)n);
    } else if (!strcmp(cmd, "capa")) {
        return cmd_capa(p, s);
    } else if (!strcmp(cmd, "serverinfo")) {
        return serverinfo(p, s);
    } else if (!strcmp(cmd, "noop")) {
        if ((rc = mw_pop3_noop(p))) return rc;
        if (s->json) fputs("{\"ok\":true}\n", o);
    } else {
        return USAGE_ERR;
    }
    return rc;
}

/* mw_cmd_pop3's step 1: the options and the command words into rest;
 * returns -1 to go on, else the exit status (--help: EX_OK_). */
static int parse_args(cli_state *s, mw_pop3_opts *o, int argc, char **argv, char **rest, int *nrest)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int r = *nrest == 0 || a[0] == '-' ? mw_cli_conn_option(&s->conn, argc, argv, &i) : 0;
        if (r < 0) return EX_USAGE_;
        if (r > 0) continue;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return EX_OK_;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mailwire pop3: -o needs a directory\n");
                return EX_USAGE_;
            }
            s->outdir = argv[++i];
        } else if (!strcmp(a, "--msex")) {
            o->msex = 1;
        } else if (!strcmp(a, "--no-pipelining")) {
            o->pipelining = 0;
        } else if (!strcmp(a, "--retr-mode")) {
            const char *v = i + 1 < argc ? argv[++i] : "";
            if (!strcmp(v, "retr"))
                o->retr_mode = MW_POP3_RETR_RETR;
            else if (!strcmp(v, "list"))
                o->retr_mode = MW_POP3_RETR_LIST;
            else if (!strcmp(v, "slow"))
                o->retr_mode = MW_POP3_RETR_SLOW;
            else {
                fprintf(stderr, "mailwire pop3: --retr-mode wants retr, list or slow\n");
                return EX_USAGE_;
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "mailwire pop3: unknown option '%s'\n", a);
            return EX_USAGE_;
        } else {
            rest[(*nrest)++] = argv[i];
        }
    }
    return -1;
}

/* mw_cmd_pop3's step 2: a known command; returns -1 to go on, else the
 * exit status. */
static int check_command(int nrest, char **rest)
{
    if (nrest == 0) {
        usage(stderr);
        return EX_USAGE_;
    }
    static const char *known[] = {"stat", "list", "uidl", "top",        "retr", "dele",
                                  "last", "capa", "noop", "serverinfo", NULL};
    int ok = 0;
    for (int k = 0; known[k]; k++)
        ok |= !strcmp(rest[0], known[k]);
    if (!ok) {
        fprintf(stderr, "mailwire pop3: unknown command '%s'\n", rest[0]);
        return EX_USAGE_;
    }
    return -1;
}

/* mw_cmd_pop3's step 3: the login method from --auth (none for
 * serverinfo), the user, and the password unless EXTERNAL; returns 0 or
 * the exit status. */
static int choose_login(cli_state *s, mw_pop3_opts *o, int info)
{
    const char *auth = s->conn.auth;
    if (!strcmp(auth, "auto"))
        o->auth = MW_POP3_AUTH_AUTO;
    else if (!strcmp(auth, "user"))
        o->auth = MW_POP3_AUTH_USER;
    else if (!strcmp(auth, "apop"))
        o->auth = MW_POP3_AUTH_APOP;
    else if (mw_sasl_mechanism_supported(auth)) {
        o->auth = MW_POP3_AUTH_SASL;
        o->sasl_mechs = auth;
    } else {
        fprintf(stderr,
                "mailwire pop3: --auth wants auto, user, apop or a SASL mechanism, "
                "not '%s'\n",
                auth);
        return EX_USAGE_;
    }
    if (info) o->auth = MW_POP3_AUTH_NONE;
    if (!info && !s->conn.user && strcasecmp(auth, "EXTERNAL")) {
        fprintf(stderr, "mailwire pop3: no user: give --user or a ~/.netrc login for %s\n",
                s->conn.host);
        return EX_USAGE_;
    }
    if (!info && strcasecmp(auth, "EXTERNAL")) return mw_cli_conn_password(&s->conn);
    return 0;
}

/* mw_cmd_pop3's step 4: the session options from the connection options
 * (t and n filled here, as o points to them). */
static void fill_opts(cli_state *s, mw_pop3_opts *o, mw_tls_opts *t, mw_net_opts *n, int info)
{
    mw_cli_conn_tls_opts(&s->conn, t);
    mw_cli_conn_net_opts(&s->conn, n);
    o->port = s->conn.port;
    o->tls = s->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
             : s->conn.tls == MW_CLI_TLS_NONE   ? MW_TLS_NONE
                                                : MW_TLS_STARTTLS;
    o->tls_opts = t;
    o->net = n;
    o->user = info ? NULL : s->conn.user;
    o->password = info ? NULL : s->conn.password;
    if (mw_cli_auth_is_token(s->conn.auth)) {
        o->token = o->password; /* the password sources hold the token */
        o->password = NULL;
    }
    o->allow_plaintext = s->conn.allow_plaintext;
    o->trace = s->conn.trace_fn;
    o->trace_userdata = s->conn.trace_ud;
}

/* mw_cmd_pop3's step 5: the open and login into *pp; a token the server
 * refused is refreshed once (cli/cmd_oauth.c).  Returns -1 to go on, else
 * the exit status. */
static int open_session(cli_state *s, mw_pop3_opts *o, const mw_account *oauth_acct, mw_pop3 **pp)
{
    mw_error oe;
    int rc = mw_pop3_open(pp, s->conn.host, o, &oe);
    if (rc == MW_EAUTH && o->token && oauth_acct) {
        mw_pop3_free(*pp);
        *pp = NULL;
        int ex = mw_cli_oauth_conn_token(&s->conn, 1);
        if (ex) return ex;
        o->token = s->conn.password;
        rc = mw_pop3_open(pp, s->conn.host, o, &oe);
    }
    if (rc) return mw_cli_pop3_report_err(&oe, rc);
    return -1;
}

/* mw_cmd_pop3's step 6: the command, then QUIT only after its success
 * (deletions are applied by QUIT, RFC 1939 §6); frees p, returns the exit
 * status. */
static int run_and_quit(mw_pop3 *p, cli_state *s, int nrest, char **rest)
{
    int ex = EX_OK_;
    int rc = run_command(p, s, nrest, rest);
    if (rc == USAGE_ERR) {
        fprintf(stderr, "mailwire pop3: bad arguments for '%s'\n", rest[0]);
        usage(stderr);
        mw_pop3_free(p); /* no QUIT: nothing is applied */
        return EX_USAGE_;
    }
    if (rc) {
        ex = s->write_failed ? EX_IOERR_ : report(p, rc);
        /* Deletions are applied only by a QUIT after success. */
        mw_pop3_free(p);
        return ex;
    }
    if (fflush(s->out) != 0) {
        fprintf(stderr, "mailwire pop3: cannot write output: %s\n", mw_cli_errno_text(errno));
        mw_pop3_free(p);
        return EX_IOERR_;
    }
    int confirmed = 0;
    rc = mw_pop3_quit(p, &confirmed);
    if (rc && !strcmp(rest[0], "dele")) {
        /* The deletion is only real once QUIT is confirmed. */
        ex = report(p, rc);
    } else if (rc) {
        fprintf(stderr, "mailwire pop3: warning: QUIT not confirmed: %s\n",
                mw_pop3_error(p)->message);
    }
    mw_pop3_free(p);
    return ex;
}

int mw_cmd_pop3(int argc, char **argv)
{
    cli_state s;
    memset(&s, 0, sizeof s);
    s.fd = -1;
    s.out = stdout;
    mw_cli_conn_init(&s.conn, "pop3", 110, 995);
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    int engine = mw_cli_engine("pop3");
    if (engine < 0) return EX_USAGE_;
    char **rest = calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    if (!rest) return EX_SOFTWARE_;
    int ex = parse_args(&s, &o, argc, argv, rest, &nrest);
    if (ex >= 0 || (ex = check_command(nrest, rest)) >= 0) goto done;
    if (!mw_cli_pop3_args_ok(&s, nrest, rest)) {
        fprintf(stderr, "mailwire pop3: bad arguments for '%s'\n", rest[0]);
        usage(stderr);
        ex = EX_USAGE_;
        goto done;
    }
    if ((ex = mw_cli_conn_finish(&s.conn))) goto done;
    s.json = s.conn.json;
    int info = !strcmp(rest[0], "serverinfo"); /* no login at all */
    if ((ex = choose_login(&s, &o, info))) goto done;
    mw_tls_opts t;
    mw_net_opts n;
    fill_opts(&s, &o, &t, &n, info);

    const mw_account *oauth_acct = mw_cli_oauth_account(&s.conn);
    if (oauth_acct && mw_cli_oauth_pop3_two_step(oauth_acct)) o.sasl_ir = 0;
    if (engine == MW_CLI_ENGINE_LOOP) {
        ex = mw_cli_pop3_loop(&s, &o, nrest, rest);
        goto done;
    }
    mw_pop3 *p = NULL;
    if ((ex = open_session(&s, &o, oauth_acct, &p)) >= 0) goto done;
    ex = run_and_quit(p, &s, nrest, rest);
done:
    free(rest);
    mw_cli_conn_free(&s.conn);
    return ex;
}
