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
    int engine = mw_cli_engine("send");
    stdin_src *sin = NULL;
    char *fromhdr = NULL, *sender = NULL, *whole = NULL, *seven = NULL;
    size_t whole_len = 0, seven_len = 0;
    mw_smtp_result *r = NULL;
    if (!A.rcpt || !A.qargv) {
        free(A.rcpt);
        free(A.qargv);
        return EX_SOFTWARE_;
    }
    if (engine < 0) {
        free(A.rcpt);
        free(A.qargv);
        return EX_USAGE_;
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
    if (engine == MW_CLI_ENGINE_LOOP && A.mode != 'm') {
        rc = send_loop_refuse(&c, A.mode == 's' ? "-bs (SMTP on stdin)" : "the queue (-q, -bp)");
        goto out;
    }
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
        if ((A.enqueue || (acct && acct->queue)) && engine == MW_CLI_ENGINE_LOOP) {
            rc = send_loop_refuse(&c, "the queue (--enqueue, queue on)");
            goto out;
        }
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
    if (engine == MW_CLI_ENGINE_LOOP) {
        rc = send_on_loop(&c, &A, &m);
        goto out;
    }
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
    if (A.verbose && !c.conn.json && r) send_verbose_result(r);
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
