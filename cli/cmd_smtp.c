/* mailwire smtp [OPTIONS] send|capa|serverinfo: SMTP submission from the
 * command line, public API only.  The options and session opening it
 * shares with `mailwire send` are in smtp_cli.c. */
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

static void json_str(const char *s)
{
    mw_cli_json_string(stdout, s ? s : "", s ? strlen(s) : 0);
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

static int cmd_capa(smtp_cli *c, const mw_smtp *s)
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
/* What serverinfo shows, gathered from the session. */
typedef struct srvinfo {
    const char *srv, *g, *ehlo, *kws, *auth, *how;
    unsigned port;
    int esmtp, tls, size_given;
    size_t namelen, authlen;
    unsigned long long size;
    mw_tls_info ti;
} srvinfo;

static const char noesmtp[] = "the server does not speak ESMTP (EHLO refused, HELO "
                              "accepted): no extensions";

static void srvinfo_get(srvinfo *v, const smtp_cli *c, const mw_smtp *s)
{
    memset(v, 0, sizeof *v);
    v->srv = mw_smtp_server(s, &v->port);
    v->g = mw_smtp_greeting(s);
    v->esmtp = mw_smtp_esmtp(s);
    v->ehlo = *mw_smtp_ehlo_text(s, 1) ? mw_smtp_ehlo_text(s, 1) : mw_smtp_ehlo_text(s, 0);
    v->tls = mw_smtp_tls_info(s, &v->ti) == 0;
    v->how = c->conn.tls == MW_CLI_TLS_IMPLICIT ? "implicit" : "STARTTLS";
    /* The first line of the EHLO reply is the server's name; then keywords. */
    const char *nl = strchr(v->ehlo, '\n');
    v->kws = v->esmtp && nl ? nl + 1 : "";
    v->namelen = nl ? (size_t)(nl - v->ehlo) : strlen(v->ehlo);
    for (const char *p = v->kws; *p;) {
        size_t l = strcspn(p, "\n");
        size_t k = ehlo_kw(p, l);
        if (k == 4 && !strncasecmp(p, "SIZE", 4)) {
            v->size_given = 1;
            v->size = l > 5 ? strtoull(p + 5, NULL, 10) : 0;
        }
        if (k == 4 && !strncasecmp(p, "AUTH", 4) && !v->auth) {
            v->auth = l > 5 ? p + 5 : "";
            v->authlen = l > 5 ? l - 5 : 0;
        }
        p += l + (p[l] == '\n');
    }
}

/* The items of p[0..n) split at sep, as JSON strings (empty items left
 * out). */
static void json_items(const char *p, size_t n, char sep)
{
    char set[2] = {sep, '\0'};
    int first = 1;
    for (size_t i = 0; p && i < n;) {
        size_t l = strcspn(p + i, set);
        if (l > n - i) l = n - i;
        if (l) {
            printf("%s", first ? "" : ",");
            mw_cli_json_string(stdout, p + i, l);
            first = 0;
        }
        i += l + 1;
    }
}

static void srvinfo_json(const srvinfo *v)
{
    printf("{\"protocol\":\"smtp\",\"host\":");
    json_str(v->srv);
    printf(",\"port\":%u,\"greeting\":", v->port);
    json_str(v->g);
    printf(",\"esmtp\":%s,\"name\":", v->esmtp ? "true" : "false");
    mw_cli_json_string(stdout, v->ehlo, v->namelen);
    printf(",\"tls\":");
    mw_cli_print_tls_info(stdout, v->tls ? &v->ti : NULL, v->how, 1);
    printf(",\"capabilities\":[");
    json_items(v->kws, strlen(v->kws), '\n');
    printf("],\"size\":");
    if (v->size_given)
        printf("%llu", v->size);
    else
        printf("null");
    printf(",\"auth\":[");
    json_items(v->auth, v->authlen, ' ');
    printf("]");
    if (!v->esmtp) {
        printf(",\"note\":");
        json_str(noesmtp);
    }
    printf("}\n");
}

/* The EHLO keywords, one a line with what each means; 1 when STARTTLS is
 * among them. */
static int print_keywords(const char *kws)
{
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
    return starttls;
}

static void srvinfo_text(const srvinfo *v)
{
    printf("SMTP server at %s port %u\nGreeting: 220 ", v->srv, v->port);
    for (const char *p = v->g; *p; p++) { /* a multi-line greeting, one line each */
        if (*p == '\n')
            fputs("\n              ", stdout);
        else
            putchar(*p);
    }
    putchar('\n');
    mw_cli_print_tls_info(stdout, v->tls ? &v->ti : NULL, v->how, 0);
    if (!v->esmtp) {
        printf("Capabilities: %s\n", noesmtp);
        return;
    }
    printf("EHLO name: ");
    put_printable(v->ehlo, v->namelen);
    putchar('\n');
    printf("Capabilities (before login%s):\n", v->tls ? ", over TLS" : "");
    int starttls = print_keywords(v->kws);
    if (v->size_given && v->size)
        printf("Maximum message size: %llu bytes (%.2f MiB)\n", v->size,
               (double)v->size / 1048576.0);
    else if (v->size_given)
        printf("Maximum message size: no fixed limit (SIZE 0)\n");
    printf("Authentication: ");
    put_printable(v->auth ? v->auth : "none", v->auth ? v->authlen : 4);
    putchar('\n');
    if (!v->tls && starttls)
        printf("(A server may offer more, or other, mechanisms after STARTTLS.)\n");
}

static int cmd_serverinfo(smtp_cli *c, const mw_smtp *s)
{
    srvinfo v;
    srvinfo_get(&v, c, s);
    if (c->conn.json)
        srvinfo_json(&v);
    else
        srvinfo_text(&v);
    return 0;
}

/* `smtp send FILE…` as a batch: the library asks for the next file while
 * the server is still answering the previous one. */
typedef struct batch {
    smtp_cli *c;
    mw_smtp *s;       /* the blocking session, or NULL on the loop engine: */
    mw_loop_job *job; /* the loop's batch job, during its callbacks */
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
            fprintf(stderr, "mailwire smtp: cannot read %s: %s\n", path, mw_cli_errno_text(errno));
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
    int alive = b->s ? mw_smtp_alive(b->s) : mw_loop_smtp_alive(b->job);
    if (rc && b->may_retry && lost_with_connection(rc) && !alive) {
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

/* The loop engine's batch job calls the same two (engine.h). */
static int loop_next(mw_loop_job *job, size_t index, mw_smtp_msg *m, void *ud)
{
    (void)job;
    return batch_next(index, m, ud);
}

static void loop_done(mw_loop_job *job, size_t index, int rc, const mw_smtp_result *r,
                      const mw_error *err, void *ud)
{
    ((batch *)ud)->job = job;
    batch_done(index, rc, r, err, ud);
}

/* `smtp send`'s own options and files. */
typedef struct send_args {
    const char *from;
    const char *to[MAX_LIST * 8];
    size_t nto;
    char **files;
    size_t nfiles;
    int all_or_nothing, no_msg_pipelining;
} send_args;

static void not_sent(batch *b);

/* After a batch ended with the connection gone: the files left queued for
 * the next connection, which is made when this one got a message through
 * (or one of the two before did).  1: go on with *sp; 0: done (the files
 * left reported as not sent). */
static int after_lost(batch *b, mw_smtp **sp, int *fruitless, size_t sent_before)
{
    /* Left: those lost with the connection, then those not taken. */
    size_t left = b->nretry;
    for (size_t k = b->taken; k < b->ntodo; k++)
        b->retry[left++] = b->todo[k];
    memcpy(b->todo, b->retry, left * sizeof *b->todo);
    b->ntodo = left;
    if (left == 0) return 0;
    *fruitless = b->sent > sent_before ? 0 : *fruitless + 1;
    if (sp) {
        mw_smtp_free(*sp);
        *sp = NULL;
    }
    if (b->may_retry) {
        if (b->shown) fputs("\r\033[K", stderr);
        b->shown = 0;
        fprintf(stderr,
                "mailwire smtp: the connection was lost; connecting again for the %zu "
                "message%s left\n",
                left, left == 1 ? "" : "s");
        if (!sp) return 1; /* the loop engine: the next round's job connects */
        if (smtp_open(b->c, sp, 1) == 0) return 1;
    }
    not_sent(b);
    return 0;
}

/* The files left after a lost connection are not sent. */
static void not_sent(batch *b)
{
    for (size_t k = 0; k < b->ntodo; k++)
        fprintf(stderr, "mailwire smtp: %s: not sent (connection lost)\n", b->files[b->todo[k]]);
    if (!b->rc) {
        char m[300];
        snprintf(m, sizeof m, "%zu message%s not sent: the connection was lost", b->ntodo,
                 b->ntodo == 1 ? "" : "s");
        mw_cli_json_error(EX_TEMPFAIL_, 0, NULL, m);
    }
    if (!b->rc) b->rc = EX_TEMPFAIL_;
}

/* The rounds of send_files on the loop engine: a batch job for the files
 * left, connected as smtp_open would (failover), until one lasted to its
 * QUIT; the first failing to open is the command's failure. */
static void loop_rounds(batch *b, const send_args *sa)
{
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    cb.next = loop_next;
    cb.done = loop_done;
    cb.userdata = b;
    cb.no_message_pipelining = sa->no_msg_pipelining;
    int fruitless = 0;
    for (int round = 0; b->ntodo > 0; round++) {
        b->job = NULL;
        b->taken = 0;
        b->nretry = 0;
        b->may_retry = fruitless < 2;
        size_t sent_before = b->sent;
        int ready = 0;
        mw_error err;
        mw_error_clear(&err);
        int rc = smtp_loop_run(b->c, &cb, 1, &ready, &err);
        if (rc || ready <= 0) {
            int ex = smtp_loop_failed(b->c, rc ? rc : err.code, &err);
            if (round == 0)
                b->rc = ex;
            else
                not_sent(b);
            return;
        }
        if (err.code == MW_ENOMEM && !b->rc) b->rc = EX_SOFTWARE_;
        if (err.code == 0) return; /* the session lasted to its QUIT */
        if (!after_lost(b, NULL, &fruitless, sent_before)) return;
    }
}

/* Every file over the one connection: one login for the batch, and each
 * file opened while the server answers the previous.  A connection lost
 * (or closed by the server: a per-connection message limit) is made again
 * for the files left, as long as each connection gets at least one
 * message through (3 tries).  Returns the exit status. */
static int send_files(smtp_cli *c, mw_smtp **sp, const send_args *sa)
{
    size_t nfiles = sa->nfiles;
    int rc = 0;
    batch b = {.c = c,
               .files = sa->files,
               .nfiles = nfiles,
               .from = sa->from,
               .to = sa->to,
               .nto = sa->nto,
               .atleastone = !sa->all_or_nothing};
    b.tty = !c->conn.json && nfiles > 1 && isatty(2);
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
    if (!sp) loop_rounds(&b, sa); /* the loop engine */
    while (sp && b.ntodo > 0) {
        if (sa->no_msg_pipelining) mw_smtp_set_message_pipelining(*sp, 0);
        b.s = *sp;
        b.taken = 0;
        b.nretry = 0;
        b.may_retry = fruitless < 2;
        size_t sent_before = b.sent;
        int brc = mw_smtp_send_batch(*sp, batch_next, batch_done, &b);
        if (brc == MW_ENOMEM && !b.rc) b.rc = EX_SOFTWARE_;
        if (mw_smtp_alive(*sp)) break;
        if (!after_lost(&b, sp, &fruitless, sent_before)) break;
    }
    free(b.fd);
    free(b.name);
    free(b.todo);
    free(b.retry);
    if (b.tty && b.done) batch_progress(&b, 1);
    if (b.rc && !rc) rc = b.rc;
    return rc;
}

/* An option of `smtp send`: 1 taken, 0 not one, -1 usage error. */
static int send_option(send_args *sa, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if ((!strcmp(a, "--from") || !strcmp(a, "--to")) && *i + 1 < argc) {
        if (a[2] == 'f') {
            sa->from = argv[++*i];
        } else if (sa->nto < sizeof sa->to / sizeof sa->to[0]) {
            sa->to[sa->nto++] = argv[++*i];
        } else {
            fprintf(stderr, "mailwire smtp: too many --to\n");
            return -1;
        }
        return 1;
    }
    if (!strcmp(a, "--all-or-nothing")) {
        sa->all_or_nothing = 1;
        return 1;
    }
    if (!strcmp(a, "--no-message-pipelining")) {
        sa->no_msg_pipelining = 1;
        return 1;
    }
    return 0;
}

/* capa and serverinfo on the loop: a batch of no message, whose next
 * callback (asked once the session is ready) prints the session. */
typedef struct show {
    smtp_cli *c;
    const char *sub;
    int rc;
} show;

static int show_next(mw_loop_job *job, size_t index, mw_smtp_msg *m, void *ud)
{
    (void)index;
    (void)m;
    show *w = ud;
    const mw_smtp *s = mw_loop_smtp_session(job);
    w->rc = !strcmp(w->sub, "capa") ? cmd_capa(w->c, s) : cmd_serverinfo(w->c, s);
    return 0;
}

static void show_done(mw_loop_job *job, size_t index, int rc, const mw_smtp_result *r,
                      const mw_error *err, void *ud)
{
    (void)job, (void)index, (void)rc, (void)r, (void)err, (void)ud; /* no message */
}

static int show_on_loop(smtp_cli *c, const char *sub)
{
    show w = {c, sub, 0};
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    cb.next = show_next;
    cb.done = show_done;
    cb.userdata = &w;
    int ready = 0;
    mw_error err;
    mw_error_clear(&err);
    int rc = smtp_loop_run(c, &cb, 0, &ready, &err);
    if (rc || ready <= 0) return smtp_loop_failed(c, rc ? rc : err.code, &err);
    return w.rc;
}

/* `mailwire smtp` under MAILWIRE_ENGINE=loop: send as a batch job;
 * what the loop cannot do yet is an error naming it, never a fallback. */
static int smtp_on_loop(smtp_cli *c, const char *sub, const send_args *sa)
{
    int login = !strcmp(sub, "send");
    int rc = smtp_loop_creds(c, login);
    if (rc) return rc;
    return login ? send_files(c, NULL, sa) : show_on_loop(c, sub);
}

int mw_cmd_smtp(int argc, char **argv)
{
    /* MAILWIRE_ENGINE (engine.h): never a quiet fallback to blocking. */
    int engine = mw_cli_engine("smtp");
    if (engine < 0) return EX_USAGE_;
    smtp_cli c;
    memset(&c, 0, sizeof c);
    c.prog = "smtp";
    mw_cli_conn_init(&c.conn, "smtp", 587, 465);
    send_args sa;
    memset(&sa, 0, sizeof sa);
    const char *sub = NULL;
    sa.files = calloc((size_t)argc + 1, sizeof *sa.files);
    int rc = 0;
    if (!sa.files) return EX_SOFTWARE_;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            smtp_usage(stdout);
            goto out;
        }
        /* A file: every option starts with '-', so no option table to try. */
        if (sub && a[0] != '-' && !strcmp(sub, "send")) {
            sa.files[sa.nfiles++] = argv[i];
            continue;
        }
        int r = sub && !strcmp(sub, "send") ? send_option(&sa, argc, argv, &i) : 0;
        if (r == 0) r = smtp_option(&c, argc, argv, &i);
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
            sa.files[sa.nfiles++] = argv[i];
            continue;
        }
        fprintf(stderr, "mailwire smtp: unexpected argument '%s'\n", a);
        smtp_usage(stderr);
        rc = EX_USAGE_;
        goto out;
    }
    if (!sub || (!strcmp(sub, "send") && sa.nfiles == 0)) {
        smtp_usage(stderr);
        rc = EX_USAGE_;
        goto out;
    }
    if ((rc = smtp_finish(&c)) != 0) goto out;
    if (engine == MW_CLI_ENGINE_LOOP) {
        rc = smtp_on_loop(&c, sub, &sa);
        goto out;
    }
    mw_smtp *s = NULL;
    if ((rc = smtp_open(&c, &s, !strcmp(sub, "send"))) != 0) goto out;
    if (!strcmp(sub, "capa"))
        rc = cmd_capa(&c, s);
    else if (!strcmp(sub, "serverinfo"))
        rc = cmd_serverinfo(&c, s);
    else
        rc = send_files(&c, &s, &sa);
    mw_smtp_quit(s);
    mw_smtp_free(s);
out:
    free(sa.files);
    smtp_cli_free(&c);
    return rc;
}
