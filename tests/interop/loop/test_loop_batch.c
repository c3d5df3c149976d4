/* The loop's SMTP batch (mw_loop_add_smtp_batch) without a server: the
 * peer is a thread playing a script over a socketpair, and the client's
 * bytes are compared line by line with what the script expects.  Cases:
 * message pipelining (the next envelope behind the data, RFC 2920 §3.1)
 * with a refused recipient in the middle (RSET, then the next message),
 * no PIPELINING, pipelining turned off, the final reply 421 with the next
 * envelope out (the next message MW_ESTATE), a connection lost between
 * messages, a message refused before anything was sent, next's own
 * failure, and a batch of none.  Every per-message callback counted and
 * ordered.  The token provider (version 4, token_fn): a refused token
 * refreshed once and AUTH again on the same connection, a refresh with
 * nothing newer, a provider's own failure, and a version 3 caller whose
 * token_fn field is not read.  Version 5: authzid in AUTH PLAIN, sasl_ir 0
 * (the response after the empty 334), trace_secrets (the AUTH line
 * unmasked only then), a version 4 caller's authzid not read.  A held
 * batch (mwi_loop_smtp_hold): nothing sent while next has nothing, a
 * pushed message sent, QUIT on release, a close while held.  The held
 * batch over a blocking stream (smtp_held.h) says to the peer what the
 * blocking session (mw_smtp_open, mw_smtp_send, mw_smtp_quit) says, for
 * two messages and a refused recipient.  TAP; the
 * peer waits on its socket, never on time. */
#include "loop/loop_int.h"
#include "loop/smtp_held.h"
#include "mailwire/loop.h"

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

/* The batch's side: messages from a table, outcomes recorded. */
typedef struct bt {
    int n;              /* messages next gives */
    int fail_at;        /* next returns MW_EIO at this index (-1: never) */
    const char *bad_to; /* message 1's recipient, when set */
    int bcc;            /* message 1: To and Bcc in its header, the Bcc digest */
    size_t nrcpt0;      /* message `bcc`'s recipients in its result */
    const char *to[1];
    int rc[8];
    size_t order[8];
    int ndone, alive[8];
    int job_n, job_code, job_sent;
    uint64_t job_msgs;
    char first_err[200];
} bt;

static int next_cb(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    (void)job;
    bt *b = ud;
    if ((int)i == b->fail_at) return MW_EIO;
    if ((int)i >= b->n) return 0;
    static const char body[] = "Subject: batch\n\nhello\n";
    m->data = body;
    m->len = sizeof body - 1;
    m->originator = "a@x.test";
    m->recipients = i == 1 && b->bad_to ? &b->bad_to : b->to;
    m->nrecipients = 1;
    m->atleastone = 0;
    if (i == 1 && b->bcc) {
        static const char hdr[] = "From: a@x.test\nTo: b@y.test\nBcc: c@y.test\nSubject: b\n\nhi\n";
        m->data = hdr;
        m->len = sizeof hdr - 1;
        m->recipients = NULL;
        m->nrecipients = 0;
        m->bcc_digest = 1;
    }
    return 1;
}

static void msg_cb(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r, const mw_error *e,
                   void *ud)
{
    bt *b = ud;
    if (i == (size_t)b->bcc && r) b->nrcpt0 = r->nrcpt;
    if (b->ndone < 8) {
        b->order[b->ndone] = i;
        b->rc[b->ndone] = rc;
        b->alive[b->ndone] = mw_loop_smtp_alive(job);
    }
    if (rc && !b->first_err[0]) snprintf(b->first_err, sizeof b->first_err, "%.199s", e->message);
    b->ndone++;
}

static void job_cb(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    bt *b = ud;
    b->job_n++;
    b->job_code = r->code;
    b->job_sent = r->sent;
    b->job_msgs = r->messages;
}

/* Runs a batch of b against script; returns the peer's first bad step
 * (0: every line as expected). */
static int run_o(bt *b, const char *const *script, int no_msg_pipelining,
                 const mw_loop_smtp_opts *base)
{
    int sv[2];
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    peer pp = {.fd = sv[1], .script = script};
    pthread_t th;
    if (pthread_create(&th, NULL, peer_run, &pp)) return -1;
    b->to[0] = "b@y.test";
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    if (base) o = *base;
    o.host = "peer";
    o.tls = MW_TLS_NONE;
    o.helo = "localhost";
    o.io_timeout_ms = 120000;
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    cb.next = next_cb;
    cb.done = msg_cb;
    cb.userdata = b;
    cb.no_message_pipelining = no_msg_pipelining;
    mw_error err = {0};
    int rc = mwi_loop_add_smtp_batch_fd(loop, NULL, &o, &cb, sv[0], job_cb, b, &err);
    if (!rc) rc = mw_loop_run(loop, mw_now_ms() + 300000, &err);
    /* sv[0] is closed by now (the job's end, or the adder when it took
     * no job): the peer reads what was sent, then EOF, and stops.  No
     * shutdown of sv[1] here: one while the peer still reads would cut
     * what the job wrote last (a QUIT not waited for). */
    mw_loop_free(loop);
    pthread_join(th, NULL);
    close(sv[1]);
    if (pp.bad) printf("# peer step %d: got \"%s\"\n", pp.bad, pp.got);
    return rc ? -1 : pp.bad;
}

static int run(bt *b, const char *const *script, int no_msg_pipelining)
{
    return run_o(b, script, no_msg_pipelining, NULL);
}

#define HELLO "S:220 scripted\n", "C:EHLO localhost"
#define ENV   "C:MAIL FROM:<a@x.test>", "C:RCPT TO:<b@y.test>", "C:DATA"

static void pipelined(void)
{
    /* Message 2's recipient is refused: RSET, then message 3. */
    static const char *const s[] = {
        HELLO, "S:250-scripted\n250 PIPELINING\n", ENV, "S:250 ok\n250 ok\n354 go\n", "D",
        /* the next envelope before the reply to the dot */
        ENV, "S:250 ok 1\n250 ok\n550 5.1.1 no such user\n554 no rcpt\n", "C:RSET", "S:250 reset\n",
        ENV, "S:250 ok\n250 ok\n354 go\n", "D", "S:250 ok 3\n", "C:QUIT", "S:221 bye\n", NULL};
    bt b = {.n = 3, .fail_at = -1};
    int bad = run(&b, s, 0);
    ok(bad == 0, "pipelined batch: the next envelope behind the data, RSET after the refusal");
    ok(b.ndone == 3 && b.order[0] == 0 && b.order[1] == 1 && b.order[2] == 2 && b.rc[0] == 0 &&
           b.rc[1] == MW_ESERVER && b.rc[2] == 0 && b.alive[1] == 1,
       "each message reported once, in order: sent, MW_ESERVER (session alive), sent");
    ok(strstr(b.first_err, "550") != NULL, "the refusal's error names the 550");
    ok(b.job_n == 1 && b.job_code == 0 && b.job_msgs == 3 && b.job_sent == 2,
       "the job: 0, 3 messages taken, 2 sent");
}

static void not_pipelined(void)
{
    static const char *const plain[] = {HELLO,
                                        "S:250 scripted\n",
                                        "C:MAIL FROM:<a@x.test>",
                                        "S:250 ok\n",
                                        "C:RCPT TO:<b@y.test>",
                                        "S:250 ok\n",
                                        "C:DATA",
                                        "S:354 go\n",
                                        "D",
                                        "S:250 ok 1\n",
                                        "C:MAIL FROM:<a@x.test>",
                                        "S:250 ok\n",
                                        "C:RCPT TO:<b@y.test>",
                                        "S:250 ok\n",
                                        "C:DATA",
                                        "S:354 go\n",
                                        "D",
                                        "S:250 ok 2\n",
                                        "C:QUIT",
                                        "S:221 bye\n",
                                        NULL};
    bt b = {.n = 2, .fail_at = -1};
    ok(run(&b, plain, 0) == 0 && b.ndone == 2 && b.rc[0] == 0 && b.rc[1] == 0 && b.job_code == 0 &&
           b.job_sent == 2,
       "no PIPELINING: command by command, two messages sent");
    /* PIPELINING offered, message pipelining off: each waits for the dot. */
    static const char *const off[] = {HELLO,    "S:250-scripted\n250 PIPELINING\n",
                                      ENV,      "S:250 ok\n250 ok\n354 go\n",
                                      "D",      "S:250 ok 1\n",
                                      ENV,      "S:250 ok\n250 ok\n354 go\n",
                                      "D",      "S:250 ok 2\n",
                                      "C:QUIT", "S:221 bye\n",
                                      NULL};
    bt c = {.n = 2, .fail_at = -1};
    ok(run(&c, off, 1) == 0 && c.ndone == 2 && c.rc[0] == 0 && c.rc[1] == 0 && c.job_sent == 2,
       "no_message_pipelining: each envelope after the previous final reply");
}

static void session_dies(void)
{
    /* 421 to the dot while message 2's envelope is out: 1 MW_ETEMP, 2 MW_ESTATE. */
    static const char *const s421[] = {HELLO,
                                       "S:250-scripted\n250 PIPELINING\n",
                                       ENV,
                                       "S:250 ok\n250 ok\n354 go\n",
                                       "D",
                                       ENV,
                                       "S:421 4.3.2 going down\n",
                                       "X",
                                       NULL};
    bt b = {.n = 4, .fail_at = -1};
    /* The third is taken while the replies are awaited (mwi_sjb_ahead),
     * not begun: reported with the crossed one; no fourth asked. */
    ok(run(&b, s421, 0) == 0 && b.ndone == 3 && b.rc[0] == MW_ETEMP && b.rc[1] == MW_ESTATE &&
           b.rc[2] == MW_ESTATE && b.alive[0] == 0 && b.order[1] == 1 && b.order[2] == 2,
       "421 to the dot: that message MW_ETEMP, the crossed one and the one taken ahead "
       "MW_ESTATE, in order, no fourth asked");
    ok(b.job_n == 1 && b.job_code == MW_ETEMP && b.job_msgs == 3,
       "the job ends with the failure that ended the session");
    /* Closed after the first message's reply: the second was in flight. */
    static const char *const cut[] = {HELLO,
                                      "S:250-scripted\n250 PIPELINING\n",
                                      ENV,
                                      "S:250 ok\n250 ok\n354 go\n",
                                      "D",
                                      ENV,
                                      "S:250 ok 1\n",
                                      "X",
                                      NULL};
    bt c = {.n = 2, .fail_at = -1};
    ok(run(&c, cut, 0) == 0 && c.ndone == 2 && c.rc[0] == 0 && c.rc[1] == MW_ENET &&
           c.alive[1] == 0 && c.job_code == MW_ENET,
       "connection lost after a reply: the first sent, the second MW_ENET, session not alive");
}

static void refusals(void)
{
    /* Message 2 has a recipient with a space: refused before anything goes. */
    static const char *const s[] = {HELLO,    "S:250-scripted\n250 PIPELINING\n",
                                    ENV,      "S:250 ok\n250 ok\n354 go\n",
                                    "D",      "S:250 ok 1\n",
                                    ENV,      "S:250 ok\n250 ok\n354 go\n",
                                    "D",      "S:250 ok 3\n",
                                    "C:QUIT", "S:221 bye\n",
                                    NULL};
    bt b = {.n = 3, .fail_at = -1, .bad_to = "bad\r\nRSET@y.test"};
    ok(run(&b, s, 0) == 0 && b.ndone == 3 && b.rc[0] == 0 && b.rc[1] == MW_EINVAL && b.rc[2] == 0 &&
           b.job_code == 0,
       "a message refused before sending (CR LF in an address): MW_EINVAL, the others sent");
    /* next fails at the second message: QUIT, the job ends with its code. */
    static const char *const f[] = {HELLO,
                                    "S:250 scripted\n",
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
                                    NULL};
    bt c = {.n = 3, .fail_at = 1};
    ok(run(&c, f, 0) == 0 && c.ndone == 1 && c.rc[0] == 0 && c.job_code == MW_EIO,
       "next's failure: QUIT, the job's result is its code");
    /* No message at all: EHLO and QUIT. */
    static const char *const none[] = {HELLO, "S:250 scripted\n", "C:QUIT", "S:221 bye\n", NULL};
    bt d = {.n = 0, .fail_at = -1};
    ok(run(&d, none, 0) == 0 && d.ndone == 0 && d.job_code == 0 && d.job_msgs == 0,
       "a batch of none: EHLO, QUIT, result 0");
}

static void bcc_in_batch(void)
{
    /* Message 1's Bcc copy is a second transaction; the next message
     * waits for it (no envelope behind either data); the copy is not
     * counted as a message sent. */
    static const char *const s[] = {HELLO,
                                    "S:250-scripted\n250 PIPELINING\n",
                                    ENV,
                                    "S:250 ok\n250 ok\n354 go\n",
                                    "D",
                                    ENV,
                                    "S:250 ok 1\n250 ok\n250 ok\n354 go\n",
                                    "D",
                                    "S:250 ok 2\n",
                                    "C:MAIL FROM:<a@x.test>",
                                    "C:RCPT TO:<c@y.test>",
                                    "C:DATA",
                                    "S:250 ok\n250 ok\n354 go\n",
                                    "D",
                                    "S:250 ok bcc\n",
                                    ENV,
                                    "S:250 ok\n250 ok\n354 go\n",
                                    "D",
                                    "S:250 ok 3\n",
                                    "C:QUIT",
                                    "S:221 bye\n",
                                    NULL};
    bt b = {.n = 3, .fail_at = -1, .bcc = 1};
    ok(run(&b, s, 0) == 0 && b.ndone == 3 && b.rc[0] == 0 && b.rc[1] == 0 && b.rc[2] == 0 &&
           b.nrcpt0 == 2 && b.job_sent == 3,
       "a Bcc digest in a batch: its copy after the message, both recipients in its result, "
       "then the next message; 3 messages sent, the copy not counted");
}

/* The token provider's side: the tokens it gives in turn (NULL: none),
 * the refused flags it was called with, a failure to return. */
typedef struct tp {
    const char *give[3];
    int fail_rc;
    int calls, refused[3];
    char trace[4096];
    size_t tlen;
} tp;

static int token_cb(int refused, char **token, mw_error *err, void *ud)
{
    tp *t = ud;
    if (t->calls < 3) t->refused[t->calls] = refused;
    const char *g = t->calls < 3 ? t->give[t->calls] : NULL;
    t->calls++;
    if (t->fail_rc) {
        snprintf(err->message, sizeof err->message, "the test's provider has no token");
        err->code = t->fail_rc;
        return t->fail_rc;
    }
    *token = g ? strdup(g) : NULL;
    return 0;
}

static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    (void)dir;
    tp *t = ud;
    if (len > sizeof t->trace - 1 - t->tlen) len = sizeof t->trace - 1 - t->tlen;
    memcpy(t->trace + t->tlen, line, len);
    t->tlen += len;
    t->trace[t->tlen] = 0;
}

/* XOAUTH2 initial responses (base64 of "user=u^Aauth=Bearer TOKEN^A^A"),
 * and the error challenge {"status":"401","schemes":"bearer"}. */
#define XO_TOK1 "dXNlcj11AWF1dGg9QmVhcmVyIHRvazEBAQ=="
#define XO_TOK2 "dXNlcj11AWF1dGg9QmVhcmVyIHRvazIBAQ=="
#define XO_401  "S:334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIn0=\n"

static void token_run(bt *b, tp *t, const char *const *script, int *bad)
{
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.user = "u";
    o.auth = "XOAUTH2";
    o.allow_plaintext = 1;
    o.token_fn = token_cb;
    o.token_userdata = t;
    o.trace = trace_cb;
    o.trace_userdata = t;
    *bad = run_o(b, script, 0, &o);
}

static void token_provider(void)
{
    /* Refused (RFC 4954 §4: the error challenge answered empty, then 535),
     * refreshed, accepted on the same connection, the message sent. */
    static const char *const s[] = {HELLO,
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
                                    NULL};
    bt b = {.n = 1, .fail_at = -1};
    tp t = {.give = {"tok1", "tok2"}};
    int bad;
    token_run(&b, &t, s, &bad);
    ok(bad == 0 && t.calls == 2 && t.refused[0] == 0 && t.refused[1] == 1,
       "token_fn: asked (refused 0), the 535 asks again (refused 1), AUTH again on the same "
       "connection with the new token");
    ok(b.ndone == 1 && b.rc[0] == 0 && b.job_code == 0 && b.job_sent == 1,
       "token_fn: logged in with the refreshed token, the message sent");
    ok(strstr(t.trace, "again with a new token") && !strstr(t.trace, "tok1") &&
           !strstr(t.trace, XO_TOK1) && !strstr(t.trace, XO_TOK2),
       "token_fn: the trace says the token was refreshed and shows neither token");

    /* Nothing newer on the refresh: the refusal stands, QUIT.  A job
     * that fails before it is ready closes once QUIT is written, without
     * waiting for 221 (smtp_job.c's S_BYE), so the script sends none: a
     * 221 would race the close. */
    static const char *const n[] = {HELLO,
                                    "S:250-scripted\n250 AUTH XOAUTH2\n",
                                    "C:AUTH XOAUTH2 " XO_TOK1,
                                    "S:535 5.7.8 bad token\n",
                                    "C:QUIT",
                                    NULL};
    bt c = {.n = 1, .fail_at = -1};
    tp u = {.give = {"tok1", NULL}};
    token_run(&c, &u, n, &bad);
    ok(bad == 0 && u.calls == 2 && u.refused[1] == 1 && c.job_code == MW_EAUTH && c.ndone == 0,
       "token_fn with nothing newer after a refusal: MW_EAUTH, no second AUTH, QUIT");

    /* The provider fails: its code and words, no AUTH sent. */
    static const char *const f[] = {HELLO, "S:250-scripted\n250 AUTH XOAUTH2\n", "C:QUIT", NULL};
    bt d = {.n = 1, .fail_at = -1};
    tp v = {.fail_rc = MW_EIO};
    token_run(&d, &v, f, &bad);
    ok(bad == 0 && v.calls == 1 && d.job_code == MW_EIO, "token_fn failing: its code, no AUTH");
}

/* A version 3 caller: the fields after proxy are not read, so a user with
 * neither password nor token is refused even with token_fn set there.
 * An unknown TLS mode, checked after the user, keeps both calls from
 * connecting. */
static void version3(void)
{
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    tp t = {.give = {"tok1"}};
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.version = 3;
    o.host = "127.0.0.1";
    o.user = "u";
    o.token_fn = token_cb;
    o.token_userdata = &t;
    o.tls = 99;
    mw_error err = {0}, err4 = {0};
    int rc = mw_loop_add_smtp_send(loop, NULL, &o, NULL, NULL, &err);
    o.version = 4;
    int rc4 = mw_loop_add_smtp_send(loop, NULL, &o, NULL, NULL, &err4);
    ok(rc == MW_EINVAL && strstr(err.message, "without a password or token") && t.calls == 0 &&
           rc4 == MW_EUNSUPPORTED && mw_loop_running(loop) == 0,
       "version 3 opts: token_fn not read (user without password refused); version 4 reads it");
    mw_loop_free(loop);
}

/* Version 5: authzid, sasl_ir, trace_secrets on the loop's AUTH, as
 * mw_smtp_opts gives them to the blocking API. */
static void auth_v5_run(bt *b, tp *t, const char *const *script, int version, int ir, int secrets,
                        int *bad)
{
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.version = (unsigned)version;
    o.user = "u";
    o.password = "pw";
    o.auth = "PLAIN";
    o.allow_plaintext = 1;
    o.authzid = "boss";
    o.sasl_ir = ir;
    o.trace_secrets = secrets;
    o.trace = trace_cb;
    o.trace_userdata = t;
    *bad = run_o(b, script, 0, &o);
}

#define PLAIN_BOSS "Ym9zcwB1AHB3" /* base64 "boss\0u\0pw" (RFC 4616 §2) */
#define PLAIN_NONE "AHUAcHc="     /* base64 "\0u\0pw" */
#define SENT_ONE                                                                                   \
    "S:235 2.7.0 ok\n", ENV, "S:250 ok\n250 ok\n354 go\n", "D", "S:250 ok 1\n", "C:QUIT",          \
        "S:221 bye\n", NULL

static void auth_v5(void)
{
    static const char *const ir[] = {HELLO, "S:250-scripted\n250-PIPELINING\n250 AUTH PLAIN\n",
                                     "C:AUTH PLAIN " PLAIN_BOSS, SENT_ONE};
    bt b = {.n = 1, .fail_at = -1};
    tp t = {0};
    int bad;
    auth_v5_run(&b, &t, ir, 5, 1, 0, &bad);
    ok(bad == 0 && b.job_code == 0 && b.job_sent == 1 && !strstr(t.trace, PLAIN_BOSS),
       "version 5 authzid: AUTH PLAIN carries it (RFC 4616 §2); the trace masks the response");

    static const char *const no_ir[] = {
        HELLO,           "S:250-scripted\n250-PIPELINING\n250 AUTH PLAIN\n",
        "C:AUTH PLAIN",  "S:334 \n",
        "C:" PLAIN_BOSS, SENT_ONE};
    bt c = {.n = 1, .fail_at = -1};
    tp u = {0};
    auth_v5_run(&c, &u, no_ir, 5, 0, 1, &bad);
    ok(bad == 0 && c.job_code == 0 && c.job_sent == 1 && strstr(u.trace, PLAIN_BOSS),
       "version 5 sasl_ir 0: AUTH PLAIN alone, the response after the empty 334; trace_secrets "
       "shows it");

    /* A version 4 caller: authzid, sasl_ir and trace_secrets not read
     * (the initial response, no authzid, masked). */
    static const char *const v4[] = {HELLO, "S:250-scripted\n250-PIPELINING\n250 AUTH PLAIN\n",
                                     "C:AUTH PLAIN " PLAIN_NONE, SENT_ONE};
    bt d = {.n = 1, .fail_at = -1};
    tp v = {0};
    auth_v5_run(&d, &v, v4, 4, 0, 1, &bad);
    ok(bad == 0 && d.job_code == 0 && !strstr(v.trace, PLAIN_NONE),
       "version 4 opts: authzid, sasl_ir and trace_secrets not read");

    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "127.0.0.1";
    o.user = "u";
    o.password = "pw";
    o.authzid = "bo\r\nss";
    mw_error err = {0};
    ok(mw_loop_add_smtp_send(loop, NULL, &o, NULL, NULL, &err) == MW_EINVAL &&
           strstr(err.message, "AUTH identity") && mw_loop_running(loop) == 0,
       "an authzid with CR LF: MW_EINVAL as mw_smtp_open says it, nothing added");
    mw_loop_free(loop);
}

/* A held batch: next gives what the test queued, else 0 ("none yet"). */
typedef struct hb {
    int queued, empty, ndone, rc0, job_n, job_code, quit_ok;
} hb;

static int held_next(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    (void)job;
    (void)i;
    hb *h = ud;
    if (!h->queued) {
        h->empty++;
        return 0;
    }
    h->queued--;
    static const char body[] = "Subject: held\n\nhello\n";
    static const char *const to[] = {"b@y.test"};
    m->data = body;
    m->len = sizeof body - 1;
    m->originator = "a@x.test";
    m->recipients = to;
    m->nrecipients = 1;
    return 1;
}

static void held_done(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r,
                      const mw_error *e, void *ud)
{
    (void)job;
    (void)i;
    (void)r;
    (void)e;
    hb *h = ud;
    if (h->ndone++ == 0) h->rc0 = rc;
}

static void held_job(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    hb *h = ud;
    h->job_n++;
    h->job_code = r->code;
    h->quit_ok = r->quit_ok;
}

/* The loop by hand (mw_loop_fds, poll, mw_loop_action) until *v reaches
 * want, or no job runs.  The poll's bound is generous: the peer answers
 * at once. */
static void pump(mw_loop *loop, const int *v, int want)
{
    for (int k = 0; k < 100000 && *v < want && mw_loop_running(loop); k++) {
        mw_loop_fd fds[4];
        struct pollfd pf[4];
        size_t n = mw_loop_fds(loop, fds, 4);
        for (size_t i = 0; i < n && i < 4; i++)
            pf[i] = (struct pollfd){.fd = fds[i].fd,
                                    .events = (short)((fds[i].events & MW_LOOP_IN ? POLLIN : 0) |
                                                      (fds[i].events & MW_LOOP_OUT ? POLLOUT : 0))};
        int t = mw_loop_timeout_ms(loop);
        int r = poll(pf, n < 4 ? n : 4, t < 0 || t > 120000 ? 120000 : t);
        if (r <= 0) mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
        for (size_t i = 0; r > 0 && i < n && i < 4; i++)
            if (pf[i].revents)
                mw_loop_action(loop, pf[i].fd,
                               (pf[i].revents & POLLIN ? MW_LOOP_IN : 0) |
                                   (pf[i].revents & POLLOUT ? MW_LOOP_OUT : 0) |
                                   (pf[i].revents & (POLLERR | POLLHUP) ? MW_LOOP_ERR : 0));
    }
}

static mw_loop_job *held_add(mw_loop *loop, int *sv, hb *h)
{
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "peer";
    o.tls = MW_TLS_NONE;
    o.helo = "localhost";
    o.io_timeout_ms = 120000;
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    cb.next = held_next;
    cb.done = held_done;
    cb.userdata = h;
    mw_error err = {0};
    mw_loop_job *job = NULL;
    if (mwi_loop_add_smtp_batch_fd(loop, &job, &o, &cb, sv[0], held_job, h, &err)) return NULL;
    return job;
}

static void held_batch(void)
{
    static const char *const s[] = {HELLO,    "S:250-scripted\n250 PIPELINING\n",
                                    ENV,      "S:250 ok\n250 ok\n354 go\n",
                                    "D",      "S:250 ok 1\n",
                                    "C:QUIT", "S:221 bye\n",
                                    NULL};
    int sv[2];
    mw_loop *loop = NULL;
    hb h = {0};
    if (mw_loop_new(&loop, NULL, NULL) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return;
    peer pp = {.fd = sv[1], .script = s};
    pthread_t th;
    if (pthread_create(&th, NULL, peer_run, &pp)) return;
    mw_loop_job *job = held_add(loop, sv, &h);
    int hold = job ? mwi_loop_smtp_hold(job) : -1;
    pump(loop, &h.empty, 1);
    int alive = mw_loop_smtp_alive(job), late = mwi_loop_smtp_hold(job);
    ok(hold == 0 && h.empty == 1 && h.ndone == 0 && alive == 1 && late == MW_ESTATE,
       "held batch: ready, next has none yet, the session waits alive (hold only before ready)");
    h.queued = 1;
    int push = mwi_loop_smtp_push(job);
    pump(loop, &h.ndone, 1);
    int empty = h.empty;
    ok(push == 0 && h.ndone == 1 && h.rc0 == 0 && empty >= 2 && h.job_n == 0 &&
           mw_loop_smtp_alive(job),
       "held batch: the pushed message sent, then held again");
    int push2 = mwi_loop_smtp_push(job); /* nothing queued: held again, nothing sent */
    int rel = mwi_loop_smtp_release(job);
    pump(loop, &h.job_n, 1);
    mw_loop_free(loop);
    /* Our end is closed: the peer reads what is left, then stops. */
    pthread_join(th, NULL);
    close(sv[1]);
    if (pp.bad) printf("# peer step %d: got \"%s\"\n", pp.bad, pp.got);
    ok(push2 == 0 && h.empty == empty + 1 && rel == 0 && pp.bad == 0 && h.job_n == 1 &&
           h.job_code == 0 && h.quit_ok && h.ndone == 1,
       "held batch: a push with nothing sends nothing; release sends QUIT, the job ends with 0");

    /* The server closes while the batch is held: the job ends, no
     * message reported. */
    static const char *const c[] = {HELLO, "S:250-scripted\n250 PIPELINING\n", "X", NULL};
    hb g = {0};
    if (mw_loop_new(&loop, NULL, NULL) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return;
    peer pq = {.fd = sv[1], .script = c};
    if (pthread_create(&th, NULL, peer_run, &pq)) return;
    job = held_add(loop, sv, &g);
    hold = job ? mwi_loop_smtp_hold(job) : -1;
    pump(loop, &g.job_n, 1);
    mw_loop_free(loop);
    pthread_join(th, NULL);
    close(sv[1]);
    ok(hold == 0 && g.empty == 1 && g.job_n == 1 && g.job_code == MW_ENET && g.ndone == 0,
       "held batch: the server closing while held ends the job (MW_ENET), nothing reported");
}

/* Two messages (the second's recipient refused, RSET), then QUIT, through
 * the blocking session (smh 0) or the held driver (smh 1). */
static const char *const two_msgs[] = {
    HELLO,
    "S:250-scripted\n250-PIPELINING\n250 8BITMIME\n",
    ENV,
    "S:250 ok\n250 ok\n354 go\n",
    "D",
    "S:250 ok 1\n",
    "C:MAIL FROM:<a@x.test>",
    "C:RCPT TO:<nobody@y.test>",
    "C:DATA",
    "S:250 ok\n550 5.1.1 no such user\n503 5.5.1 no recipients\n",
    "C:RSET",
    "S:250 ok\n",
    "C:QUIT",
    "S:221 bye\n",
    NULL};

typedef struct two {
    int open_rc, rc[2], quit_rc, alive;
    size_t nrcpt[2];
    char err1[200];
} two;

static int two_run(int smh, two *o)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) return -1;
    peer pp = {.fd = sv[1], .script = two_msgs};
    pthread_t th;
    if (pthread_create(&th, NULL, peer_run, &pp)) return -1;
    mw_error err = {0};
    mw_stream *st = NULL;
    mw_stream_fd(&st, sv[0], sv[0], 1, NULL, &err);
    static const char *const servers[] = {"peer"};
    static const unsigned ports[] = {25};
    mw_smtp_opts so = MW_SMTP_OPTS_INIT;
    so.servers = servers;
    so.nservers = 1;
    so.ports = ports;
    so.nports = 1;
    so.tls = MW_TLS_NONE;
    so.client = "localhost";
    so.stream = st;
    static const char body[] = "Subject: two\n\nhello\n";
    static const char *const good[] = {"b@y.test"}, *const bad_to[] = {"nobody@y.test"};
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    m.data = body;
    m.len = sizeof body - 1;
    m.originator = "a@x.test";
    m.nrecipients = 1;
    m.atleastone = 1;
    mw_smtp *s = NULL;
    mwi_smh *h = NULL;
    int stop = 0;
    o->open_rc = smh ? mwi_smh_open(&h, "peer", 25, &so, st, MW_NO_DEADLINE, &stop, &err)
                     : mw_smtp_open(&s, &so, &err);
    for (int i = 0; !o->open_rc && i < 2; i++) {
        mw_smtp_result *r = NULL;
        m.recipients = i ? bad_to : good;
        o->rc[i] = smh ? mwi_smh_send(h, &m, 0, &r, &err) : mw_smtp_send(s, &m, &r);
        if (!smh && o->rc[i]) err = *mw_smtp_error(s);
        if (i && o->rc[i]) snprintf(o->err1, sizeof o->err1, "%.199s", err.message);
        o->nrcpt[i] = r ? r->nrcpt : 99;
        mw_smtp_result_free(r);
    }
    if (!o->open_rc) {
        o->alive = smh ? mwi_smh_alive(h) : mw_smtp_alive(s);
        o->quit_rc = smh ? mwi_smh_quit(h, &err) : mw_smtp_quit(s);
    }
    mwi_smh_free(h);
    mw_smtp_free(s);
    /* Our end is closed: the peer reads what is left, then stops. */
    pthread_join(th, NULL);
    close(sv[1]);
    if (pp.bad)
        printf("# %s: peer step %d: got \"%s\"\n", smh ? "held" : "blocking", pp.bad, pp.got);
    return pp.bad;
}

static void held_driver(void)
{
    two b = {0}, d = {0};
    int bad_b = two_run(0, &b), bad_d = two_run(1, &d);
    printf("# blocking: %d %d %d %d; held: %d %d %d %d (%s / %s)\n", b.open_rc, b.rc[0], b.rc[1],
           b.quit_rc, d.open_rc, d.rc[0], d.rc[1], d.quit_rc, b.err1, d.err1);
    ok(bad_b == 0 && b.open_rc == 0 && b.rc[0] == 0 && b.rc[1] != 0 && b.quit_rc == 0,
       "the blocking session over the script: sent, refused, QUIT");
    ok(bad_d == 0 && d.open_rc == 0 && d.rc[0] == 0 && d.rc[1] == b.rc[1] &&
           !strcmp(d.err1, b.err1) && d.nrcpt[0] == b.nrcpt[0] && d.nrcpt[1] == b.nrcpt[1] &&
           d.alive == b.alive && d.quit_rc == 0,
       "the held driver (smtp_held.h): the same lines to the peer, the same codes, error and "
       "results");
}

int main(void)
{
    printf("1..30\n");
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "127.0.0.1";
    mw_loop_smtp_batch cb = MW_LOOP_SMTP_BATCH_INIT;
    mw_error err = {0};
    ok(mw_loop_add_smtp_batch(loop, NULL, &o, &cb, NULL, NULL, &err) == MW_EINVAL &&
           mw_loop_running(loop) == 0,
       "a batch without next and done: MW_EINVAL, nothing added");
    mw_loop_free(loop);
    pipelined();
    not_pipelined();
    session_dies();
    refusals();
    bcc_in_batch();
    token_provider();
    version3();
    auth_v5();
    held_batch();
    held_driver();
    return failed;
}
