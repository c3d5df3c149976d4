/* The loop's transfer-rate floor (mw_loop_set_speed_limit, src/loop/lconn.c)
 * over a socketpair whose other end the test plays as a POP3 server:
 *   - the server greets, then says nothing: the floor ends the job with
 *     src/net's words, after its window of waiting and long before the
 *     job's 120 s io timeout;
 *   - a reply that keeps coming, in pieces each of which fills a window
 *     (a generous 10 s one), is never ended by the floor;
 *   - the setter's arguments.
 * The scripted cases pop3/ and smtp/limits-trickle-speed-limit.case show
 * the same words as the blocking engine through the CLI.  TAP. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <poll.h>
#include <stdio.h>
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
    char msg[320];
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    snprintf(t->msg, sizeof t->msg, "%s", r->err->message);
}

static int add(mw_loop *loop, mw_loop_job **job, int fd, res *r)
{
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.tls = MW_TLS_NONE;
    o.auth = MW_POP3_AUTH_NONE;
    o.io_timeout_ms = 120000;
    static const mw_loop_pop3_cmd cmd = {.op = MW_LOOP_POP3_NOOP};
    return mwi_loop_add_pop3_cmds_fd(loop, job, &o, &cmd, 1, NULL, NULL, fd, done_cb, r, NULL);
}

/* Runs the loop one wait at a time (at most 1 s each, 60 s in all); the
 * peer's turn after each: *fed says how many pieces it sent. */
static void drive(mw_loop *loop, int peer, int pieces, int *fed)
{
    int64_t end = mw_now_ms() + 60000;
    char buf[512];
    while (mw_loop_running(loop) && mw_now_ms() < end) {
        mw_loop_fd f[2];
        size_t n = mw_loop_fds(loop, f, 2);
        struct pollfd pf = {.fd = n ? f[0].fd : -1,
                            .events = (short)(n && (f[0].events & MW_LOOP_OUT) ? POLLOUT : POLLIN)};
        int t = mw_loop_timeout_ms(loop);
        if (t < 0 || t > 1000) t = 1000;
        if (poll(&pf, n ? 1 : 0, t) > 0)
            mw_loop_action(loop, pf.fd, (pf.revents & POLLOUT ? MW_LOOP_OUT : 0) | MW_LOOP_IN);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
        ssize_t got = recv(peer, buf, sizeof buf, MSG_DONTWAIT);
        if (got > 0 && !memcmp(buf, "CAPA", 4) && *fed == 0) {
            /* The CAPA reply, in pieces of 200 octets, each one a turn. */
            if (send(peer, "+OK\r\n", 5, 0) > 0) (*fed)++;
        }
        if (*fed > 0 && *fed < pieces) {
            char line[202];
            memset(line, 'X', 198);
            memcpy(line + 198, "\r\n", 3);
            if (send(peer, line, 200, 0) == 200) (*fed)++;
        } else if (*fed == pieces) {
            if (send(peer, ".\r\n", 3, 0) == 3) (*fed)++;
        }
        if (got > 0 && strstr(buf, "NOOP")) send(peer, "+OK\r\n", 5, 0);
        if (got > 0 && strstr(buf, "QUIT")) send(peer, "+OK bye\r\n", 9, 0);
    }
}

static void silent_server(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mw_loop_job *job = NULL;
    res r = {0};
    int rc = add(loop, &job, sv[0], &r);
    ok(!rc && mw_loop_set_speed_limit(loop, job, 100, 1000) == 0,
       "a floor of 100 bytes/s over 1 s");
    send(sv[1], "+OK hi\r\n", 8, 0);
    int64_t t0 = mw_now_ms();
    int fed = -1; /* no answer to CAPA */
    drive(loop, sv[1], 0, &fed);
    int64_t took = mw_now_ms() - t0;
    printf("# silent server: %lld ms: %s\n", (long long)took, r.msg);
    ok(r.n == 1 && r.code == MW_ETIMEOUT &&
           strstr(r.msg, "transfer slower than 100 bytes/s over 1 s (0 bytes moved) while reading "
                         "a line"),
       "a silent server: ended by the floor, in src/net's words");
    ok(took >= 1000 && took < 60000, "  after its window, long before the 120 s io timeout");
    mw_loop_free(loop);
    close(sv[1]);
}

static void steady_server(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mw_loop_job *job = NULL;
    res r = {0};
    int rc = add(loop, &job, sv[0], &r);
    if (!rc) rc = mw_loop_set_speed_limit(loop, job, 10, 10000);
    send(sv[1], "+OK hi\r\n", 8, 0);
    int fed = 0;
    drive(loop, sv[1], 40, &fed);
    printf("# steady server: %d pieces: %s\n", fed, r.msg);
    ok(!rc && r.n == 1 && r.code == 0 && fed == 41,
       "a reply that keeps coming (40 pieces of 200 octets) is not ended by the floor");
    mw_loop_free(loop);
    close(sv[1]);
}

static void arguments(void)
{
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
    mw_loop *loop = NULL, *other = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mw_loop_new(&other, NULL, NULL);
    mw_loop_job *job = NULL;
    res r = {0};
    add(loop, &job, sv[0], &r);
    ok(mw_loop_set_speed_limit(loop, NULL, 1, 1000) == MW_EINVAL &&
           mw_loop_set_speed_limit(NULL, job, 1, 1000) == MW_EINVAL &&
           mw_loop_set_speed_limit(other, job, 1, 1000) == MW_EINVAL &&
           mw_loop_set_speed_limit(loop, job, 1, 0) == MW_EINVAL &&
           mw_loop_set_speed_limit(loop, job, 0, 0) == 0,
       "mw_loop_set_speed_limit: no job, another loop's, no window: MW_EINVAL; 0: none");
    mw_loop_free(loop);
    mw_loop_free(other);
    close(sv[1]);
}

int main(void)
{
    silent_server();
    steady_server();
    arguments();
    printf("1..%d\n", ntest);
    return failed;
}
