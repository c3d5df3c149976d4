/* mailwire send: a sendmail(1) you can install as /usr/sbin/sendmail.
 * Every option of Postfix's sendmail(1) is taken: implemented, or
 * accepted and ignored where that manual says "ignored" (doc/mailwire.1
 * lists each).  The SMTP side is shared with `mailwire smtp`
 * (cmd_smtp.c, smtp_cli.h). */
#include "commands.h"
#include "connopts.h"
#include "smtp_cli.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
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
            "                     [-R full|hdrs] [-V ENVID] [-B 7BIT|8BITMIME] [-v]\n"
            "                     [--all-or-nothing] [--bcc-digest] [--] [RECIPIENT...]\n"
            "       mailwire send -bi | -I      (no alias database: does nothing)\n"
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

/* What the command line asked for. */
typedef struct send_args {
    const char *from, *fullname, *notify, *ret, *envid;
    int extract, ignore_dots, all_or_nothing, bcc_digest, verbose, body;
    char mode; /* 'm' deliver (default), 'i' aliases (nothing to do) */
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
            } else {
                fprintf(stderr,
                        "mailwire send: -b%s is not supported (mailwire is a client: -bm "
                        "delivers, -bi does nothing)\n",
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
            else {
                fprintf(stderr, "mailwire send: -B takes 7BIT or 8BITMIME, not '%s'\n", v);
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
    int rc = 0;
    stdin_src *sin = NULL;
    char *fromhdr = NULL, *sender = NULL;
    mw_smtp_result *r = NULL;
    if (!A.rcpt) return EX_SOFTWARE_;
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
        if (a[0] == '-' && a[1] == '-') {
            int r2 = smtp_option(&c, argc, argv, &i);
            if (r2 > 0) continue;
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
    if (A.verbose > 1 && !c.conn.trace_path) c.conn.trace_path = "-";
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
    int src = mw_smtp_send(s, &m, &r);
    print_result(&c, NULL, src, r, mw_smtp_error(s));
    rc = tx_exit(src, r);
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
    if (sin) free(sin->head);
    free(sin);
    free(A.rcpt);
    free(A.config_buf);
    smtp_cli_free(&c);
    return rc;
}

int mw_cmd_send(int argc, char **argv)
{
    return mw_cli_sendmail(argc, argv);
}
