/* Crash safety of delivery + UIDL state: a child delivers N messages
 * (Maildir or mbox) and records each UID after its commit, as fetch will
 * (Maildir deferred: commits of a batch, mw_store_sync, then the batch's
 * UIDs, as the fetch does with src/store/store_defer.h);
 * it is SIGKILLed at random moments; after every kill every UID recorded
 * in the state file must have its message whole in the store, and the
 * state file must load.  A final complete run must leave every message
 * there; duplicates are counted and reported. */
#include "crashharness.h"
#include "mwtest.h"
#include "storetest.h"

#include "store/store_defer.h"

#define NMSG 30

typedef struct scenario {
    char *dir;
    char store_path[4200];
    char state_path[4200];
    mw_store_kind kind;
    int deferred; /* Maildir, files synced by batch (store_defer.h) */
    int duplicates_max;
    int junk_max; /* mbox: partial messages left by a kill */
} scenario;

/* Message i as sent (CRLF) and as stored (LF). */
static char *make_msg(int i, int crlf, size_t *len)
{
    /* some larger than the store's 64 KiB buffer, so a kill can cut a write */
    size_t lines = i % 10 == 5 ? 2500 : 3 + (size_t)(i * 7919 % 200);
    char *m = malloc(lines * 80 + 200);
    size_t n = (size_t)sprintf(m, "X-Index: %d%sSubject: message %d%s%s", i, crlf ? "\r\n" : "\n",
                               i, crlf ? "\r\n" : "\n", crlf ? "\r\n" : "\n");
    for (size_t l = 0; l < lines; l++)
        n += (size_t)sprintf(m + n, "%sline %zu of message %d ......................%s",
                             l % 10 == 3   ? "From "
                             : l % 10 == 7 ? ">From "
                                           : "",
                             l, i, crlf ? "\r\n" : "\n");
    *len = n;
    return m;
}

static int worker(void *ud)
{
    scenario *sc = ud;
    mw_store *s;
    mw_state *st;
    mw_state_options so = MW_STATE_OPTIONS_INIT;
    so.lock_timeout_ms = 5000;
    mw_error err;
    mw_store_options sto = MW_STORE_OPTIONS_INIT;
    sto.defer_dir_sync = sc->deferred;
    if (mw_store_open(&s, sc->kind, sc->store_path, &sto, &err) != 0) {
        fprintf(stderr, "# worker: %s\n", err.message);
        return 1;
    }
    /* A budget of 3 open files for batches of 5: commits also sync early. */
    mwi_store_budget budget = {0, 3};
    if (sc->deferred) mwi_store_defer_files(s, &budget);
    char batch[5][32];
    int nbatch = 0;
    if (mw_state_open(&st, sc->state_path, &so, &err) != 0) {
        fprintf(stderr, "# worker: %s\n", err.message);
        return 2;
    }
    for (int i = 0; i < NMSG; i++) {
        char uid[32];
        snprintf(uid, sizeof uid, "uid-%04d", i);
        if (mw_state_contains(st, uid)) continue;
        size_t len = 0;
        char *m = make_msg(i, 1, &len);
        int rc = mw_store_begin(s, NULL);
        for (size_t off = 0; rc == 0 && off < len; off += 1000)
            rc = mw_store_write(s, m + off, len - off < 1000 ? len - off : 1000);
        if (rc == 0) rc = mw_store_commit(s);
        free(m);
        if (sc->deferred && rc == 0) {
            /* the batch's UIDs only after the sync that follows their commits */
            snprintf(batch[nbatch++], sizeof batch[0], "%s", uid);
            if (nbatch < 5 && i + 1 < NMSG) continue;
            rc = mw_store_sync(s);
            for (int k = 0; rc == 0 && k < nbatch; k++)
                rc = mw_state_add(st, batch[k], 1700000000 + i);
            nbatch = 0;
            if (rc == 0) rc = mw_state_save(st);
        } else if (rc == 0) {
            /* only after the commit returned 0 may the UID be recorded */
            if ((rc = mw_state_add(st, uid, 1700000000 + i)) == 0) rc = mw_state_save(st);
        }
        if (rc != 0) {
            fprintf(stderr, "# worker: %s / %s\n", mw_store_error(s)->message,
                    mw_state_error(st)->message);
            return 3;
        }
    }
    mw_state_free(st);
    mw_store_free(s);
    return 0;
}

static int collect_uid(const char *uid, int64_t t, void *ud)
{
    (void)t;
    int *rec = ud;
    int i;
    if (sscanf(uid, "uid-%d", &i) == 1 && i >= 0 && i < NMSG)
        rec[i] = 1;
    else
        rec[NMSG] = 1; /* a UID we never wrote */
    return 0;
}

/* Counts whole copies of each message in the store; returns the number
 * of pieces that are not a whole message (-1 when one is in a Maildir). */
static int count_maildir(scenario *sc, int *counts, char *why, size_t size)
{
    char p[4300];
    snprintf(p, sizeof p, "%s/new", sc->store_path);
    DIR *d = opendir(p);
    if (!d) return 0; /* not created yet */
    struct dirent *e;
    int bad = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char fp[4600];
        snprintf(fp, sizeof fp, "%s/%s", p, e->d_name);
        size_t n, wn;
        char *data = st_read(fp, &n);
        int i = -1;
        if (!data || sscanf(data, "X-Index: %d", &i) != 1 || i < 0 || i >= NMSG) {
            snprintf(why, size, "%s is not one of the messages", fp);
            bad = -1;
        } else {
            char *want = make_msg(i, 0, &wn);
            if (n != wn || memcmp(data, want, n) != 0) {
                snprintf(why, size, "%s is message %d but not whole (%zu of %zu bytes)", fp, i, n,
                         wn);
                bad = -1;
            } else {
                counts[i]++;
            }
            free(want);
        }
        free(data);
    }
    closedir(d);
    return bad;
}

static int count_mbox(scenario *sc, int *counts)
{
    size_t n = 0;
    char *data = st_read(sc->store_path, &n);
    if (!data) return 0;
    int junk = 0;
    size_t pos = 0;
    /* messages start after a "From " line at the start of the file or
     * after a newline; the store ends each with a blank line. */
    while (pos < n) {
        if (strncmp(data + pos, "From ", 5) != 0) {
            junk++;
            break;
        }
        const char *body = memchr(data + pos, '\n', n - pos);
        if (!body) break;
        body++;
        const char *next = body;
        const char *end = data + n;
        for (;;) {
            const char *f = memmem(next, (size_t)(end - next), "\nFrom ", 6);
            if (!f) {
                next = end;
                break;
            }
            next = f + 1;
            break;
        }
        /* unquote and compare */
        size_t bl = (size_t)(next - body);
        char *msg = malloc(bl + 1);
        size_t mn = 0, q = 0;
        while (q < bl) {
            const char *nl = memchr(body + q, '\n', bl - q);
            size_t ll = nl ? (size_t)(nl - (body + q)) + 1 : bl - q;
            const char *l = body + q;
            size_t g = 0;
            while (g < ll && l[g] == '>')
                g++;
            if (g && ll - g >= 5 && !memcmp(l + g, "From ", 5)) {
                l++;
                ll--;
            }
            memcpy(msg + mn, l, ll);
            mn += ll;
            q += nl ? (size_t)(nl - (body + q)) + 1 : bl - q;
        }
        msg[mn] = '\0';
        int i = -1, whole = 0;
        if (mn >= 1 && msg[mn - 1] == '\n' && sscanf(msg, "X-Index: %d", &i) == 1 && i >= 0 &&
            i < NMSG) {
            size_t wn;
            char *want = make_msg(i, 0, &wn);
            /* whole: the message, then the blank line */
            whole = mn == wn + 1 && !memcmp(msg, want, wn) && msg[wn] == '\n';
            free(want);
        }
        if (whole)
            counts[i]++;
        else
            junk++;
        free(msg);
        pos = (size_t)(next - data);
    }
    free(data);
    return junk;
}

static int check(void *ud, int complete, char *why, size_t size)
{
    scenario *sc = ud;
    int rec[NMSG + 1] = {0}, counts[NMSG] = {0};
    mw_state *st;
    mw_error err;
    mw_state_options so = MW_STATE_OPTIONS_INIT;
    so.lock_timeout_ms = 5000;
    if (mw_state_open(&st, sc->state_path, &so, &err) != 0) {
        snprintf(why, size, "state file does not load: %s", err.message);
        return -1;
    }
    mw_state_filter(st, collect_uid, rec);
    size_t recorded = mw_state_count(st);
    mw_state_free(st);
    if (rec[NMSG]) {
        snprintf(why, size, "state holds a UID that was never written");
        return -1;
    }
    if (sc->kind == MW_STORE_MAILDIR) {
        if (count_maildir(sc, counts, why, size) != 0) return -1;
    } else {
        int junk = count_mbox(sc, counts);
        if (junk > sc->junk_max) sc->junk_max = junk;
        /* a half message left by a kill is cut off by the next delivery */
        if (complete && junk) {
            snprintf(why, size, "after a complete run the mbox still holds %d partial message(s)",
                     junk);
            return -1;
        }
    }
    int dups = 0;
    for (int i = 0; i < NMSG; i++) {
        if (rec[i] && counts[i] == 0) {
            snprintf(why, size, "uid-%04d is recorded as delivered but its message is missing", i);
            return -1;
        }
        if (complete && counts[i] == 0) {
            snprintf(why, size, "after a complete run message %d is missing", i);
            return -1;
        }
        if (counts[i] > 1) dups += counts[i] - 1;
    }
    if (complete && recorded != NMSG) {
        snprintf(why, size, "after a complete run %zu UIDs are recorded, not %d", recorded, NMSG);
        return -1;
    }
    if (dups > sc->duplicates_max) sc->duplicates_max = dups;
    return 0;
}

static void reset(void *ud)
{
    scenario *sc = ud;
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/*", sc->dir);
    if (system(cmd) != 0) fprintf(stderr, "# reset failed\n");
}

static void run_scenario(mw_store_kind kind, int deferred, int kills)
{
    scenario sc = {0};
    sc.deferred = deferred;
    /* On tmpfs when there is one: a process crash does not depend on
     * fsync, and the run is many times faster, so kills hit more moments. */
    char tmpl[] = "/dev/shm/mw-crash.XXXXXX";
    sc.dir = access("/dev/shm", W_OK) == 0 && mkdtemp(tmpl) ? strdup(tmpl) : st_mkdtemp();
    sc.kind = kind;
    snprintf(sc.store_path, sizeof sc.store_path, "%s/%s", sc.dir,
             kind == MW_STORE_MAILDIR ? "Maildir" : "mbox");
    snprintf(sc.state_path, sizeof sc.state_path, "%s/acct.uidl", sc.dir);
    crash_ops ops = {worker, check, reset, &sc};
    crash_result res;
    int rc = crash_run(&ops, kills, &res);
    printf("# %s: %d kills at random moments over a %lld us run, %d runs finished before "
           "their kill; at most %d duplicate(s) and %d partial mbox message(s) seen after a kill\n",
           kind == MW_STORE_MAILDIR ? (deferred ? "Maildir, deferred" : "Maildir") : "mbox",
           res.kills, (long long)res.full_run_us, res.completed, sc.duplicates_max, sc.junk_max);
    st_rm_rf(sc.dir);
    free(sc.dir);
    if (rc != 0) fail_msg("seed %u: %s", res.seed, res.why);
    assert_int_equal(res.kills, kills);
}

static void crash_maildir(void **state)
{
    (void)state;
    run_scenario(MW_STORE_MAILDIR, 0, 200);
}

static void crash_maildir_deferred(void **state)
{
    (void)state;
    run_scenario(MW_STORE_MAILDIR, 1, 200);
}

static void crash_mbox(void **state)
{
    (void)state;
    run_scenario(MW_STORE_MBOX, 0, 100);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(crash_maildir),
        cmocka_unit_test(crash_maildir_deferred),
        cmocka_unit_test(crash_mbox),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
