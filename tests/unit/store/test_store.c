/* Maildir, mbox (mboxrd) and MDA delivery: byte-exact results at every
 * chunk split, quoting round trips, locks, and injected faults. */
#include "mwtest.h"
#include "storetest.h"

#include "store/store_defer.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

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

static char *path_in(const char *name)
{
    static char p[64][4200];
    static int k;
    k = (k + 1) % 64;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

/* Converts CRLF to LF as the store does by default. */
static char *to_lf(const char *s, size_t n, size_t *outn)
{
    char *o = malloc(n + 1);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n') continue;
        o[j++] = s[i];
    }
    o[j] = '\0';
    *outn = j;
    return o;
}

static const char msg1[] = "Return-Path: <a@b.example>\r\n"
                           "Subject: test\r\n"
                           "\r\n"
                           "From the start\r\n"
                           ">From quoted\r\n"
                           "lone\rCR and bare\nLF\r\n"
                           "last line without end";

/* Delivers msg split at byte k into a Maildir and returns the new file. */
static char *maildir_deliver_split(mw_store *s, const char *msg, size_t n, size_t k, size_t *len)
{
    assert_int_equal(mw_store_begin(s, NULL), 0);
    assert_int_equal(mw_store_write(s, msg, k), 0);
    assert_int_equal(mw_store_write(s, msg + k, n - k), 0);
    assert_int_equal(mw_store_commit(s), 0);
    return st_read(mw_store_last_path(s), len);
}

static void maildir_lf_every_split(void **state)
{
    (void)state;
    mw_store *s;
    mw_error err;
    const char *md = path_in("Maildir");
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, md, NULL, &err), 0);
    struct stat sb;
    assert_int_equal(stat(path_in("Maildir/tmp"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    size_t n = sizeof msg1 - 1, wantn;
    char *want = to_lf(msg1, n, &wantn);
    for (size_t k = 0; k <= n; k++) {
        size_t got_n;
        char *got = maildir_deliver_split(s, msg1, n, k, &got_n);
        assert_non_null(got);
        assert_int_equal(got_n, wantn);
        assert_memory_equal(got, want, wantn);
        /* the name carries S=<size> of the file */
        char sz[32];
        snprintf(sz, sizeof sz, ",S=%zu", wantn);
        assert_non_null(strstr(mw_store_last_path(s), sz));
        assert_int_equal(mw_store_last_size(s), wantn);
        free(got);
    }
    assert_int_equal(st_count(path_in("Maildir/new"), NULL, 0), (int)n + 1);
    assert_int_equal(st_count(path_in("Maildir/tmp"), NULL, 0), 0);
    free(want);
    mw_store_free(s);
}

static void maildir_keep_crlf_exact(void **state)
{
    (void)state;
    mw_store *s;
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.keep_crlf = 1;
    o.hostname = "host/with:odd";
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("M2"), &o, NULL), 0);
    size_t n = sizeof msg1 - 1, got_n;
    char *got = maildir_deliver_split(s, msg1, n, 7, &got_n);
    assert_int_equal(got_n, n);
    assert_memory_equal(got, msg1, n);
    free(got);
    /* Maildir spec: '/' and ':' in the host name are escaped. */
    const char *name = strrchr(mw_store_last_path(s), '/') + 1;
    assert_non_null(strstr(name, ".host\\057with\\072odd,S="));
    assert_null(strchr(name, ':'));
    /* time.M<usec>P<pid>Q<n>.host */
    char pidpart[32];
    snprintf(pidpart, sizeof pidpart, "P%ldQ", (long)getpid());
    assert_non_null(strstr(name, pidpart));
    assert_non_null(strstr(name, ".M"));
    mw_store_free(s);
}

static void maildir_large_streamed(void **state)
{
    (void)state;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("M3"), NULL, NULL), 0);
    size_t n = 3 * 1024 * 1024 + 17;
    char *big = malloc(n);
    for (size_t i = 0; i < n; i++)
        big[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    assert_int_equal(mw_store_begin(s, NULL), 0);
    for (size_t off = 0; off < n; off += 4093)
        assert_int_equal(mw_store_write(s, big + off, n - off < 4093 ? n - off : 4093), 0);
    assert_int_equal(mw_store_commit(s), 0);
    size_t wantn, gotn;
    char *want = to_lf(big, n, &wantn);
    char *got = st_read(mw_store_last_path(s), &gotn);
    assert_int_equal(gotn, wantn);
    assert_memory_equal(got, want, wantn);
    free(big);
    free(want);
    free(got);
    mw_store_free(s);
}

static void maildir_abort_and_states(void **state)
{
    (void)state;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("M4"), NULL, NULL), 0);
    assert_int_equal(mw_store_write(s, "x", 1), MW_ESTATE);
    assert_int_equal(mw_store_commit(s), MW_ESTATE);
    assert_int_equal(mw_store_begin(s, NULL), 0);
    assert_int_equal(mw_store_begin(s, NULL), MW_ESTATE);
    assert_int_equal(mw_store_write(s, "partial", 7), 0);
    assert_int_equal(st_count(path_in("M4/tmp"), NULL, 0), 1);
    assert_int_equal(mw_store_abort(s), 0);
    assert_int_equal(st_count(path_in("M4/tmp"), NULL, 0), 0);
    assert_int_equal(st_count(path_in("M4/new"), NULL, 0), 0);
    /* freeing with a delivery open cleans up too */
    assert_int_equal(mw_store_begin(s, NULL), 0);
    assert_int_equal(mw_store_write(s, "partial", 7), 0);
    mw_store_free(s);
    assert_int_equal(st_count(path_in("M4/tmp"), NULL, 0), 0);
    /* a target that is a file */
    st_write(path_in("afile"), "x", 1);
    mw_error err;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("afile"), NULL, &err), MW_EIO);
    assert_null(s);
    assert_non_null(strstr(err.message, "afile"));
}

/* Each fault: the error names the path and the system's reason, the tmp
 * file is gone and nothing is in new/. */
static void maildir_fault(mw_store_op op, int nth, int errnum, const char *want_text, size_t msglen)
{
    st_rm_rf(path_in("MF"));
    st_fault f = {op, nth, errnum, 0, 0};
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.fault = st_fault_fn;
    o.fault_userdata = &f;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("MF"), &o, NULL), 0);
    char *m = malloc(msglen);
    memset(m, 'x', msglen);
    int rc = mw_store_begin(s, NULL);
    if (rc == 0) rc = mw_store_write(s, m, msglen);
    if (rc == 0) rc = mw_store_commit(s);
    assert_int_equal(f.fired, 1);
    assert_int_equal(rc, MW_EIO);
    const char *msg = mw_store_error(s)->message;
    if (!strstr(msg, want_text) || !strstr(msg, path_in("MF")))
        fail_msg("error message '%s' lacks '%s' or the path", msg, want_text);
    assert_int_equal(st_count(path_in("MF/tmp"), NULL, 0), 0);
    assert_int_equal(st_count(path_in("MF/new"), NULL, 0), 0);
    assert_string_equal(mw_store_last_path(s), "");
    /* the store works again after the fault */
    assert_int_equal(mw_store_deliver(s, "ok\n", 3, NULL), 0);
    assert_int_equal(st_count(path_in("MF/new"), NULL, 0), 1);
    free(m);
    mw_store_free(s);
}

static void maildir_stale_tmp_cleaned(void **state)
{
    (void)state;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("M5"), NULL, NULL), 0);
    mw_store_free(s);
    /* left by crashed deliveries: one 37 hours old, one fresh */
    st_write(path_in("M5/tmp/old.M1P1Q1.h"), "x", 1);
    st_write(path_in("M5/tmp/fresh.M1P1Q1.h"), "y", 1);
    time_t then = time(NULL) - 37 * 3600;
    struct timespec ts[2] = {{then, 0}, {then, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path_in("M5/tmp/old.M1P1Q1.h"), ts, 0), 0);
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("M5"), NULL, NULL), 0);
    assert_int_equal(access(path_in("M5/tmp/old.M1P1Q1.h"), F_OK), -1);
    assert_int_equal(access(path_in("M5/tmp/fresh.M1P1Q1.h"), F_OK), 0);
    mw_store_free(s);
}

static void maildir_faults(void **state)
{
    (void)state;
    /* ENOSPC on the first write of a large message (during write()) */
    maildir_fault(MW_STORE_OP_WRITE, 1, ENOSPC, "No space left on device", 200000);
    /* ENOSPC on a later write */
    maildir_fault(MW_STORE_OP_WRITE, 3, ENOSPC, "No space left on device", 200000);
    /* ENOSPC when the last buffer is written at commit */
    maildir_fault(MW_STORE_OP_WRITE, 1, ENOSPC, "No space left on device", 100);
    /* fsync of the file fails */
    maildir_fault(MW_STORE_OP_FSYNC, 1, EIO, "fsync", 100);
    maildir_fault(MW_STORE_OP_FSYNC, 1, EIO, "Input/output error", 100);
    /* link into new/ fails */
    maildir_fault(MW_STORE_OP_RENAME, 1, EIO, "link into", 100);
    /* fsync of new/ fails: the file is taken back out of new/ */
    maildir_fault(MW_STORE_OP_FSYNC, 2, EIO, "fsync directory", 100);
    /* creating the tmp file fails */
    maildir_fault(MW_STORE_OP_OPEN, 1, EACCES, "Permission denied", 100);
}

/* ---- mbox ---------------------------------------------------------------- */

/* A test-side mboxrd reader: splits on "From " lines, removes one '>'
 * from lines matching ^>+From , drops the blank line ending each message. */
static int mbox_split(const char *data, size_t n, char **msgs, int max, char **froms)
{
    int count = 0;
    size_t pos = 0;
    char *cur = NULL;
    size_t curn = 0;
    while (pos < n) {
        const char *nl = memchr(data + pos, '\n', n - pos);
        size_t ln = nl ? (size_t)(nl - (data + pos)) + 1 : n - pos;
        const char *l = data + pos;
        pos += ln;
        if (ln >= 5 && memcmp(l, "From ", 5) == 0) {
            if (cur) {
                /* drop the blank separator line */
                assert_true(curn >= 1 && cur[curn - 1] == '\n');
                cur[--curn] = '\0';
                msgs[count++] = cur;
            }
            assert_true(count < max);
            froms[count] = strndup(l + 5, ln - 6);
            cur = malloc(n + 1);
            curn = 0;
            continue;
        }
        assert_non_null(cur);
        size_t g = 0;
        while (g < ln && l[g] == '>')
            g++;
        if (g > 0 && ln - g >= 5 && memcmp(l + g, "From ", 5) == 0) {
            l++;
            ln--;
        }
        memcpy(cur + curn, l, ln);
        curn += ln;
        cur[curn] = '\0';
    }
    if (cur) {
        assert_true(curn >= 1 && cur[curn - 1] == '\n');
        cur[--curn] = '\0';
        msgs[count++] = cur;
    }
    return count;
}

static const char *const quote_msgs[] = {
    "Subject: one\n\nFrom here\n>From there\n>>From everywhere\nFrom\nFromage\n >From not\n",
    "Subject: two\n\nno newline at the end",
    ">From first line\nFrom x\n\n\nFrom y\n",
    "",
    "From ",
};

static void mbox_roundtrip_every_split(void **state)
{
    (void)state;
    const size_t nm = sizeof quote_msgs / sizeof quote_msgs[0];
    for (size_t m = 0; m < nm; m++) {
        size_t n = strlen(quote_msgs[m]);
        for (size_t k = 0; k <= n; k++) {
            const char *mb = path_in("mbox-split");
            unlink(mb);
            mw_store *s;
            assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL), 0);
            /* deliver it twice around a fixed one, to check separators */
            for (int rep = 0; rep < 2; rep++) {
                assert_int_equal(mw_store_begin(s, "sender@example.org"), 0);
                assert_int_equal(mw_store_write(s, quote_msgs[m], k), 0);
                assert_int_equal(mw_store_write(s, quote_msgs[m] + k, n - k), 0);
                assert_int_equal(mw_store_commit(s), 0);
                assert_int_equal(mw_store_deliver(s, "X: y\n\nz\n", 8, NULL), 0);
            }
            mw_store_free(s);
            size_t len = 0;
            char *data = st_read(mb, &len);
            char *msgs[8], *froms[8];
            assert_int_equal(mbox_split(data, len, msgs, 8, froms), 4);
            /* a message without a final newline gets one */
            char want[256];
            snprintf(want, sizeof want, "%s%s", quote_msgs[m],
                     n && quote_msgs[m][n - 1] != '\n' ? "\n" : "");
            for (int i = 0; i < 4; i++) {
                assert_string_equal(msgs[i], i % 2 ? "X: y\n\nz\n" : want);
                assert_true(strncmp(froms[i], i % 2 ? "MAILER-DAEMON " : "sender@example.org ",
                                    i % 2 ? 14 : 19) == 0);
                /* asctime date: "Www Mmm dd hh:mm:ss yyyy" */
                assert_int_equal(strlen(strchr(froms[i], ' ') + 1), 24);
                free(msgs[i]);
                free(froms[i]);
            }
            free(data);
        }
    }
}

static void mbox_crlf_and_existing_file(void **state)
{
    (void)state;
    const char *mb = path_in("mbox-crlf");
    /* an existing mbox whose last message lacks the final newline */
    st_write(mb, "From a Mon Jan  1 00:00:00 2024\nold", 35);
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL), 0);
    const char m[] = "A: b\r\n\r\nFrom me\r\nbody\r\n";
    assert_int_equal(mw_store_deliver(s, m, sizeof m - 1, NULL), 0);
    assert_string_equal(mw_store_last_path(s), mb);
    mw_store_free(s);
    size_t len = 0;
    char *data = st_read(mb, &len);
    const char *second = strstr(data, "\nFrom MAILER-DAEMON ");
    assert_non_null(second);
    assert_memory_equal(data, "From a Mon Jan  1 00:00:00 2024\nold\n", 36);
    const char *body = strchr(second + 1, '\n') + 1;
    assert_string_equal(body, "A: b\n\n>From me\nbody\n\n");
    assert_int_equal(access(path_in("mbox-crlf.lock"), F_OK), -1);
    free(data);
}

static void mbox_fault_truncates(void **state)
{
    (void)state;
    const char *mb = path_in("mbox-fault");
    unlink(mb);
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "first\n", 6, NULL), 0);
    mw_store_free(s);
    struct stat sb; /* created by the store: private to its owner */
    assert_int_equal(stat(mb, &sb), 0);
    assert_int_equal(sb.st_mode & 077, 0);
    size_t before_n = 0;
    char *before = st_read(mb, &before_n);

    const mw_store_op ops[] = {MW_STORE_OP_WRITE, MW_STORE_OP_WRITE, MW_STORE_OP_FSYNC};
    const int nths[] = {1, 2, 1};
    for (int t = 0; t < 3; t++) {
        st_fault f = {ops[t], nths[t], t == 2 ? EIO : ENOSPC, 0, 0};
        mw_store_options o = MW_STORE_OPTIONS_INIT;
        o.fault = st_fault_fn;
        o.fault_userdata = &f;
        assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, &o, NULL), 0);
        size_t big = 300000;
        char *m = malloc(big);
        memset(m, 'q', big);
        m[big - 1] = '\n';
        int rc = mw_store_begin(s, NULL);
        if (rc == 0) rc = mw_store_write(s, m, big);
        if (rc == 0) rc = mw_store_commit(s);
        free(m);
        assert_int_equal(f.fired, 1);
        assert_int_equal(rc, MW_EIO);
        assert_non_null(strstr(mw_store_error(s)->message, mb));
        assert_non_null(
            strstr(mw_store_error(s)->message, t == 2 ? "Input/output error" : "No space left"));
        mw_store_free(s);
        size_t after_n = 0;
        char *after = st_read(mb, &after_n);
        assert_int_equal(after_n, before_n);
        assert_memory_equal(after, before, before_n);
        free(after);
        assert_int_equal(access(path_in("mbox-fault.lock"), F_OK), -1);
    }
    free(before);
}

static void mbox_lock_contention(void **state)
{
    (void)state;
    const char *mb = path_in("mbox-lock");
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.lock_timeout_ms = 200;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, &o, NULL), 0);
    /* a dotlock held by someone else */
    st_write(path_in("mbox-lock.lock"), "", 0);
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_store_begin(s, NULL), MW_ETIMEOUT);
    int64_t took = mw_now_ms() - t0;
    assert_true(took >= 190 && took < 3000);
    assert_non_null(strstr(mw_store_error(s)->message, "mbox-lock.lock"));
    unlink(path_in("mbox-lock.lock"));

    /* an fcntl lock held by another process */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(mb, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        fcntl(fd, F_SETLK, &fl);
        if (write(pfd[1], "L", 1) != 1) _exit(1);
        sleep(10);
        _exit(0);
    }
    char c;
    assert_int_equal(read(pfd[0], &c, 1), 1);
    assert_int_equal(mw_store_begin(s, NULL), MW_ETIMEOUT);
    assert_non_null(strstr(mw_store_error(s)->message, "locked by another process"));
    /* and our dotlock was removed again */
    assert_int_equal(access(path_in("mbox-lock.lock"), F_OK), -1);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(pfd[0]);
    close(pfd[1]);
    /* the lock is gone with the process */
    assert_int_equal(mw_store_deliver(s, "m\n", 2, NULL), 0);
    mw_store_free(s);
}

/* A child dies in the middle of writing a message (as after SIGKILL: no
 * clean-up runs); returns the mbox size the child left. */
static void die_mid_mbox_write(const char *mb)
{
    pid_t pid = fork();
    if (pid == 0) {
        mw_store *s;
        if (mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL) != 0 || mw_store_begin(s, NULL) != 0)
            _exit(1);
        size_t n = 200000;
        char *m = malloc(n);
        memset(m, 'h', n);
        if (mw_store_write(s, "Subject: half\n\nFrom inside\n", 27) != 0 ||
            mw_store_write(s, m, n) != 0)
            _exit(2);
        _exit(0); /* no commit, no abort: a crash */
    }
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

static void mbox_crash_leftover_cut(void **state)
{
    (void)state;
    const char *mb = path_in("mbox-crash");
    unlink(mb);
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "A: 1\n\none\n", 10, NULL), 0);
    size_t before_n = 0;
    char *before = st_read(mb, &before_n);
    die_mid_mbox_write(mb);
    struct stat sb;
    stat(mb, &sb);
    assert_true((size_t)sb.st_size > before_n + 60000); /* the half message is there */
    assert_int_equal(access(path_in("mbox-crash.mwpending"), F_OK), 0);
    /* the next delivery cuts it off, then appends */
    assert_int_equal(mw_store_deliver(s, "A: 2\n\ntwo\n", 10, NULL), 0);
    size_t n = 0;
    char *data = st_read(mb, &n);
    assert_memory_equal(data, before, before_n);
    assert_null(strstr(data, "Subject: half"));
    assert_non_null(strstr(data + before_n, "\nA: 2\n\ntwo\n\n"));
    assert_int_equal(access(path_in("mbox-crash.mwpending"), F_OK), -1);
    free(data);

    /* when another program appended mail after the half message, nothing
     * is cut: that mail must survive */
    die_mid_mbox_write(mb);
    FILE *f = fopen(mb, "ab");
    fputs("\nFrom other@example Mon Jan  1 00:00:00 2024\nA: other\n\nbody\n\n", f);
    fclose(f);
    assert_int_equal(mw_store_deliver(s, "A: 3\n\nthree\n", 12, NULL), 0);
    data = st_read(mb, &n);
    assert_non_null(strstr(data, "A: other\n\nbody\n"));
    assert_non_null(strstr(data, "A: 3\n\nthree\n"));
    assert_non_null(strstr(data, "Subject: half"));
    assert_int_equal(access(path_in("mbox-crash.mwpending"), F_OK), -1);
    free(data);
    free(before);
    mw_store_free(s);
}

/* Refuses creating the dotlock and the marker, as a spool directory the
 * user cannot write to would. */
static int deny_lock_files(mw_store_op op, const char *path, void *ud)
{
    int *denied = ud;
    size_t n = strlen(path);
    if (op == MW_STORE_OP_OPEN && ((n > 5 && !strcmp(path + n - 5, ".lock")) ||
                                   (n > 10 && !strcmp(path + n - 10, ".mwpending")))) {
        (*denied)++;
        return EACCES;
    }
    return 0;
}

static void mbox_unwritable_directory(void **state)
{
    (void)state;
    const char *mb = path_in("mbox-spool");
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    int denied = 0;
    o.fault = deny_lock_files;
    o.fault_userdata = &denied;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, mb, &o, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "A: b\n\nc\n", 8, NULL), 0);
    mw_store_free(s);
    assert_int_equal(denied, 2); /* the dotlock and the marker were refused */
    size_t n = 0;
    char *data = st_read(mb, &n);
    assert_non_null(strstr(data, "\nA: b\n\nc\n\n"));
    free(data);
    assert_int_equal(access(path_in("mbox-spool.lock"), F_OK), -1);
    assert_int_equal(access(path_in("mbox-spool.mwpending"), F_OK), -1);
}

/* ---- MDA --------------------------------------------------------------- */

static void mda_byte_exact(void **state)
{
    (void)state;
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "cat > '%s'", path_in("mda-out"));
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.keep_crlf = 1;
    mw_store *s;
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, cmd, &o, NULL), 0);
    size_t n = 1 << 20; /* larger than a pipe buffer */
    char *m = malloc(n);
    for (size_t i = 0; i < n; i++)
        m[i] = (char)(i * 7 + 3);
    assert_int_equal(mw_store_begin(s, NULL), 0);
    for (size_t off = 0; off < n; off += 10000)
        assert_int_equal(mw_store_write(s, m + off, n - off < 10000 ? n - off : 10000), 0);
    assert_int_equal(mw_store_commit(s), 0);
    assert_int_equal(mw_store_last_size(s), n);
    size_t gotn;
    char *got = st_read(path_in("mda-out"), &gotn);
    assert_int_equal(gotn, n);
    assert_memory_equal(got, m, n);
    free(got);
    free(m);
    mw_store_free(s);

    /* default: CRLF to LF */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, cmd, NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "a\r\nb\r\n", 6, NULL), 0);
    got = st_read(path_in("mda-out"), &gotn);
    assert_int_equal(gotn, 4);
    assert_memory_equal(got, "a\nb\n", 4);
    free(got);
    mw_store_free(s);
}

static void mda_failures(void **state)
{
    (void)state;
    mw_store *s;
    /* non-zero exit, after reading everything */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "cat >/dev/null; exit 3", NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "x\n", 2, NULL), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "exit status 3"));
    mw_store_free(s);
    /* exits 0 without reading a large message: not delivered */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "exit 0", NULL, NULL), 0);
    size_t n = 2 << 20;
    char *m = calloc(1, n);
    assert_int_equal(mw_store_deliver(s, m, n, NULL), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "read"));
    mw_store_free(s);
    /* exits non-zero without reading */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "exit 75", NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, m, n, NULL), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "exit status 75"));
    mw_store_free(s);
    free(m);
    /* killed by a signal */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "cat >/dev/null; kill -9 $$", NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "x\n", 2, NULL), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "signal 9"));
    mw_store_free(s);
    /* command not found: the shell says 127 */
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "/nonexistent/mda", NULL, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "x\n", 2, NULL), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "exit status 127"));
    mw_store_free(s);
    /* the MDA hangs: the timeout ends it */
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.mda_timeout_ms = 300;
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "sleep 20", &o, NULL), 0);
    int64_t t0 = mw_now_ms();
    assert_int_equal(mw_store_deliver(s, "x\n", 2, NULL), MW_ETIMEOUT);
    assert_true(mw_now_ms() - t0 < 5000);
    assert_non_null(strstr(mw_store_error(s)->message, "300 ms"));
    mw_store_free(s);
    /* injected write fault */
    st_fault f = {MW_STORE_OP_WRITE, 1, EIO, 0, 0};
    mw_store_options o2 = MW_STORE_OPTIONS_INIT;
    o2.fault = st_fault_fn;
    o2.fault_userdata = &f;
    assert_int_equal(mw_store_open(&s, MW_STORE_MDA, "cat >/dev/null", &o2, NULL), 0);
    assert_int_equal(mw_store_deliver(s, "x\n", 2, NULL), MW_EIO);
    assert_int_equal(f.fired, 1);
    mw_store_free(s);
}

/* Counts the fsyncs of message files (in tmp/) and of new/; EIO for the
 * file fsync numbered fail_file (0: none). */
typedef struct file_syncs {
    int files, dirs, fail_file;
} file_syncs;

static int count_file_syncs(mw_store_op op, const char *path, void *ud)
{
    file_syncs *c = ud;
    size_t len = strlen(path);
    if (op != MW_STORE_OP_FSYNC) return 0;
    if (len >= 4 && !strcmp(path + len - 4, "/new")) {
        c->dirs++;
    } else if (strstr(path, "/tmp/")) {
        if (++c->files == c->fail_file) return EIO;
    }
    return 0;
}

/* Deferred files (src/store/store_defer.h): a commit leaves the file in
 * tmp/, unsynced; mw_store_sync fsyncs each, moves it into new/, fsyncs
 * new/ once.  The budget bounds the open files over the stores sharing
 * it; a failed file fsync removes the file and fails every later sync. */
static void maildir_deferred_files(void **state)
{
    (void)state;
    file_syncs c = {0, 0, 0};
    mwi_store_budget b = {0, 3};
    mw_store *s, *s2;
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.fault = count_file_syncs;
    o.fault_userdata = &c;
    o.defer_dir_sync = 1;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("Mfiles"), &o, NULL), 0);
    assert_int_equal(mwi_store_defer_files(s, &b), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    char last[4200];
    snprintf(last, sizeof last, "%s", mw_store_last_path(s));
    assert_non_null(strstr(last, "Mfiles/new/"));
    assert_int_equal(c.files, 0);
    assert_int_equal(c.dirs, 0);
    assert_int_equal(b.open, 3);
    assert_int_equal(st_count(path_in("Mfiles/new"), NULL, 0), 0);
    assert_int_equal(st_count(path_in("Mfiles/tmp"), NULL, 0), 3);
    assert_int_equal(mw_store_sync(s), 0);
    assert_int_equal(c.files, 3);
    assert_int_equal(c.dirs, 1);
    assert_int_equal(b.open, 0);
    assert_int_equal(st_count(path_in("Mfiles/new"), NULL, 0), 3);
    assert_int_equal(st_count(path_in("Mfiles/tmp"), NULL, 0), 0);
    size_t n, wn;
    char *got = st_read(last, &n), *want = to_lf(msg1, sizeof msg1 - 1, &wn);
    assert_non_null(got);
    assert_int_equal(n, wn);
    assert_memory_equal(got, want, n);
    free(got);
    free(want);

    /* The budget spent: the next commit syncs this store's files first
     * (new/ still left to mw_store_sync). */
    for (int i = 0; i < 4; i++)
        assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(c.files, 6);
    assert_int_equal(c.dirs, 1);
    assert_int_equal(b.open, 1);
    assert_int_equal(st_count(path_in("Mfiles/new"), NULL, 0), 6);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(b.open, 3);

    /* Another store on the same budget, with nothing of its own to sync:
     * its commit is made durable at once (file fsync'd, in new/). */
    mw_store_options o2 = o;
    assert_int_equal(mw_store_open(&s2, MW_STORE_MAILDIR, path_in("Mfiles2"), &o2, NULL), 0);
    assert_int_equal(mwi_store_defer_files(s2, &b), 0);
    assert_int_equal(mw_store_deliver(s2, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(c.files, 7);
    assert_int_equal(b.open, 3);
    assert_int_equal(st_count(path_in("Mfiles2/new"), NULL, 0), 1);
    assert_int_equal(mw_store_sync(s2), 0);
    assert_int_equal(c.dirs, 2);
    mw_store_free(s2);

    /* The second of the three deferred files cannot be fsync'd: it is
     * removed, the others reach new/, and every sync fails from now on. */
    c.fail_file = c.files + 2;
    assert_int_equal(mw_store_sync(s), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "fsync"));
    assert_non_null(strstr(mw_store_error(s)->message, "Mfiles/tmp/"));
    assert_int_equal(b.open, 0);
    assert_int_equal(st_count(path_in("Mfiles/new"), NULL, 0), 8);
    assert_int_equal(st_count(path_in("Mfiles/tmp"), NULL, 0), 0);
    assert_int_equal(mw_store_sync(s), MW_EIO);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(mw_store_sync(s), MW_EIO);
    assert_int_equal(st_count(path_in("Mfiles/new"), NULL, 0), 9);
    mw_store_free(s);

    /* Freed with a deferred file: it is synced into new/ (best effort). */
    c.fail_file = 0;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("Mfiles3"), &o, NULL), 0);
    assert_int_equal(mwi_store_defer_files(s, &b), 0);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(st_count(path_in("Mfiles3/new"), NULL, 0), 0);
    mw_store_free(s);
    assert_int_equal(b.open, 0);
    assert_int_equal(st_count(path_in("Mfiles3/new"), NULL, 0), 1);
}

static void bad_arguments(void **state)
{
    (void)state;
    mw_store *s;
    mw_error err;
    assert_int_equal(mw_store_open(&s, 99, "x", NULL, &err), MW_EINVAL);
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, "", NULL, &err), MW_EINVAL);
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.version = 77;
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, path_in("m"), &o, &err), MW_EINVAL);
    assert_int_equal(mw_store_open(&s, MW_STORE_MBOX, path_in("m"), NULL, &err), 0);
    assert_int_equal(mw_store_begin(s, "a b"), MW_EINVAL);
    assert_int_equal(mw_store_begin(s, "a\r\nFrom x"), MW_EINVAL);
    assert_int_equal(mw_store_begin(s, ""), MW_EINVAL);
    mw_store_free(s);
}

/* Counts the fsyncs of a Maildir's new/ directory; EIO on them when fail. */
typedef struct dir_syncs {
    int n, fail;
} dir_syncs;

static int count_dir_syncs(mw_store_op op, const char *path, void *ud)
{
    dir_syncs *d = ud;
    size_t len = strlen(path);
    if (op != MW_STORE_OP_FSYNC || len < 4 || strcmp(path + len - 4, "/new")) return 0;
    d->n++;
    return d->fail ? EIO : 0;
}

/* defer_dir_sync: commits fsync the file and link it into new/ but leave
 * new/ to mw_store_sync(), one fsync for any number of commits; a failed
 * sync is reported, leaves the files in place and is retried; version-1
 * option structs are still accepted (and never defer). */
static void maildir_deferred_dir_sync(void **state)
{
    (void)state;
    dir_syncs d = {0, 0};
    mw_store *s;
    mw_store_options o = MW_STORE_OPTIONS_INIT;
    o.fault = count_dir_syncs;
    o.fault_userdata = &d;
    o.defer_dir_sync = 1;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("Mdefer"), &o, NULL), 0);
    assert_int_equal(mw_store_sync(s), 0); /* nothing committed: nothing to do */
    assert_int_equal(d.n, 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(d.n, 0);
    assert_int_equal(st_count(path_in("Mdefer/new"), NULL, 0), 5);
    assert_int_equal(mw_store_sync(s), 0);
    assert_int_equal(d.n, 1);
    assert_int_equal(mw_store_sync(s), 0); /* already durable */
    assert_int_equal(d.n, 1);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    d.fail = 1;
    assert_int_equal(mw_store_sync(s), MW_EIO);
    assert_non_null(strstr(mw_store_error(s)->message, "fsync directory"));
    assert_non_null(strstr(mw_store_error(s)->message, "Mdefer/new"));
    assert_int_equal(st_count(path_in("Mdefer/new"), NULL, 0), 6);
    d.fail = 0;
    assert_int_equal(mw_store_sync(s), 0); /* tried again */
    assert_int_equal(d.n, 3);
    assert_int_equal(mw_store_sync(s), 0);
    assert_int_equal(d.n, 3);
    mw_store_free(s);

    /* version 1: the struct ends before defer_dir_sync; each commit syncs */
    d.n = 0;
    mw_store_options v1 = MW_STORE_OPTIONS_INIT;
    v1.version = 1;
    v1.fault = count_dir_syncs;
    v1.fault_userdata = &d;
    v1.defer_dir_sync = 1; /* must be ignored */
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("Mv1"), &v1, NULL), 0);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(mw_store_deliver(s, msg1, sizeof msg1 - 1, NULL), 0);
    assert_int_equal(d.n, 2);
    assert_int_equal(mw_store_sync(s), 0);
    assert_int_equal(d.n, 2);
    mw_store_free(s);
    v1.version = 3;
    mw_error err;
    assert_int_equal(mw_store_open(&s, MW_STORE_MAILDIR, path_in("Mv1"), &v1, &err), MW_EINVAL);
    assert_int_equal(mw_store_sync(NULL), MW_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(maildir_lf_every_split),
        cmocka_unit_test(maildir_keep_crlf_exact),
        cmocka_unit_test(maildir_large_streamed),
        cmocka_unit_test(maildir_abort_and_states),
        cmocka_unit_test(maildir_stale_tmp_cleaned),
        cmocka_unit_test(maildir_faults),
        cmocka_unit_test(maildir_deferred_dir_sync),
        cmocka_unit_test(mbox_roundtrip_every_split),
        cmocka_unit_test(mbox_crlf_and_existing_file),
        cmocka_unit_test(mbox_fault_truncates),
        cmocka_unit_test(mbox_lock_contention),
        cmocka_unit_test(mbox_crash_leftover_cut),
        cmocka_unit_test(mbox_unwritable_directory),
        cmocka_unit_test(mda_byte_exact),
        cmocka_unit_test(mda_failures),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(maildir_deferred_files),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}
