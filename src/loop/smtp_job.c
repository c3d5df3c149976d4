/* An SMTP send as a non-blocking state machine on the loop (loop.h):
 * greeting, EHLO, STARTTLS (RFC 3207) and EHLO again, AUTH PLAIN
 * (RFC 4954, RFC 4616), MAIL, RCPT, DATA (RFC 5321 §4.5.2 through
 * src/proto/smtp_data.h), QUIT.  Replies through src/proto/smtp_reply.h.
 * One command at a time.  Its socket and TLS handling mirror pop3_job.c
 * (the shared command/response engine of both is still to be written). */
#include "loop/loop_int.h"
#include "loop/lconn.h"
#include "loop/lproxy.h"
#include "proto/smtp_data.h"
#include "proto/smtp_reply.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SJ_IN_CAP      8192
#define SJ_ARG_MAX     256         /* a path or name in a command (RFC 5321 §4.5.3.1.3) */
#define SJ_OUT_LOW     (8 * 1024)  /* refill the DATA stream below this */
#define SJ_CHUNK       (16 * 1024) /* message octets encoded at a time */
#define SJ_OUT_MAX     (64 * 1024)
#define SJ_READ_BUDGET (64 * 1024)

enum sj_state {
    S_CONNECTING,
    S_HANDSHAKE,
    S_GREETING,
    S_EHLO,
    S_STARTTLS,
    S_AUTH,
    S_MAIL,
    S_RCPT,
    S_DATA,
    S_BODY,
    S_QUIT,
    S_DONE
};
static const char *const state_name[] = {"connecting", "TLS handshake", "greeting", "EHLO",
                                         "STARTTLS",   "AUTH",          "MAIL",     "RCPT",
                                         "DATA",       "message",       "QUIT",     "done"};

typedef struct sj {
    mw_loop_job *job;
    int state;
    mwi_lconn c; /* the connection half: socket, TLS, buffers, deadlines */
    char *user, *password, *helo, *from;
    char **rcpt;
    size_t nrcpt, rcpt_i;
    const char *msg;
    size_t msg_len, msg_off;
    int tls_mode, allow_plaintext, connect_timeout_ms;
    int body_queued;
    mw_smtp_reply *reply;
    mw_smtp_caps caps;
    mw_smtp_data_enc enc;
    char cmd[520]; /* the command in flight, masked */
} sj;

static void set_state(sj *p, int st)
{
    if (p->state == st || p->state == S_DONE) return;
    mwi_lconn_info(&p->c, "state %s -> %s", state_name[p->state], state_name[st]);
    p->state = st;
}

static void end_job(sj *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void end_job(sj *p, int code, const char *fmt, ...)
{
    if (p->job->done) return;
    char msg[sizeof p->job->err.message] = "";
    if (code) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    mwi_lconn_end(&p->c, code, msg);
    set_state(p, S_DONE);
}

/* Queues one command; `shown` is what the trace and mw_error show. */
static void send_cmd(sj *p, int st, const char *line, const char *shown)
{
    if (strpbrk(line, "\r\n") || strlen(line) > 512 - 2) {
        end_job(p, MW_EINVAL, "command refused: CR/LF or over 510 octets");
        return;
    }
    snprintf(p->cmd, sizeof p->cmd, "%s", shown ? shown : line);
    int rc = mwi_lconn_queue_line(&p->c, line);
    if (rc) {
        end_job(p, rc, "command refused: %s", mw_strerror(rc));
        return;
    }
    mwi_lconn_trace(&p->c, MW_TRACE_SEND, p->cmd, strlen(p->cmd));
    mwi_smtp_reply_init(p->reply);
    set_state(p, st);
}

static void refuse(sj *p, int code)
{
    mw_error *e = &p->job->err;
    size_t len;
    const char *sum = mwi_smtp_reply_summary(p->reply, &len);
    mwi_err_set_command(e, p->cmd, strlen(p->cmd));
    mwi_err_set_reply(e, sum, len);
    e->reply_code = p->reply->code;
    snprintf(e->enhanced, sizeof e->enhanced, "%s", p->reply->enhanced);
    if (p->reply->code >= 400 && p->reply->code < 500) code = MW_ETEMP;
    end_job(p, code, "%s refused by the server: %d %.200s", state_name[p->state], p->reply->code,
            e->reply);
}

static void send_ehlo(sj *p)
{
    char line[SJ_ARG_MAX + 8];
    snprintf(line, sizeof line, "EHLO %s", p->helo);
    send_cmd(p, S_EHLO, line, NULL);
}

static void send_mail(sj *p)
{
    char line[SJ_ARG_MAX + 16];
    snprintf(line, sizeof line, "MAIL FROM:<%s>", p->from);
    send_cmd(p, S_MAIL, line, NULL);
}

static void after_ehlo(sj *p)
{
    if (mwi_smtp_caps_parse(&p->caps, p->reply) != 0) {
        end_job(p, MW_EPROTO, "cannot read the EHLO reply");
        return;
    }
    if (!p->c.tls && p->tls_mode == MW_TLS_STARTTLS) {
        if (!(p->caps.flags & MW_SMTP_CAP_STARTTLS)) {
            end_job(p, MW_ETLS,
                    "the server does not offer STARTTLS (RFC 3207) and TLS is "
                    "required");
            return;
        }
        send_cmd(p, S_STARTTLS, "STARTTLS", NULL);
        return;
    }
    if (!p->user) {
        send_mail(p);
        return;
    }
    if (!p->c.tls && !p->allow_plaintext) {
        end_job(p, MW_EPOLICY,
                "login over an unencrypted connection not allowed "
                "(allow_plaintext)");
        return;
    }
    if (!mwi_smtp_caps_has_auth(&p->caps, "PLAIN")) {
        end_job(p, MW_EUNSUPPORTED,
                "the server does not offer AUTH PLAIN (the loop's only "
                "mechanism yet)");
        return;
    }
    /* RFC 4616 §2: authzid NUL authcid NUL passwd, base64 (RFC 4954 §4). */
    size_t ul = strlen(p->user), pl = strlen(p->password), n = ul + pl + 2;
    unsigned char raw[2 * SJ_ARG_MAX + 2];
    char line[16 + 4 * ((2 * SJ_ARG_MAX + 2 + 2) / 3) + 1];
    raw[0] = 0;
    memcpy(raw + 1, p->user, ul);
    raw[1 + ul] = 0;
    memcpy(raw + 2 + ul, p->password, pl);
    memcpy(line, "AUTH PLAIN ", 11);
    mwi_base64_encode(line + 11, raw, n);
    send_cmd(p, S_AUTH, line, "AUTH PLAIN ****");
    explicit_bzero(raw, sizeof raw);
    explicit_bzero(line, sizeof line);
}

static void send_rcpt(sj *p)
{
    char line[SJ_ARG_MAX + 16];
    snprintf(line, sizeof line, "RCPT TO:<%s>", p->rcpt[p->rcpt_i]);
    send_cmd(p, S_RCPT, line, NULL);
}

/* A complete reply, to the command of the current state. */
static void on_reply(sj *p)
{
    int c = p->reply->code;
    switch (p->state) {
    case S_GREETING:
        if (c != 220) return refuse(p, MW_ESERVER);
        send_ehlo(p);
        return;
    case S_EHLO:
        if (c != 250) return refuse(p, MW_ESERVER);
        after_ehlo(p);
        return;
    case S_STARTTLS:
        if (c != 220) return refuse(p, MW_ETLS);
        set_state(p, S_HANDSHAKE);
        p->c.tls_pending = 1; /* process() checks that nothing follows the 220 */
        return;
    case S_AUTH:
        if (c != 235) return refuse(p, MW_EAUTH);
        send_mail(p);
        return;
    case S_MAIL:
        if (c / 100 != 2) return refuse(p, MW_ESERVER);
        p->rcpt_i = 0;
        send_rcpt(p);
        return;
    case S_RCPT:
        if (c != 250 && c != 251) return refuse(p, MW_ESERVER);
        if (++p->rcpt_i < p->nrcpt)
            send_rcpt(p);
        else
            send_cmd(p, S_DATA, "DATA", NULL);
        return;
    case S_DATA:
        if (c != 354) return refuse(p, MW_ESERVER);
        set_state(p, S_BODY);
        mwi_smtp_data_init(&p->enc, 0);
        mwi_smtp_reply_init(p->reply);
        snprintf(p->cmd, sizeof p->cmd, "(end of data)");
        return;
    case S_BODY:
        if (!p->body_queued) {
            end_job(p, MW_EPROTO, "a reply before the end of the data");
            return;
        }
        if (c / 100 != 2) return refuse(p, MW_ESERVER);
        p->job->result.sent = 1;
        p->job->result.messages = 1;
        send_cmd(p, S_QUIT, "QUIT", NULL);
        return;
    case S_QUIT:
        p->job->result.quit_ok = c == 221;
        end_job(p, 0, "%s", "done");
        return;
    default:
        end_job(p, MW_EPROTO, "a reply no command asked for (in state %s)", state_name[p->state]);
    }
}

static void process(sj *p)
{
    size_t pos = 0;
    while (!p->job->done && p->state != S_HANDSHAKE) {
        char *nl = memchr(p->c.in + pos, '\n', p->c.in_len - pos);
        if (!nl) {
            if (p->c.in_len - pos > MW_SMTP_REPLY_MAX_LINE)
                end_job(p, MW_ETOOBIG, "a reply line is longer than %d octets",
                        MW_SMTP_REPLY_MAX_LINE);
            break;
        }
        char *l = p->c.in + pos;
        size_t len = (size_t)(nl - l);
        pos += len + 1;
        if (len && l[len - 1] == '\r') len--;
        mwi_lconn_trace(&p->c, MW_TRACE_RECV, l, len);
        int rc = mwi_smtp_reply_feed(p->reply, l, len, &p->job->err);
        if (rc < 0) {
            end_job(p, rc, "%s", p->job->err.message);
            break;
        }
        if (rc == 1) on_reply(p);
        /* RFC 3207 §4: nothing may be taken from before the handshake. */
        if (p->c.tls_pending && mwi_lconn_after_line(&p->c, pos)) break;
    }
    if (pos) {
        memmove(p->c.in, p->c.in + pos, p->c.in_len - pos);
        p->c.in_len -= pos;
    }
}

/* DATA: keeps the output fed from the message, a chunk at a time. */
static void feed_body(sj *p)
{
    if (p->state != S_BODY || p->body_queued) return;
    while (mwi_lconn_pending(&p->c) < SJ_OUT_LOW && !p->job->done) {
        size_t n = p->msg_len - p->msg_off;
        if (n > SJ_CHUNK) n = SJ_CHUNK;
        int rc = n ? mwi_smtp_data_encode(&p->enc, p->msg + p->msg_off, n, &p->c.out, &p->job->err)
                   : mwi_smtp_data_finish(&p->enc, &p->c.out, &p->job->err);
        if (rc) {
            end_job(p, rc, "the message: %s", p->job->err.message);
            return;
        }
        p->msg_off += n;
        p->job->result.bytes += n;
        if (!n) {
            p->body_queued = 1;
            mwi_lconn_info(&p->c, "message sent (%zu octets), waiting for the reply", p->msg_len);
            return;
        }
    }
}

/* ---- the connection half's hooks (lconn.h) ---------------------------------- */

static void on_connected(void *impl)
{
    sj *p = impl;
    mwi_smtp_reply_init(p->reply);
    if (p->tls_mode == MW_TLS_IMPLICIT) {
        set_state(p, S_HANDSHAKE);
        mwi_lconn_start_tls(&p->c);
    } else {
        set_state(p, S_GREETING);
    }
}

static void on_tls_up(void *impl)
{
    sj *p = impl;
    if (p->caps.flags) {
        send_ehlo(p); /* RFC 3207 §4.2: forget what was learnt, EHLO again */
        memset(&p->caps, 0, sizeof p->caps);
    } else {
        set_state(p, S_GREETING); /* implicit TLS: the greeting comes now */
    }
}

static void on_process(void *impl)
{
    process(impl);
}

static void on_feed(void *impl)
{
    feed_body(impl);
}

static void on_fail(void *impl, int code, const char *msg)
{
    end_job(impl, code, "%s", msg);
}

static const char *on_state(void *impl)
{
    return state_name[((sj *)impl)->state];
}

static const mwi_lconn_ops conn_ops = {on_connected, on_tls_up, on_process, on_feed,
                                       on_fail,      on_state,  NULL};

static void step(mw_loop_job *j, int events)
{
    mwi_lconn_step(&((sj *)j->impl)->c, events);
}

static void destroy(mw_loop_job *j)
{
    sj *p = j->impl;
    if (!p) return;
    mwi_lconn_free(&p->c);
    for (size_t i = 0; i < p->nrcpt; i++)
        free(p->rcpt ? p->rcpt[i] : NULL);
    free(p->rcpt);
    free(p->user);
    free(p->helo);
    free(p->from);
    if (p->password) {
        explicit_bzero(p->password, strlen(p->password));
        free(p->password);
    }
    free(p->reply);
    free(p);
    j->impl = NULL;
}

static const mwi_job_ops smtp_ops = {step, destroy};

static int bad(const char *s, int empty_ok)
{
    return !s || (!empty_ok && !*s) || strpbrk(s, "\r\n<>") || strlen(s) > SJ_ARG_MAX - 1;
}

static char *dup_s(const char *s, int *fail)
{
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) *fail = 1;
    return d;
}

/* The TLS configuration and (version 2) the proxy of o. */
static int conn_setup(sj *p, const mw_loop_smtp_opts *o, mw_error *err)
{
    int rc = o->tls != MW_TLS_NONE ? mwi_ltls_cfg_init(&p->c.tlscfg, o->tls_opts, err) : 0;
    if (!rc && o->version >= 2 && o->proxy && *o->proxy)
        rc = mwi_lproxy_setup(&p->c, o->proxy, p->connect_timeout_ms, err);
    return rc;
}

/* given_fd >= 0: a connected descriptor instead of a TCP connect (owned
 * from the call on). */
static int add_send(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *o, int given_fd,
                    int *fd_taken, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    if (out) *out = NULL;
    if (!loop) return mwi_err_set(err, MW_EINVAL, "no loop");
    if (!o || o->version < 1 || o->version > MW_LOOP_SMTP_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_loop_smtp_opts missing or of another version");
    if (!o->host || !*o->host) return mwi_err_set(err, MW_EINVAL, "no host to connect to");
    if (bad(o->from, 1) || !o->nrcpt || !o->rcpt || (o->helo && bad(o->helo, 0)) ||
        (o->user && (bad(o->user, 0) || bad(o->password, 0))) || (!o->message && o->message_len))
        return mwi_err_set(err, MW_EINVAL,
                           "from, rcpt, helo, user and password: given, without CR, LF, < or "
                           ">, under %d octets",
                           SJ_ARG_MAX);
    for (size_t i = 0; i < o->nrcpt; i++)
        if (bad(o->rcpt[i], 0))
            return mwi_err_set(err, MW_EINVAL,
                               "recipient %zu is empty, too long or holds CR, "
                               "LF, < or >",
                               i + 1);
    if (o->tls != MW_TLS_STARTTLS && o->tls != MW_TLS_IMPLICIT && o->tls != MW_TLS_NONE)
        return mwi_err_set(err, MW_EUNSUPPORTED, "TLS mode %d not on the loop yet", o->tls);
    mw_loop_job *j = calloc(1, sizeof *j);
    sj *p = calloc(1, sizeof *p);
    if (!j || !p) {
        free(j);
        free(p);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    j->impl = p;
    j->ops = &smtp_ops;
    j->fd = -1;
    p->job = j;
    int fail = mwi_lconn_init(&p->c, j, &conn_ops, p, SJ_IN_CAP, SJ_OUT_MAX, SJ_READ_BUDGET) != 0;
    p->c.connecting = 1;
    p->c.host = dup_s(o->host, &fail);
    p->user = dup_s(o->user, &fail);
    p->password = dup_s(o->user ? o->password : NULL, &fail);
    p->helo = dup_s(o->helo ? o->helo : "localhost", &fail);
    p->from = dup_s(o->from, &fail);
    p->rcpt = calloc(o->nrcpt, sizeof *p->rcpt);
    p->reply = malloc(sizeof *p->reply);
    if (!p->rcpt || !p->reply) fail = 1;
    for (size_t i = 0; p->rcpt && i < o->nrcpt; i++)
        p->rcpt[i] = dup_s(o->rcpt[i], &fail);
    p->nrcpt = o->nrcpt;
    p->msg = o->message;
    p->msg_len = o->message_len;
    p->tls_mode = o->tls;
    p->c.port = o->port ? o->port : (o->tls == MW_TLS_IMPLICIT ? 465 : 587);
    p->allow_plaintext = o->allow_plaintext;
    p->connect_timeout_ms = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : 30000;
    p->c.io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms : 60000;
    p->c.total_deadline =
        o->max_time_ms > 0 ? mw_now_ms() + o->max_time_ms : (int64_t)MW_NO_DEADLINE;
    p->c.trace = o->trace;
    p->c.trace_ud = o->trace_userdata;
    int rc = fail ? mwi_err_set(err, MW_ENOMEM, "out of memory") : 0;
    if (!rc) rc = conn_setup(p, o, err);
    int fd = given_fd, ce = 0, cr = 0;
    *fd_taken = 1; /* from here on every path closes fd or gives it to the job */
    if (given_fd < 0 && !rc) rc = mwi_loop_tcp_socket(p->c.host, p->c.port, &fd, &cr, &ce, err);
    if (!rc) rc = mwi_loop_attach(loop, j, err);
    if (rc) {
        if (fd >= 0) close(fd);
        destroy(j);
        free(j);
        return rc;
    }
    j->done_fn = done;
    j->userdata = userdata;
    p->c.step_deadline = mw_now_ms() + p->connect_timeout_ms;
    if (mwi_loop_set_fd(j, fd) != 0) {
        close(fd);
        end_job(p, MW_ETOOBIG, "descriptor %d cannot be watched", fd);
    } else if (cr != 0 && ce != EINPROGRESS) {
        end_job(p, MW_ENET, "connect to %s port %u: %s", p->c.host, p->c.port, MW_ERRNO_TEXT(ce));
    }
    if (!j->done) mwi_lconn_arm(&p->c);
    if (out) *out = j;
    return 0;
}

int mw_loop_add_smtp_send(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                          mw_loop_done_fn done, void *userdata, mw_error *err)
{
    int taken = 0;
    return add_send(loop, out, opts, -1, &taken, done, userdata, err);
}

int mwi_loop_add_smtp_send_fd(mw_loop *loop, mw_loop_job **out, const mw_loop_smtp_opts *opts,
                              int fd, mw_loop_done_fn done, void *userdata, mw_error *err)
{
    int taken = 0;
    int rc = add_send(loop, out, opts, fd, &taken, done, userdata, err);
    if (!taken) close(fd);
    return rc;
}
