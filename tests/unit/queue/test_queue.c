/* The outgoing queue's library face (include/mailwire/queue.h) without a
 * server: enqueue, list, drop, the runner lock, backoff and the recorded
 * reason of a failed connection, mw_queue_send deferring, refused input
 * leaving nothing behind; and the accounts file's `queue` key. */
#include "mailwire/config.h"
#include "mailwire/queue.h"
#include "mwtest.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

typedef struct src {
    const char *text;
    size_t pos;
} src;

static long read_src(void *buf, size_t len, void *ud)
{
    src *s = ud;
    size_t n = strlen(s->text) - s->pos;
    if (n > len) n = len;
    memcpy(buf, s->text + s->pos, n);
    s->pos += n;
    return (long)n;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/mw-queue-test.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

static int count_files(const char *dir, const char *sub)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, sub);
    DIR *d = opendir(p);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* A connect callback for a server that cannot be reached. */
static int connect_fails(const mw_queue_entry *e, mw_smtp **out, mw_error *err, void *ud)
{
    (void)e;
    int *calls = ud;
    (*calls)++;
    *out = NULL;
    mw_error_clear(err);
    err->code = MW_ENET;
    snprintf(err->message, sizeof err->message, "host.test port 25: connection refused");
    return MW_ENET;
}

typedef struct seen {
    int kinds[8];
    int n;
} seen;

static void on_event(const mw_queue_event *ev, void *ud)
{
    seen *s = ud;
    if (s->n < 8) s->kinds[s->n++] = ev->kind;
}

static mw_queue *open_q(const char *dir)
{
    mw_queue_opts o = MW_QUEUE_OPTS_INIT;
    o.dir = dir;
    mw_queue *q = NULL;
    mw_error err;
    assert_int_equal(mw_queue_open(&q, &o, &err), 0);
    return q;
}

static void add_list_drop(void **state)
{
    (void)state;
    char *dir = make_dir();
    mw_queue *q = open_q(dir);
    const char *rcpt[] = {"b@y.test", "c@y.test"};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION, "a@x.test", rcpt,   2, "work",
                        "SUCCESS,FAILURE",    "HDRS",     "id-1", 0, 0};
    src s = {"Subject: s\r\n\r\nbody\r\n", 0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    assert_int_equal(mw_queue_add(q, &env, read_src, &s, id, &err), 0);
    assert_true(strlen(id) > 10);
    assert_int_equal(count_files(dir, "tmp"), 0);
    mw_queue_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(mw_queue_list(q, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, id);
    assert_string_equal(v[0].sender, "a@x.test");
    assert_string_equal(v[0].account, "work");
    assert_string_equal(v[0].dsn_notify, "SUCCESS,FAILURE");
    assert_int_equal(v[0].size, strlen(s.text));
    assert_int_equal(v[0].nrcpt, 2);
    assert_string_equal(v[0].rcpt[1].address, "c@y.test");
    assert_int_equal(v[0].rcpt[1].state, MW_QUEUE_PENDING);
    mw_queue_entries_free(v, n);
    assert_int_equal(mw_queue_drop(q, "0000000000000.1.1", &err), MW_EINVAL);
    assert_int_equal(mw_queue_drop(q, "../etc", &err), MW_EINVAL);
    assert_int_equal(mw_queue_drop(q, id, &err), 0);
    assert_int_equal(mw_queue_list(q, &v, &n, &err), 0);
    assert_int_equal(n, 0);
    mw_queue_entries_free(v, n);
    assert_int_equal(count_files(dir, "msg"), 0);
    mw_queue_close(q);
    remove_tree(dir);
    free(dir);
}

static void refused_input_leaves_nothing(void **state)
{
    (void)state;
    char *dir = make_dir();
    mw_queue *q = open_q(dir);
    const char *bad[] = {"b@y.test", "evil@y.test\r\nRCPT TO:<x@z>"};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION, "a@x.test", bad, 2, NULL, NULL, NULL, NULL, 0, 0};
    src s = {"x\r\n", 0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    assert_int_equal(mw_queue_add(q, &env, read_src, &s, id, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "recipient address 2"));
    env.nrecipients = 0;
    assert_int_equal(mw_queue_add(q, &env, read_src, &s, id, &err), MW_EINVAL);
    assert_int_equal(count_files(dir, "tmp") + count_files(dir, "msg") + count_files(dir, "env"),
                     0);
    mw_queue_close(q);
    remove_tree(dir);
    free(dir);
}

static void deferred_backoff_and_lock(void **state)
{
    (void)state;
    char *dir = make_dir();
    mw_queue *q = open_q(dir);
    const char *rcpt[] = {"b@y.test"};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION, "a@x.test", rcpt, 1, NULL, NULL, NULL, NULL, 0, 0};
    src s = {"Subject: s\r\n\r\nbody\r\n", 0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    assert_int_equal(mw_queue_add(q, &env, read_src, &s, id, &err), 0);
    int calls = 0;
    seen ev = {{0}, 0};
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = connect_fails;
    ro.connect_userdata = &calls;
    ro.event = on_event;
    ro.event_userdata = &ev;
    mw_queue_stats st;
    time_t before = time(NULL);
    assert_int_equal(mw_queue_run(q, &ro, &st, &err), 0);
    assert_int_equal(calls, 1);
    assert_int_equal(st.tried, 1);
    assert_int_equal(st.deferred, 1);
    assert_int_equal(st.left, 1);
    assert_int_equal(ev.n, 1);
    assert_int_equal(ev.kinds[0], MW_QUEUE_EV_DEFERRED);
    mw_queue_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(mw_queue_list(q, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].attempts, 1);
    assert_true(v[0].next_attempt >= before + 60); /* the default first backoff */
    assert_int_equal(v[0].rcpt[0].state, MW_QUEUE_PENDING);
    assert_non_null(strstr(v[0].rcpt[0].text, "connection refused"));
    mw_queue_entries_free(v, n);
    /* Not due yet: a run leaves it alone; a flush tries it. */
    assert_int_equal(mw_queue_run(q, &ro, &st, &err), 0);
    assert_int_equal(st.tried, 0);
    assert_int_equal(calls, 1);
    ro.flush = 1;
    assert_int_equal(mw_queue_run(q, &ro, &st, &err), 0);
    assert_int_equal(st.tried, 1);
    assert_int_equal(calls, 2);
    /* Another holder of the lock: a run that may not wait says so. */
    char lp[512];
    snprintf(lp, sizeof lp, "%s/lock", dir);
    int fd = open(lp, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    assert_int_equal(mw_queue_run(q, &ro, &st, &err), MW_ESTATE);
    assert_non_null(strstr(err.message, "another run holds its lock"));
    assert_int_equal(mw_queue_drop(q, id, &err), MW_ESTATE);
    assert_int_equal(calls, 2);
    close(fd);
    mw_queue_close(q);
    remove_tree(dir);
    free(dir);
}

static void send_defers_into_the_queue(void **state)
{
    (void)state;
    char *dir = make_dir();
    mw_queue *q = open_q(dir);
    const char *rcpt[] = {"b@y.test"};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION, "a@x.test", rcpt, 1, NULL, NULL, NULL, NULL, 0, 0};
    src s = {"Subject: s\r\n\r\nbody\r\n", 0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    int calls = 0, queued = -1;
    seen ev = {{0}, 0};
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = connect_fails;
    ro.connect_userdata = &calls;
    ro.event = on_event;
    ro.event_userdata = &ev;
    assert_int_equal(mw_queue_send(q, &env, read_src, &s, &ro, id, &queued, &err), 0);
    assert_int_equal(queued, 1);
    assert_int_equal(calls, 1);
    assert_int_equal(ev.n, 1);
    assert_int_equal(ev.kinds[0], MW_QUEUE_EV_DEFERRED);
    assert_int_equal(count_files(dir, "tmp"), 0);
    mw_queue_entry *v = NULL;
    size_t n = 0;
    assert_int_equal(mw_queue_list(q, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].id, id);
    assert_int_equal(v[0].attempts, 1);
    mw_queue_entries_free(v, n);
    mw_queue_close(q);
    remove_tree(dir);
    free(dir);
}

static void config_queue_key(void **state)
{
    (void)state;
    const char text[] = "account a\nhost h\nqueue on\n\naccount b : a\nqueue off\n\naccount c\n"
                        "host h\n";
    mw_config *c = NULL;
    mw_error err;
    assert_int_equal(mw_config_parse(&c, text, sizeof text - 1, "t", NULL, &err), 0);
    assert_int_equal(mw_config_find(c, "a")->queue, 1);
    assert_int_equal(mw_config_find(c, "b")->queue, 0);
    assert_int_equal(mw_config_find(c, "c")->queue, 0);
    mw_config_free(c);
    const char bad[] = "account a\nqueue maybe\n";
    assert_int_not_equal(mw_config_parse(&c, bad, sizeof bad - 1, "t", NULL, &err), 0);
    assert_non_null(strstr(err.message, "t:2:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(add_list_drop),
        cmocka_unit_test(refused_input_leaves_nothing),
        cmocka_unit_test(deferred_backoff_and_lock),
        cmocka_unit_test(send_defers_into_the_queue),
        cmocka_unit_test(config_queue_key),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
