/* The fetch filter on the loop (mw_loop_add_fetch with o->filter) runs
 * as events of its job, never blocking the loop (src/loop/lchild.c),
 * against the real Dovecot, users m9 and m10 (tests/servers/README.md):
 *  - job A's filter waits for a marker file; job B, added once A's filter
 *    has started, must end while it still waits: B's done callback runs
 *    before the test creates the marker (events counted, no time judged);
 *  - a filter that never ends (it ignores TERM) is stopped at
 *    filter_timeout_ms: the timeout's error, nothing deleted;
 *  - a filter that closes its stdin on ~200 KiB of headers, one that
 *    writes megabytes to stdout, one exit status of each kind (0, 1, 2,
 *    3, killed by a signal), the last compared with mw_fetch_account;
 *  - a job cancelled while its filter runs: the filter killed and reaped. */
#include "mailwire/fetch.h"
#include "mailwire/loop.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *what)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, what);
    if (!cond) failed = 1;
}

static const char *g_root, *g_port, *g_ca;
static uid_t g_uid;
static gid_t g_gid;
static char g_base[64];
static int g_run; /* makes each run's names its own */

static int clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p)
            unlink(p);
    closedir(d);
    return 0;
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static int server_count(const char *user)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/Maildir/new", g_root, user);
    int a = count_files(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", g_root, user);
    int b = count_files(p);
    return a < 0 || b < 0 ? -1 : a + b;
}

/* The user's server mailbox holds exactly msgs[0..n), numbered in order. */
static int put_server(const char *user, const char *const *msgs, int n)
{
    char p[1024];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/%s", g_root, user, i ? "cur" : "new");
        if (clear_dir(p) != 0) return -1;
    }
    g_run++;
    for (int k = 0; k < n; k++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/new/%lld%03d%02d.M%dP%d.lfilter", g_root, user,
                 (long long)time(NULL), g_run, k, k, (int)getpid());
        FILE *f = fopen(p, "wb");
        size_t len = strlen(msgs[k]);
        if (!f || fwrite(msgs[k], 1, len, f) != len) {
            if (f) fclose(f);
            return -1;
        }
        if (fclose(f) != 0 || chown(p, g_uid, g_gid) != 0) return -1;
    }
    return 0;
}

/* The options of one fetch of user into a Maildir of its own. */
typedef struct facct {
    char user[8], pw[16], local[256], state[256];
    mw_tls_opts tls;
    mw_pop3_opts po;
    mw_fetch_opts o;
    /* the outcome */
    int done, order;
    mw_fetch_result res;
    mw_error err;
} facct;

static void acct_init(facct *a, const char *user, const char *filter, int timeout_ms)
{
    memset(a, 0, sizeof *a);
    snprintf(a->user, sizeof a->user, "%s", user);
    snprintf(a->pw, sizeof a->pw, "pw-%s", user);
    g_run++;
    snprintf(a->local, sizeof a->local, "%s/%s-%d", g_base, user, g_run);
    snprintf(a->state, sizeof a->state, "%s/%s-%d.state", g_base, user, g_run);
    a->tls = (mw_tls_opts)MW_TLS_OPTS_INIT;
    a->tls.ca_file = g_ca;
    a->po = (mw_pop3_opts)MW_POP3_OPTS_INIT;
    a->po.port = (unsigned)strtoul(g_port, NULL, 10);
    a->po.tls_opts = &a->tls;
    a->po.user = a->user;
    a->po.password = a->pw;
    a->o = (mw_fetch_opts)MW_FETCH_OPTS_INIT;
    a->o.host = "127.0.0.1";
    a->o.pop3 = &a->po;
    a->o.store_kind = MW_STORE_MAILDIR;
    a->o.store_target = a->local;
    a->o.state_path = a->state;
    a->o.filter = filter;
    if (timeout_ms) a->o.filter_timeout_ms = timeout_ms;
}

static int g_events; /* done callbacks so far, in order */

static void done_cb(mw_loop_job *job, const mw_fetch_result *res, const mw_error *err, void *ud)
{
    (void)job;
    facct *a = ud;
    a->done = 1;
    a->order = ++g_events;
    a->res = *res;
    a->err = *err;
}

static int local_count(const facct *a)
{
    char p[512];
    snprintf(p, sizeof p, "%s/new", a->local);
    return count_files(p);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- A waits on its filter, B goes on ---------------------------------- */

static char g_started[128], g_marker[128], g_ended[128];
static facct g_a, g_b;
static int g_b_saw_started, g_b_saw_a_done, g_b_saw_ended, g_marker_made;

/* B's end: A's filter still waits (it started, has not ended, A is not
 * done); only now is the marker made. */
static void b_done(mw_loop_job *job, const mw_fetch_result *res, const mw_error *err, void *ud)
{
    done_cb(job, res, err, ud);
    g_b_saw_started = exists(g_started);
    g_b_saw_ended = exists(g_ended);
    g_b_saw_a_done = g_a.done;
    FILE *f = fopen(g_marker, "w");
    if (f) g_marker_made = fclose(f) == 0;
}

/* The caller's own runner (loop.h's multi_socket shape), so that the
 * test can look between two waits: until stop() (NULL: no jobs left) or
 * the bound.  Waits are capped at 50 ms to look at the files again. */
static int pump(mw_loop *l, int (*stop)(void), int64_t bound)
{
    mw_loop_fd fds[32];
    struct pollfd pf[32];
    while (mw_loop_running(l) && !(stop && stop())) {
        if (mw_now_ms() >= bound) return -1;
        size_t n = mw_loop_fds(l, fds, 32);
        if (n > 32) return -1;
        for (size_t i = 0; i < n; i++) {
            pf[i].fd = fds[i].fd;
            pf[i].events = (short)(((fds[i].events & MW_LOOP_IN) ? POLLIN : 0) |
                                   ((fds[i].events & MW_LOOP_OUT) ? POLLOUT : 0));
            pf[i].revents = 0;
        }
        int t = mw_loop_timeout_ms(l);
        if (t < 0 || t > 50) t = 50;
        int r = poll(pf, (nfds_t)n, t);
        for (size_t i = 0; r > 0 && i < n; i++) {
            short re = pf[i].revents;
            if (!re) continue;
            int ev = ((re & POLLIN) ? MW_LOOP_IN : 0) | ((re & POLLOUT) ? MW_LOOP_OUT : 0) |
                     ((re & (POLLERR | POLLHUP | POLLNVAL)) ? MW_LOOP_ERR : 0);
            mw_loop_action(l, pf[i].fd, ev);
        }
        mw_loop_action(l, MW_LOOP_TIMEOUT, 0);
    }
    return 0;
}

static int a_started(void)
{
    return exists(g_started);
}

static void test_concurrent(void)
{
    static const char *const ma[] = {"From: x@test.domain\nSubject: held\n\nA's message\n"};
    static const char *const mb[] = {"Subject: b1\n\none\n", "Subject: b2\n\ntwo\n",
                                     "Subject: b3\n\nthree\n"};
    snprintf(g_started, sizeof g_started, "%s/started", g_base);
    snprintf(g_marker, sizeof g_marker, "%s/marker", g_base);
    snprintf(g_ended, sizeof g_ended, "%s/ended", g_base);
    /* Waits for the marker (bounded: ~120 s of 0.05 s naps, then exit 3,
     * an error of the run), then deletes the message (exit 1). */
    char filter[1024];
    snprintf(filter, sizeof filter,
             "cat >/dev/null; : >'%s'; i=0; while [ ! -e '%s' ]; do i=$((i+1)); "
             "if [ $i -gt 2400 ]; then : >'%s'; exit 3; fi; sleep 0.05; done; : >'%s'; exit 1",
             g_started, g_marker, g_ended, g_ended);
    int setup = put_server("m10", ma, 1) == 0 && put_server("m9", mb, 3) == 0;
    mw_loop *l = NULL;
    mw_error err = {0};
    setup = setup && mw_loop_new(&l, NULL, &err) == 0;
    acct_init(&g_a, "m10", filter, 600000);
    acct_init(&g_b, "m9", NULL, 0);
    setup = setup && mw_loop_add_fetch(l, NULL, &g_a.o, done_cb, &g_a, &err) == 0;
    ok(setup, "concurrent: m10 (filter waiting for a marker) and m9 filled; A added");
    if (!setup) {
        printf("# %s\n", err.message);
        mw_loop_free(l);
        return;
    }
    int64_t bound = mw_now_ms() + 300000;
    int got = pump(l, a_started, bound) == 0 && a_started();
    ok(got && !g_a.done, "A's filter started, A still running");
    int added = got && mw_loop_add_fetch(l, NULL, &g_b.o, b_done, &g_b, &err) == 0;
    if (got && !added) printf("# B: %s\n", err.message);
    int ran = added && pump(l, NULL, bound) == 0;
    ok(ran && g_a.done && g_b.done, "both jobs ended");
    ok(g_b.done && g_b_saw_started && !g_b_saw_ended && !g_b_saw_a_done && g_marker_made,
       "B's done callback ran while A's filter was still waiting (before the marker)");
    ok(g_b.order == 1 && g_a.order == 2, "B ended first, then A");
    ok(g_b.err.code == 0 && g_b.res.fetched == 3 && g_b.res.deleted == 3 && local_count(&g_b) == 3,
       "B: 3 fetched and deleted");
    if (g_b.err.code) printf("# B: %s\n", g_b.err.message);
    ok(g_a.err.code == 0 && g_a.res.fetched == 0 && g_a.res.deleted == 1 && g_a.res.errors == 0 &&
           server_count("m10") == 0 && local_count(&g_a) <= 0,
       "A: its filter's verdict after the marker (exit 1): deleted, not fetched");
    if (g_a.err.code) printf("# A: %s\n", g_a.err.message);
    mw_loop_free(l);
}

/* ---- a job cancelled while its filter runs ------------------------------ */

static char g_pidfile[128];

static int pid_written(void)
{
    struct stat st;
    return stat(g_pidfile, &st) == 0 && st.st_size > 0;
}

/* The filter's pid from g_pidfile, 0 when unreadable. */
static long written_pid(void)
{
    long pid = 0;
    FILE *f = fopen(g_pidfile, "r");
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1) pid = 0;
        fclose(f);
    }
    return pid;
}

static void test_cancel(void)
{
    static const char *const m[] = {"Subject: cancelled\n\nbody\n"};
    snprintf(g_pidfile, sizeof g_pidfile, "%s/filter.pid", g_base);
    char filter[512];
    /* Runs until stopped; a job that does not stop it ends by the
     * timeout's error instead (checked below). */
    snprintf(filter, sizeof filter,
             "cat >/dev/null; echo $$ >'%s.tmp'; mv '%s.tmp' '%s'; while :; do sleep 0.05; done",
             g_pidfile, g_pidfile, g_pidfile);
    facct a;
    acct_init(&a, "m10", filter, 120000);
    mw_loop *l = NULL;
    mw_loop_job *job = NULL;
    mw_error err = {0};
    int setup = put_server("m10", m, 1) == 0 && mw_loop_new(&l, NULL, &err) == 0 &&
                mw_loop_add_fetch(l, &job, &a.o, done_cb, &a, &err) == 0;
    int64_t bound = mw_now_ms() + 300000;
    int started = setup && pump(l, pid_written, bound) == 0 && pid_written() && !a.done;
    long pid = started ? written_pid() : 0;
    int cancelled = started && pid > 0 && mw_loop_cancel(l, job) == 0;
    int ended = cancelled && pump(l, NULL, bound) == 0 && a.done;
    errno = 0;
    int gone = ended && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    ok(ended && a.err.code == MW_ECANCELED && a.res.deleted == 0 && a.res.fetched == 0 &&
           server_count("m10") == 1 && gone,
       "a job cancelled while its filter runs: MW_ECANCELED, the filter killed and reaped, "
       "nothing deleted");
    if (setup) printf("# %s (filter pid %ld)\n", a.err.message, pid);
    mw_loop_free(l);
}

/* ---- one fetch on a loop of its own ------------------------------------- */

static int run_one(facct *a)
{
    mw_loop *l = NULL;
    mw_error err = {0};
    if (mw_loop_new(&l, NULL, &err) != 0) return -1;
    int rc = mw_loop_add_fetch(l, NULL, &a->o, done_cb, a, &err);
    if (rc == 0) rc = mw_loop_run(l, mw_now_ms() + 300000, &err);
    if (rc) printf("# %s: %s\n", a->user, err.message);
    mw_loop_free(l);
    return rc == 0 && a->done ? 0 : -1;
}

/* ---- the loop freed while a fetch runs ---------------------------------- */

/* mw_loop_free while the fetch waits on its filter: no done callback, the
 * filter killed and reaped, and the fetch's store and state (its lock
 * included) freed with the job, so the same account fetches at once
 * afterwards, the message still on the server. */
static void test_free_running(void)
{
    static const char *const m[] = {"Subject: loop freed\n\nbody\n"};
    snprintf(g_pidfile, sizeof g_pidfile, "%s/free.pid", g_base);
    char filter[512];
    snprintf(filter, sizeof filter,
             "cat >/dev/null; echo $$ >'%s.tmp'; mv '%s.tmp' '%s'; while :; do sleep 0.05; done",
             g_pidfile, g_pidfile, g_pidfile);
    facct a;
    acct_init(&a, "m10", filter, 120000);
    mw_loop *l = NULL;
    mw_error err = {0};
    int setup = put_server("m10", m, 1) == 0 && mw_loop_new(&l, NULL, &err) == 0 &&
                mw_loop_add_fetch(l, NULL, &a.o, done_cb, &a, &err) == 0;
    int started = setup && pump(l, pid_written, mw_now_ms() + 300000) == 0 && pid_written();
    long pid = started ? written_pid() : 0;
    mw_loop_free(l);
    errno = 0;
    int gone = pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
    ok(started && !a.done && gone && server_count("m10") == 1,
       "mw_loop_free while a fetch waits on its filter: no done callback, the filter reaped, "
       "nothing deleted");
    a.o.filter = NULL; /* the same account and state file, on a new loop */
    int again = run_one(&a);
    ok(again == 0 && a.err.code == 0 && local_count(&a) == 1,
       "then the same account fetches at once: its state and lock went with the freed job");
    if (again) printf("# %s\n", a.err.message);
}

static void test_timeout(void)
{
    static const char *const m[] = {"Subject: never decided\n\nbody\n"};
    facct a;
    /* TERM ignored: the KILL after the grace time ends it. */
    acct_init(&a, "m10", "trap '' TERM; cat >/dev/null; while :; do sleep 0.2; done", 2000);
    int setup = put_server("m10", m, 1) == 0;
    int ran = setup && run_one(&a) == 0;
    ok(ran && a.err.code == MW_ETIMEOUT && strstr(a.err.message, "ran longer than 2000 ms") &&
           a.res.errors == 1 && a.res.deleted == 0 && a.res.fetched == 0 &&
           server_count("m10") == 1,
       "a filter that never ends: killed at filter_timeout_ms, the timeout's error, nothing "
       "deleted");
    if (ran) printf("# %s\n", a.err.message);
}

static void test_stdin_closed(void)
{
    /* ~200 KiB of headers: more than a pipe takes (64 KiB), under the
     * 256 KiB the job holds for the filter. */
    size_t cap = 220 * 1024;
    char *msg = malloc(cap);
    if (!msg) return;
    size_t n = 0;
    n += (size_t)snprintf(msg + n, cap - n, "Subject: big headers\n");
    for (int i = 0; n + 200 < cap - 1024 && i < 4000; i++)
        n += (size_t)snprintf(msg + n, cap - n, "X-Pad-%d: %.*s\n", i, 60,
                              "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz");
    snprintf(msg + n, cap - n, "\nbody\n");
    const char *m[] = {msg};
    facct a;
    acct_init(&a, "m10", "exec 0<&-; exit 1", 60000);
    int ran = put_server("m10", m, 1) == 0 && run_one(&a) == 0;
    ok(ran && a.err.code == 0 && a.res.deleted == 1 && a.res.fetched == 0 &&
           server_count("m10") == 0,
       "a filter that closes its stdin at once on 200 KiB of headers: its verdict (delete) "
       "stands, no SIGPIPE");
    if (a.err.code) printf("# %s\n", a.err.message);
    free(msg);
}

static void test_stdout_flood(void)
{
    static const char *const m[] = {"Subject: loud\n\nbody\n"};
    facct a;
    acct_init(&a, "m10", "cat; head -c 8000000 /dev/zero; exit 0", 60000);
    int ran = put_server("m10", m, 1) == 0 && run_one(&a) == 0;
    ok(ran && a.err.code == 0 && a.res.fetched == 1 && a.res.deleted == 1 && local_count(&a) == 1,
       "a filter that writes 8 MB to stdout: fetched");
    if (a.err.code) printf("# %s\n", a.err.message);
}

/* Subject vN: exit N; v9: killed by SIGKILL. */
#define VERDICT_FILTER                                                                             \
    "s=$(sed -n 's/^Subject: v//p'); if [ \"$s\" = 9 ]; then kill -KILL $$; fi; exit $s"

static void test_verdicts(void)
{
    static const char *const m[] = {"Subject: v0\n\nget me\n", "Subject: v1\n\ndelete me\n",
                                    "Subject: v2\n\nskip me\n", "Subject: v3\n\nan error\n",
                                    "Subject: v9\n\nkilled\n"};
    facct a, b;
    acct_init(&a, "m10", VERDICT_FILTER, 60000);
    int ran = put_server("m10", m, 5) == 0 && run_one(&a) == 0;
    int left = server_count("m10");
    ok(ran && a.res.fetched == 1 && a.res.deleted == 2 && a.res.errors == 2 && left == 3 &&
           local_count(&a) == 1 && a.err.code == MW_EIO &&
           strstr(a.err.message, "exited with status 3"),
       "exit 0 fetched, 1 deleted, 2 skipped, 3 and a signal errors (left on the server)");
    printf("# loop: fetched %llu deleted %llu skipped %llu errors %llu, left %d: %s\n",
           (unsigned long long)a.res.fetched, (unsigned long long)a.res.deleted,
           (unsigned long long)a.res.skipped, (unsigned long long)a.res.errors, left,
           a.err.message);
    /* The blocking fetch, the same messages: the same verdicts. */
    acct_init(&b, "m10", VERDICT_FILTER, 60000);
    int rc = put_server("m10", m, 5) == 0 ? mw_fetch_account(&b.res, &b.o, &b.err) : -1;
    int bleft = server_count("m10");
    ok(rc == MW_EIO && b.res.fetched == a.res.fetched && b.res.deleted == a.res.deleted &&
           b.res.skipped == a.res.skipped && b.res.errors == a.res.errors && bleft == left &&
           !strcmp(a.err.message, b.err.message),
       "mw_fetch_account gives the same counts and error");
    printf("# blocking: fetched %llu deleted %llu skipped %llu errors %llu, left %d: %s\n",
           (unsigned long long)b.res.fetched, (unsigned long long)b.res.deleted,
           (unsigned long long)b.res.skipped, (unsigned long long)b.res.errors, bleft,
           b.err.message);
}

int main(void)
{
    g_port = getenv("MW_POP3_PORT");
    g_ca = getenv("MW_CA_FILE");
    g_root = getenv("MW_MAILDIR_ROOT");
    const char *own = getenv("MW_MAIL_OWNER");
    if (!g_port || !g_ca || !g_root || !own) {
        printf("1..1\nok 1 - loop filter # SKIP servers not running\n");
        return 0;
    }
    g_uid = (uid_t)strtoul(own, NULL, 10);
    g_gid = (gid_t)strtoul(strchr(own, ':') ? strchr(own, ':') + 1 : own, NULL, 10);
    snprintf(g_base, sizeof g_base, "/tmp/mw-lfilter-XXXXXX");
    if (!mkdtemp(g_base)) {
        printf("Bail out! mkdtemp\n");
        return 1;
    }
    printf("1..15\n");
    test_concurrent();
    test_timeout();
    test_cancel();
    test_free_running();
    test_stdin_closed();
    test_stdout_flood();
    test_verdicts();
    put_server("m10", NULL, 0);
    put_server("m9", NULL, 0);
    return failed;
}
