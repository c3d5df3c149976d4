/* `mailwire send -bs` (send_int.h). */
#include "send_int.h"
#include "commands.h"
#include "connopts.h"
#include "engine.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/loop.h"
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

/* One -bs dialogue: the caller's transaction in progress and the relay. */
typedef struct bs_state {
    smtp_cli *c;
    send_args *A;
    bs_in *in;
    char *line;
    char **rcpt;
    char *mail;
    size_t nrcpt;
    int have_mail, finished, rc;
    mw_smtp *s;
    mw_queue *q;
    char host[256];
    /* MAILWIRE_ENGINE=loop: the relay is a batch job whose next callback
     * runs the dialogue up to the next DATA (bs_next) */
    int loop, job_on, ended;
} bs_state;

static void bs_clear(bs_state *b)
{
    for (size_t k = 0; k < b->nrcpt; k++)
        free(b->rcpt[k]);
    b->nrcpt = 0;
    b->have_mail = 0;
}

static void bs_mail(bs_state *b)
{
    const char *params = NULL;
    char *a = bs_path(b->line + 10, &params);
    if (b->have_mail) {
        bs_reply("503 5.5.1 nested MAIL command");
        free(a);
    } else if (!a) {
        bs_reply("501 5.1.7 bad sender address syntax");
    } else {
        free(b->mail);
        b->mail = a;
        b->have_mail = 1;
        bs_reply("250 2.1.0 Ok");
    }
}

static void bs_rcpt(bs_state *b)
{
    const char *params = NULL;
    char *a = bs_path(b->line + 8, &params);
    if (!b->have_mail) {
        bs_reply("503 5.5.1 need MAIL first");
        free(a);
    } else if (!a || !a[0]) {
        bs_reply("501 5.1.3 bad recipient address syntax");
        free(a);
    } else if (b->nrcpt >= BS_MAX_RCPT) {
        bs_reply("452 4.5.3 too many recipients");
        free(a);
    } else {
        b->rcpt[b->nrcpt++] = a;
        bs_reply("250 2.1.5 Ok");
    }
}

/* The caller's transaction as the relay sends it. */
static void bs_msg(bs_state *b, mw_smtp_msg *m)
{
    m->read = bs_data_read;
    m->read_userdata = b->in;
    m->originator = b->mail;
    m->recipients = (const char *const *)b->rcpt;
    m->nrecipients = b->nrcpt;
    m->rewrite_headers = 0; /* what the client sent, as it is */
    m->atleastone = 0;
    m->body = b->A->body;
    m->dsn_notify = b->A->notify;
    m->dsn_ret = b->A->ret;
    m->dsn_envid = b->A->envid;
}

/* After the relay's outcome: the rest of the data read when the relay
 * stopped early, the reply.  1 when the input ended inside DATA. */
static int bs_answer(bs_state *b, int src, const mw_smtp_result *r, const mw_error *err)
{
    char scratch[4096];
    bs_in *in = b->in;
    while (!in->done && !(in->eof && in->s == in->e))
        if (bs_data_read(scratch, sizeof scratch, in) < 0) break;
    if (!in->done) return 1; /* input ended inside DATA: nothing to answer */
    bs_final(src, r, err);
    if (b->A->verbose) print_result(b->c, NULL, src, r, err);
    return 0;
}

/* The transaction relayed on the session (orc 0), or refused with 451
 * (the client keeps the message).  1 when the input ended inside DATA. */
static int bs_relay(bs_state *b, int orc, mw_error *openerr)
{
    mw_smtp_result *r = NULL;
    int src;
    const mw_error *err = openerr;
    if (orc == 0) {
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        bs_msg(b, &m);
        src = mw_smtp_send(b->s, &m, &r);
        err = mw_smtp_error(b->s);
    } else {
        src = MW_ENET;
        if (!openerr->message[0])
            snprintf(openerr->message, sizeof openerr->message, "%s",
                     b->finished < 0 ? "no relay server configured (see stderr)"
                                     : "cannot log in to the relay server (see stderr)");
    }
    if (bs_answer(b, src, r, err)) {
        mw_smtp_result_free(r);
        return 1;
    }
    mw_smtp_result_free(r);
    if (b->s && !mw_smtp_alive(b->s)) {
        mw_smtp_free(b->s);
        b->s = NULL;
    }
    return 0;
}

static int bs_command(bs_state *b);
static int bs_data_loop(bs_state *b);

/* DATA: the relay opened on the first (its sender picks the account),
 * then the message through the queue or the session.  1: stop; 2 (the
 * loop engine, a relay job running): the message is ready for it. */
static int bs_data(bs_state *b)
{
    smtp_cli *c = b->c;
    if (!b->have_mail || b->nrcpt == 0) {
        bs_reply("%s",
                 !b->have_mail ? "503 5.5.1 need MAIL first" : "554 5.5.1 no valid recipients");
        return 0;
    }
    bs_reply("354 End data with <CR><LF>.<CR><LF>");
    b->in->bol = 1;
    b->in->done = 0;
    if (b->loop) return bs_data_loop(b);
    int orc = 0;
    mw_error openerr;
    mw_error_clear(&openerr);
    if (!b->s) {
        if (!b->finished) {
            c->conn.from_address = b->mail;
            b->finished = smtp_finish(c) == 0 ? 1 : -1;
        }
        orc = b->finished < 0              ? EX_USAGE_
              : b->q || use_queue(c, b->A) ? 0
                                           : smtp_open_err(c, &b->s, 1, &openerr);
    }
    if (b->finished > 0 && !b->q && use_queue(c, b->A) &&
        queue_cli_open(&b->A->qc, &b->q, "send") != 0) {
        b->rc = EX_TEMPFAIL_;
        return 1;
    }
    if (b->q) {
        /* Through the queue: 250 once it is sent or safely queued. */
        if (b->s) { /* no direct session in this mode */
            mw_smtp_quit(b->s);
            mw_smtp_free(b->s);
            b->s = NULL;
        }
        bs_via_queue(c, b->A, b->q, b->in, b->mail, b->rcpt, b->nrcpt);
        if (!b->in->done) return 1; /* input ended inside DATA */
        bs_clear(b);
        return 0;
    }
    if (bs_relay(b, orc, &openerr)) return 1;
    bs_clear(b);
    return 0;
}

/* ---- MAILWIRE_ENGINE=loop: the relay as a batch job ----
 * Its next callback runs the dialogue (stdin, synchronously: the loop
 * holds this job only) up to the next DATA; message pipelining is off, so
 * each transaction is answered before the next command is read. */

static int bs_next(mw_loop_job *job, size_t index, mw_smtp_msg *m, void *ud)
{
    (void)job;
    bs_state *b = ud;
    if (b->ended) return 0;
    int g = index == 0 ? 2 : 0; /* the first: the DATA that started the job */
    while (g != 2) {
        size_t n = 0;
        g = bs_line(b->in, b->line, &n);
        if (g == 0) break;
        if (g == -2) {
            bs_reply("500 5.5.2 line too long");
            continue;
        }
        g = bs_command(b);
        if (g == 1) break;
    }
    if (g != 2) {
        b->ended = 1; /* QUIT or the end of the input: the relay quits too */
        return 0;
    }
    bs_msg(b, m);
    return 1;
}

static void bs_done(mw_loop_job *job, size_t index, int rc, const mw_smtp_result *r,
                    const mw_error *err, void *ud)
{
    (void)job;
    (void)index;
    bs_state *b = ud;
    if (bs_answer(b, rc, r, err))
        b->ended = 1;
    else
        bs_clear(b);
}

/* The transaction ready after 354: a relay job started for it, on which
 * the dialogue goes on until the session ends; or, when it cannot be
 * opened, refused with 451 as bs_relay does.  1: stop. */
static int bs_data_loop(bs_state *b)
{
    smtp_cli *c = b->c;
    if (b->job_on) return 2; /* the job's next callback takes it */
    if (!b->finished) {
        c->conn.from_address = b->mail;
        b->finished = smtp_finish(c) == 0 ? 1 : -1;
    }
    mw_error err;
    mw_error_clear(&err);
    int orc = EX_USAGE_;
    if (b->finished > 0 && use_queue(c, b->A)) {
        fprintf(stderr, "mailwire send: not on the loop engine yet: the queue (--enqueue, "
                        "queue on)\n");
        bs_reply("451 4.3.0 not on the loop engine yet: the queue");
        b->rc = EX_UNAVAILABLE_;
        return 1;
    }
    if (b->finished > 0 && (orc = smtp_loop_creds(c, 1)) == 0) {
        mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
        cb.next = bs_next;
        cb.done = bs_done;
        cb.userdata = b;
        cb.no_message_pipelining = 1;
        int ready = 0;
        b->job_on = 1;
        int rc = smtp_loop_run(c, &cb, 1, &ready, &err);
        b->job_on = 0;
        if (!rc && ready > 0) return b->ended;
        orc = smtp_loop_failed(c, rc ? rc : err.code, &err);
    }
    if (bs_relay(b, orc, &err)) return 1;
    bs_clear(b);
    return 0;
}

/* One command of the dialogue; 1 ends it. */
static int bs_command(bs_state *b)
{
    const char *line = b->line;
    if (bs_cmd(line, "EHLO")) {
        bs_reply("250-%s\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES", b->host);
        b->have_mail = 0;
    } else if (bs_cmd(line, "HELO")) {
        bs_reply("250 %s", b->host);
        b->have_mail = 0;
    } else if (bs_cmd(line, "MAIL") && !strncasecmp(line + 4, " FROM:", 6)) {
        bs_mail(b);
    } else if (bs_cmd(line, "RCPT") && !strncasecmp(line + 4, " TO:", 4)) {
        bs_rcpt(b);
    } else if (bs_cmd(line, "DATA")) {
        return bs_data(b);
    } else if (bs_cmd(line, "RSET")) {
        bs_clear(b);
        bs_reply("250 2.0.0 Ok");
    } else if (bs_cmd(line, "NOOP")) {
        bs_reply("250 2.0.0 Ok");
    } else if (bs_cmd(line, "VRFY")) {
        bs_reply("252 2.0.0 cannot verify, but will relay");
    } else if (bs_cmd(line, "HELP")) {
        bs_reply("214 2.0.0 EHLO HELO MAIL RCPT DATA RSET NOOP VRFY QUIT");
    } else if (bs_cmd(line, "QUIT")) {
        bs_reply("221 2.0.0 Bye");
        return 1;
    } else {
        bs_reply("502 5.5.2 command not implemented");
    }
    return 0;
}

int bs_session(smtp_cli *c, send_args *A)
{
    bs_state b;
    memset(&b, 0, sizeof b);
    b.c = c;
    b.A = A;
    b.loop = mw_cli_engine("send") == MW_CLI_ENGINE_LOOP;
    b.in = calloc(1, sizeof *b.in);
    b.line = malloc(BS_MAX_LINE + 1);
    b.rcpt = calloc(BS_MAX_RCPT, sizeof *b.rcpt);
    if (!b.in || !b.line || !b.rcpt) {
        b.rc = EX_SOFTWARE_;
    } else {
        if (gethostname(b.host, sizeof b.host - 1) != 0 || !b.host[0])
            snprintf(b.host, sizeof b.host, "localhost");
        b.host[sizeof b.host - 1] = '\0';
        bs_reply("220 %s ESMTP mailwire send -bs", b.host);
        for (;;) {
            size_t n = 0;
            int g = bs_line(b.in, b.line, &n);
            if (g == 0) break;
            if (g == -2) {
                bs_reply("500 5.5.2 line too long");
                continue;
            }
            if (bs_command(&b) || b.ended) break;
        }
    }
    if (b.s) {
        mw_smtp_quit(b.s);
        mw_smtp_free(b.s);
    }
    mw_queue_close(b.q);
    if (b.rcpt) bs_clear(&b);
    free(b.rcpt);
    free(b.mail);
    free(b.line);
    free(b.in);
    return b.rc;
}
