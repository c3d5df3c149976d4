/* A real full disk: a 256 KiB tmpfs is mounted (tests run as root) and
 * the stores are filled past it.  Each delivery must fail naming the path
 * and ENOSPC, leave nothing half-written, and work again once there is
 * room.  Skipped (TAP SKIP) when the mount is not permitted. */
#include "mwtest.h"
#include "storetest.h"

#include <sys/mount.h>

static char *mnt;
static int mounted;

static int setup(void **state)
{
    (void)state;
    mnt = st_mkdtemp();
    if (!mnt) return -1;
    mounted = mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0700") == 0;
    if (!mounted) printf("# cannot mount a tmpfs on %s: %s\n", mnt, strerror(errno));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (mounted) umount2(mnt, MNT_DETACH);
    rmdir(mnt);
    free(mnt);
    return 0;
}

static char *big_message(size_t n)
{
    char *m = malloc(n);
    for (size_t i = 0; i < n; i++)
        m[i] = i % 100 == 99 ? '\n' : (char)('A' + i % 26);
    return m;
}

static void maildir_disk_full(void **state)
{
    (void)state;
    char md[4200];
    snprintf(md, sizeof md, "%s/Maildir", mnt);
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, md, NULL, NULL), 0);
    size_t n = 1 << 20;
    char *m = big_message(n);
    int rc = mw_store_begin(s, NULL);
    for (size_t off = 0; rc == 0 && off < n; off += 8192)
        rc = mw_store_write(s, m + off, 8192);
    if (rc == 0) rc = mw_store_commit(s);
    assert_int_equal(rc, MW_EIO);
    const char *msg = mw_store_error(s)->message;
    if (!strstr(msg, "No space left on device") || !strstr(msg, "/Maildir/tmp/"))
        fail_msg("message: %s", msg);
    printf("# %s\n", msg);
    char sub[4300];
    snprintf(sub, sizeof sub, "%s/tmp", md);
    assert_int_equal(st_count(sub, NULL, 0), 0);
    snprintf(sub, sizeof sub, "%s/new", md);
    assert_int_equal(st_count(sub, NULL, 0), 0);
    /* the space came back with the tmp file: a small one goes through */
    assert_int_equal(mw_store_deliver(s, m, 20000, NULL), 0);
    assert_int_equal(st_count(sub, NULL, 0), 1);
    free(m);
    mw_store_free(s);
}

static void mbox_disk_full(void **state)
{
    (void)state;
    char mb[4200];
    snprintf(mb, sizeof mb, "%s/mbox", mnt);
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL), 0);
    size_t n = 1 << 20;
    char *m = big_message(n);
    assert_int_equal(mw_store_deliver(s, m, 10000, NULL), 0);
    size_t before_n = 0;
    char *before = st_read(mb, &before_n);
    assert_int_equal(mw_store_deliver(s, m, n, NULL), MW_EIO);
    const char *msg = mw_store_error(s)->message;
    if (!strstr(msg, "No space left on device") || !strstr(msg, mb)) fail_msg("message: %s", msg);
    printf("# %s\n", msg);
    size_t after_n = 0;
    char *after = st_read(mb, &after_n);
    assert_int_equal(after_n, before_n);
    assert_memory_equal(after, before, before_n);
    char lock[4300];
    snprintf(lock, sizeof lock, "%s.lock", mb);
    assert_int_equal(access(lock, F_OK), -1);
    free(before);
    free(after);
    free(m);
    mw_store_free(s);
    unlink(mb);
}

static void state_disk_full(void **state)
{
    (void)state;
    char sp[4200], filler[4200];
    snprintf(sp, sizeof sp, "%s/acct.uidl", mnt);
    snprintf(filler, sizeof filler, "%s/filler", mnt);
    mw_state *st;
    assert_int_equal(mw_state_open(&st, sp, NULL, NULL), 0);
    assert_int_equal(mw_state_add(st, "first", 1), 0);
    assert_int_equal(mw_state_save(st), 0);
    /* fill the disk */
    FILE *f = fopen(filler, "wb");
    assert_non_null(f);
    char blk[4096];
    memset(blk, 'f', sizeof blk);
    while (fwrite(blk, 1, sizeof blk, f) == sizeof blk && fflush(f) == 0) {}
    fclose(f);
    for (int i = 0; i < 2000; i++) {
        char uid[64];
        snprintf(uid, sizeof uid, "uid-%d-padding-padding-padding", i);
        assert_int_equal(mw_state_add(st, uid, i), 0);
    }
    assert_int_equal(mw_state_save(st), MW_EIO);
    const char *msg = mw_state_error(st)->message;
    if (!strstr(msg, "No space left on device") || !strstr(msg, "unchanged"))
        fail_msg("message: %s", msg);
    printf("# %s\n", msg);
    mw_state_free(st);
    unlink(filler);
    /* the old state is intact */
    assert_int_equal(mw_state_open(&st, sp, NULL, NULL), 0);
    assert_int_equal(mw_state_count(st), 1);
    assert_int_equal(mw_state_contains(st, "first"), 1);
    mw_state_free(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maildir_disk_full),
        cmocka_unit_test(mbox_disk_full),
        cmocka_unit_test(state_disk_full),
    };
    /* cmocka prints a skipped case as "not ok N # SKIP", which TAP
     * consumers count as a failure; without the mount, say "ok … # SKIP". */
    if (setup(NULL) != 0) return 1;
    if (!mounted) {
        size_t n = sizeof tests / sizeof tests[0];
        printf("1..%zu\n", n);
        for (size_t i = 0; i < n; i++)
            printf("ok %zu - %s # SKIP cannot mount a tmpfs (not root?)\n", i + 1, tests[i].name);
        teardown(NULL);
        return 0;
    }
    cmocka_set_message_output(CM_OUTPUT_TAP);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    teardown(NULL);
    return rc;
}
