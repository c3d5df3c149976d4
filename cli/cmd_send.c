/* mailwire send: a sendmail(1) you can install as /usr/sbin/sendmail.
 * Every option of Postfix's sendmail(1) is taken: implemented, or
 * accepted and ignored where that manual says "ignored" (doc/mailwire.1
 * lists each).  The SMTP side is shared with `mailwire smtp`
 * (cmd_smtp.c, smtp_cli.h). */
#include "engine.h"
#include "send_int.h"
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

/* -v: the outcome in one line on stderr. */
void send_verbose_result(const mw_smtp_result *r)
{
    size_t ok = 0;
    for (size_t k = 0; k < r->nrcpt; k++)
        ok += r->rcpt[k].accepted != 0;
    fprintf(stderr, "mailwire send: %s to %zu of %zu recipient%s via %s port %u: %d %s\n",
            r->sent ? "sent" : "not sent", r->sent ? ok : 0, r->nrcpt, r->nrcpt == 1 ? "" : "s",
            r->server ? r->server : "?", r->port, r->final_code,
            r->final_text ? r->final_text : "");
}

/* One run of `mailwire send`: what it holds, freed in one place. */
typedef struct send_run {
    smtp_cli c;
    send_args A;
    int engine; /* MW_CLI_ENGINE_* (engine.h) */
    stdin_src *sin;
    char *fromhdr, *sender, *whole, *seven;
    size_t whole_len, seven_len;
    const char *originator;
    mw_smtp_result *r;
} send_run;

/* A long option of `send` itself: 1 taken, 0 not one of them. */
static int send_flag(send_args *A, const char *a)
{
    if (!strcmp(a, "--all-or-nothing"))
        A->all_or_nothing = 1;
    else if (!strcmp(a, "--bcc-digest"))
        A->bcc_digest = 1;
    else if (!strcmp(a, "--enqueue"))
        A->enqueue = 1;
    else if (!strcmp(a, "--downgrade"))
        A->downgrade = 1;
    else
        return 0;
    return 1;
}

/* The arguments: -1 go on, else the exit code (0 after --help). */
static int parse_args(send_run *R, int argc, char **argv)
{
    send_args *A = &R->A;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            while (++i < argc)
                A->rcpt[A->nrcpt++] = argv[i];
            break;
        }
        /* -h alone is help; with more it is sendmail's -h HOPS. */
        if (!strcmp(a, "--help") || (!strcmp(a, "-h") && argc == 2)) {
            send_usage(stdout);
            return 0;
        }
        if (send_flag(A, a)) continue;
        if (a[0] == '-' && a[1] == '-') {
            int start = i;
            int r2 = queue_option(&A->qc, argc, argv, &i, "send");
            if (r2 == 0) r2 = smtp_option(&R->c, argc, argv, &i);
            if (r2 > 0) {
                for (int k = start; k <= i; k++)
                    A->qargv[A->qargc++] = argv[k];
                continue;
            }
            if (r2 == 0) {
                fprintf(stderr, "mailwire send: unknown option '%s'\n", a);
                send_usage(stderr);
            }
            return EX_USAGE_;
        }
        if (a[0] == '-' && a[1]) {
            if (short_options(A, &R->c, argc, argv, &i) < 0) return EX_USAGE_;
            continue;
        }
        A->rcpt[A->nrcpt++] = a;
    }
    return -1;
}

/* The modes but delivery: -bi, -q, -bp, -bs.  -1 for delivery, else the
 * exit code. */
static int other_modes(send_run *R)
{
    send_args *A = &R->A;
    smtp_cli *c = &R->c;
    if (A->mode == 'i') return 0; /* -bi / -I: no alias database to build */
    if (R->engine == MW_CLI_ENGINE_LOOP && A->mode != 'm' && A->mode != 's')
        return send_loop_refuse(c, "the queue (-q, -bp)");
    if (A->mode == 'q' || A->mode == 'p') {
        /* -q is `queue flush` (deliver all queued mail), -bp `queue list`. */
        if (c->conn.config_path) { /* -C */
            A->qargv[A->qargc++] = (char *)"--config";
            A->qargv[A->qargc++] = (char *)c->conn.config_path;
        }
        A->qargv[A->qargc++] = (char *)(A->mode == 'q' ? "flush" : "list");
        A->qargv[A->qargc] = NULL;
        return mw_cmd_queue(A->qargc, A->qargv);
    }
    if (A->mode == 's') {
        c->conn.json = 0; /* stdout is the SMTP dialogue */
        return bs_session(c, A);
    }
    return -1;
}

/* Checks the delivery's arguments, reads the header block ahead (all of
 * the message with --bcc-digest), finds the sender and with it the
 * account.  -1 go on, else the exit code. */
static int read_ahead(send_run *R)
{
    send_args *A = &R->A;
    if (!A->extract && A->nrcpt == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments or use -t\n");
        return EX_USAGE_;
    }
    if (A->ret && strcasecmp(A->ret, "full") && strcasecmp(A->ret, "hdrs")) {
        fprintf(stderr, "mailwire send: -R takes full or hdrs\n");
        return EX_USAGE_;
    }
    if (!(R->sin = calloc(1, sizeof *R->sin))) return EX_SOFTWARE_;
    R->sin->ignore_dots = A->ignore_dots;
    if (sin_read_ahead(R->sin, A->bcc_digest) != 0) {
        fprintf(stderr, "mailwire send: cannot read the message: %s\n",
                errno != EFBIG  ? mw_cli_errno_text(errno)
                : A->bcc_digest ? "over 256 MiB (--bcc-digest holds it in memory)"
                                : "no end of the header block in its first 1 MiB");
        return errno == EFBIG ? EX_DATAERR_ : EX_IOERR_;
    }
    /* Without --account or --host, the sender picks the account (-f, else
     * the From field), as msmtp's --read-envelope-from does; with no
     * sender, or none matching, the account called "default". */
    R->sender = A->from ? strdup(A->from) : from_field_address(R->sin->head, R->sin->hlen);
    R->c.conn.from_address = R->sender ? R->sender : "";
    int rc = smtp_finish(&R->c);
    if (rc) return rc;
    R->originator = A->from;
    if (!R->sender) {
        if (!(R->sender = default_sender(&R->c.conn))) return EX_SOFTWARE_;
        R->originator = R->sender;
    }
    return -1;
}

/* The message and its envelope for the library, as sendmail makes them.
 * 0 or an exit code. */
static int build_msg(send_run *R, mw_smtp_msg *m)
{
    send_args *A = &R->A;
    smtp_cli *c = &R->c;
    const char *data = R->sin->head, *originator = R->originator;
    size_t len = R->sin->hlen;
    struct stat st;
    if (!R->sin->done) {
        m->read = send_source_read;
        m->read_userdata = R->sin;
        /* SIZE= from a regular file on stdin (an estimate, RFC 1870 §4). */
        if (fstat(0, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0)
            m->size_hint = (uint64_t)st.st_size;
    } else {
        /* Read whole already (all of a short message came with its
         * header): from memory, so SIZE and the 8-bit check are exact. */
        m->data = data;
        m->len = len;
    }
    m->originator = originator;
    /* sendmail's header rules: Bcc removed, From/Date/Message-ID added
     * when missing, never a Sender field (envelope.c). */
    m->rewrite_headers = MW_SMTP_REWRITE_SENDMAIL;
    m->body = A->body;
    /* -t: the recipients come from To/Cc/Bcc (the library removes Bcc),
     * plus any recipient arguments, as Postfix's sendmail ("added to any
     * recipients specified on the command line") and msmtp do; Sendmail 8
     * and Exim by default remove the argument addresses instead, which
     * would silently drop mail the caller named, so we add. */
    m->recipients = A->nrcpt ? A->rcpt : NULL;
    m->nrecipients = A->nrcpt;
    m->header_recipients = A->extract;
    if (A->fullname && originator && originator[0] && !has_header(data, len, "From")) {
        size_t fl = strlen(A->fullname) + strlen(originator) + 16;
        if (!(R->fromhdr = malloc(fl))) return EX_SOFTWARE_;
        snprintf(R->fromhdr, fl, "From: %s <%s>", A->fullname, originator);
        c->headers[c->nheaders++] = R->fromhdr;
    }
    m->headers = c->headers;
    m->nheaders = c->nheaders;
    m->atleastone = !A->all_or_nothing;
    m->bcc_digest = A->bcc_digest;
    m->dsn_notify = A->notify;
    m->dsn_ret = A->ret;
    m->dsn_envid = A->envid;
    m->dsn_orcpt = c->dsn_orcpt;
    return 0;
}

/* The rest of stdin into R->whole (--downgrade re-encodes it in memory);
 * NULL, or why not. */
static const char *slurp(send_run *R)
{
    char tmp[65536];
    size_t cap = 0;
    long n;
    while ((n = send_source_read(tmp, sizeof tmp, R->sin)) > 0) {
        if (R->whole_len + (size_t)n > SEND_MAX_MESSAGE)
            return "over 256 MiB (--downgrade holds it in memory)";
        if (R->whole_len + (size_t)n > cap) {
            size_t nc = cap ? cap * 2 : 131072;
            while (nc < R->whole_len + (size_t)n)
                nc *= 2;
            char *nb = realloc(R->whole, nc);
            if (!nb) return "out of memory";
            R->whole = nb;
            cap = nc;
        }
        memcpy(R->whole + R->whole_len, tmp, (size_t)n);
        R->whole_len += (size_t)n;
    }
    return n < 0 ? "cannot read the message" : NULL;
}

/* --downgrade: a binary message the server cannot take as it is goes as
 * 7-bit.  0 or an exit code (printed). */
static int downgrade(send_run *R, mw_smtp *s, mw_smtp_msg *m)
{
    if (!R->A.downgrade || R->A.body != MW_SMTP_BODY_BINARYMIME ||
        (ehlo_has(s, "BINARYMIME") && ehlo_has(s, "CHUNKING")))
        return 0;
    const char *why = slurp(R);
    mw_error derr;
    mw_error_clear(&derr);
    if (!why && mw_smtp_downgrade_7bit(R->whole, R->whole_len, &R->seven, &R->seven_len, &derr))
        why = derr.message;
    if (why) {
        fprintf(stderr, "mailwire send: cannot downgrade the message to 7-bit: %s\n", why);
        return EX_DATAERR_;
    }
    m->read = NULL;
    m->read_userdata = NULL;
    m->data = R->seven;
    m->len = R->seven_len;
    m->size_hint = 0;
    m->body = MW_SMTP_BODY_7BIT;
    if (R->A.verbose)
        fprintf(stderr, "mailwire send: the server does not offer BINARYMIME: the message "
                        "goes re-encoded as 7-bit (base64)\n");
    return 0;
}

/* The message through the blocking API: open, send, print, quit. */
static int send_blocking(send_run *R, mw_smtp_msg *m)
{
    mw_smtp *s = NULL;
    int rc = smtp_open(&R->c, &s, 1);
    if (rc) return rc;
    if ((rc = downgrade(R, s, m)) != 0) {
        mw_smtp_quit(s);
        mw_smtp_free(s);
        return rc;
    }
    int src = mw_smtp_send(s, m, &R->r);
    print_result(&R->c, NULL, src, R->r, mw_smtp_error(s));
    rc = tx_exit(src, R->r);
    json_tx_error(rc, src, R->r, mw_smtp_error(s), NULL);
    if (R->A.verbose && !R->c.conn.json && R->r) send_verbose_result(R->r);
    mw_smtp_quit(s);
    mw_smtp_free(s);
    return rc;
}

/* Delivery: the message read ahead, then queued, or sent on the engine
 * MAILWIRE_ENGINE names. */
static int deliver(send_run *R)
{
    int rc = read_ahead(R);
    if (rc >= 0) return rc;
    const mw_account *acct = R->c.conn.config && R->c.conn.account
                                 ? mw_config_find(R->c.conn.config, R->c.conn.account)
                                 : NULL;
    if (R->A.enqueue || (acct && acct->queue)) {
        if (R->engine == MW_CLI_ENGINE_LOOP)
            return send_loop_refuse(&R->c, "the queue (--enqueue, queue on)");
        return send_enqueue(&R->c, &R->A, &R->A.qc, R->sin,
                            R->originator ? R->originator : R->sender);
    }
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    if ((rc = build_msg(R, &m)) != 0) return rc;
    if (R->engine == MW_CLI_ENGINE_LOOP) return send_on_loop(&R->c, &R->A, &m);
    return send_blocking(R, &m);
}

static void send_run_free(send_run *R)
{
    mw_smtp_result_free(R->r);
    free(R->fromhdr);
    free(R->sender);
    free(R->whole);
    free(R->seven);
    if (R->sin) free(R->sin->head);
    free(R->sin);
    free(R->A.rcpt);
    free(R->A.qargv);
    free(R->A.config_buf);
    smtp_cli_free(&R->c);
}

int mw_cli_sendmail(int argc, char **argv)
{
    send_run *R = calloc(1, sizeof *R);
    if (!R) return EX_SOFTWARE_;
    R->c.prog = "send";
    mw_cli_conn_init(&R->c.conn, "send", 587, 465);
    R->A.mode = 'm';
    R->A.body = MW_SMTP_BODY_AUTO;
    R->A.rcpt = calloc((size_t)argc + 1, sizeof *R->A.rcpt);
    R->A.qargv = calloc((size_t)argc + 5, sizeof *R->A.qargv);
    R->engine = mw_cli_engine("send");
    int rc = !R->A.rcpt || !R->A.qargv ? EX_SOFTWARE_ : R->engine < 0 ? EX_USAGE_ : -1;
    if (rc < 0) {
        R->A.qargv[R->A.qargc++] = (char *)"queue";
        rc = parse_args(R, argc, argv);
    }
    if (rc < 0) {
        if (R->A.verbose > 1 && !R->c.conn.trace_path) R->c.conn.trace_path = "-";
        rc = other_modes(R);
    }
    if (rc < 0) rc = deliver(R);
    send_run_free(R);
    free(R);
    return rc;
}

int mw_cmd_send(int argc, char **argv)
{
    return mw_cli_sendmail(argc, argv);
}
