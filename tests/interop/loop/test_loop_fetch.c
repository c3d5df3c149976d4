/* 200 concurrent POP3 fetch jobs (users e1..e200, STLS, verified against
 * the test CA) on one mw_loop in one thread against the real Dovecot
 * (tests/servers/README.md).  Every job must end with a result; every
 * message must be stored byte-identical and deleted on the server; one job
 * (e200) is cancelled after its 3rd stored message, by progress, and its
 * server mailbox must keep every message.  50 SMTP sends (a8 to a10,
 * STARTTLS, AUTH) run on the same loop at the same time.  Times and memory
 * are printed as diagnostics, never judged. */
#include "mailwire/loop.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NUSERS     200
#define NSEND      50 /* SMTP sends (a8 to a10) mixed into the same loop */
#define CANCEL_AT  3
#define CANCEL_MSG 8

static int ntest;
static int failed;
static void ok(int cond, const char *fmt, const char *what)
{
    printf("%sok %d - %s%s\n", cond ? "" : "not ", ++ntest, fmt, what ? what : "");
    if (!cond) failed = 1;
}

typedef struct user {
    int idx;
    char name[16];
    char local[512];
    int nmsg;
    char **msgs; /* contents as written into the server's Maildir */
    size_t *lens;
    mw_store *store;
    mw_loop_job *job;
    int results;
    mw_loop_result res;
    mw_error err;
} user;

static mw_loop *g_loop;
static user g_users[NUSERS];
static uid_t owner_uid;
static gid_t owner_gid;

static int nmsg_for(int i)
{
    return i == NUSERS ? CANCEL_MSG : 2 + i % 4;
}

/* A message with the lines that matter: dot-stuffing, a long line, 8-bit. */
static char *make_msg(int u, int k, size_t *len)
{
    /* e1's first message is large (~2 MB): its job must yield to the
     * others (the loop's read budget) and still arrive whole. */
    int lines = u == 1 && k == 1 ? 12000 : 1 + (u * 7 + k * 13) % 40;
    size_t cap = (size_t)lines * 256 + 1024, n = 0;
    char *b = malloc(cap);
    if (!b) return NULL;
    n += (size_t)snprintf(b + n, cap - n,
                          "From: loop@test.domain\nTo: e%d@test.domain\nSubject: loop %d/%d\n"
                          "X-Loop-Id: e%d-%d\n\n.leading dot\n..two dots\n.\n \xc3\xa9t\xc3\xa9\n",
                          u, u, k, u, k);
    for (int r = 0; r < lines; r++)
        n += (size_t)snprintf(b + n, cap - n, "line %d of message %d for e%d %.*s\n", r, k, u,
                              (r * 31) % 200,
                              "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklm"
                              "nopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"
                              "0123456789abcdefghijklmnopqrstuvwxyz0123456789abc"
                              "defghijklmnopqrstuvwxyz0123456789abcdefghijklmnop");
    *len = n;
    return b;
}

static int clear_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : -1;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) < (int)sizeof p) unlink(p);
        }
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

static int server_count(const char *root, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/Maildir/new", root, name);
    int a = count_files(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", root, name);
    int b = count_files(p);
    return a < 0 || b < 0 ? -1 : a + b;
}

static int put_server(const char *root, user *u)
{
    char p[1024];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/%s", root, u->name, i ? "cur" : "new");
        if (clear_dir(p) != 0) return -1;
    }
    for (int k = 1; k <= u->nmsg; k++) {
        /* Names sort in k order, so Dovecot numbers them 1..n in order. */
        /* Unique per run (Dovecot gives a reappearing name a new UID). */
        snprintf(p, sizeof p, "%s/%s/Maildir/new/%lld%02d.M%dP%d.loop", root, u->name,
                 (long long)time(NULL), k, u->idx, (int)getpid());
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(u->msgs[k - 1], 1, u->lens[k - 1], f) != u->lens[k - 1]) {
            if (f) fclose(f);
            return -1;
        }
        if (fclose(f) != 0 || chown(p, owner_uid, owner_gid) != 0) return -1;
    }
    return 0;
}

/* Every file in the local Maildir's new/ equals one of the user's
 * messages, none twice; returns how many matched, or -1. */
static int check_local(user *u, int *first_k)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/new", u->local);
    DIR *d = opendir(p);
    if (!d) return -1;
    int seen[64] = {0}, n = 0, bad = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[1400];
        FILE *fp =
            snprintf(f, sizeof f, "%s/%s", p, e->d_name) < (int)sizeof f ? fopen(f, "rb") : NULL;
        if (!fp) {
            bad = 1;
            continue;
        }
        static char buf[4 * 1024 * 1024];
        size_t got = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        int match = 0;
        for (int k = 0; k < u->nmsg; k++)
            if (got == u->lens[k] && !memcmp(buf, u->msgs[k], got) && !seen[k]) {
                seen[k] = 1;
                match = 1;
                break;
            }
        if (match)
            n++;
        else
            bad = 1;
    }
    closedir(d);
    *first_k = 1;
    for (int k = 0; k < n; k++)
        if (!seen[k]) *first_k = 0; /* the matches are messages 1..n */
    return bad ? -1 : n;
}

typedef struct send_res {
    int n, code, sent;
    char msg[320];
} send_res;

static void send_done(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    send_res *r = ud;
    (void)job;
    r->n++;
    r->code = res->code;
    r->sent = res->sent;
    snprintf(r->msg, sizeof r->msg, "%s", res->err->message);
}

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    user *u = ud;
    u->results++;
    u->res = *res;
    u->err = *res->err;
    u->job = NULL;
    (void)job;
}

static int stored_cb(mw_loop_job *job, uint64_t msg, const char *uid, uint64_t size, void *ud)
{
    user *u = ud;
    (void)uid;
    (void)size;
    if (u->idx == NUSERS && msg == CANCEL_AT) mw_loop_cancel(g_loop, job);
    return 0;
}

static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) v = strtol(line + 6, NULL, 10);
    if (f) fclose(f);
    return v;
}

int main(void)
{
    const char *port = getenv("MW_POP3_PORT"), *ca = getenv("MW_CA_FILE");
    const char *root = getenv("MW_MAILDIR_ROOT"), *own = getenv("MW_MAIL_OWNER");
    if (!port || !ca || !root || !own) {
        printf("1..1\nok 1 - loop fetch # SKIP servers not running\n");
        return 0;
    }
    owner_uid = (uid_t)strtoul(own, NULL, 10);
    owner_gid = (gid_t)strtoul(strchr(own, ':') ? strchr(own, ':') + 1 : own, NULL, 10);
    printf("1..10\n");
    char tmpl[] = "/tmp/mw-loop-XXXXXX";
    char *base = mkdtemp(tmpl);
    int setup = base != NULL;
    for (int i = 1; setup && i <= NUSERS; i++) {
        user *u = &g_users[i - 1];
        u->idx = i;
        snprintf(u->name, sizeof u->name, "e%d", i);
        snprintf(u->local, sizeof u->local, "%s/e%d", base, i);
        u->nmsg = nmsg_for(i);
        u->msgs = calloc((size_t)u->nmsg, sizeof *u->msgs);
        u->lens = calloc((size_t)u->nmsg, sizeof *u->lens);
        for (int k = 0; setup && k < u->nmsg; k++)
            setup = (u->msgs[k] = make_msg(i, k + 1, &u->lens[k])) != NULL;
        setup = setup && put_server(root, u) == 0 &&
                mw_store_open(&u->store, MW_STORE_MAILDIR, u->local, NULL, NULL) == 0;
    }
    ok(setup, "mailboxes e1..e200 filled on the server, local Maildirs opened", NULL);
    mw_error err = {0};
    ok(mw_loop_new(&g_loop, NULL, &err) == 0, "mw_loop_new", NULL);
    if (!setup || !g_loop) {
        printf("Bail out! setup failed: %s\n", err.message);
        return 1;
    }
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = ca;
    long rss0 = rss_kb();
    int added = 0;
    int64_t t0 = mw_now_ms();
    for (int i = 0; i < NUSERS; i++) {
        user *u = &g_users[i];
        char pw[32];
        snprintf(pw, sizeof pw, "pw-%s", u->name);
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = "127.0.0.1";
        o.port = (unsigned)strtoul(port, NULL, 10);
        o.tls_opts = &tls;
        o.user = u->name;
        o.password = pw;
        o.store = u->store;
        o.stored = stored_cb;
        o.stored_userdata = u;
        o.window = 4;
        if (mw_loop_add_pop3_fetch(g_loop, &u->job, &o, done_cb, u, &err) == 0)
            added++;
        else
            printf("# %s: %s\n", u->name, err.message);
    }
    /* SMTP sends beside the fetches (STARTTLS, AUTH PLAIN through Postfix). */
    static send_res sends[NSEND];
    const char *sport = getenv("MW_SMTP_PORT");
    static const char *const to[] = {"a10@test.domain"};
    static const char body[] = "From: a8@test.domain\nTo: a10@test.domain\nSubject: loop mix\n\n"
                               ".dot line\nbody\n";
    int sadded = 0;
    for (int i = 0; sport && i < NSEND; i++) {
        mw_loop_smtp_opts so = MW_LOOP_SMTP_OPTS_INIT;
        so.host = "127.0.0.1";
        so.port = (unsigned)strtoul(sport, NULL, 10);
        so.tls_opts = &tls;
        so.user = "a8";
        so.password = "pw-a8";
        so.from = "a8@test.domain";
        so.rcpt = to;
        so.nrcpt = 1;
        so.message = body;
        so.message_len = sizeof body - 1;
        if (mw_loop_add_smtp_send(g_loop, NULL, &so, send_done, &sends[i], &err) == 0)
            sadded++;
        else
            printf("# send %d: %s\n", i, err.message);
    }
    ok(added == NUSERS && sadded == NSEND && mw_loop_running(g_loop) == NUSERS + NSEND,
       "200 fetch jobs and 50 send jobs added, 250 running", NULL);
    /* A generous bound against a hang, not a measurement. */
    int rc = mw_loop_run(g_loop, mw_now_ms() + 900000, &err);
    int64_t t1 = mw_now_ms();
    ok(rc == 0 && mw_loop_running(g_loop) == 0, "mw_loop_run: every job ended", NULL);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int one_result = 1, good = 1, same = 1, gone = 1;
    uint64_t msgs = 0, bytes = 0;
    for (int i = 0; i < NUSERS; i++) {
        user *u = &g_users[i];
        if (u->results != 1) one_result = 0;
        int first = 0, n = check_local(u, &first);
        if (i + 1 == NUSERS) continue;
        msgs += u->res.stored;
        bytes += u->res.bytes;
        if (u->res.code != 0 || !u->res.quit_ok || u->res.stored != (uint64_t)u->nmsg ||
            u->res.deleted != (uint64_t)u->nmsg || u->res.messages != (uint64_t)u->nmsg) {
            printf("# %s: code %d stored %llu deleted %llu: %s\n", u->name, u->res.code,
                   (unsigned long long)u->res.stored, (unsigned long long)u->res.deleted,
                   u->err.message);
            good = 0;
        }
        if (n != u->nmsg) {
            printf("# %s: %d of %d messages found byte-identical locally\n", u->name, n, u->nmsg);
            same = 0;
        }
        int left = server_count(root, u->name);
        if (left != 0) {
            printf("# %s: %d messages left on the server\n", u->name, left);
            gone = 0;
        }
    }
    for (int i = 0; i < NSEND; i++) {
        if (sends[i].n != 1) one_result = 0;
        if (sends[i].code != 0 || !sends[i].sent) {
            printf("# send %d: %d %s\n", i, sends[i].code, sends[i].msg);
            good = 0;
        }
    }
    ok(one_result, "every job (fetch and send) reported exactly one result", NULL);
    ok(good, "199 fetches: 0, QUIT +OK, every message stored and deleted; 50 sends: 0, sent", NULL);
    ok(same, "199 jobs: every message stored byte-identical", NULL);
    ok(gone, "199 jobs: the server mailboxes are empty", NULL);
    user *c = &g_users[NUSERS - 1];
    int cfirst = 0, cn = check_local(c, &cfirst);
    printf("# e200: code %d (%s) stored %llu, %d local\n", c->res.code, c->err.message,
           (unsigned long long)c->res.stored, cn);
    ok(c->res.code == MW_ECANCELED && c->res.stored == CANCEL_AT && !c->res.quit_ok &&
           cn == CANCEL_AT && cfirst,
       "e200 cancelled after its 3rd stored message: MW_ECANCELED, messages 1-3 stored", NULL);
    int cleft = server_count(root, c->name);
    printf("# e200: %d messages on the server\n", cleft);
    ok(cleft == CANCEL_MSG, "e200: nothing deleted on the server (no QUIT sent)", NULL);
    printf("# 200 POP3 + 50 SMTP sessions, %llu messages, %llu octets in %lld ms; RSS before jobs "
           "%ld KiB, "
           "peak %ld KiB, (peak - before) / 250 = %ld KiB per session (with this build's "
           "sanitizers, if any)\n",
           (unsigned long long)msgs, (unsigned long long)bytes, (long long)(t1 - t0), rss0,
           ru.ru_maxrss, (ru.ru_maxrss - rss0) / (NUSERS + NSEND));
    mw_loop_free(g_loop);
    for (int i = 0; i < NUSERS; i++) {
        mw_store_free(g_users[i].store);
        for (int k = 0; k < g_users[i].nmsg; k++)
            free(g_users[i].msgs[k]);
        free(g_users[i].msgs);
        free(g_users[i].lens);
        char p[1100];
        static const char *const sub[] = {"new", "cur", "tmp"};
        for (int s = 0; s < 3; s++) {
            if (snprintf(p, sizeof p, "%s/%s", g_users[i].local, sub[s]) >= (int)sizeof p) continue;
            clear_dir(p);
            rmdir(p);
        }
        rmdir(g_users[i].local);
    }
    rmdir(base);
    return failed;
}
