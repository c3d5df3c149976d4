/* The UIDL state journal: load/save round trips, the per-account lock,
 * damaged files named by line, and atomic saves under injected faults. */
#include "mwtest.h"
#include "storetest.h"

#include <sys/wait.h>

static char *dir;

static int setup(void **state)
{
    (void)state;
    dir = st_mkdtemp();
    return dir ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    st_rm_rf(dir);
    free(dir);
    return 0;
}

static const char *path_in(const char *name)
{
    static char p[64][4200];
    static int k;
    k = (k + 1) % 64;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static const char *mkuid(int i)
{
    static char uid[64];
    snprintf(uid, sizeof uid, "UID-%06d-%x", i, i * 2654435761u);
    return uid;
}

static void roundtrip_many(void **state)
{
    (void)state;
    const char *sp = path_in("acct1.uidl");
    mw_state *st;
    mw_error err;
    assert_int_equal(mw_state_open(&st, sp, NULL, &err), 0);
    assert_int_equal(mw_state_count(st), 0);
    char uid[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(uid, sizeof uid, "UID-%06d-%x", i, i * 2654435761u);
        assert_int_equal(mw_state_add(st, uid, 1700000000 + i), 0);
    }
    /* adding again keeps the first time */
    assert_int_equal(mw_state_add(st, mkuid(7), 5), 0);
    assert_int_equal(mw_state_first_seen(st, mkuid(7)), 1700000007);
    assert_int_equal(mw_state_count(st), 5000);
    mw_state_remove(st, mkuid(10));
    mw_state_remove(st, "not-there");
    assert_int_equal(mw_state_count(st), 4999);
    assert_int_equal(mw_state_save(st), 0);
    mw_state_free(st);

    assert_int_equal(mw_state_open(&st, sp, NULL, &err), 0);
    assert_int_equal(mw_state_count(st), 4999);
    for (int i = 0; i < 5000; i++) {
        snprintf(uid, sizeof uid, "UID-%06d-%x", i, i * 2654435761u);
        assert_int_equal(mw_state_contains(st, uid), i != 10);
        assert_int_equal(mw_state_first_seen(st, uid), i == 10 ? -1 : 1700000000 + i);
    }
    assert_int_equal(mw_state_contains(st, "UID-000010"), 0);
    assert_int_equal(mw_state_contains(st, ""), 0);
    /* a removed UID can come back */
    assert_int_equal(mw_state_add(st, mkuid(10), 42), 0);
    assert_int_equal(mw_state_first_seen(st, mkuid(10)), 42);
    mw_state_free(st);

    /* the file is readable text as documented */
    size_t n = 0;
    char *data = st_read(sp, &n);
    assert_non_null(data);
    assert_memory_equal(data, "mailwire-uidl 1\n1700000000 UID-000000-0\n", 40);
    free(data);
    struct stat sb;
    stat(sp, &sb);
    assert_int_equal(sb.st_mode & 077, 0);
}

static int drop_odd(const char *uid, int64_t t, void *ud)
{
    (void)uid;
    (*(int *)ud)++;
    return t % 2 == 1;
}

static void filter_and_bad_uids(void **state)
{
    (void)state;
    mw_state *st;
    assert_int_equal(mw_state_open(&st, path_in("acct2.uidl"), NULL, NULL), 0);
    for (int i = 0; i < 10; i++) {
        char uid[16];
        snprintf(uid, sizeof uid, "u%d", i);
        assert_int_equal(mw_state_add(st, uid, i), 0);
    }
    int visited = 0;
    mw_state_filter(st, drop_odd, &visited);
    assert_int_equal(visited, 10);
    assert_int_equal(mw_state_count(st), 5);
    assert_int_equal(mw_state_contains(st, "u3"), 0);
    assert_int_equal(mw_state_contains(st, "u4"), 1);
    assert_int_equal(mw_state_add(st, "", 1), MW_EINVAL);
    assert_int_equal(mw_state_add(st, "has space", 1), MW_EINVAL);
    assert_int_equal(mw_state_add(st, "crlf\r\n", 1), MW_EINVAL);
    assert_int_equal(mw_state_add(st, "caf\xc3\xa9", 1), MW_EINVAL);
    assert_int_equal(mw_state_add(st, "ok", -1), MW_EINVAL);
    char longuid[MW_STATE_UID_MAX + 2];
    memset(longuid, 'a', sizeof longuid);
    longuid[MW_STATE_UID_MAX + 1] = '\0';
    assert_int_equal(mw_state_add(st, longuid, 1), MW_EINVAL);
    longuid[MW_STATE_UID_MAX] = '\0';
    assert_int_equal(mw_state_add(st, longuid, 1), 0);
    assert_int_equal(mw_state_save(st), 0);
    mw_state_free(st);
    assert_int_equal(mw_state_open(&st, path_in("acct2.uidl"), NULL, NULL), 0);
    assert_int_equal(mw_state_count(st), 6);
    assert_int_equal(mw_state_contains(st, longuid), 1);
    mw_state_free(st);
}

static void lock_contention(void **state)
{
    (void)state;
    const char *sp = path_in("locked.uidl");
    mw_state *a, *b;
    mw_error err;
    assert_int_equal(mw_state_open(&a, sp, NULL, &err), 0);
    /* same process, second open: flock is per open file, so it conflicts */
    assert_int_equal(mw_state_open(&b, sp, NULL, &err), MW_ETEMP);
    assert_null(b);
    assert_non_null(strstr(err.message, "locked.uidl.lock"));
    assert_non_null(strstr(err.message, "another fetch"));
    /* with a wait, still bounded */
    mw_state_options o = MW_STATE_OPTIONS_INIT;
    o.lock_timeout_ms = 150;
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_state_open(&b, sp, &o, &err), MW_ETEMP);
    assert_true(mw_now_ms() - t0 >= 140);
    /* another process too */
    pid_t pid = fork();
    if (pid == 0) {
        mw_state *c;
        _exit(mw_state_open(&c, sp, NULL, NULL) == MW_ETEMP ? 0 : 1);
    }
    int ws;
    waitpid(pid, &ws, 0);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    mw_state_free(a);
    /* released */
    assert_int_equal(mw_state_open(&b, sp, NULL, &err), 0);
    mw_state_free(b);
    /* a holder that dies releases the lock */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    if (pid == 0) {
        mw_state *c;
        if (mw_state_open(&c, sp, NULL, NULL) != 0) _exit(1);
        if (write(pfd[1], "L", 1) != 1) _exit(1);
        sleep(30);
        _exit(0);
    }
    char ch;
    assert_int_equal(read(pfd[0], &ch, 1), 1);
    assert_int_equal(mw_state_open(&b, sp, NULL, &err), MW_ETEMP);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(mw_state_open(&b, sp, NULL, &err), 0);
    mw_state_free(b);
    close(pfd[0]);
    close(pfd[1]);
}

/* Writes content as the state file and expects open to fail with code and
 * a message containing "PATH:LINE:" and what. */
static void expect_damaged(const char *content, size_t len, int code, int line, const char *what)
{
    const char *sp = path_in("bad.uidl");
    assert_int_equal(st_write(sp, content, len), 0);
    mw_state *st;
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(mw_state_open(&st, sp, NULL, &err), code);
    assert_null(st);
    char want[4300];
    snprintf(want, sizeof want, "%s:%d: ", sp, line);
    if (!strstr(err.message, want) || !strstr(err.message, what))
        fail_msg("message '%s' lacks '%s' or '%s'", err.message, want, what);
    /* never silently reset: the file is left as it was */
    size_t n = 0;
    char *again = st_read(sp, &n);
    assert_int_equal(n, len);
    assert_memory_equal(again, content, len);
    free(again);
}

static void damaged_files(void **state)
{
    (void)state;
#define D(s, code, line, what) expect_damaged(s, sizeof(s) - 1, code, line, what)
    D("mailwire-uidl 2\n", MW_EFORMAT, 1, "not a mailwire UIDL state file");
    D("garbage\n1 a\n", MW_EFORMAT, 1, "not a mailwire");
    D("mailwire-uidl 1\n1 a\nx b\n", MW_EFORMAT, 3, "expected \"SECONDS UID\"");
    D("mailwire-uidl 1\n1 a\n2  b\n", MW_EFORMAT, 3, "bad UID");
    D("mailwire-uidl 1\n1\n", MW_EFORMAT, 2, "expected one space");
    D("mailwire-uidl 1\n1 a b\n", MW_EFORMAT, 2, "bad UID");
    D("mailwire-uidl 1\n1 a\n2 a\n", MW_EFORMAT, 3, "UID listed twice");
    D("mailwire-uidl 1\n1 a\n2 b", MW_EFORMAT, 3, "no newline");
    D("mailwire-uidl 1\n1 a\r\n", MW_EFORMAT, 2, "bad UID");
    D("mailwire-uidl 1\n99999999999999999999 a\n", MW_EFORMAT, 2, "out of range");
    D("mailwire-uidl 1\n\n", MW_EFORMAT, 2, "expected");
    D("mailwire-uidl 1\n1 a\0b\n", MW_EFORMAT, 2, "bad UID");
#undef D
    char longline[400];
    memcpy(longline, "mailwire-uidl 1\n1 ", 18);
    memset(longline + 18, 'x', 300);
    longline[318] = '\n';
    expect_damaged(longline, 319, MW_ETOOBIG, 2, "longer than");
    /* empty and missing files are an empty state */
    mw_state *st;
    st_write(path_in("empty.uidl"), "", 0);
    assert_int_equal(mw_state_open(&st, path_in("empty.uidl"), NULL, NULL), 0);
    assert_int_equal(mw_state_count(st), 0);
    mw_state_free(st);
    /* a directory in the way is an I/O error naming it */
    mkdir(path_in("adir.uidl"), 0700);
    mw_error err;
    assert_int_equal(mw_state_open(&st, path_in("adir.uidl"), NULL, &err), MW_EIO);
    assert_non_null(strstr(err.message, "adir.uidl"));
}

/* A save that fails at any step leaves the previous state file intact
 * and no temp file behind; a later save works. */
static void atomic_save_faults(void **state)
{
    (void)state;
    const char *sp = path_in("atomic.uidl");
    mw_state *st;
    assert_int_equal(mw_state_open(&st, sp, NULL, NULL), 0);
    for (int i = 0; i < 3000; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "old-%d", i);
        mw_state_add(st, uid, i);
    }
    assert_int_equal(mw_state_save(st), 0);
    mw_state_free(st);
    size_t old_n = 0;
    char *old = st_read(sp, &old_n);

    struct {
        mw_store_op op;
        int nth;
        const char *what;
    } cases[] = {
        {MW_STORE_OP_OPEN, 1, "cannot create"},   {MW_STORE_OP_WRITE, 1, "cannot write"},
        {MW_STORE_OP_WRITE, 2, "cannot write"},   {MW_STORE_OP_FSYNC, 1, "cannot fsync"},
        {MW_STORE_OP_RENAME, 1, "cannot rename"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        st_fault f = {cases[c].op, cases[c].nth, c == 0 ? ENOSPC : EIO, 0, 0};
        mw_state_options o = MW_STATE_OPTIONS_INIT;
        o.fault = st_fault_fn;
        o.fault_userdata = &f;
        assert_int_equal(mw_state_open(&st, sp, &o, NULL), 0);
        for (int i = 0; i < 3000; i++) {
            char uid[32];
            snprintf(uid, sizeof uid, "new-%d", i);
            mw_state_add(st, uid, i);
        }
        assert_int_equal(mw_state_save(st), MW_EIO);
        assert_int_equal(f.fired, 1);
        const char *m = mw_state_error(st)->message;
        if (!strstr(m, cases[c].what) || !strstr(m, "unchanged"))
            fail_msg("case %zu: message '%s'", c, m);
        mw_state_free(st);
        size_t n = 0;
        char *now = st_read(sp, &n);
        if (!now) fail_msg("case %zu: state file gone", c);
        if (n != old_n || memcmp(now, old, n) != 0)
            fail_msg("case %zu: state file changed (%zu bytes, was %zu)", c, n, old_n);
        free(now);
        assert_int_equal(access(path_in("atomic.uidl.tmp"), F_OK), -1);
    }
    /* fsync of the directory after the rename fails: reported, and the
     * file is whole (old or new, here new) */
    st_fault f = {MW_STORE_OP_FSYNC, 2, EIO, 0, 0};
    mw_state_options o = MW_STATE_OPTIONS_INIT;
    o.fault = st_fault_fn;
    o.fault_userdata = &f;
    assert_int_equal(mw_state_open(&st, sp, &o, NULL), 0);
    mw_state_add(st, "late", 1);
    assert_int_equal(mw_state_save(st), MW_EIO);
    assert_non_null(strstr(mw_state_error(st)->message, "fsync directory"));
    mw_state_free(st);
    assert_int_equal(mw_state_open(&st, sp, NULL, NULL), 0);
    assert_int_equal(mw_state_count(st), 3001);
    mw_state_free(st);
    free(old);
}

static void bad_arguments(void **state)
{
    (void)state;
    mw_state *st;
    mw_error err;
    assert_int_equal(mw_state_open(&st, "", NULL, &err), MW_EINVAL);
    mw_state_options o = MW_STATE_OPTIONS_INIT;
    o.version = 9;
    assert_int_equal(mw_state_open(&st, path_in("x.uidl"), &o, &err), MW_EINVAL);
    assert_int_equal(mw_state_open(&st, "/nonexistent-dir/x.uidl", NULL, &err), MW_EIO);
    assert_non_null(strstr(err.message, "/nonexistent-dir/x.uidl.lock"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roundtrip_many),     cmocka_unit_test(filter_and_bad_uids),
        cmocka_unit_test(lock_contention),    cmocka_unit_test(damaged_files),
        cmocka_unit_test(atomic_save_faults), cmocka_unit_test(bad_arguments),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}
