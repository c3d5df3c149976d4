/* The loop's API without a server: constructors, the fd/timeout calls on
 * an empty and a full loop, max_jobs, cancel (once, then MW_ESTATE), a
 * job's own deadline, mw_loop_run's deadline, and mw_loop_free with jobs
 * still running (no callback), the plan and commit callbacks.  Jobs run over socketpairs whose
 * other end the test plays.  TAP. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct res {
    int n, code;
    char message[400];
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    snprintf(t->message, sizeof t->message, "%s", r->err ? r->err->message : "");
}

static mw_store *g_store;

static int add_job(mw_loop *loop, mw_loop_job **job, int *peer, int io_ms, res *r, mw_error *err)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) return -1;
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.user = "u";
    o.password = "p";
    o.allow_plaintext = 1;
    o.store = g_store;
    if (io_ms) o.io_timeout_ms = io_ms;
    *peer = sv[1];
    return mwi_loop_add_pop3_fetch_fd(loop, job, &o, sv[0], done_cb, r, err);
}

/* Runs one job (POP3 or SMTP, TLS required) against a scripted peer that
 * writes `script` in pieces, each after the job asked for something; the
 * job's sends go into `sent`.  Returns the job's result code. */
static int scripted(int smtp, const char *const *script, char *sent, size_t sentsz)
{
    mw_loop *loop = NULL;
    int sv[2];
    res r = {0};
    if (mw_loop_new(&loop, NULL, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return 1;
    int rc;
    if (smtp) {
        static const char *const to[] = {"b@test.domain"};
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "peer";
        o.from = "a@test.domain";
        o.rcpt = to;
        o.nrcpt = 1;
        o.message = "x\n";
        o.message_len = 2;
        rc = mwi_loop_add_smtp_send_fd(loop, NULL, &o, sv[0], done_cb, &r, NULL);
    } else {
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.user = "u";
        o.password = "p";
        o.store = g_store;
        rc = mwi_loop_add_pop3_fetch_fd(loop, NULL, &o, sv[0], done_cb, &r, NULL);
    }
    size_t used = 0;
    for (int k = 0; !rc && mw_loop_running(loop) && k < 50; k++) {
        if (k > 0 && script[k - 1] && send(sv[1], script[k - 1], strlen(script[k - 1]), 0) < 0)
            break;
        mw_loop_fd f;
        if (mw_loop_fds(loop, &f, 1) == 1) mw_loop_action(loop, f.fd, MW_LOOP_IN | MW_LOOP_OUT);
        ssize_t n = recv(sv[1], sent + used, sentsz - used - 1, MSG_DONTWAIT);
        if (n > 0) used += (size_t)n;
        sent[used] = 0;
        if (k > 0 && !script[k - 1]) break;
    }
    close(sv[1]);
    mw_loop_run(loop, mw_now_ms() + 60000, NULL);
    mw_loop_free(loop);
    return rc ? rc : r.n == 1 ? r.code : 1;
}

static void stls_cases(void)
{
    char sent[2048];
    /* RFC 2595 §4 / RFC 3207 §4: bytes after the STLS / STARTTLS reply,
     * before the handshake, must not be taken (a man in the middle could
     * have put them there). */
    static const char *const pop_inject[] = {"+OK hi\r\n", "+OK\r\nSTLS\r\nUSER\r\n.\r\n",
                                             "+OK go\r\n+OK injected\r\n", NULL};
    int rc = scripted(0, pop_inject, sent, sizeof sent);
    ok(rc == MW_EPROTO && strstr(sent, "STLS\r\n") && !strstr(sent, "USER"),
       "POP3: data after the +OK to STLS: MW_EPROTO, no USER sent");
    static const char *const pop_nostls[] = {"+OK hi\r\n", "+OK\r\nUSER\r\n.\r\n", NULL};
    rc = scripted(0, pop_nostls, sent, sizeof sent);
    ok(rc == MW_ETLS && !strstr(sent, "USER") && !strstr(sent, "PASS"),
       "POP3: STLS not offered with TLS required: MW_ETLS, no USER/PASS sent");
    static const char *const smtp_inject[] = {"220 hi\r\n", "250-hi\r\n250 STARTTLS\r\n",
                                              "220 go\r\n250 injected\r\n", NULL};
    rc = scripted(1, smtp_inject, sent, sizeof sent);
    ok(rc == MW_EPROTO && strstr(sent, "STARTTLS\r\n") && !strstr(sent, "MAIL"),
       "SMTP: data after the 220 to STARTTLS: MW_EPROTO, no MAIL sent");
    static const char *const smtp_nostls[] = {"220 hi\r\n", "250-hi\r\n250 8BITMIME\r\n", NULL};
    rc = scripted(1, smtp_nostls, sent, sizeof sent);
    ok(rc == MW_ETLS && !strstr(sent, "MAIL"),
       "SMTP: STARTTLS not offered with TLS required: MW_ETLS, no MAIL sent");
}

/* The plan and commit callbacks (loop.h): message 1 fetched and deleted,
 * 2 deleted without a RETR, 3 left alone; every DELE only after the commit
 * callback, which runs once, after the last message was stored. */
typedef struct plan_probe {
    int peer;
    char sent[2048];
    size_t used;
    int commits, dele_before_commit, refuse;
} plan_probe;

static void probe_drain(plan_probe *pp)
{
    ssize_t n = recv(pp->peer, pp->sent + pp->used, sizeof pp->sent - pp->used - 1, MSG_DONTWAIT);
    if (n > 0) pp->used += (size_t)n;
    pp->sent[pp->used] = 0;
}

static int plan_cb(mw_loop_job *job, const mw_loop_msg *msgs, size_t n, unsigned char *act,
                   void *ud)
{
    (void)job;
    (void)ud;
    if (n != 3 || !msgs[1].uid || strcmp(msgs[1].uid, "b") || msgs[2].size != 30) return 99;
    act[0] = MW_LOOP_GET | MW_LOOP_DELE;
    act[1] = MW_LOOP_DELE;
    act[2] = 0;
    return 0;
}

static int commit_cb(mw_loop_job *job, void *ud)
{
    (void)job;
    plan_probe *pp = ud;
    probe_drain(pp);
    pp->commits++;
    if (strstr(pp->sent, "DELE")) pp->dele_before_commit = 1;
    return pp->refuse ? MW_ECANCELED : 0;
}

static int plan_run(plan_probe *pp)
{
    static const char *const script[] = {"+OK hi\r\n",
                                         "+OK\r\nUSER\r\nUIDL\r\n.\r\n",
                                         "+OK\r\n",
                                         "+OK\r\n",
                                         "+OK 3\r\n1 10\r\n2 20\r\n3 30\r\n.\r\n",
                                         "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n",
                                         "+OK\r\nhello\r\n.\r\n",
                                         "+OK\r\n",
                                         "+OK\r\n",
                                         "+OK bye\r\n",
                                         NULL};
    mw_loop *loop = NULL;
    int sv[2];
    res r = {0};
    if (mw_loop_new(&loop, NULL, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
        return 1;
    pp->peer = sv[1];
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.user = "u";
    o.password = "p";
    o.tls = MW_TLS_NONE;
    o.allow_plaintext = 1;
    o.store = g_store;
    o.plan = plan_cb;
    o.commit = commit_cb;
    o.plan_userdata = pp;
    int rc = mwi_loop_add_pop3_fetch_fd(loop, NULL, &o, sv[0], done_cb, &r, NULL);
    for (int k = 0; !rc && mw_loop_running(loop) && k < 50; k++) {
        if (k > 0 && script[k - 1] && send(sv[1], script[k - 1], strlen(script[k - 1]), 0) < 0)
            break;
        mw_loop_fd f;
        if (mw_loop_fds(loop, &f, 1) == 1) mw_loop_action(loop, f.fd, MW_LOOP_IN | MW_LOOP_OUT);
        probe_drain(pp);
        if (k > 0 && !script[k - 1]) break;
    }
    close(sv[1]);
    mw_loop_run(loop, mw_now_ms() + 60000, NULL);
    mw_loop_free(loop);
    return rc ? rc : r.n == 1 ? r.code : 1;
}

static void plan_cases(void)
{
    plan_probe pp;
    memset(&pp, 0, sizeof pp);
    int rc = plan_run(&pp);
    ok(rc == 0 && strstr(pp.sent, "RETR 1\r\n") && !strstr(pp.sent, "RETR 2") &&
           !strstr(pp.sent, "RETR 3") && strstr(pp.sent, "DELE 1\r\n") &&
           strstr(pp.sent, "DELE 2\r\n") && !strstr(pp.sent, "DELE 3") &&
           strstr(pp.sent, "QUIT\r\n"),
       "plan: 1 fetched and deleted, 2 deleted without RETR, 3 left alone, QUIT");
    ok(pp.commits == 1 && !pp.dele_before_commit,
       "commit called once, after the RETR and before any DELE");
    memset(&pp, 0, sizeof pp);
    pp.refuse = 1;
    rc = plan_run(&pp);
    ok(rc == MW_ECANCELED && pp.commits == 1 && !strstr(pp.sent, "DELE") &&
           !strstr(pp.sent, "QUIT"),
       "a commit callback that refuses: its code, no DELE, no QUIT");
}

/* An idle session (idle_noop_ms): logs in, fetches nothing, sends NOOP
 * when its timer is due, again after each answer, and ends only when
 * cancelled (no QUIT).  Progress is counted by what the peer received. */
static void idle_cases(void)
{
    mw_loop *loop = NULL;
    int sv[2];
    res r = {0};
    char sent[4096];
    size_t used = 0;
    if (mw_loop_new(&loop, NULL, NULL) ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv)) {
        ok(0, "idle: set-up");
        return;
    }
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.user = "u";
    o.password = "p";
    o.tls = MW_TLS_NONE;
    o.allow_plaintext = 1;
    o.idle_noop_ms = 1; /* due at once: the test counts NOOPs, not time */
    mw_loop_job *job = NULL;
    int rc = mwi_loop_add_pop3_fetch_fd(loop, &job, &o, sv[0], done_cb, &r, NULL);
    static const char *const login[] = {"+OK hi\r\n", "+OK\r\nUSER\r\n.\r\n", "+OK\r\n", "+OK\r\n"};
    int noops = 0;
    for (int k = 0; !rc && k < 4000 && noops < 3 && mw_loop_running(loop); k++) {
        if (k < 4 && send(sv[1], login[k], strlen(login[k]), 0) < 0) break;
        mw_loop_fd f;
        if (mw_loop_fds(loop, &f, 1) == 1) mw_loop_action(loop, f.fd, MW_LOOP_IN | MW_LOOP_OUT);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
        ssize_t n = recv(sv[1], sent + used, sizeof sent - used - 1, MSG_DONTWAIT);
        if (n > 0) {
            used += (size_t)n;
            sent[used] = 0;
            int now = 0;
            for (const char *q = sent; (q = strstr(q, "NOOP\r\n")); q++)
                now++;
            for (; noops < now; noops++)
                if (send(sv[1], "+OK\r\n", 5, 0) < 0) break;
        }
        if (k >= 4) usleep(1000); /* a bound on the spin, not a measurement */
    }
    ok(noops >= 3 && mw_loop_running(loop) == 1 && !strstr(sent, "LIST") && !strstr(sent, "RETR"),
       "idle session: logged in, three NOOPs answered, no LIST or RETR, still running");
    if (r.n) /* it ended: the job is gone, nothing to cancel */
        printf("# the idle job ended (%d): %s\n# it sent: %s\n", r.code, r.message, sent);
    ok(!r.n && mw_loop_cancel(loop, job) == 0 &&
           mw_loop_run(loop, mw_now_ms() + 60000, NULL) == 0 && r.n == 1 &&
           r.code == MW_ECANCELED && !strstr(sent, "QUIT"),
       "idle session cancelled: MW_ECANCELED once, no QUIT");
    close(sv[1]);
    mw_loop_free(loop);
}

int main(void)
{
    printf("1..25\n");
    char tmpl[] = "/tmp/mw-loop-api-XXXXXX";
    char *base = mkdtemp(tmpl);
    if (!base || mw_store_open(&g_store, MW_STORE_MAILDIR, base, NULL, NULL) != 0) {
        printf("Bail out! no store\n");
        return 1;
    }
    mw_error err = {0};
    mw_loop *loop = (mw_loop *)&err;
    mw_loop_opts bad = MW_LOOP_OPTS_INIT;
    bad.version = 99;
    ok(mw_loop_new(NULL, NULL, &err) == MW_EINVAL, "mw_loop_new without out: MW_EINVAL");
    ok(mw_loop_new(&loop, &bad, &err) == MW_EINVAL && loop == NULL,
       "an unknown opts version: MW_EINVAL, *out NULL");

    mw_loop_opts lo = MW_LOOP_OPTS_INIT;
    lo.max_jobs = 2;
    ok(mw_loop_new(&loop, &lo, &err) == 0 && loop, "mw_loop_new with max_jobs 2");
    ok(mw_loop_running(loop) == 0 && mw_loop_timeout_ms(loop) == -1 &&
           mw_loop_fds(loop, NULL, 0) == 0 && mw_loop_run(loop, MW_NO_DEADLINE, &err) == 0,
       "empty loop: nothing running, no deadline, no descriptor, run returns 0");

    res r1 = {0}, r2 = {0}, r3 = {0};
    mw_loop_job *j1 = NULL, *j2 = NULL, *j3 = NULL;
    int p1 = -1, p2 = -1, p3 = -1;
    int a1 = add_job(loop, &j1, &p1, 0, &r1, &err), a2 = add_job(loop, &j2, &p2, 300, &r2, &err);
    ok(a1 == 0 && a2 == 0 && j1 && j2 && mw_loop_running(loop) == 2, "two jobs added");
    int a3 = add_job(loop, &j3, &p3, 0, &r3, &err);
    ok(a3 == MW_ETOOBIG && j3 == NULL, "a third job over max_jobs: MW_ETOOBIG, *out NULL");
    mw_loop_fd fds[2];
    ok(mw_loop_fds(loop, fds, 0) == 2 && mw_loop_fds(loop, fds, 2) == 2 &&
           (fds[0].events & MW_LOOP_OUT) && (fds[1].events & MW_LOOP_OUT),
       "mw_loop_fds: two descriptors, each waiting for its connect (OUT)");
    int t = mw_loop_timeout_ms(loop);
    ok(t > 0 && t <= 30000, "mw_loop_timeout_ms: the connect deadline (30 s default)");

    ok(mw_loop_cancel(loop, j1) == 0 && mw_loop_cancel(loop, j1) == MW_ESTATE,
       "cancel: 0, then MW_ESTATE for the same job");
    ok(mw_loop_timeout_ms(loop) == 0 && r1.n == 0,
       "a cancelled job is due at once; its callback has not run yet");
    mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    ok(r1.n == 1 && r1.code == MW_ECANCELED && mw_loop_running(loop) == 1,
       "its callback ran once with MW_ECANCELED; one job left");

    /* Job 2: the connect is done, the greeting never comes; its own
     * io_timeout_ms (300) ends it.  mw_loop_run's deadline is a bound.
     * The second wait goes through the poll(2) runner, the one used where
     * there is no epoll (mw_loop_run uses epoll on Linux). */
    int64_t past = mw_now_ms() - 1;
    ok(mw_loop_run(loop, past, &err) == MW_ETIMEOUT && mw_loop_running(loop) == 1,
       "mw_loop_run with its deadline passed: MW_ETIMEOUT, the job still runs");
    ok(mwi_loop_run_poll(loop, mw_now_ms() + 120000, &err) == 0 && r2.n == 1 &&
           r2.code == MW_ETIMEOUT,
       "a silent server: the job ends by its own deadline, MW_ETIMEOUT (poll runner)");

    /* mw_loop_free with a job running: no callback, everything closed. */
    res r4 = {0};
    mw_loop_job *j4 = NULL;
    int p4 = -1;
    ok(add_job(loop, &j4, &p4, 0, &r4, &err) == 0 && send(p4, "+OK hi\r\n", 8, 0) == 8,
       "a fourth job added, its greeting sent");
    /* The only job now: connect done (OUT), then the greeting (IN). */
    for (int k = 0; k < 2 && mw_loop_fds(loop, fds, 2) == 1; k++)
        mw_loop_action(loop, fds[0].fd, MW_LOOP_IN | MW_LOOP_OUT);
    char buf[64] = {0};
    ssize_t got = recv(p4, buf, sizeof buf - 1, MSG_DONTWAIT);
    ok(got > 0 && !strncmp(buf, "CAPA\r\n", 6), "the job answered the greeting with CAPA");
    mw_loop_free(loop);
    char c;
    ssize_t eof = recv(p4, &c, 1, MSG_DONTWAIT);
    printf("# recv after free: %zd (%s)\n", eof, eof < 0 ? strerror(errno) : "");
    ok(r4.n == 0 && eof == 0,
       "mw_loop_free: no callback, the job's connection closed (EOF at the peer, no QUIT)");
    close(p1);
    close(p2);
    close(p4);
    stls_cases();
    plan_cases();
    idle_cases();
    mw_store_free(g_store);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) printf("# cleanup failed\n");
    return failed;
}
