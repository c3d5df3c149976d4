/* mailwire send: a sendmail(1) you can install as /usr/sbin/sendmail.
 * Every option of Postfix's sendmail(1) is taken: implemented, or
 * accepted and ignored where that manual says "ignored" (doc/mailwire.1
 * lists each).  The SMTP side is shared with `mailwire smtp`
 * (cmd_smtp.c, smtp_cli.h). */
#include "commands.h"
#include "connopts.h"
#include "queue_cli.h"
#include "smtp_cli.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* `mailwire send` streams the message from stdin; only --bcc-digest (whose
 * digest copy is built in memory) holds it all, up to this much. */
#define SEND_MAX_MESSAGE (256u * 1024 * 1024)
/* The header block read ahead of the connection (account by From, -F). */
#define SEND_MAX_HEADER (1024u * 1024)

static void send_usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire send [OPTIONS] [-t] [-f ADDR] [-F NAME] [-i|-oi] [-N NOTIFY]\n"
            "                     [-R full|hdrs] [-V ENVID] [-B 7BIT|8BITMIME|BINARYMIME] [-v]\n"
            "                     [--all-or-nothing] [--bcc-digest] [--downgrade] [--]\n"
            "                     [RECIPIENT...]\n"
            "-BBINARYMIME: the body as it is, in BDAT (a server offering CHUNKING and\n"
            "  BINARYMIME); --downgrade: else each part not 7-bit goes base64, not refused.\n"
            "       mailwire send -bs [OPTIONS]  (SMTP on stdin/stdout, relayed to the server)\n"
            "       mailwire send -bi | -I      (no alias database: does nothing)\n"
            "       mailwire send -q | -bp      (`mailwire queue flush` | `mailwire queue list`)\n"
            "Queue: --enqueue (or `queue on` in the account) stores the message durably first,\n"
            "  then tries it once: exit 0 \"queued as ID\" when it cannot go now;\n"
            "  --queue-dir DIR  --lifetime SECONDS  --backoff MIN[,MAX] (see mailwire queue).\n"
            "Recipients rejected go to stderr (exit 67); --all-or-nothing sends to none then.\n"
            "The message is read from stdin; without -i a line with a single '.' ends it.\n"
            "Without From: and -f the sender is the account's `from`, else USER@HOST;\n"
            "From:, Date: and Message-ID: are added only when missing, Bcc: is removed.\n"
            "Taken and ignored as Postfix's sendmail does: -G -U -n -m -h N -L LABEL -X FILE\n"
            "  -oX... (-oem -oee -odi -odb -o7 -o8 -oA...; -oi is -i) -qINTERVAL; -r is -f;\n"
            "  -C FILE (or DIR/config) is --config; -bm is the default mode.\n"
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

/* ---- --downgrade: a binary message re-encoded as 7-bit ---- */

/* Whether the session's EHLO reply (the one over TLS when TLS was
 * started) names the extension `cap`. */
static int ehlo_has(const mw_smtp *s, const char *cap)
{
    const char *t = mw_smtp_ehlo_text(s, 1);
    if (!t || !*t) t = mw_smtp_ehlo_text(s, 0);
    size_t n = strlen(cap);
    for (const char *p = t; p && *p;) {
        if (!strncasecmp(p, cap, n) && (p[n] == '\0' || p[n] == '\n' || p[n] == ' ')) return 1;
        p = strchr(p, '\n');
        if (p) p++;
    }
    return 0;
}

/* What the command line asked for. */
typedef struct send_args {
    const char *from, *fullname, *notify, *ret, *envid;
    int extract, ignore_dots, all_or_nothing, bcc_digest, verbose, body;
    char mode; /* 'm' deliver (default), 's' SMTP on stdin, 'i' aliases (nothing to do),
                * 'q' run the queue, 'p' list it */
    int enqueue, downgrade;
    queue_cli qc;
    int qargc; /* the long options, handed to `queue` for -q and -bp */
    char **qargv;
    char *config_buf;
    const char **rcpt;
    size_t nrcpt;
} send_args;

/* Single-letter options, bundled as getopt(3) allows ("-ti", "-oi",
 * "-fADDR", "-f ADDR").  Returns 1 consumed, -1 usage error (printed). */
static int short_options(send_args *A, smtp_cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    for (const char *p = a + 1; *p; p++) {
        char o = *p;
        switch (o) {
        case 't':
            A->extract = 1;
            continue;
        case 'i':
            A->ignore_dots = 1;
            continue;
        case 'v':
            A->verbose++;
            continue;
        case 'G': /* gateway submission: we never rewrite addresses anyway */
        case 'U': /* initial user submission */
        case 'n': /* no aliasing */
        case 'm': /* me too */
        case 'c': /* the rest: undocumented letters Postfix's getopt takes */
        case 'x':
        case '7':
        case '8':
            continue;
        case 'I':
            A->mode = 'i';
            continue;
        case 'q':
            /* -q, -qIID, -qRSITE, -qSSITE: run the queue (all of it: we
             * have one destination); -qINTERVAL is ignored, as Postfix does. */
            if (!p[1] || strchr("IRS", p[1])) A->mode = 'q';
            return 1;
        default:
            break;
        }
        /* The rest take a value: what follows the letter, else the next word. */
        const char *v = p[1] ? p + 1 : NULL;
        if (!v && strchr("bfrFNRVBCLXhoAeOp", o)) {
            if (*i + 1 >= argc) {
                fprintf(stderr, "mailwire send: -%c needs a value\n", o);
                return -1;
            }
            v = argv[++*i];
        }
        switch (o) {
        case 'b':
            if (!strcmp(v, "m")) {
                A->mode = 'm';
            } else if (!strcmp(v, "i")) {
                A->mode = 'i';
            } else if (!strcmp(v, "s")) {
                A->mode = 's';
            } else if (!strcmp(v, "p")) {
                A->mode = 'p';
            } else {
                fprintf(stderr,
                        "mailwire send: -b%s is not supported (mailwire is a client: -bm "
                        "delivers, -bs speaks SMTP, -bi does nothing)\n",
                        v);
                return -1;
            }
            return 1;
        case 'f':
        case 'r':
            A->from = v;
            return 1;
        case 'F':
            A->fullname = v;
            return 1;
        case 'N':
            A->notify = v;
            return 1;
        case 'R':
            A->ret = v;
            return 1;
        case 'V':
            A->envid = v;
            return 1;
        case 'B':
            if (!strcasecmp(v, "8BITMIME"))
                A->body = MW_SMTP_BODY_AUTO; /* 8-bit allowed: BODY=8BITMIME when offered */
            else if (!strcasecmp(v, "7BIT"))
                A->body = MW_SMTP_BODY_7BIT;
            else if (!strcasecmp(v, "BINARYMIME"))
                A->body = MW_SMTP_BODY_BINARYMIME;
            else {
                fprintf(stderr, "mailwire send: -B takes 7BIT, 8BITMIME or BINARYMIME, not '%s'\n",
                        v);
                return -1;
            }
            return 1;
        case 'C': {
            /* Postfix: main.cf or its directory; ours: the accounts file. */
            struct stat st;
            free(A->config_buf);
            A->config_buf = NULL;
            if (stat(v, &st) == 0 && S_ISDIR(st.st_mode)) {
                size_t n = strlen(v) + 8;
                if (!(A->config_buf = malloc(n))) return -1;
                snprintf(A->config_buf, n, "%s/config", v);
                c->conn.config_path = A->config_buf;
            } else {
                c->conn.config_path = v;
            }
            return 1;
        }
        case 'L': /* log label */
        case 'X': /* traffic log: Postfix ignores it too */
        case 'h': /* hop count */
        case 'A':
        case 'e':
        case 'O':
        case 'p':
            return 1;
        case 'o':
            /* -oi is -i; every other -oX (-oem -oee -odi -odb -o7 -o8
             * -oA...) is ignored, as Postfix does. */
            if (!strcmp(v, "i")) A->ignore_dots = 1;
            return 1;
        default:
            fprintf(stderr, "mailwire send: unknown option '-%c' (in '%s')\n", o, a);
            return -1;
        }
    }
    return 1;
}

/* The sender when neither -f nor From: gives one: the account's `from`,
 * else USER@HOST (login name and host name), as Postfix does. */
static char *default_sender(const mw_cli_conn *cc)
{
    const mw_account *a =
        cc->config && cc->account ? mw_config_find(cc->config, cc->account) : NULL;
    if (a && a->from) return strdup(a->from);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const char *user = NULL;
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && res->pw_name[0])
        user = res->pw_name;
    if (!user) user = getenv("USER");
    if (!user || !*user) user = "nobody";
    size_t n = strlen(user) + strlen(host) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s@%s", user, host);
    return s;
}

/* ---- --enqueue: through the durable queue (queue_cli.h) ---- */

/* -t's recipients for the queue, which needs them at once: the To, Cc
 * and Bcc fields' addresses, after the argument ones, without repeats. */
static int add_unique(const char ***list, size_t *n, size_t *cap, const char *a)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcasecmp((*list)[i], a)) return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        const char **nl = realloc(*list, nc * sizeof *nl);
        if (!nl) return -1;
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = a;
    return 0;
}

typedef struct enq_src {
    const char *pre;
    size_t prelen, prepos;
    stdin_src *sin;
} enq_src;

static long enq_read(void *buf, size_t len, void *ud)
{
    enq_src *E = ud;
    if (E->prepos < E->prelen) {
        size_t k = E->prelen - E->prepos < len ? E->prelen - E->prepos : len;
        memcpy(buf, E->pre + E->prepos, k);
        E->prepos += k;
        return (long)k;
    }
    long r = send_source_read(buf, len, E->sin);
    return r < 0 ? MW_EIO : r;
}

typedef struct enq_ctx {
    smtp_cli *c;
    int kind; /* the immediate attempt's event, 0 when none */
    int json;
    int verbose;
    char why[320];    /* why the immediate attempt was deferred */
    size_t nsent;     /* recipients that took it */
    char failed[400]; /* the first recipient refused for good, with its reply */
} enq_ctx;

static int enq_connect(const mw_queue_entry *e, mw_smtp **out, mw_error *err, void *ud)
{
    (void)e;
    enq_ctx *x = ud;
    mw_error_clear(err);
    int rc = smtp_open_err(x->c, out, 1, err);
    if (rc == 0) return 0;
    if (!err->code) {
        err->code = MW_EAUTH;
        snprintf(err->message, sizeof err->message, "cannot log in (see above)");
    }
    return err->code;
}

static void enq_event(const mw_queue_event *ev, void *ud)
{
    enq_ctx *x = ud;
    x->kind = ev->kind;
    x->nsent = 0;
    for (size_t i = 0; i < ev->entry->nrcpt; i++) {
        const mw_queue_rcpt *r = &ev->entry->rcpt[i];
        x->nsent += r->state == MW_QUEUE_SENT;
        if (r->state == MW_QUEUE_FAILED && !x->failed[0])
            snprintf(x->failed, sizeof x->failed, "%d %s <%s>: %s", r->code >= 500 ? r->code : 554,
                     r->enhanced[0] ? r->enhanced : "5.0.0", r->address, r->text ? r->text : "");
    }
    if (ev->kind == MW_QUEUE_EV_DEFERRED) {
        /* the reason: the session's error, else the first pending refusal */
        const char *w = ev->err && ev->err->message[0] ? ev->err->message : NULL;
        snprintf(x->why, sizeof x->why, "%s", w ? w : "");
        for (size_t i = 0; !w && i < ev->entry->nrcpt; i++) {
            const mw_queue_rcpt *r = &ev->entry->rcpt[i];
            if (r->state != MW_QUEUE_PENDING) continue;
            snprintf(x->why, sizeof x->why, "<%s>: %d %s%s%s", r->address, r->code, r->enhanced,
                     r->enhanced[0] ? " " : "", r->text ? r->text : "");
            break;
        }
    }
    if (x->json || ev->kind == MW_QUEUE_EV_FAILED || x->verbose)
        queue_print_event(ev, x->json, "send");
}

static void date_now(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Stores the message with its envelope, then tries it once at once.
 * Exit 0 when it went or is queued, 67 when recipients failed for good,
 * 75 when it could not be stored (nothing of it is left then). */
static int send_enqueue(smtp_cli *c, send_args *A, queue_cli *qc, stdin_src *sin,
                        const char *sender)
{
    const char *data = sin->head;
    size_t len = sin->hlen;
    const char **rl = NULL;
    size_t nr = 0, cap = 0;
    int rc = 0;
    char *pre = NULL;
    size_t prelen = 0;
    mw_mime_headers *h = NULL;
    mw_mime_addrlist **lists = NULL;
    size_t nlists = 0;
    mw_queue *q = NULL;
    for (size_t i = 0; i < A->nrcpt; i++)
        if (add_unique(&rl, &nr, &cap, A->rcpt[i])) goto nomem;
    size_t hb = header_block_end(data, len);
    if (A->extract && mw_mime_headers_parse(&h, data, hb ? hb : len, NULL, NULL, NULL) == 0) {
        const char *names[] = {"To", "Cc", "Bcc"};
        for (size_t k = 0; k < 3; k++)
            for (size_t j = 0; j < mw_mime_headers_count_name(h, names[k]); j++) {
                const char *v = mw_mime_headers_get(h, names[k], j);
                mw_mime_addrlist *l = NULL;
                if (!v || mw_mime_addrlist_parse(&l, v, strlen(v), NULL) != 0) continue;
                mw_mime_addrlist **nl = realloc(lists, (nlists + 1) * sizeof *nl);
                if (!nl) {
                    mw_mime_addrlist_free(l);
                    goto nomem;
                }
                lists = nl;
                lists[nlists++] = l;
                for (size_t m = 0; m < mw_mime_addrlist_count(l); m++) {
                    const mw_mime_address *ad = mw_mime_addrlist_at(l, m);
                    if (ad && ad->address && ad->address[0] &&
                        add_unique(&rl, &nr, &cap, ad->address))
                        goto nomem;
                }
            }
    }
    if (nr == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments, or To/Cc/Bcc "
                        "fields with -t\n");
        rc = EX_USAGE_;
        goto out;
    }
    /* What sendmail mode adds, added now: every attempt then sends the
     * same bytes (one Message-ID however many attempts). */
    {
        FILE *f = open_memstream(&pre, &prelen);
        if (!f) goto nomem;
        for (size_t i = 0; i < c->nheaders; i++)
            fprintf(f, "%s\r\n", c->headers[i]);
        if (!has_header(data, len, "From")) {
            if (A->fullname)
                fprintf(f, "From: %s <%s>\r\n", A->fullname, sender);
            else
                fprintf(f, "From: <%s>\r\n", sender);
        }
        if (!has_header(data, len, "Date")) {
            char d[64];
            date_now(d, sizeof d);
            fprintf(f, "Date: %s\r\n", d);
        }
        if (!has_header(data, len, "Message-ID")) {
            char host[256] = "localhost";
            if (gethostname(host, sizeof host - 1) != 0 || !host[0])
                snprintf(host, sizeof host, "localhost");
            host[sizeof host - 1] = '\0';
            uint32_t r = 0;
            int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
            if (ufd >= 0) {
                if (read(ufd, &r, sizeof r) != (ssize_t)sizeof r) r = 0;
                close(ufd);
            }
            fprintf(f, "Message-ID: <%lld.%ld.%08x@%s>\r\n", (long long)time(NULL), (long)getpid(),
                    (unsigned)r, host);
        }
        if (fclose(f) != 0) goto nomem;
    }
    if ((rc = queue_cli_open(qc, &q, "send")) != 0) goto out;
    enq_src E = {pre, prelen, 0, sin};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION,
                        sender,
                        rl,
                        nr,
                        c->conn.account,
                        A->notify,
                        A->ret,
                        A->envid,
                        A->body,
                        0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    mw_error_clear(&err);
    /* One attempt at once; into the queue (durably) only what must wait. */
    enq_ctx x = {c, 0, c->conn.json, A->verbose, "", 0, ""};
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = enq_connect;
    ro.connect_userdata = &x;
    ro.event = enq_event;
    ro.event_userdata = &x;
    ro.maxtime_ms = c->maxsecs * 1000;
    int queued = 0;
    int qrc = mw_queue_send(q, &env, enq_read, &E, &ro, id, &queued, &err);
    if (qrc) {
        fprintf(stderr, "mailwire send: not queued, nothing kept: %s\n", err.message);
        if (c->conn.json) {
            printf("{\"queued\":false,\"error\":");
            mw_cli_json_string(stdout, err.message, strlen(err.message));
            printf("}\n");
        }
        rc = qrc == MW_EINVAL               ? EX_DATAERR_
             : qrc == MW_EIO && sin->failed ? EX_IOERR_
                                            : EX_TEMPFAIL_;
        goto out;
    }
    if (x.kind == MW_QUEUE_EV_SENT) {
        queue_kick(qc); /* the server is reachable: wake a daemon for the rest */
    } else if (x.kind == MW_QUEUE_EV_FAILED) {
        rc = EX_NOUSER_;
    } else if (!c->conn.json) {
        fprintf(stderr, "mailwire send: queued as %s%s%s\n", id, x.why[0] ? ": " : "", x.why);
    }
    goto out;
nomem:
    fprintf(stderr, "mailwire send: out of memory\n");
    rc = EX_SOFTWARE_;
out:
    mw_queue_close(q);
    for (size_t i = 0; i < nlists; i++)
        mw_mime_addrlist_free(lists[i]);
    free(lists);
    mw_mime_headers_free(h);
    free(pre);
    free(rl);
    return rc;
}

/* ---- -bs: an SMTP dialogue on stdin/stdout, relayed ----
 *
 * The caller speaks SMTP (RFC 5321) to us; each transaction is relayed to
 * the configured server when its DATA arrives, with our TLS, AUTH and
 * PIPELINING, the message streamed (dots unstuffed here, stuffed again by
 * the library).  The caller's RCPTs are answered here, so the relay is all
 * or nothing: a recipient the server refuses fails the whole message with
 * that reply (4xx when any refusal was temporary), naming the recipient. */

#define BS_MAX_LINE 2048 /* RFC 5321 §4.5.3.1.4 asks for 512 */
#define BS_MAX_RCPT 1000

typedef struct bs_in {
    char buf[65536];
    size_t s, e;
    int eof, failed;
    /* DATA state */
    int bol, done;
} bs_in;

static int bs_fill(bs_in *in)
{
    if (in->s > 0) {
        memmove(in->buf, in->buf + in->s, in->e - in->s);
        in->e -= in->s;
        in->s = 0;
    }
    if (in->e == sizeof in->buf) return 0;
    for (;;) {
        ssize_t r = read(0, in->buf + in->e, sizeof in->buf - in->e);
        if (r > 0) {
            in->e += (size_t)r;
            return 0;
        }
        if (r == 0) {
            in->eof = 1;
            return 0;
        }
        if (errno != EINTR) {
            in->eof = in->failed = 1;
            return -1;
        }
    }
}

/* One command line without its line end: 1, 0 at the end of input, -2
 * when it was over BS_MAX_LINE (then skipped). */
static int bs_line(bs_in *in, char *out, size_t *len)
{
    int too_long = 0;
    for (;;) {
        char *nl = memchr(in->buf + in->s, '\n', in->e - in->s);
        if (nl) {
            size_t n = (size_t)(nl - (in->buf + in->s));
            size_t k = n;
            if (k > 0 && in->buf[in->s + k - 1] == '\r') k--;
            if (!too_long && k < BS_MAX_LINE) {
                memcpy(out, in->buf + in->s, k);
                out[k] = '\0';
                *len = k;
            } else {
                too_long = 1;
            }
            in->s += n + 1;
            return too_long ? -2 : 1;
        }
        if (in->eof) return 0;
        if (in->e - in->s >= BS_MAX_LINE) { /* drop what we have, keep looking for its end */
            too_long = 1;
            in->s = in->e;
        }
        bs_fill(in);
    }
}

/* The message after DATA, dots unstuffed, up to the line "." */
static long bs_data_read(void *buf, size_t len, void *ud)
{
    bs_in *in = ud;
    char *o = buf;
    size_t n = 0;
    while (n < len && !in->done) {
        if (in->e - in->s < 3 && !in->eof) {
            bs_fill(in);
            continue;
        }
        size_t a = in->e - in->s;
        if (a == 0) return n ? (long)n : MW_EIO; /* input ended inside DATA */
        const char *p = in->buf + in->s;
        if (in->bol && p[0] == '.') {
            if ((a >= 3 && p[1] == '\r' && p[2] == '\n') || (a >= 2 && p[1] == '\n') ||
                (a == 1 && in->eof)) {
                in->s += a >= 2 && p[1] == '\n' ? 2 : a >= 3 ? 3 : 1;
                in->done = 1;
                break;
            }
            in->s++; /* RFC 5321 §4.5.2: the first dot of a line goes */
            in->bol = 0;
            continue;
        }
        size_t want = len - n < a ? len - n : a;
        const char *nl = memchr(p, '\n', want);
        size_t k = nl ? (size_t)(nl - p) + 1 : want;
        memcpy(o + n, p, k);
        n += k;
        in->s += k;
        in->bol = nl != NULL;
    }
    return (long)n;
}

static void bs_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bs_reply(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("\r\n", stdout);
    fflush(stdout);
}

/* The address in "<addr> params" (after "FROM:"/"TO:"), malloc'd; NULL
 * when malformed.  *params points after it. */
static char *bs_path(const char *p, const char **params)
{
    while (*p == ' ')
        p++;
    if (*p != '<') return NULL;
    const char *e = strchr(p, '>');
    if (!e) return NULL;
    *params = e + 1;
    size_t n = (size_t)(e - p - 1);
    char *a = malloc(n + 1);
    if (!a) return NULL;
    memcpy(a, p + 1, n);
    a[n] = '\0';
    /* a source route "@a,@b:user@c" (RFC 5321 §4.1.2) keeps only the mailbox */
    char *colon = a[0] == '@' ? strchr(a, ':') : NULL;
    if (colon) memmove(a, colon + 1, strlen(colon + 1) + 1);
    return a;
}

static int bs_cmd(const char *line, const char *verb)
{
    size_t n = strlen(verb);
    return !strncasecmp(line, verb, n) && (line[n] == '\0' || line[n] == ' ' || line[n] == ':');
}

/* The reply to the end of data, from the relay's outcome. */
static void bs_final(int rc, const mw_smtp_result *r, const mw_error *err)
{
    if (rc == 0 && r && r->sent) {
        bs_reply("250 2.0.0 Ok: relayed to %s port %u: %d %s", r->server ? r->server : "?", r->port,
                 r->final_code, r->final_text ? r->final_text : "");
        return;
    }
    /* A recipient refused: name it (the first; all or nothing). */
    if (r)
        for (size_t i = 0; i < r->nrcpt; i++) {
            const mw_smtp_rcpt *p = &r->rcpt[i];
            if (p->accepted || !p->code) continue;
            int temp = 0;
            for (size_t j = 0; j < r->nrcpt; j++)
                if (!r->rcpt[j].accepted && !r->rcpt[j].permanent) temp = 1;
            bs_reply("%d %s <%s>: %s (nothing was sent)", temp ? 451 : p->code,
                     temp             ? "4.0.0"
                     : p->enhanced[0] ? p->enhanced
                                      : "5.0.0",
                     p->address, p->text ? p->text : "refused");
            return;
        }
    int code = r && r->final_code >= 400 && r->final_code < 600 ? r->final_code : 0;
    const char *enh = "";
    if (!code) switch (rc) {
        case MW_ESERVER:
        case MW_EFORMAT:
        case MW_EINVAL:
            code = 554;
            enh = "5.6.0";
            break;
        case MW_ETOOBIG:
            code = 552;
            enh = "5.3.4";
            break;
        case MW_EUNSUPPORTED:
            code = 554;
            enh = "5.6.1";
            break;
        default:
            code = 451;
            enh = "4.4.0";
        }
    bs_reply("%d %s%s%s", code, enh, enh[0] ? " " : "",
             err && err->message[0] ? err->message : "failed");
}

/* --enqueue, or the account's `queue on` (once the account is known). */
static int use_queue(const smtp_cli *c, const send_args *A)
{
    const mw_account *acct =
        c->conn.config && c->conn.account ? mw_config_find(c->conn.config, c->conn.account) : NULL;
    return A->enqueue || (acct && acct->queue);
}

/* -bs with the queue: the transaction's data go through mw_queue_send
 * (sent at once, or kept); the reply says which. */
static void bs_via_queue(smtp_cli *c, send_args *A, mw_queue *q, bs_in *in, const char *mail,
                         char **rcpt, size_t nrcpt)
{
    mw_queue_env env = {MW_QUEUE_ENV_VERSION,
                        mail,
                        (const char *const *)rcpt,
                        nrcpt,
                        c->conn.account,
                        A->notify,
                        A->ret,
                        A->envid,
                        A->body,
                        1};
    enq_ctx x = {c, 0, 0, A->verbose, "", 0, ""};
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = enq_connect;
    ro.connect_userdata = &x;
    ro.event = enq_event;
    ro.event_userdata = &x;
    ro.maxtime_ms = c->maxsecs * 1000;
    char id[MW_QUEUE_ID_MAX];
    int queued = 0;
    mw_error err;
    mw_error_clear(&err);
    int qrc = mw_queue_send(q, &env, bs_data_read, in, &ro, id, &queued, &err);
    char scratch[4096];
    while (!in->done && !(in->eof && in->s == in->e))
        if (bs_data_read(scratch, sizeof scratch, in) < 0) break;
    if (!in->done) return;
    if (qrc)
        bs_reply("451 4.3.0 not queued, nothing kept: %s", err.message);
    else if (x.kind == MW_QUEUE_EV_DEFERRED)
        bs_reply("250 2.0.0 Ok: queued as %s%s%s", id, x.why[0] ? ": " : "", x.why);
    else if (x.kind == MW_QUEUE_EV_FAILED && x.nsent == 0)
        bs_reply("%s", x.failed);
    else
        bs_reply("250 2.0.0 Ok: sent as %s%s", id,
                 x.kind == MW_QUEUE_EV_FAILED ? " (some recipients failed: see the report)" : "");
}

static int bs_session(smtp_cli *c, send_args *A)
{
    bs_in *in = calloc(1, sizeof *in);
    char *line = malloc(BS_MAX_LINE + 1);
    char **rcpt = calloc(BS_MAX_RCPT, sizeof *rcpt);
    char *mail = NULL;
    size_t nrcpt = 0;
    int have_mail = 0, finished = 0, rc = 0;
    mw_smtp *s = NULL;
    mw_queue *q = NULL;
    char host[256] = "localhost";
    if (!in || !line || !rcpt) {
        rc = EX_SOFTWARE_;
        goto out;
    }
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    bs_reply("220 %s ESMTP mailwire send -bs", host);
    for (;;) {
        size_t n = 0;
        int g = bs_line(in, line, &n);
        if (g == 0) break;
        if (g == -2) {
            bs_reply("500 5.5.2 line too long");
            continue;
        }
        if (bs_cmd(line, "EHLO")) {
            bs_reply("250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES", host);
            have_mail = 0;
        } else if (bs_cmd(line, "HELO")) {
            bs_reply("250 %s", host);
            have_mail = 0;
        } else if (bs_cmd(line, "MAIL") && !strncasecmp(line + 4, " FROM:", 6)) {
            const char *params = NULL;
            char *a = bs_path(line + 10, &params);
            if (have_mail) {
                bs_reply("503 5.5.1 nested MAIL command");
                free(a);
            } else if (!a) {
                bs_reply("501 5.1.7 bad sender address syntax");
            } else {
                free(mail);
                mail = a;
                have_mail = 1;
                bs_reply("250 2.1.0 Ok");
            }
        } else if (bs_cmd(line, "RCPT") && !strncasecmp(line + 4, " TO:", 4)) {
            const char *params = NULL;
            char *a = bs_path(line + 8, &params);
            if (!have_mail) {
                bs_reply("503 5.5.1 need MAIL first");
                free(a);
            } else if (!a || !a[0]) {
                bs_reply("501 5.1.3 bad recipient address syntax");
                free(a);
            } else if (nrcpt >= BS_MAX_RCPT) {
                bs_reply("452 4.5.3 too many recipients");
                free(a);
            } else {
                rcpt[nrcpt++] = a;
                bs_reply("250 2.1.5 Ok");
            }
        } else if (bs_cmd(line, "DATA")) {
            if (!have_mail || nrcpt == 0) {
                bs_reply("%s", !have_mail ? "503 5.5.1 need MAIL first"
                                          : "554 5.5.1 no valid recipients");
                continue;
            }
            bs_reply("354 End data with <CR><LF>.<CR><LF>");
            in->bol = 1;
            in->done = 0;
            int orc = 0;
            mw_error openerr;
            mw_error_clear(&openerr);
            if (!s) {
                /* The first transaction's sender picks the account. */
                if (!finished) {
                    c->conn.from_address = mail;
                    finished = smtp_finish(c) == 0 ? 1 : -1;
                }
                orc = finished < 0           ? EX_USAGE_
                      : q || use_queue(c, A) ? 0
                                             : smtp_open_err(c, &s, 1, &openerr);
            }
            if (finished > 0 && !q && use_queue(c, A)) {
                if (queue_cli_open(&A->qc, &q, "send") != 0) {
                    rc = EX_TEMPFAIL_;
                    break;
                }
            }
            if (q) {
                /* Through the queue: 250 once it is sent or safely queued. */
                if (s) { /* no direct session in this mode */
                    mw_smtp_quit(s);
                    mw_smtp_free(s);
                    s = NULL;
                }
                bs_via_queue(c, A, q, in, mail, rcpt, nrcpt);
                if (!in->done) break; /* input ended inside DATA */
                for (size_t k = 0; k < nrcpt; k++)
                    free(rcpt[k]);
                nrcpt = 0;
                have_mail = 0;
                continue;
            }
            mw_smtp_result *r = NULL;
            int src;
            const mw_error *err = NULL;
            if (orc == 0) {
                mw_smtp_msg m = MW_SMTP_MSG_INIT;
                m.read = bs_data_read;
                m.read_userdata = in;
                m.originator = mail;
                m.recipients = (const char *const *)rcpt;
                m.nrecipients = nrcpt;
                m.rewrite_headers = 0; /* what the client sent, as it is */
                m.atleastone = 0;
                m.body = A->body;
                m.dsn_notify = A->notify;
                m.dsn_ret = A->ret;
                m.dsn_envid = A->envid;
                src = mw_smtp_send(s, &m, &r);
                err = mw_smtp_error(s);
            } else {
                /* Not relayed: 451, so the client keeps the message. */
                src = MW_ENET;
                if (!openerr.message[0])
                    snprintf(openerr.message, sizeof openerr.message, "%s",
                             finished < 0 ? "no relay server configured (see stderr)"
                                          : "cannot log in to the relay server (see stderr)");
                err = &openerr;
            }
            /* The rest of the data when the relay stopped early. */
            char scratch[4096];
            while (!in->done && !(in->eof && in->s == in->e))
                if (bs_data_read(scratch, sizeof scratch, in) < 0) break;
            if (!in->done) { /* input ended inside DATA: nothing to answer */
                mw_smtp_result_free(r);
                break;
            }
            bs_final(src, r, err);
            if (A->verbose) print_result(c, NULL, src, r, err);
            mw_smtp_result_free(r);
            if (s && !mw_smtp_alive(s)) {
                mw_smtp_free(s);
                s = NULL;
            }
            for (size_t k = 0; k < nrcpt; k++)
                free(rcpt[k]);
            nrcpt = 0;
            have_mail = 0;
        } else if (bs_cmd(line, "RSET")) {
            for (size_t k = 0; k < nrcpt; k++)
                free(rcpt[k]);
            nrcpt = 0;
            have_mail = 0;
            bs_reply("250 2.0.0 Ok");
        } else if (bs_cmd(line, "NOOP")) {
            bs_reply("250 2.0.0 Ok");
        } else if (bs_cmd(line, "VRFY")) {
            bs_reply("252 2.0.0 cannot verify, but will relay");
        } else if (bs_cmd(line, "HELP")) {
            bs_reply("214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT");
        } else if (bs_cmd(line, "QUIT")) {
            bs_reply("221 2.0.0 Bye");
            break;
        } else {
            bs_reply("502 5.5.2 command not implemented");
        }
    }
out:
    if (s) {
        mw_smtp_quit(s);
        mw_smtp_free(s);
    }
    mw_queue_close(q);
    for (size_t k = 0; k < nrcpt; k++)
        free(rcpt[k]);
    free(rcpt);
    free(mail);
    free(line);
    free(in);
    return rc;
}

int mw_cli_sendmail(int argc, char **argv)
{
    smtp_cli c;
    memset(&c, 0, sizeof c);
    c.prog = "send";
    mw_cli_conn_init(&c.conn, "send", 587, 465);
    send_args A;
    memset(&A, 0, sizeof A);
    A.mode = 'm';
    A.body = MW_SMTP_BODY_AUTO;
    A.rcpt = calloc((size_t)argc + 1, sizeof *A.rcpt);
    A.qargv = calloc((size_t)argc + 5, sizeof *A.qargv);
    int rc = 0;
    stdin_src *sin = NULL;
    char *fromhdr = NULL, *sender = NULL, *whole = NULL, *seven = NULL;
    size_t whole_len = 0, seven_len = 0;
    mw_smtp_result *r = NULL;
    if (!A.rcpt || !A.qargv) {
        free(A.rcpt);
        free(A.qargv);
        return EX_SOFTWARE_;
    }
    A.qargv[A.qargc++] = (char *)"queue";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (++i < argc)
                A.rcpt[A.nrcpt++] = argv[i];
            break;
        }
        /* -h alone is help; with more it is sendmail's -h HOPS. */
        if (!strcmp(a, "--help") || (!strcmp(a, "-h") && argc == 2)) {
            send_usage(stdout);
            goto out;
        }
        if (!strcmp(a, "--all-or-nothing")) {
            A.all_or_nothing = 1;
            continue;
        }
        if (!strcmp(a, "--bcc-digest")) {
            A.bcc_digest = 1;
            continue;
        }
        if (!strcmp(a, "--enqueue")) {
            A.enqueue = 1;
            continue;
        }
        if (!strcmp(a, "--downgrade")) {
            A.downgrade = 1;
            continue;
        }
        if (a[0] == '-' && a[1] == '-') {
            int start = i;
            int r2 = queue_option(&A.qc, argc, argv, &i, "send");
            if (r2 == 0) r2 = smtp_option(&c, argc, argv, &i);
            if (r2 > 0) {
                for (int k = start; k <= i; k++)
                    A.qargv[A.qargc++] = argv[k];
                continue;
            }
            if (r2 == 0) {
                fprintf(stderr, "mailwire send: unknown option '%s'\n", a);
                send_usage(stderr);
            }
            rc = EX_USAGE_;
            goto out;
        }
        if (a[0] == '-' && a[1]) {
            if (short_options(&A, &c, argc, argv, &i) < 0) {
                rc = EX_USAGE_;
                goto out;
            }
            continue;
        }
        A.rcpt[A.nrcpt++] = a;
    }
    if (A.mode == 'i') goto out; /* -bi / -I: no alias database to build */
    if (A.verbose > 1 && !c.conn.trace_path) c.conn.trace_path = "-";
    if (A.mode == 'q' || A.mode == 'p') {
        /* -q is `queue flush` (deliver all queued mail), -bp `queue list`. */
        if (c.conn.config_path) { /* -C */
            A.qargv[A.qargc++] = (char *)"--config";
            A.qargv[A.qargc++] = (char *)c.conn.config_path;
        }
        A.qargv[A.qargc++] = (char *)(A.mode == 'q' ? "flush" : "list");
        A.qargv[A.qargc] = NULL;
        rc = mw_cmd_queue(A.qargc, A.qargv);
        goto out;
    }
    if (A.mode == 's') {
        c.conn.json = 0; /* stdout is the SMTP dialogue */
        rc = bs_session(&c, &A);
        goto out;
    }
    if (!A.extract && A.nrcpt == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments or use -t\n");
        rc = EX_USAGE_;
        goto out;
    }
    if (A.ret && strcasecmp(A.ret, "full") && strcasecmp(A.ret, "hdrs")) {
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
    sin->ignore_dots = A.ignore_dots;
    if (sin_read_ahead(sin, A.bcc_digest) != 0) {
        fprintf(stderr, "mailwire send: cannot read the message: %s\n",
                errno != EFBIG ? strerror(errno)
                : A.bcc_digest ? "over 256 MiB (--bcc-digest holds it in memory)"
                               : "no end of the header block in its first 1 MiB");
        rc = errno == EFBIG ? EX_DATAERR_ : EX_IOERR_;
        goto out;
    }
    const char *data = sin->head;
    size_t len = sin->hlen;
    /* Without --account or --host, the sender picks the account (-f, else
     * the From field), as msmtp's --read-envelope-from does; with no
     * sender, or none matching, the account called "default". */
    sender = A.from ? strdup(A.from) : from_field_address(data, len);
    c.conn.from_address = sender ? sender : "";
    if ((rc = smtp_finish(&c)) != 0) goto out;
    const char *originator = A.from;
    if (!sender) {
        if (!(sender = default_sender(&c.conn))) {
            rc = EX_SOFTWARE_;
            goto out;
        }
        originator = sender;
    }
    {
        const mw_account *acct =
            c.conn.config && c.conn.account ? mw_config_find(c.conn.config, c.conn.account) : NULL;
        if (A.enqueue || (acct && acct->queue)) {
            rc = send_enqueue(&c, &A, &A.qc, sin, originator ? originator : sender);
            goto out;
        }
    }
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
    m.originator = originator;
    /* sendmail's header rules: Bcc removed, From/Date/Message-ID added
     * when missing, never a Sender field (envelope.c). */
    m.rewrite_headers = MW_SMTP_REWRITE_SENDMAIL;
    m.body = A.body;
    /* -t: the recipients come from To/Cc/Bcc (the library removes Bcc),
     * plus any recipient arguments, as Postfix's sendmail ("added to any
     * recipients specified on the command line") and msmtp do; Sendmail 8
     * and Exim by default remove the argument addresses instead, which
     * would silently drop mail the caller named, so we add. */
    m.recipients = A.nrcpt ? A.rcpt : NULL;
    m.nrecipients = A.nrcpt;
    m.header_recipients = A.extract;
    m.headers = c.headers;
    m.nheaders = c.nheaders;
    if (A.fullname && originator && originator[0] && !has_header(data, len, "From")) {
        size_t fl = strlen(A.fullname) + strlen(originator) + 16;
        fromhdr = malloc(fl);
        if (!fromhdr) {
            rc = EX_SOFTWARE_;
            goto out;
        }
        snprintf(fromhdr, fl, "From: %s <%s>", A.fullname, originator);
        c.headers[c.nheaders++] = fromhdr;
        m.nheaders = c.nheaders;
    }
    m.atleastone = !A.all_or_nothing;
    m.bcc_digest = A.bcc_digest;
    m.dsn_notify = A.notify;
    m.dsn_ret = A.ret;
    m.dsn_envid = A.envid;
    m.dsn_orcpt = c.dsn_orcpt;
    mw_smtp *s = NULL;
    if ((rc = smtp_open(&c, &s, 1)) != 0) goto out;
    if (A.downgrade && A.body == MW_SMTP_BODY_BINARYMIME &&
        !(ehlo_has(s, "BINARYMIME") && ehlo_has(s, "CHUNKING"))) {
        /* The server cannot take it as it is: this one message, 7-bit. */
        const char *why = NULL;
        char tmp[65536];
        size_t cap = 0;
        long n;
        while ((n = send_source_read(tmp, sizeof tmp, sin)) > 0) {
            if (whole_len + (size_t)n > SEND_MAX_MESSAGE) {
                why = "over 256 MiB (--downgrade holds it in memory)";
                break;
            }
            if (whole_len + (size_t)n > cap) {
                size_t nc = cap ? cap * 2 : 131072;
                while (nc < whole_len + (size_t)n)
                    nc *= 2;
                char *nb = realloc(whole, nc);
                if (!nb) {
                    why = "out of memory";
                    break;
                }
                whole = nb;
                cap = nc;
            }
            memcpy(whole + whole_len, tmp, (size_t)n);
            whole_len += (size_t)n;
        }
        if (!why && n < 0) why = "cannot read the message";
        mw_error derr;
        mw_error_clear(&derr);
        if (!why && mw_smtp_downgrade_7bit(whole, whole_len, &seven, &seven_len, &derr) != 0)
            why = derr.message;
        if (!why) {
            m.read = NULL;
            m.read_userdata = NULL;
            m.data = seven;
            m.len = seven_len;
            m.size_hint = 0;
            m.body = MW_SMTP_BODY_7BIT;
            if (A.verbose)
                fprintf(stderr, "mailwire send: the server does not offer BINARYMIME: the message "
                                "goes re-encoded as 7-bit (base64)\n");
        } else {
            fprintf(stderr, "mailwire send: cannot downgrade the message to 7-bit: %s\n", why);
            mw_smtp_quit(s);
            mw_smtp_free(s);
            rc = EX_DATAERR_;
            goto out;
        }
    }
    int src = mw_smtp_send(s, &m, &r);
    print_result(&c, NULL, src, r, mw_smtp_error(s));
    rc = tx_exit(src, r);
    json_tx_error(rc, src, r, mw_smtp_error(s), NULL);
    if (A.verbose && !c.conn.json && r) {
        size_t ok = 0;
        for (size_t k = 0; k < r->nrcpt; k++)
            ok += r->rcpt[k].accepted != 0;
        fprintf(stderr, "mailwire send: %s to %zu of %zu recipient%s via %s port %u: %d %s\n",
                r->sent ? "sent" : "not sent", r->sent ? ok : 0, r->nrcpt, r->nrcpt == 1 ? "" : "s",
                r->server ? r->server : "?", r->port, r->final_code,
                r->final_text ? r->final_text : "");
    }
    mw_smtp_quit(s);
    mw_smtp_free(s);
out:
    mw_smtp_result_free(r);
    free(fromhdr);
    free(sender);
    free(whole);
    free(seven);
    if (sin) free(sin->head);
    free(sin);
    free(A.rcpt);
    free(A.qargv);
    free(A.config_buf);
    smtp_cli_free(&c);
    return rc;
}

int mw_cmd_send(int argc, char **argv)
{
    return mw_cli_sendmail(argc, argv);
}
