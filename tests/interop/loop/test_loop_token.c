/* The loop's asynchronous token provider (loop.h: mw_loop_token_fn,
 * mw_loop_set_token_provider, mw_loop_token_answer) over socketpairs whose
 * other ends are peer threads playing scripts.  Cases: a POP3 job whose
 * provider stays pending while another job on the same loop runs its whole
 * session (the other's server waits until the provider was asked, so the
 * order is forced, not timed), then the answer from another thread wakes
 * mw_loop_run and the job logs in; a token refused, asked again
 * (refused 1), answered from the loop's thread between actions (the wake
 * descriptor as mw_loop_fds lists it), AUTH again; a provider that never
 * answers (the io timeout ends the job, naming the provider); a cancel
 * while pending; late answers (MW_ESTATE); a token holding NUL, CR LF;
 * an answer given at once; the SMTP batch's refused-then-retry through
 * opts version 6 (token_async) and a version 5 caller that is not read.
 * TAP; the peers wait on their sockets, never on time. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "script_peer.h"

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

static int peer_start_gated(peer *pp, pthread_t *th, const char *const *script, int *client_fd,
                            int gate)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return -1;
    /* The job's end non-blocking (the loop reads until EAGAIN); the peer's
     * blocking. */
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    memset(pp, 0, sizeof *pp);
    pp->fd = sv[1];
    pp->gate = gate; /* before the thread starts: it reads it */
    pp->script = script;
    *client_fd = sv[0];
    return pthread_create(th, NULL, peer_run, pp) ? -1 : 0;
}

static int peer_start(peer *pp, pthread_t *th, const char *const *script, int *client_fd)
{
    return peer_start_gated(pp, th, script, client_fd, -1);
}

static void peer_end(peer *pp, pthread_t th)
{
    pthread_join(th, NULL);
    close(pp->fd);
    if (pp->bad) printf("# peer step %d: got \"%s\"\n", pp->bad, pp->got);
}

/* A job's side: its provider's calls and the job's end. */
typedef struct side {
    int pending;         /* 1: the provider answers MW_LOOP_TOKEN_PENDING */
    const char *at_once; /* else this token at once (NULL: pending) */
    int calls, refused[4];
    uint64_t ticket[4];
    int gate_w; /* >= 0: a byte written here at the first call */
    mw_loop_job *job;
    int done, code;
    char message[400];
    int other_done_at_call; /* the other side's done when this provider ran */
    struct side *other;
} side;

static int provider(mw_loop_job *job, uint64_t ticket, int refused, char **token, mw_error *err,
                    void *ud)
{
    (void)err;
    side *s = ud;
    if (s->calls < 4) {
        s->refused[s->calls] = refused;
        s->ticket[s->calls] = ticket;
    }
    s->calls++;
    s->job = job;
    if (s->other) s->other_done_at_call = s->other->done;
    if (s->gate_w >= 0) {
        char b = 1;
        if (write(s->gate_w, &b, 1) != 1) return MW_EIO;
        close(s->gate_w);
        s->gate_w = -1;
    }
    if (!s->pending && s->at_once) {
        *token = strdup(s->at_once);
        return 0;
    }
    return MW_LOOP_TOKEN_PENDING;
}

static void on_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    side *s = ud;
    s->done++;
    s->code = r->code;
    snprintf(s->message, sizeof s->message, "%s", r->err->message);
}

static int on_reply(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    (void)job;
    (void)r;
    (void)ud;
    return 0;
}

/* One pass of an outside event loop over mw_loop_fds / mw_loop_action
 * (loop.h's way (a)); poll's bound only paces the passes. */
static void pass(mw_loop *loop)
{
    mw_loop_fd lf[16];
    struct pollfd p[16];
    size_t n = mw_loop_fds(loop, lf, 16);
    if (n > 16) n = 16;
    for (size_t i = 0; i < n; i++) {
        p[i].fd = lf[i].fd;
        p[i].events = (short)(((lf[i].events & MW_LOOP_IN) ? POLLIN : 0) |
                              ((lf[i].events & MW_LOOP_OUT) ? POLLOUT : 0));
        p[i].revents = 0;
    }
    int t = mw_loop_timeout_ms(loop);
    if (t < 0 || t > 1000) t = 1000;
    if (poll(p, (nfds_t)n, t) > 0)
        for (size_t i = 0; i < n; i++)
            if (p[i].revents)
                mw_loop_action(loop, p[i].fd,
                               ((p[i].revents & POLLIN) ? MW_LOOP_IN : 0) |
                                   ((p[i].revents & POLLOUT) ? MW_LOOP_OUT : 0) |
                                   ((p[i].revents & (POLLERR | POLLHUP)) ? MW_LOOP_ERR : 0));
    mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
}

/* Passes until *flag, or the loop is empty; the bound is on passes. */
static void drive_until(mw_loop *loop, const int *flag)
{
    for (int k = 0; k < 100000 && !*flag && mw_loop_running(loop); k++)
        pass(loop);
}

static void pop3_opts(mw_loop_pop3_opts *o, int oauth)
{
    mw_loop_pop3_opts d = MW_LOOP_POP3_OPTS_INIT;
    *o = d;
    o->host = "peer";
    o->tls = MW_TLS_NONE;
    o->allow_plaintext = 1;
    o->user = "u";
    o->io_timeout_ms = 120000;
    if (oauth) {
        o->auth = MW_POP3_AUTH_SASL;
        o->sasl_mechs = "XOAUTH2";
    } else {
        o->auth = MW_POP3_AUTH_USER;
        o->password = "p";
    }
}

static const mw_loop_pop3_cmd noop = {MW_LOOP_POP3_NOOP, 0, 0, 0};

static int add_pop3(mw_loop *loop, const mw_loop_pop3_opts *o, int fd, side *s, int async)
{
    mw_error e = {0};
    mw_loop_job *j = NULL;
    int rc = mwi_loop_add_pop3_cmds_fd(loop, &j, o, &noop, 1, on_reply, NULL, fd, on_done, s, &e);
    if (!rc && async) rc = mw_loop_set_token_provider(loop, j, provider, s);
    s->job = j;
    return rc;
}

/* One POP3 job on a new loop, its provider side a, against script s
 * (o set by the caller): the loop to run; one_end frees it and joins the
 * peer. */
typedef struct one {
    mw_loop *loop;
    peer pp;
    pthread_t th;
} one;

static mw_loop *one_start(one *t, const char *const *s, const mw_loop_pop3_opts *o, side *a)
{
    int fd = -1;
    t->loop = NULL;
    mw_loop_new(&t->loop, NULL, NULL);
    peer_start(&t->pp, &t->th, s, &fd);
    add_pop3(t->loop, o, fd, a, 1);
    return t->loop;
}

static void one_end(one *t)
{
    mw_loop_free(t->loop);
    peer_end(&t->pp, t->th);
}

/* XOAUTH2 initial responses (base64 of "user=u^Aauth=Bearer TOKEN^A^A"). */
#define XO_TOK1 "dXNlcj11AWF1dGg9QmVhcmVyIHRvazEBAQ=="
#define XO_TOK2 "dXNlcj11AWF1dGg9QmVhcmVyIHRvazIBAQ=="

#define P3_HELLO "S:+OK ready\n", "C:CAPA", "S:+OK\nUSER\nSASL XOAUTH2\n.\n"
#define P3_TAIL  "C:STAT", "S:+OK 0 0\n", "C:NOOP", "S:+OK\n", "C:QUIT", "S:+OK bye\n", "E"

typedef struct answer_arg {
    mw_loop *loop;
    uint64_t ticket;
    int rc;
} answer_arg;

static void *answer_thread(void *arg)
{
    answer_arg *a = arg;
    a->rc = mw_loop_token_answer(a->loop, a->ticket, 0, "tok1", 4, NULL);
    return NULL;
}

/* A's provider pending while B's whole session runs; then A's answer
 * from another thread wakes mw_loop_run. */
static void no_stall(void)
{
    static const char *const sa[] = {P3_HELLO, "C:AUTH XOAUTH2 " XO_TOK1, "S:+OK in\n", P3_TAIL,
                                     NULL};
    /* B's server says nothing until A's provider was asked. */
    static const char *const sb[] = {
        "G",       "S:+OK ready\n", "C:CAPA", "S:+OK\nUSER\n.\n", "C:USER u", "S:+OK\n", "C:PASS p",
        "S:+OK\n", P3_TAIL,         NULL};
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    int gate[2];
    if (pipe(gate)) return;
    peer pa, pb;
    pthread_t ta, tb;
    int fa, fb;
    side a = {.pending = 1, .gate_w = gate[1]}, b = {.gate_w = -1};
    a.other = &b;
    peer_start(&pa, &ta, sa, &fa);
    peer_start_gated(&pb, &tb, sb, &fb, gate[0]);
    mw_loop_pop3_opts oa, ob;
    pop3_opts(&oa, 1);
    pop3_opts(&ob, 0);
    int rc = add_pop3(loop, &oa, fa, &a, 1);
    if (!rc) rc = add_pop3(loop, &ob, fb, &b, 0);
    ok(rc == 0, "two POP3 jobs on one loop, A with an asynchronous token provider");
    drive_until(loop, &b.done);
    ok(a.calls == 1 && a.refused[0] == 0 && a.ticket[0] != 0 && a.other_done_at_call == 0,
       "A's provider asked once (refused 0, a ticket) before B's server said a word");
    ok(b.done == 1 && b.code == 0 && a.done == 0 && mw_loop_running(loop) == 1,
       "B ran its whole session (login, STAT, NOOP, QUIT) while A's token was pending");
    if (b.code || a.done)
        printf("# B: %d %s; A: done %d %d %s\n", b.code, b.message, a.done, a.code, a.message);
    ok(!strstr(pa.log, "AUTH"), "A sent no AUTH while its token was pending");
    answer_arg aa = {loop, a.ticket[0], -1};
    pthread_t at;
    pthread_create(&at, NULL, answer_thread, &aa);
    mw_error e = {0};
    rc = mw_loop_run(loop, mw_now_ms() + 300000, &e);
    pthread_join(at, NULL);
    ok(rc == 0 && aa.rc == 0 && a.done == 1 && a.code == 0,
       "the answer from another thread woke mw_loop_run; A logged in and ended with 0");
    ok(mw_loop_token_answer(loop, a.ticket[0], 0, "tok1", 4, NULL) == MW_ESTATE,
       "the same ticket answered again after the job ended: MW_ESTATE");
    mw_loop_free(loop);
    peer_end(&pa, ta);
    peer_end(&pb, tb);
    close(gate[0]);
    ok(pa.bad == 0 && pb.bad == 0, "both servers saw the exact lines, A's AUTH with the token");
}

/* Refused, asked again (refused 1), answered from the loop's thread
 * between passes (loop.h's way (a): the wake descriptor in mw_loop_fds). */
static void refused_retry(void)
{
    static const char *const s[] = {P3_HELLO,
                                    "C:AUTH XOAUTH2 " XO_TOK1,
                                    "S:-ERR [AUTH] token expired\n",
                                    "C:AUTH XOAUTH2 " XO_TOK2,
                                    "S:+OK in\n",
                                    P3_TAIL,
                                    NULL};
    side a = {.pending = 1, .gate_w = -1};
    mw_loop_pop3_opts o;
    pop3_opts(&o, 1);
    one f;
    mw_loop *loop = one_start(&f, s, &o, &a);
    int wake_listed = 0, answered = 0;
    for (int k = 0; k < 100000 && !a.done && mw_loop_running(loop); k++) {
        if (a.calls > answered) {
            mw_loop_fd lf[8];
            size_t n = mw_loop_fds(loop, lf, 8);
            wake_listed += n == 2; /* the job's socket and the wake descriptor */
            const char *t = answered ? "tok2" : "tok1";
            if (mw_loop_token_answer(loop, a.ticket[answered], 0, t, 4, NULL) == 0) answered++;
        }
        pass(loop);
    }
    ok(a.calls == 2 && a.refused[0] == 0 && a.refused[1] == 1 && a.ticket[1] != a.ticket[0],
       "refused token: the provider asked again with refused 1 and a new ticket");
    ok(answered == 2 && wake_listed == 2, "both answered between passes; mw_loop_fds listed the "
                                          "wake descriptor");
    ok(a.done == 1 && a.code == 0, "AUTH again on the same connection with the new token: 0");
    one_end(&f);
    ok(f.pp.bad == 0, "the server saw both AUTH lines, STAT, NOOP, QUIT");
}

/* Never answered: the io timeout ends the job, naming the provider. */
static void never(void)
{
    static const char *const s[] = {P3_HELLO, "E", NULL};
    side a = {.pending = 1, .gate_w = -1};
    mw_loop_pop3_opts o;
    pop3_opts(&o, 1);
    o.io_timeout_ms = 300;
    one f;
    mw_loop *loop = one_start(&f, s, &o, &a);
    mw_error e = {0};
    int rc = mw_loop_run(loop, mw_now_ms() + 300000, &e);
    ok(rc == 0 && a.calls == 1 && a.done == 1 && a.code == MW_ETIMEOUT &&
           strstr(a.message, "token provider"),
       "a provider that never answers: MW_ETIMEOUT at the io timeout, naming the token provider");
    printf("# %s\n", a.message);
    ok(mw_loop_token_answer(loop, a.ticket[0], 0, "tok1", 4, NULL) == MW_ESTATE,
       "its answer after the end: MW_ESTATE, nothing kept");
    one_end(&f);
    ok(f.pp.bad == 0 && !strstr(f.pp.log, "AUTH"), "no AUTH was sent");
}

/* The job's max-time while pending names the provider too. */
static void never_max_time(void)
{
    static const char *const s[] = {P3_HELLO, "E", NULL};
    side a = {.pending = 1, .gate_w = -1};
    mw_loop_pop3_opts o;
    pop3_opts(&o, 1);
    o.max_time_ms = 500;
    one f;
    mw_loop *loop = one_start(&f, s, &o, &a);
    mw_error e = {0};
    mw_loop_run(loop, mw_now_ms() + 300000, &e);
    ok(a.done == 1 && a.code == MW_ETIMEOUT && strstr(a.message, "max-time") &&
           strstr(a.message, "token provider"),
       "max-time while the token is pending: MW_ETIMEOUT naming the token provider");
    one_end(&f);
}

/* Cancelled while pending: MW_ECANCELED, no AUTH, a late answer refused. */
static void cancel_pending(void)
{
    static const char *const s[] = {P3_HELLO, "E", NULL};
    side a = {.pending = 1, .gate_w = -1};
    mw_loop_pop3_opts o;
    pop3_opts(&o, 1);
    one f;
    mw_loop *loop = one_start(&f, s, &o, &a);
    int calls = 0;
    drive_until(loop, &a.calls);
    calls = a.calls;
    int crc = mw_loop_cancel(loop, a.job);
    /* An answer after the cancel, before the job ended: taken or not,
     * the job never logs in with it. */
    int early = mw_loop_token_answer(loop, a.ticket[0], 0, "tok1", 4, NULL);
    drive_until(loop, &a.done);
    ok(calls == 1 && crc == 0 && a.done == 1 && a.code == MW_ECANCELED &&
           strstr(a.message, "waiting for the token provider"),
       "cancel while the token is pending: MW_ECANCELED, the message says what it waited for");
    printf("# %s\n", a.message);
    ok(early == 0 || early == MW_ESTATE, "an answer right after the cancel: 0 or MW_ESTATE");
    ok(mw_loop_token_answer(loop, a.ticket[0], 0, "tok1", 4, NULL) == MW_ESTATE,
       "an answer after the done callback: MW_ESTATE");
    one_end(&f);
    ok(f.pp.bad == 0 && !strstr(f.pp.log, "AUTH"), "no AUTH was sent after the cancel");
}

/* Answers that must not reach the server: NUL, CR LF; a failure. */
static void bad_answers(void)
{
    struct {
        const char *tok;
        size_t len;
        int rc;
        const char *why;
        const char *name;
    } c[] = {
        {"to\0k1", 5, 0, "NUL", "a token holding NUL: the login fails, naming it"},
        {"tok1\r\nDELE 1", 12, 0, "bearer token",
         "a token holding CR LF: refused as a token given at once is"},
        {NULL, 0, MW_EIO, "the test's provider", "a failure answered: its code and words"},
    };
    for (size_t k = 0; k < sizeof c / sizeof c[0]; k++) {
        static const char *const s[] = {P3_HELLO, "E", NULL};
        side a = {.pending = 1, .gate_w = -1};
        mw_loop_pop3_opts o;
        pop3_opts(&o, 1);
        one f;
        mw_loop *loop = one_start(&f, s, &o, &a);
        drive_until(loop, &a.calls);
        mw_error pe = {0};
        pe.code = c[k].rc;
        snprintf(pe.message, sizeof pe.message, "the test's provider is out of tokens");
        int arc = mw_loop_token_answer(loop, a.ticket[0], c[k].rc, c[k].tok, c[k].len, &pe);
        drive_until(loop, &a.done);
        one_end(&f);
        printf("# %s\n", a.message);
        ok(arc == 0 && a.done == 1 && a.code != 0 && (c[k].rc == 0 || a.code == c[k].rc) &&
               strstr(a.message, c[k].why) && !strstr(f.pp.log, "AUTH") &&
               !strstr(f.pp.log, "DELE"),
           c[k].name);
    }
}

/* A provider that answers at once, as a synchronous one. */
static void at_once(void)
{
    static const char *const s[] = {P3_HELLO, "C:AUTH XOAUTH2 " XO_TOK1, "S:+OK in\n", P3_TAIL,
                                    NULL};
    side a = {.at_once = "tok1", .gate_w = -1};
    mw_loop_pop3_opts o;
    pop3_opts(&o, 1);
    one f;
    mw_loop *loop = one_start(&f, s, &o, &a);
    mw_error e = {0};
    mw_loop_run(loop, mw_now_ms() + 300000, &e);
    one_end(&f);
    ok(a.calls == 1 && a.done == 1 && a.code == 0 && f.pp.bad == 0,
       "a token given at once: logged in, nothing pending");
}

static void api_errors(void)
{
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    ok(mw_loop_token_answer(NULL, 1, 0, "t", 1, NULL) == MW_EINVAL &&
           mw_loop_token_answer(loop, 0, 0, "t", 1, NULL) == MW_EINVAL &&
           mw_loop_token_answer(loop, 1, 0, NULL, 0, NULL) == MW_EINVAL &&
           mw_loop_token_answer(loop, 1, 0, "t", 65537, NULL) == MW_EINVAL,
       "mw_loop_token_answer: no loop, ticket 0, no token, over 64 KiB: MW_EINVAL");
    ok(mw_loop_token_answer(loop, 7, 0, "t", 1, NULL) == MW_ESTATE,
       "a ticket no job waits for: MW_ESTATE");
    side a = {.gate_w = -1};
    ok(mw_loop_set_token_provider(loop, NULL, provider, &a) == MW_EINVAL &&
           mw_loop_set_token_provider(NULL, NULL, provider, &a) == MW_EINVAL,
       "mw_loop_set_token_provider without a job: MW_EINVAL");
    mw_loop_free(loop);
}

/* The SMTP batch: opts version 6 token_async, refused then retried. */
typedef struct bt {
    int given, ndone, rc0;
} bt;

static int next_cb(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    (void)job;
    bt *b = ud;
    static const char *to[] = {"b@y.test"};
    if (i >= 1) return 0;
    b->given++;
    m->originator = "a@x.test";
    m->recipients = to;
    m->nrecipients = 1;
    m->rewrite_headers = 0;
    m->data = "Subject: t\r\n\r\nhi\r\n";
    m->len = strlen(m->data);
    return 1;
}

static void msg_cb(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r, const mw_error *e,
                   void *ud)
{
    (void)job;
    (void)i;
    (void)r;
    (void)e;
    bt *b = ud;
    if (!b->ndone++) b->rc0 = rc;
}

#define XO_401 "S:334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\n"

static void smtp_retry(void)
{
    static const char *const s[] = {"S:220 scripted\n",
                                    "C:EHLO localhost",
                                    "S:250-scripted\n250 AUTH XOAUTH2\n",
                                    "C:AUTH XOAUTH2 " XO_TOK1,
                                    XO_401,
                                    "C:",
                                    "S:535 5.7.8 token expired\n",
                                    "C:AUTH XOAUTH2 " XO_TOK2,
                                    "S:235 2.7.0 ok\n",
                                    "C:MAIL FROM:<a@x.test>",
                                    "S:250 ok\n",
                                    "C:RCPT TO:<b@y.test>",
                                    "S:250 ok\n",
                                    "C:DATA",
                                    "S:354 go\n",
                                    "D",
                                    "S:250 ok 1\n",
                                    "C:QUIT",
                                    "S:221 bye\n",
                                    "E",
                                    NULL};
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    peer pp;
    pthread_t th;
    int fd;
    side a = {.pending = 1, .gate_w = -1};
    peer_start(&pp, &th, s, &fd);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "peer";
    o.tls = MW_TLS_NONE;
    o.helo = "localhost";
    o.user = "u";
    o.auth = "XOAUTH2";
    o.allow_plaintext = 1;
    o.io_timeout_ms = 120000;
    o.token_async = provider;
    o.token_async_userdata = &a;
    bt b = {0};
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    cb.next = next_cb;
    cb.done = msg_cb;
    cb.userdata = &b;
    mw_error err = {0};
    int rc = mwi_loop_add_smtp_batch_fd(loop, NULL, &o, &cb, fd, on_done, &a, &err);
    int answered = 0;
    for (int k = 0; !rc && k < 100000 && !a.done && mw_loop_running(loop); k++) {
        if (a.calls > answered && mw_loop_token_answer(loop, a.ticket[answered], 0,
                                                       answered ? "tok2" : "tok1", 4, NULL) == 0)
            answered++;
        pass(loop);
    }
    mw_loop_free(loop);
    peer_end(&pp, th);
    ok(rc == 0 && a.calls == 2 && a.refused[0] == 0 && a.refused[1] == 1 && answered == 2,
       "SMTP token_async: asked, the 535 asks again (refused 1), both answered later");
    ok(a.done == 1 && a.code == 0 && b.ndone == 1 && b.rc0 == 0 && pp.bad == 0,
       "SMTP: AUTH again on the same connection with the new token, the message sent");

    /* A version 5 caller: token_async not read, a user without a
     * password is refused. */
    mw_loop_new(&loop, NULL, NULL);
    o.version = 5;
    rc = mw_loop_add_smtp_batch(loop, NULL, &o, &cb, on_done, &a, &err);
    ok(rc == MW_EINVAL && strstr(err.message, "without a password or token"),
       "SMTP opts version 5: token_async not read");
    mw_loop_free(loop);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0); /* a hang shows where it stopped */
    no_stall();
    refused_retry();
    never();
    never_max_time();
    cancel_pending();
    bad_answers();
    at_once();
    api_errors();
    smtp_retry();
    printf("1..%d\n", ntest);
    return failed;
}
