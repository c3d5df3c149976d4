/* Unit tests of src/net streams: callbacks, descriptors, TCP, Happy
 * Eyeballs, proxies' URLs, commands, timeouts, deadlines and cancel.  Lines
 * are cut by tests/unit/lines.h. */
#include "mwtest.h"

#include "lines.h"
#include "mailwire/net.h"
#include "net/proxy.h"
#include "net/stream_int.h"
#include "util/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netdb.h>
#include <unistd.h>

/* ---- a callbacks stream fed from memory, in chunks ------------------------ */

struct feed {
    const char *data;
    size_t len, pos;
    size_t chunk; /* at most this many bytes per read (0 = all) */
    size_t split; /* first read stops here when non-zero */
    int reads;
    mw_buf out; /* what was written */
};

static long feed_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    struct feed *f = ud;
    size_t n = f->len - f->pos;
    if (f->split && f->pos < f->split && n > f->split - f->pos) n = f->split - f->pos;
    if (f->chunk && n > f->chunk) n = f->chunk;
    if (n > len) n = len;
    memcpy(buf, f->data + f->pos, n);
    f->pos += n;
    f->reads++;
    return (long)n;
}

static long feed_write(const void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)deadline;
    struct feed *f = ud;
    return mwi_buf_append(&f->out, buf, len) ? MW_ENOMEM : (long)len;
}

static long lying_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)ud;
    (void)buf;
    (void)deadline;
    return (long)len + 1;
}

static long failing_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    (void)ud;
    (void)buf;
    (void)len;
    (void)deadline;
    return MW_ETIMEOUT;
}

static void callbacks_stream_rejects_bad_counts(void **state)
{
    (void)state;
    struct feed f = {"abc", 3, 0, 0, 0, 0, MW_BUF_INIT(0)};
    mw_stream_ops ops = {feed_read, feed_write, NULL};
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_callbacks(&s, &ops, &f, &err), 0);
    char buf[2];
    size_t got = 0;
    /* The feed returns at most len bytes; a 0-length read is a no-op. */
    assert_int_equal(mw_stream_read(s, buf, 0, &got, MW_NO_DEADLINE, &err), 0);
    assert_int_equal(got, 0);
    assert_int_equal(mw_stream_read(s, buf, 2, &got, MW_NO_DEADLINE, &err), 0);
    assert_int_equal(got, 2);
    mw_stream_free(s);
    /* A callback claiming more bytes than asked for is refused, not trusted. */
    mw_stream_ops liar = {lying_read, feed_write, NULL};
    assert_int_equal(mw_stream_callbacks(&s, &liar, &f, &err), 0);
    assert_int_equal(mw_stream_read(s, buf, 2, &got, MW_NO_DEADLINE, &err), MW_EINVAL);
    assert_int_equal(got, 0);
    mw_stream_free(s);
    /* A callback's own error code comes through. */
    mw_stream_ops failing = {failing_read, feed_write, NULL};
    assert_int_equal(mw_stream_callbacks(&s, &failing, &f, &err), 0);
    assert_int_equal(mw_stream_read(s, buf, 2, &got, MW_NO_DEADLINE, &err), MW_ETIMEOUT);
    mw_stream_free(s);
    mw_stream_ops bad = {NULL, feed_write, NULL};
    assert_int_equal(mw_stream_callbacks(&s, &bad, &f, &err), MW_EINVAL);
    assert_null(s);
}

/* ---- over socketpairs -------------------------------------------------------- */

static mw_stream *pair_stream(int *peer, const mw_net_opts *opts)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, opts, &err), 0);
    *peer = sv[1];
    return s;
}

/* A peer that says nothing: the read fails with MW_ETIMEOUT at the deadline
 * it was given (the blocking sessions' drivers give theirs so), having
 * waited for it. */
static void stalled_peer_hits_the_deadline(void **state)
{
    (void)state;
    int peer;
    mw_stream *s = pair_stream(&peer, NULL);
    char buf[64];
    size_t got = 9;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, t0 + 300, &err), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    printf("# stalled read gave up after %lld ms (deadline 300 ms)\n", (long long)took);
    assert_true(took >= 290 && took < 30000); /* the peer never writes: bounded, not a hang */
    assert_int_equal(got, 0);
    assert_string_equal(err.message, "timed out waiting for data");
    close(peer);
    mw_stream_free(s);
}

/* The stream's own io_timeout (mw_net_opts) applies too. */
static void stream_io_timeout_from_opts(void **state)
{
    (void)state;
    int peer;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.io_timeout_ms = 200;
    mw_stream *s = pair_stream(&peer, &o);
    tlines t;
    tl_init(&t, s);
    const char *line;
    size_t len;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    assert_int_equal(tl_read(&t, &line, &len, &err), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    assert_true(took >= 190 && took < 30000);
    close(peer);
    mw_stream_free(s);
}

/* A trickling peer keeps each wait within the io timeout; the deadline
 * given to the reads still ends them. */
static void deadline_bounds_a_trickle(void **state)
{
    (void)state;
    int peer;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.io_timeout_ms = 5000;
    mw_stream *s = pair_stream(&peer, &o);
    tlines t;
    tl_init(&t, s);
    t.deadline = mw_now_ms() + 300;
    pid_t pid = fork();
    if (pid == 0) { /* trickles for 120 s: only the deadline can end the read sooner */
        for (int i = 0; i < 2400; i++) {
            if (write(peer, "x", 1) != 1) break;
            usleep(50000);
        }
        _exit(0);
    }
    const char *line;
    size_t len;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    assert_int_equal(tl_read(&t, &line, &len, &err), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    assert_true(took < 60000);
    assert_true(tl_buffered(&t) > 0); /* it did take the trickle meanwhile */
    assert_non_null(strstr(err.message, "timed out"));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(peer);
    mw_stream_free(s);
}

struct canceller {
    mw_cancel *cancel;
    int delay_ms;
    _Atomic int64_t requested_at; /* mw_now_ms() just before the request */
};

static void *cancel_later(void *arg)
{
    struct canceller *k = arg;
    usleep((useconds_t)k->delay_ms * 1000);
    k->requested_at = mw_now_ms();
    mw_cancel_request(k->cancel);
    return NULL;
}

static void cancel_from_another_thread(void **state)
{
    (void)state;
    mw_cancel *cancel = NULL;
    assert_int_equal(mw_cancel_new(&cancel, NULL), 0);
    int peer;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.io_timeout_ms = 10000;
    mw_stream *s = pair_stream(&peer, &o);
    mwi_stream_set_cancel(s, cancel);
    tlines t;
    tl_init(&t, s);
    struct canceller k = {cancel, 100, 0};
    pthread_t th;
    pthread_create(&th, NULL, cancel_later, &k);
    const char *line;
    size_t len;
    mw_error err = {0};
    assert_int_equal(tl_read(&t, &line, &len, &err), MW_ECANCELED);
    int64_t done = mw_now_ms();
    pthread_join(th, NULL);
    /* The read was blocked until the request (it did not return before it)
     * and returned promptly after it. */
    assert_true(k.requested_at > 0);
    printf("# read returned %lld ms after the cancel request\n",
           (long long)(done - k.requested_at));
    assert_true(done - k.requested_at < 300);
    assert_true(mw_cancel_requested(cancel));
    /* After a reset the same connection works again. */
    mw_cancel_reset(cancel);
    assert_int_equal(write(peer, "+OK\r\n", 5), 5);
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_memory_equal(line, "+OK", 3);
    close(peer);
    mw_stream_free(s);
    mw_cancel_free(cancel);
}

static mw_cancel *sig_cancel;
static void on_alarm(int sig)
{
    (void)sig;
    mw_cancel_request(sig_cancel);
}

static void cancel_from_a_signal_handler(void **state)
{
    (void)state;
    assert_int_equal(mw_cancel_new(&sig_cancel, NULL), 0);
    int peer;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.cancel = sig_cancel;
    mw_stream *s = pair_stream(&peer, &o);
    tlines t;
    tl_init(&t, s);
    struct sigaction sa = {0}, old;
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, &old);
    alarm(1);
    const char *line;
    size_t len;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    assert_int_equal(tl_read(&t, &line, &len, &err), MW_ECANCELED);
    assert_true(mw_now_ms() - t0 < 30000); /* nothing else would end the read */
    sigaction(SIGALRM, &old, NULL);
    close(peer);
    mw_stream_free(s);
    mw_cancel_free(sig_cancel);
}

static void peer_close_while_writing_is_enet(void **state)
{
    (void)state;
    int peer;
    mw_stream *s = pair_stream(&peer, NULL);
    close(peer);
    mw_error err = {0};
    assert_int_equal(mw_stream_write(s, "QUIT\r\n", 6, MW_NO_DEADLINE, &err), MW_ENET);
    assert_non_null(strstr(err.message, "write failed"));
    mw_stream_free(s);
}

/* mw_stream_fd over pipes: a write to a pipe without reader fails with
 * MW_ENET instead of killing the process with SIGPIPE. */
static void fd_stream_over_pipes_no_sigpipe(void **state)
{
    (void)state;
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, in[0], out[1], 1, NULL, &err), 0);
    assert_int_equal(write(in[1], "hi", 2), 2);
    char buf[8];
    size_t got;
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, MW_NO_DEADLINE, &err), 0);
    assert_int_equal(got, 2);
    assert_int_equal(mw_stream_write(s, "ok", 2, MW_NO_DEADLINE, &err), 0);
    assert_int_equal(read(out[0], buf, sizeof buf), 2);
    close(out[0]);
    assert_int_equal(mw_stream_write(s, "x", 1, MW_NO_DEADLINE, &err), MW_ENET);
    sigset_t pend;
    sigpending(&pend);
    assert_false(sigismember(&pend, SIGPIPE));
    close(in[1]);
    mw_stream_free(s);
}

/* ---- TCP -------------------------------------------------------------------- */

static int listen_on(int family, unsigned *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        sl = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 4) != 0) {
        close(fd);
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                    : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static void tcp_roundtrip(const char *host, int family)
{
    unsigned port;
    int l = listen_on(family, &port);
    if (l < 0) {
        printf("# %s: cannot listen, not tested here\n", host);
        return;
    }
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_tcp(&s, host, port, NULL, &err), 0);
    int a = accept(l, NULL, NULL);
    assert_true(a >= 0);
    assert_int_equal(write(a, "+OK ready\r\n", 11), 11);
    tlines t;
    tl_init(&t, s);
    const char *line;
    size_t len;
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_int_equal(len, 9);
    assert_int_equal(tl_send(&t, "QUIT", &err), 0);
    char buf[16];
    assert_int_equal(read(a, buf, sizeof buf), 6);
    mw_stream_free(s);
    close(a);
    close(l);
}

static void tcp_connects_ipv4_and_ipv6(void **state)
{
    (void)state;
    tcp_roundtrip("127.0.0.1", AF_INET);
    tcp_roundtrip("localhost", AF_INET);
    tcp_roundtrip("::1", AF_INET6);
    tcp_roundtrip("[::1]", AF_INET6);
}

static void tcp_errors_are_clear(void **state)
{
    (void)state;
    int rc;
    mw_stream *s = NULL;
    mw_error err = {0};
    unsigned port;
    int l = listen_on(AF_INET, &port);
    close(l); /* nobody listens there now */
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", port, NULL, &err), MW_ENET);
    assert_non_null(strstr(err.message, "Connection refused"));
    assert_null(s);
    assert_int_equal(mw_stream_tcp(&s, "bad\r\nhost", 110, NULL, &err), MW_EINVAL);
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", 0, NULL, &err), MW_EINVAL);
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", 70000, NULL, &err), MW_EINVAL);
    assert_int_equal(mw_stream_tcp(&s, "host.invalid", 110, NULL, &err), MW_ENET);
    assert_non_null(strstr(err.message, "cannot resolve host.invalid"));
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.family = 6;
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", 110, &o, &err), MW_ENET);
    o.family = 5;
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", 110, &o, &err), MW_EINVAL);
    /* A cancelled token stops before the lookup. */
    mw_net_opts co = MW_NET_OPTS_INIT;
    assert_int_equal(mw_cancel_new(&co.cancel, NULL), 0);
    mw_cancel_request(co.cancel);
    assert_int_equal(mw_stream_tcp(&s, "localhost", 110, &co, &err), MW_ECANCELED);
    assert_non_null(strstr(err.message, "while resolving localhost"));
    mw_cancel_free(co.cancel);
    /* Many lookups through the asynchronous resolver: nothing leaks (ASan
     * checks at exit), each succeeds or times out cleanly. */
    for (int i = 0; i < 20; i++) {
        mw_net_opts qo = MW_NET_OPTS_INIT;
        qo.connect_timeout_ms = i % 2 ? 1 : 2000; /* 1 ms may walk away from the lookup */
        rc = mw_stream_tcp(&s, "localhost", port, &qo, &err);
        assert_true(rc == MW_ENET || rc == MW_ETIMEOUT);
    }
}

/* A listener whose accept queue is full drops SYNs (Linux, with
 * tcp_abort_on_overflow=0): the connect hangs, and connect_timeout_ms ends
 * it within twice the timeout. */
static void tcp_connect_timeout(void **state)
{
    (void)state;
    unsigned port;
    int l = listen_on(AF_INET, &port);
    assert_true(l >= 0);
    assert_int_equal(listen(l, 0), 0);
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.connect_timeout_ms = 300;
    mw_stream *filler[4] = {NULL};
    mw_error err = {0};
    int rc = 0, i;
    int64_t took = 0;
    for (i = 0; i < 4; i++) {
        int64_t t0 = mw_now_ms();
        rc = mw_stream_tcp(&filler[i], "127.0.0.1", port, &o, &err);
        took = mw_now_ms() - t0;
        if (rc) break;
    }
    printf("# connection %d to a full accept queue: %s after %lld ms\n", i + 1,
           rc ? err.message : "connected", (long long)took);
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_true(took >= 290 && took < 30000);
    assert_non_null(strstr(err.message, "timed out after 300 ms"));
    for (i = 0; i < 4; i++)
        mw_stream_free(filler[i]);
    close(l);
}

/* ---- Happy Eyeballs (RFC 8305) ---------------------------------------------- */

/* A listener that drops SYNs: its accept queue is full (listen backlog 0
 * and connections nobody accepts), so a new connect hangs. */
static int blackhole(unsigned *port, int filler[3])
{
    int l = listen_on(AF_INET, port);
    assert_true(l >= 0);
    assert_int_equal(listen(l, 0), 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int i = 0; i < 3; i++) {
        filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(filler[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100 * 1000);
    return l;
}

static void sin_at(struct sockaddr_in *sin, struct addrinfo *ai, unsigned port,
                   struct addrinfo *next)
{
    memset(sin, 0, sizeof *sin);
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)port);
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    memset(ai, 0, sizeof *ai);
    ai->ai_family = AF_INET;
    ai->ai_socktype = SOCK_STREAM;
    ai->ai_addr = (struct sockaddr *)sin;
    ai->ai_addrlen = sizeof *sin;
    ai->ai_next = next;
}

static void happy_order_alternates_families(void **state)
{
    (void)state;
    struct addrinfo ai[5];
    int fam[5] = {AF_INET6, AF_INET6, AF_INET6, AF_INET, AF_INET};
    for (int i = 0; i < 5; i++) {
        memset(&ai[i], 0, sizeof ai[i]);
        ai[i].ai_family = fam[i];
        ai[i].ai_next = i < 4 ? &ai[i + 1] : NULL;
    }
    const struct addrinfo *o[8];
    assert_int_equal(mwi_tcp_order(ai, o, 8), 5);
    const struct addrinfo *want[5] = {&ai[0], &ai[3], &ai[1], &ai[4], &ai[2]};
    for (int i = 0; i < 5; i++)
        assert_ptr_equal(o[i], want[i]);
    /* One family: the resolver's order as it is. */
    assert_int_equal(mwi_tcp_order(&ai[3], o, 8), 2);
    assert_ptr_equal(o[0], &ai[3]);
    assert_ptr_equal(o[1], &ai[4]);
}

/* The first address swallows SYNs: the second is tried after the attempt
 * delay and wins, long before the connect timeout. */
static void happy_blackholed_first_address(void **state)
{
    (void)state;
    unsigned p1, p2;
    int fill[3];
    int l1 = blackhole(&p1, fill);
    int l2 = listen_on(AF_INET, &p2);
    assert_true(l2 >= 0);
    struct sockaddr_in s1, s2;
    struct addrinfo a1, a2;
    sin_at(&s2, &a2, p2, NULL);
    sin_at(&s1, &a1, p1, &a2);
    int fd = -1, tried = 0, e = 0;
    char last[64];
    int64_t t0 = mw_now_ms();
    int rc = mwi_tcp_connect_happy(&a1, 120000, 250, NULL, &fd, &tried, &e, last, sizeof last);
    int64_t took = mw_now_ms() - t0;
    printf("# first address black-holed: connected in %lld ms after %d attempts\n", (long long)took,
           tried);
    assert_int_equal(rc, 0);
    assert_int_equal(tried, 2);
    assert_true(took >= 240 && took < 60000); /* not the 120 s connect deadline */
    int a = accept(l2, NULL, NULL);           /* it is the second listener that got it */
    assert_true(a >= 0);
    close(a);
    close(fd);
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l1);
    close(l2);
}

/* A refused first address starts the next attempt at once. */
static void happy_refused_first_goes_on_at_once(void **state)
{
    (void)state;
    unsigned p1, p2;
    int l1 = listen_on(AF_INET, &p1);
    close(l1);
    int l2 = listen_on(AF_INET, &p2);
    struct sockaddr_in s1, s2;
    struct addrinfo a1, a2;
    sin_at(&s2, &a2, p2, NULL);
    sin_at(&s1, &a1, p1, &a2);
    int fd = -1, tried = 0, e = 0;
    char last[64];
    int64_t t0 = mw_now_ms();
    assert_int_equal(
        mwi_tcp_connect_happy(&a1, 120000, 60000, NULL, &fd, &tried, &e, last, sizeof last), 0);
    int64_t took = mw_now_ms() - t0;
    assert_int_equal(tried, 2);
    assert_true(took < 30000); /* not the 60 s attempt delay */
    close(fd);
    close(l2);
    /* Every address refused: MW_ENET with the reason and the last address. */
    sin_at(&s2, &a2, p1, NULL);
    assert_int_equal(
        mwi_tcp_connect_happy(&a1, 10000, 250, NULL, &fd, &tried, &e, last, sizeof last), MW_ENET);
    assert_int_equal(e, ECONNREFUSED);
    assert_int_equal(tried, 2);
    assert_string_equal(last, "127.0.0.1");
}

/* Every address black-holed: one deadline for the whole race. */
static void happy_all_blackholed_one_deadline(void **state)
{
    (void)state;
    unsigned p1, p2;
    int f1[3], f2[3];
    int l1 = blackhole(&p1, f1), l2 = blackhole(&p2, f2);
    struct sockaddr_in s1, s2;
    struct addrinfo a1, a2;
    sin_at(&s2, &a2, p2, NULL);
    sin_at(&s1, &a1, p1, &a2);
    int fd = -1, tried = 0, e = 0;
    char last[64];
    int64_t t0 = mw_now_ms();
    /* One 4 s deadline for the race; a deadline per attempt would end the
     * second one (started at 2.5 s) at 6.5 s. */
    int rc = mwi_tcp_connect_happy(&a1, 4000, 2500, NULL, &fd, &tried, &e, last, sizeof last);
    int64_t took = mw_now_ms() - t0;
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_int_equal(tried, 2);
    assert_true(took >= 3990 && took < 6400);
    for (int i = 0; i < 3; i++) {
        close(f1[i]);
        close(f2[i]);
    }
    close(l1);
    close(l2);
}

/* ---- proxy URLs ------------------------------------------------------------- */

static void proxy_urls_parsed_and_refused(void **state)
{
    (void)state;
    mw_proxy px;
    mw_error err = {0};
    assert_int_equal(mwi_proxy_parse(&px, "socks5h://u:p%40x@[::1]:1081", &err), 0);
    assert_int_equal(px.kind, MW_PROXY_SOCKS5H);
    assert_string_equal(px.host, "::1");
    assert_int_equal(px.port, 1081);
    assert_string_equal(px.user, "u");
    assert_string_equal(px.pass, "p@x");
    assert_true(px.has_auth);
    assert_int_equal(mwi_proxy_parse(&px, "HTTP://proxy.example/", &err), 0);
    assert_int_equal(px.kind, MW_PROXY_HTTP);
    assert_int_equal(px.port, 8080);
    assert_false(px.has_auth);
    assert_int_equal(mwi_proxy_parse(&px, "socks5://10.0.0.1", &err), 0);
    assert_int_equal(px.port, 1080);
    static const char *const bad[] = {
        "ftp://h",           "socks5://",         "socks5://h:0",  "socks5://h:99999",
        "socks5://h:1x",     "socks5://h:1/path", "socks5://[::1", "socks5://u:p%0d@h",
        "socks5://u%00:p@h", "socks5://:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (mwi_proxy_parse(&px, bad[i], &err) != MW_EINVAL) fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err.message, "proxy"));
        assert_null(strstr(err.message, "p%0d")); /* a password is never repeated */
    }
    /* A version-1 mw_net_opts is read no further than its own end. */
    size_t v1 = offsetof(mw_net_opts, proxy);
    mw_net_opts full = MW_NET_OPTS_INIT;
    full.version = 1;
    full.io_timeout_ms = 1234;
    char *old = malloc(v1);
    assert_non_null(old);
    memcpy(old, &full, v1);
    mw_net_opts got;
    assert_int_equal(mw_net_opts_copy(&got, (const mw_net_opts *)(void *)old), 0);
    assert_int_equal(got.io_timeout_ms, 1234);
    assert_null(got.proxy);
    assert_int_equal(got.version, MW_NET_OPTS_VERSION);
    free(old);
}

/* ---- command stream ------------------------------------------------------------ */

static void command_stream_talks_and_reaps(void **state)
{
    (void)state;
    mw_stream *s = NULL;
    mw_error err = {0};
    char marker[] = "/tmp/mw-cat-eof-XXXXXX";
    int mfd = mkstemp(marker);
    assert_true(mfd >= 0);
    close(mfd);
    unlink(marker);
    char cmd[96];
    snprintf(cmd, sizeof cmd, "cat; : > %s", marker); /* TERM or KILL would skip the marker */
    assert_int_equal(mw_stream_command(&s, cmd, NULL, &err), 0);
    pid_t pid = s->pid;
    assert_true(pid > 0);
    tlines t;
    tl_init(&t, s);
    t.deadline = mw_now_ms() + 30000;
    assert_int_equal(mw_stream_write(s, "hello\r\nworld\n", 13, t.deadline, &err), 0);
    const char *line;
    size_t len;
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(line, "hello", 5);
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_memory_equal(line, "world", 5);
    mw_stream_free(s);
    assert_int_equal(access(marker, F_OK), 0); /* cat ended on EOF, not on a signal */
    unlink(marker);
    /* Reaped: no zombie left for this pid. */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
}

static void command_stream_leaks_no_descriptors(void **state)
{
    (void)state;
    int leak = open("/dev/null", O_RDONLY); /* not O_CLOEXEC on purpose */
    assert_true(leak > 2);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "if test -e /proc/self/fd/%d; then echo leaked; else echo clean; fi; "
             "test -e /proc/self/fd/0 && test -e /proc/self/fd/1 && echo std",
             leak);
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_command(&s, cmd, NULL, &err), 0);
    tlines t;
    tl_init(&t, s);
    t.deadline = mw_now_ms() + 30000;
    const char *line;
    size_t len;
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(line, "clean", 5);
    assert_int_equal(tl_read(&t, &line, &len, &err), 0);
    assert_memory_equal(line, "std", 3);
    assert_int_equal(tl_read(&t, &line, &len, &err), MW_ENET);
    mw_stream_free(s);
    close(leak);
}

/* A command that ignores EOF and SIGTERM is killed; free stays bounded. */
static void command_stream_kills_a_stubborn_child(void **state)
{
    (void)state;
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_command(&s, "trap '' TERM; while :; do sleep 1; done", NULL, &err),
                     0);
    pid_t pid = s->pid;
    usleep(100000); /* let the shell install its trap */
    int64_t t0 = mw_now_ms();
    mw_stream_free(s);
    int64_t took = mw_now_ms() - t0;
    printf("# stubborn child reaped after %lld ms\n", (long long)took);
    assert_true(took < 60000); /* bounded: TERM ignored, KILL ends it */
    assert_int_equal(waitpid(pid, NULL, WNOHANG), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(callbacks_stream_rejects_bad_counts),
        cmocka_unit_test(stalled_peer_hits_the_deadline),
        cmocka_unit_test(stream_io_timeout_from_opts),
        cmocka_unit_test(deadline_bounds_a_trickle),
        cmocka_unit_test(cancel_from_another_thread),
        cmocka_unit_test(proxy_urls_parsed_and_refused),
        cmocka_unit_test(happy_order_alternates_families),
        cmocka_unit_test(happy_blackholed_first_address),
        cmocka_unit_test(happy_refused_first_goes_on_at_once),
        cmocka_unit_test(happy_all_blackholed_one_deadline),
        cmocka_unit_test(cancel_from_a_signal_handler),
        cmocka_unit_test(peer_close_while_writing_is_enet),
        cmocka_unit_test(fd_stream_over_pipes_no_sigpipe),
        cmocka_unit_test(tcp_connects_ipv4_and_ipv6),
        cmocka_unit_test(tcp_errors_are_clear),
        cmocka_unit_test(tcp_connect_timeout),
        cmocka_unit_test(command_stream_talks_and_reaps),
        cmocka_unit_test(command_stream_leaks_no_descriptors),
        cmocka_unit_test(command_stream_kills_a_stubborn_child),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
