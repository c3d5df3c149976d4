/* Unit tests of the net layer's vtable (net/stream.h): every kind names
 * itself and gives the descriptor to wait on, a TLS-only call refuses the
 * other kinds, and the generic part's limits and cancel token hold for the
 * kinds built on the fd kind's I/O (command, TCP), not only for fd.  Waits
 * are bounds, never measurements. */
#include "mwtest.h"

#include "mailwire/net.h"
#include "net/stream_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static long cb_read(void *buf, size_t len, int64_t deadline, void *u)
{
    (void)buf, (void)len, (void)deadline, (void)u;
    return 0;
}

static long cb_write(const void *buf, size_t len, int64_t deadline, void *u)
{
    (void)buf, (void)deadline, (void)u;
    return (long)len;
}

/* A listening socket on 127.0.0.1 (port in *port). */
static int listener(unsigned *port)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return l;
}

static void each_kind_names_itself_and_its_descriptor(void **st)
{
    (void)st;
    mw_error err = {0};
    mw_tls_info info;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, NULL, &err), 0);
    assert_string_equal(mwi_stream_kind(s), "fd");
    assert_int_equal(mwi_stream_pollfd(s), sv[0]);
    assert_null(mw_stream_tls_peer(s));
    assert_int_equal(mw_stream_tls_info(s, &info), MW_EUNSUPPORTED);
    mw_stream_free(s);
    close(sv[1]);

    mw_stream_ops ops = {cb_read, cb_write, NULL};
    assert_int_equal(mw_stream_callbacks(&s, &ops, NULL, &err), 0);
    assert_string_equal(mwi_stream_kind(s), "callbacks");
    assert_int_equal(mwi_stream_pollfd(s), -1);
    unsigned char cb[32];
    size_t n = 1;
    assert_int_equal(mw_stream_channel_binding(s, "tls-exporter", cb, sizeof cb, &n),
                     MW_EUNSUPPORTED);
    mw_stream_free(s);

    assert_int_equal(mw_stream_command(&s, "cat", NULL, &err), 0);
    assert_string_equal(mwi_stream_kind(s), "command");
    assert_true(mwi_stream_pollfd(s) >= 0);
    mw_stream_free(s);

    unsigned port;
    int l = listener(&port);
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", port, NULL, &err), 0);
    assert_string_equal(mwi_stream_kind(s), "tcp");
    assert_true(mwi_stream_pollfd(s) >= 0);
    assert_string_equal(mwi_stream_host(s), "127.0.0.1");
    mw_stream_free(s);
    close(l);
}

/* max_time_ms ends a read on a command stream that never answers. */
static void limits_hold_for_a_command_stream(void **st)
{
    (void)st;
    mw_error err = {0};
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.max_time_ms = 300;
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_command(&s, "exec sleep 60", &o, &err), 0);
    char buf[16];
    size_t got = 7;
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, MW_NO_DEADLINE, &err), MW_ETIMEOUT);
    assert_true(mw_now_ms() - t0 < 30000); /* a bound, not a measurement */
    assert_int_equal(got, 0);
    assert_non_null(strstr(err.message, "max-time of 300 ms"));
    assert_true(mwi_stream_limit_hit(s));
    mw_stream_free(s);
}

static void *cancel_later(void *arg)
{
    usleep(100000);
    mw_cancel_request(arg);
    return NULL;
}

/* A cancel token set on a TCP stream (the kind whose read otherwise
 * blocks in recv) is seen by a read that is already waiting: it ends
 * with MW_ECANCELED, not at its deadline. */
static void cancel_holds_for_a_tcp_stream(void **st)
{
    (void)st;
    mw_error err = {0};
    unsigned port;
    int l = listener(&port);
    mw_cancel *c = NULL;
    assert_int_equal(mw_cancel_new(&c, &err), 0);
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.cancel = c;
    o.io_timeout_ms = 0;
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_tcp(&s, "127.0.0.1", port, &o, &err), 0);
    int peer = accept(l, NULL, NULL);
    assert_true(peer >= 0);
    /* Data first: the read path with a token in place still reads. */
    assert_int_equal(write(peer, "+OK\r\n", 5), 5);
    char buf[16];
    size_t got = 0;
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, mw_now_ms() + 30000, &err), 0);
    assert_int_equal(got, 5);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, cancel_later, c), 0);
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, t0 + 90000, &err), MW_ECANCELED);
    /* A bound, not a measurement: a read blind to the token (one recv under
     * SO_RCVTIMEO) would only notice it at the deadline, 90 s on. */
    assert_true(mw_now_ms() - t0 < 45000);
    pthread_join(th, NULL);
    mw_stream_free(s);
    mw_cancel_free(c);
    close(peer);
    close(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(each_kind_names_itself_and_its_descriptor),
        cmocka_unit_test(limits_hold_for_a_command_stream),
        cmocka_unit_test(cancel_holds_for_a_tcp_stream),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
