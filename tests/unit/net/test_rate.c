/* Unit tests of the session limits of streams: the rate-floor bookkeeping
 * (net/rate.h) driven by counted time, and mw_stream_read/mw_stream_write
 * ending a session on max_time_ms and on the floor.  The stream tests wait
 * on real time, but only for bounds: a limit must fire, with its message,
 * and long before a generous ceiling; nothing is measured. */
#include "mwtest.h"

#include "mailwire/net.h"
#include "net/rate.h"
#include "net/stream_int.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ---- the bookkeeping, with counted time ------------------------------------------ */

static void rate_off(void **st)
{
    (void)st;
    mw_rate r;
    mwi_rate_init(&r, 0, 1000);
    assert_false(mwi_rate_on(&r));
    assert_true(mwi_rate_budget(&r) == INT64_MAX);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(mwi_rate_account(&r, 1000000, 0), 0);
    mwi_rate_init(&r, 5, 0); /* no window: no floor either */
    assert_false(mwi_rate_on(&r));
}

static void rate_trickle_fails_after_one_window(void **st)
{
    (void)st;
    /* 3 bytes/s over 4000 ms: 12 bytes needed.  One byte per 2000 ms. */
    mw_rate r;
    mwi_rate_init(&r, 3, 4000);
    assert_true(mwi_rate_on(&r));
    assert_true(mwi_rate_budget(&r) == 4000);
    assert_int_equal(mwi_rate_account(&r, 2000, 1), 0);
    assert_true(mwi_rate_budget(&r) == 2000);
    assert_int_equal(mwi_rate_account(&r, 2000, 1), -1);
    assert_true(r.failed_bytes == 2);
    /* The next window starts over. */
    assert_true(mwi_rate_budget(&r) == 4000);
}

static void rate_enough_bytes_start_a_new_window(void **st)
{
    (void)st;
    mw_rate r;
    mwi_rate_init(&r, 3, 4000);
    /* 12 bytes in 3999 ms: satisfied, the window restarts at once. */
    assert_int_equal(mwi_rate_account(&r, 3999, 11), 0);
    assert_true(mwi_rate_budget(&r) == 1);
    assert_int_equal(mwi_rate_account(&r, 0, 1), 0);
    assert_true(mwi_rate_budget(&r) == 4000);
    /* A steady flow just at the floor never fails: 3 bytes each 1000 ms. */
    for (int i = 0; i < 10000; i++)
        assert_int_equal(mwi_rate_account(&r, 1000, 3), 0);
    /* A fast burst then silence: caught one window after the burst. */
    assert_int_equal(mwi_rate_account(&r, 1, 1000000), 0);
    int calls = 0;
    while (mwi_rate_account(&r, 500, 0) == 0)
        calls++;
    assert_int_equal(calls, 7); /* 8 x 500 ms = the 4000 ms window */
    assert_true(r.failed_bytes == 0);
}

static void rate_rounding_and_overflow(void **st)
{
    (void)st;
    mw_rate r;
    /* 1 byte/s over 300 ms would need 0.3 bytes: at least one is needed. */
    mwi_rate_init(&r, 1, 300);
    assert_true(r.need == 1);
    assert_int_equal(mwi_rate_account(&r, 299, 0), 0);
    assert_int_equal(mwi_rate_account(&r, 1, 0), -1);
    /* Huge values neither overflow nor wrap into a pass. */
    mwi_rate_init(&r, 1000000000u, 86400000);
    assert_true(r.need == 1000000000ull * 86400);
    assert_int_equal(mwi_rate_account(&r, INT64_MAX, 5), -1);
    assert_int_equal(mwi_rate_account(&r, -5, UINT64_MAX), 0); /* a clock going back counts 0 */
}

/* ---- streams over a socket pair ------------------------------------------------- */

static mw_stream *pair_stream(int *peer, const mw_net_opts *o)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mw_stream *s = NULL;
    mw_error err = {0};
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 1, o, &err), 0);
    *peer = sv[1];
    return s;
}

static void max_time_ends_a_read(void **st)
{
    (void)st;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.max_time_ms = 300;
    int peer;
    mw_stream *s = pair_stream(&peer, &o);
    /* A byte now and then keeps every read short; max_time still ends it. */
    char buf[16];
    size_t got = 0;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    int rc = 0, reads = 0;
    while (rc == 0 && mw_now_ms() - t0 < 20000) {
        assert_int_equal(write(peer, "x", 1), 1);
        rc = mw_stream_read(s, buf, sizeof buf, &got, MW_NO_DEADLINE, &err);
        reads++;
        if (rc == 0) usleep(20000);
    }
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_true(reads > 1);
    assert_non_null(strstr(err.message, "max-time of 300 ms"));
    assert_true(mwi_stream_limit_hit(s));
    /* And every later call too, at once. */
    assert_int_equal(mw_stream_write(s, "y", 1, MW_NO_DEADLINE, &err), MW_ETIMEOUT);
    assert_non_null(strstr(err.message, "max-time"));
    mw_stream_free(s);
    close(peer);
}

static void rate_floor_ends_a_silent_peer_not_a_fast_one(void **st)
{
    (void)st;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.speed_limit = 1000;
    o.speed_time_ms = 200;
    int peer;
    mw_stream *s = pair_stream(&peer, &o);
    /* 4 KiB at once satisfies the 200-byte window. */
    char big[4096];
    memset(big, 'a', sizeof big);
    assert_int_equal(write(peer, big, sizeof big), (ssize_t)sizeof big);
    char buf[8192];
    size_t got = 0;
    mw_error err = {0};
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, MW_NO_DEADLINE, &err), 0);
    assert_true(got == sizeof big);
    /* Then nothing: the window ends below the floor, and the error says so
     * (an io timeout of 60 s would not have fired). */
    assert_int_equal(mw_stream_read(s, buf, sizeof buf, &got, MW_NO_DEADLINE, &err), MW_ETIMEOUT);
    assert_non_null(strstr(err.message, "transfer slower than 1000 bytes/s over 200 ms"));
    assert_non_null(strstr(err.message, "(0 bytes moved)"));
    assert_true(mwi_stream_limit_hit(s));
    mw_stream_free(s);
    close(peer);
}

static void rate_floor_ends_a_stuck_write_keeping_progress(void **st)
{
    (void)st;
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.speed_limit = 1;
    o.speed_time_ms = 300;
    int peer;
    mw_stream *s = pair_stream(&peer, &o);
    /* Far more than the socket buffers hold, and nobody reads: the write
     * moves what fits (satisfying windows), then nothing, and ends. */
    size_t n = 64u << 20;
    char *big = calloc(1, n);
    assert_non_null(big);
    mw_error err = {0};
    assert_int_equal(mw_stream_write(s, big, n, MW_NO_DEADLINE, &err), MW_ETIMEOUT);
    assert_non_null(strstr(err.message, "transfer slower than 1 byte/s over 300 ms"));
    assert_non_null(strstr(err.message, "while sending"));
    free(big);
    mw_stream_free(s);
    close(peer);
}

/* A connect that hangs (a listener whose accept queue is full) ends at
 * max_time_ms, well before connect_timeout_ms, and says so. */
static void max_time_bounds_the_connect(void **st)
{
    (void)st;
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(l, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(listen(l, 0), 0);
    int fill[3];
    for (int i = 0; i < 3; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(100 * 1000);
    mw_net_opts o = MW_NET_OPTS_INIT;
    o.connect_timeout_ms = 60000;
    o.max_time_ms = 300;
    mw_stream *s = NULL;
    mw_error err = {0};
    int64_t t0 = mw_now_ms();
    int rc = mw_stream_tcp(&s, "127.0.0.1", ntohs(a.sin_port), &o, &err);
    int64_t took = mw_now_ms() - t0;
    if (rc == 0) {
        /* The queue took it after all (some kernels): nothing to show. */
        mw_stream_free(s);
    } else {
        assert_int_equal(rc, MW_ETIMEOUT);
        assert_true(took < 30000); /* far below connect_timeout_ms */
        assert_non_null(strstr(err.message, "session exceeded its max-time of 300 ms while "
                                            "connecting to 127.0.0.1 port"));
    }
    for (int i = 0; i < 3; i++)
        close(fill[i]);
    close(l);
}

static void bad_limits_and_old_versions(void **st)
{
    (void)st;
    mw_net_opts o = MW_NET_OPTS_INIT;
    assert_int_equal(o.max_time_ms, 0);
    assert_int_equal(o.speed_limit, MW_NET_DEFAULT_SPEED_LIMIT);
    assert_int_equal(o.speed_time_ms, MW_NET_DEFAULT_SPEED_TIME_MS);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    mw_stream *s = NULL;
    mw_error err = {0};
    o.max_time_ms = -1;
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 0, &o, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "max_time_ms"));
    o.max_time_ms = 0;
    o.speed_time_ms = 0;
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 0, &o, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "speed_time_ms"));
    o.speed_limit = 0; /* no floor: no window needed */
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 0, &o, &err), 0);
    mw_stream_free(s);
    /* A version-2 struct (ending before max_time_ms) gets the defaults. */
    mw_net_opts full = MW_NET_OPTS_INIT;
    full.version = 2;
    full.io_timeout_ms = 4321;
    full.max_time_ms = 77; /* beyond a version-2 struct: must not be read */
    size_t v2 = offsetof(mw_net_opts, max_time_ms);
    char *old = malloc(v2);
    assert_non_null(old);
    memcpy(old, &full, v2);
    mw_net_opts got;
    assert_int_equal(mw_net_opts_copy(&got, (const mw_net_opts *)(void *)old), 0);
    assert_int_equal(got.io_timeout_ms, 4321);
    assert_int_equal(got.max_time_ms, 0);
    assert_int_equal(got.speed_limit, MW_NET_DEFAULT_SPEED_LIMIT);
    assert_int_equal(got.speed_time_ms, MW_NET_DEFAULT_SPEED_TIME_MS);
    assert_int_equal(got.version, MW_NET_OPTS_VERSION);
    /* mw_stream_fd takes it as well. */
    assert_int_equal(mw_stream_fd(&s, sv[0], sv[0], 0, (const mw_net_opts *)(void *)old, &err), 0);
    mw_stream_free(s);
    free(old);
    close(sv[0]);
    close(sv[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rate_off),
        cmocka_unit_test(rate_trickle_fails_after_one_window),
        cmocka_unit_test(rate_enough_bytes_start_a_new_window),
        cmocka_unit_test(rate_rounding_and_overflow),
        cmocka_unit_test(max_time_ends_a_read),
        cmocka_unit_test(rate_floor_ends_a_silent_peer_not_a_fast_one),
        cmocka_unit_test(rate_floor_ends_a_stuck_write_keeping_progress),
        cmocka_unit_test(max_time_bounds_the_connect),
        cmocka_unit_test(bad_limits_and_old_versions),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
