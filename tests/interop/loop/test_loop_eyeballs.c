/* Happy Eyeballs on the loop (src/loop/leyes.c), without a mail server: a
 * hosts file of the test's own gives "he.test" both ::1 and 127.0.0.1
 * (IPv6 first, as src/util/addrorder.h orders them), on one port P:
 *   - ::1 port P swallows SYNs (a listener whose accept queue is full), the
 *     test's POP3 peer answers on 127.0.0.1 port P: the job connects
 *     through the second address after the attempt delay, long before its
 *     120 s connect and io timeouts; under mw_loop_run (epoll), the poll(2)
 *     runner, and the multi_socket shape (mw_loop_fds / mw_loop_action /
 *     mw_loop_timeout_ms) driven here;
 *   - ::1 refuses, with a 60 s attempt delay: the next attempt starts at
 *     once, not after the delay;
 *   - both swallow SYNs: the two connects are in flight at once (both
 *     descriptors listed by mw_loop_fds), and the race ends at its one
 *     deadline with src/net's words;
 *   - both refuse: src/net's words, both addresses counted;
 *   - 127.0.0.1 itself refuses: the job's error is mw_stream_tcp's, word
 *     for word (a literal is a race of one).
 * Bounds are generous; no verdict depends on the machine's speed.  TAP. */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

/* A socket on ::1 (v6) or 127.0.0.1 at *port (0: any, set on return),
 * listening with backlog (-1: bound only).  -1 when the port is taken. */
static int sock_on(int v6, unsigned *port, int backlog)
{
    int s = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) return -1;
    int one = 1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (v6) {
        setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)*port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)*port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    }
    if (bind(s, (struct sockaddr *)&ss, sl) != 0 || (backlog >= 0 && listen(s, backlog) != 0)) {
        close(s);
        return -1;
    }
    getsockname(s, (struct sockaddr *)&ss, &sl);
    *port =
        ntohs(v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port : ((struct sockaddr_in *)&ss)->sin_port);
    return s;
}

/* A listener whose accept queue is full (backlog 0, one connection nobody
 * accepts): a new SYN is dropped and the connect hangs.  The filler's
 * connect is waited for (generously), so the queue is full when this
 * returns.  -1 when the port is taken. */
static int blackhole(int v6, unsigned port, int *filler)
{
    unsigned p = port;
    int l = sock_on(v6, &p, 0);
    if (l < 0) return -1;
    *filler = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(l, (struct sockaddr *)&ss, &sl);
    connect(*filler, (struct sockaddr *)&ss, sl);
    struct pollfd pf = {.fd = *filler, .events = POLLOUT};
    int e = -1;
    socklen_t el = sizeof e;
    if (poll(&pf, 1, 30000) == 1) getsockopt(*filler, SOL_SOCKET, SO_ERROR, &e, &el);
    if (e != 0) {
        close(*filler);
        close(l);
        return -1;
    }
    return l;
}

/* The POP3 peer: greets, answers STAT and QUIT, on one connection. */
typedef struct peer {
    int l;
    int accepted;
    pthread_t th;
} peer;

static void *peer_run(void *arg)
{
    peer *p = arg;
    struct pollfd pf = {.fd = p->l, .events = POLLIN};
    if (poll(&pf, 1, 120000) != 1) return NULL;
    int s = accept(p->l, NULL, NULL);
    if (s < 0) return NULL;
    p->accepted = 1;
    const char *hi = "+OK he.test ready\r\n";
    if (write(s, hi, strlen(hi)) < 0) goto out;
    char buf[512];
    size_t have = 0;
    for (;;) {
        pf = (struct pollfd){.fd = s, .events = POLLIN};
        if (poll(&pf, 1, 120000) != 1) break;
        ssize_t n = read(s, buf + have, sizeof buf - 1 - have);
        if (n <= 0) break;
        have += (size_t)n;
        char *eol;
        while ((eol = memchr(buf, '\n', have))) {
            size_t len = (size_t)(eol - buf) + 1;
            const char *r = !strncmp(buf, "STAT", 4)   ? "+OK 0 0\r\n"
                            : !strncmp(buf, "QUIT", 4) ? "+OK bye\r\n"
                                                       : "-ERR what\r\n";
            if (write(s, r, strlen(r)) < 0) goto out;
            if (!strncmp(buf, "QUIT", 4)) goto out;
            memmove(buf, buf + len, have - len);
            have -= len;
        }
        if (have == sizeof buf - 1) break;
    }
out:
    close(s);
    return NULL;
}

typedef struct res {
    int n, code;
    char msg[320];
    int tried_v6, tried_v4; /* "connecting to he.test (ADDR)" trace lines */
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    snprintf(t->msg, sizeof t->msg, "%s", r->err->message);
}

static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    res *t = ud;
    if (dir != MW_TRACE_INFO) return;
    printf("# %.*s\n", (int)len, line);
    if (len > 22 && !strncmp(line, "connecting to he.test ", 22)) {
        if (strstr(line, "(::1)")) t->tried_v6++;
        if (strstr(line, "(127.0.0.1)")) t->tried_v4++;
    }
}

static char hosts_path[64];

static const char *job_host = "he.test";

static int add_job(mw_loop *loop, unsigned port, int connect_ms, res *r)
{
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.host = job_host;
    o.port = port;
    o.tls = MW_TLS_NONE;
    o.auth = MW_POP3_AUTH_NONE;
    o.connect_timeout_ms = connect_ms;
    o.io_timeout_ms = 120000;
    o.trace = trace_cb;
    o.trace_userdata = r;
    mw_error err = {0};
    int rc = mw_loop_add_pop3_cmds(loop, NULL, &o, NULL, 0, NULL, NULL, done_cb, r, &err);
    if (rc) printf("# add: %s\n", err.message);
    return rc;
}

static mw_loop *new_loop(int delay_ms)
{
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL)) return NULL;
    mwi_loop_set_resolv_paths(loop, "/nonexistent/resolv.conf", hosts_path);
    if (delay_ms) mwi_loop_set_attempt_delay(loop, delay_ms);
    return loop;
}

/* The multi_socket shape, driven here with poll(2): what mw_loop_fds
 * lists, at most 60 s.  *most: the most descriptors listed at once;
 * *two_distinct: once, two different ones. */
static void drive(mw_loop *loop, size_t *most, int *two_distinct)
{
    int64_t end = mw_now_ms() + 60000;
    while (mw_loop_running(loop) && mw_now_ms() < end) {
        mw_loop_fd f[8];
        size_t n = mw_loop_fds(loop, f, 8);
        if (n > 8) n = 8;
        if (n > *most) *most = n;
        if (n >= 2 && f[0].fd != f[1].fd) *two_distinct = 1;
        struct pollfd pf[8];
        for (size_t i = 0; i < n; i++)
            pf[i] = (struct pollfd){.fd = f[i].fd,
                                    .events = (short)(((f[i].events & MW_LOOP_IN) ? POLLIN : 0) |
                                                      ((f[i].events & MW_LOOP_OUT) ? POLLOUT : 0))};
        int t = mw_loop_timeout_ms(loop);
        if (t < 0 || t > 1000) t = 1000;
        int r = poll(pf, n, t);
        for (size_t i = 0; r > 0 && i < n; i++) {
            if (!pf[i].revents) continue;
            int ev = ((pf[i].revents & POLLIN) ? MW_LOOP_IN : 0) |
                     ((pf[i].revents & POLLOUT) ? MW_LOOP_OUT : 0) |
                     ((pf[i].revents & (POLLERR | POLLHUP)) ? MW_LOOP_ERR : 0);
            mw_loop_action(loop, pf[i].fd, ev);
        }
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    }
}

/* ::1 black-holed, 127.0.0.1 answering on the same port: run 0 under
 * mw_loop_run, 1 under the poll(2) runner, 2 through the multi_socket
 * shape. */
static void silent_v6(int how)
{
    static const char *const names[] = {"mw_loop_run", "the poll(2) runner",
                                        "mw_loop_fds / mw_loop_action"};
    unsigned port = 0;
    int l = -1, hole = -1, filler = -1;
    for (int i = 0; i < 20 && hole < 0; i++) { /* a port free on both addresses */
        port = 0;
        l = sock_on(0, &port, 8);
        hole = l >= 0 ? blackhole(1, port, &filler) : -1;
        if (hole < 0 && l >= 0) close(l);
    }
    char name[160];
    snprintf(name, sizeof name, "%s: a black-holed ::1, then 127.0.0.1 connects", names[how]);
    if (hole < 0) {
        ok(0, name);
        return;
    }
    peer p = {.l = l};
    pthread_create(&p.th, NULL, peer_run, &p);
    mw_loop *loop = new_loop(0);
    res r = {0};
    int64_t t0 = mw_now_ms();
    int rc = add_job(loop, port, 120000, &r);
    size_t most = 0;
    int two = 0;
    if (!rc && how == 0) mw_loop_run(loop, mw_now_ms() + 60000, NULL);
    if (!rc && how == 1) mwi_loop_run_poll(loop, mw_now_ms() + 60000, NULL);
    if (!rc && how == 2) drive(loop, &most, &two);
    int64_t took = mw_now_ms() - t0;
    printf("# %s: done in %lld ms: %s\n", names[how], (long long)took, r.msg);
    ok(!rc && r.n == 1 && r.code == 0 && p.accepted, name);
    ok(r.tried_v6 == 1 && r.tried_v4 == 1, "  ::1 tried first, then 127.0.0.1");
    ok(took < 60000, "  long before the 120 s connect and io timeouts");
    if (how == 2) ok(most >= 2 && two, "  mw_loop_fds listed both connects while they raced");
    mw_loop_free(loop);
    pthread_join(p.th, NULL);
    close(l);
    close(hole);
    close(filler);
}

/* ::1 refuses: with a 60 s attempt delay, 127.0.0.1 is tried at once. */
static void refused_v6_at_once(void)
{
    unsigned port = 0;
    int l = -1, held = -1;
    for (int i = 0; i < 20 && held < 0; i++) {
        port = 0;
        l = sock_on(0, &port, 8);
        unsigned p6 = port;
        held = l >= 0 ? sock_on(1, &p6, -1) : -1; /* bound, not listening: refuses */
        if (held < 0 && l >= 0) close(l);
    }
    if (held < 0) {
        ok(0, "a refused ::1: 127.0.0.1 at once");
        return;
    }
    peer p = {.l = l};
    pthread_create(&p.th, NULL, peer_run, &p);
    mw_loop *loop = new_loop(60000);
    res r = {0};
    int64_t t0 = mw_now_ms();
    size_t most = 0;
    int two = 0;
    if (!add_job(loop, port, 120000, &r)) drive(loop, &most, &two);
    int64_t took = mw_now_ms() - t0;
    printf("# refused ::1: done in %lld ms: %s\n", (long long)took, r.msg);
    ok(r.n == 1 && r.code == 0 && p.accepted, "a refused ::1: 127.0.0.1 connects");
    ok(took < 30000, "  at once, not after the 60 s attempt delay");
    mw_loop_free(loop);
    pthread_join(p.th, NULL);
    close(l);
    close(held);
}

/* Both black-holed: both connects in flight, one deadline, src/net's words. */
static void both_silent(void)
{
    unsigned port = 0;
    int h4 = -1, h6 = -1, f4 = -1, f6 = -1;
    for (int i = 0; i < 20 && h6 < 0; i++) {
        h4 = blackhole(0, 0, &f4);
        struct sockaddr_in a;
        socklen_t al = sizeof a;
        getsockname(h4, (struct sockaddr *)&a, &al);
        port = ntohs(a.sin_port);
        h6 = h4 >= 0 ? blackhole(1, port, &f6) : -1;
        if (h6 < 0 && h4 >= 0) {
            close(h4);
            close(f4);
        }
    }
    if (h6 < 0) {
        ok(0, "both black-holed");
        return;
    }
    mw_loop *loop = new_loop(100);
    res r = {0};
    size_t most = 0;
    int two = 0;
    int64_t t0 = mw_now_ms();
    if (!add_job(loop, port, 8000, &r)) drive(loop, &most, &two);
    int64_t took = mw_now_ms() - t0;
    char want[200];
    snprintf(want, sizeof want,
             "connect to he.test port %u timed out after 8000 ms (2 addresses tried, last "
             "127.0.0.1)",
             port);
    printf("# both silent: %lld ms, most descriptors %zu: %s\n", (long long)took, most, r.msg);
    ok(r.n == 1 && r.code == MW_ETIMEOUT && strstr(r.msg, want),
       "both black-holed: src/net's words");
    ok(most >= 2 && two, "  both connects in flight at once");
    ok(took >= 7990 && took < 60000, "  one deadline for the race");
    mw_loop_free(loop);
    close(h4);
    close(h6);
    close(f4);
    close(f6);
}

/* Both refuse: every attempt's failure counted, the last address named. */
static void both_refuse(void)
{
    unsigned port = 0;
    int b4 = -1, b6 = -1;
    for (int i = 0; i < 20 && b6 < 0; i++) {
        port = 0;
        b4 = sock_on(0, &port, -1);
        unsigned p6 = port;
        b6 = b4 >= 0 ? sock_on(1, &p6, -1) : -1;
        if (b6 < 0 && b4 >= 0) close(b4);
    }
    mw_loop *loop = new_loop(60000);
    res r = {0};
    if (b6 >= 0) {
        mw_error err = {0};
        if (!add_job(loop, port, 120000, &r)) mw_loop_run(loop, mw_now_ms() + 60000, &err);
    }
    char want[200];
    snprintf(want, sizeof want,
             "cannot connect to he.test port %u: Connection refused (2 addresses tried, last "
             "127.0.0.1)",
             port);
    printf("# both refuse: %s\n", r.msg);
    ok(r.n == 1 && r.code == MW_ENET && strstr(r.msg, want), "both refuse: src/net's words");
    mw_loop_free(loop);
    close(b4);
    close(b6);
}

/* A literal that refuses: the loop's words are the blocking connect's. */
static void literal_refuses(void)
{
    unsigned port = 0;
    int b = sock_on(0, &port, -1);
    mw_loop *loop = new_loop(0);
    res r = {0};
    job_host = "127.0.0.1";
    if (b >= 0 && !add_job(loop, port, 120000, &r)) mw_loop_run(loop, mw_now_ms() + 60000, NULL);
    job_host = "he.test";
    mw_stream *s = NULL;
    mw_error err = {0};
    int rc = mw_stream_tcp(&s, "127.0.0.1", port, NULL, &err);
    printf("# loop: %s\n# blocking: %s\n", r.msg, err.message);
    ok(b >= 0 && r.n == 1 && r.code == MW_ENET && rc == MW_ENET && !strcmp(r.msg, err.message),
       "127.0.0.1 refuses: the loop's error is mw_stream_tcp's, word for word");
    mw_stream_free(s);
    mw_loop_free(loop);
    if (b >= 0) close(b);
}

int main(void)
{
    snprintf(hosts_path, sizeof hosts_path, "/tmp/mw-eyeballs-%d.hosts", (int)getpid());
    FILE *f = fopen(hosts_path, "w");
    if (!f || fputs("127.0.0.1 he.test\n::1 he.test\n", f) < 0 || fclose(f) != 0) {
        printf("1..1\nnot ok 1 - hosts file\n");
        return 1;
    }
    for (int how = 0; how < 3; how++)
        silent_v6(how);
    refused_v6_at_once();
    both_silent();
    both_refuse();
    literal_refuses();
    unlink(hosts_path);
    printf("1..%d\n", ntest);
    return failed;
}
