/* mw_fetch_account against the real Dovecot with store and state faults
 * injected through their fault hooks: disk full (ENOSPC) from the first
 * message or after two, fsync failing (EIO), the state file not saved.
 * In every case no message that was not durably stored and recorded is
 * deleted on the server, and the error says why.  Prints TAP; skipped when
 * the servers are not running. */
#include "tap.h"
#include "mailwire/fetch.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *root, *ca;
static unsigned port, owner_uid, owner_gid;
static char work[256];

static void rm_dir_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
}

static size_t count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* An empty mailbox for user, then n messages of a few KB each. */
static int fill(const char *user, int n)
{
    char p[1024];
    const char *sub[] = {"", "/Maildir", "/Maildir/new", "/Maildir/cur", "/Maildir/tmp"};
    for (int i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s%s", root, user, sub[i]);
        if (mkdir(p, 0700) && errno != EEXIST) return -1;
        if (chown(p, owner_uid, owner_gid)) return -1;
    }
    snprintf(p, sizeof p, "%s/%s/Maildir/new", root, user);
    rm_dir_files(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", root, user);
    rm_dir_files(p);
    snprintf(p, sizeof p, "%s/%s/Maildir", root, user);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char f[1300];
        if (strncmp(e->d_name, "dovecot", 7)) continue;
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        unlink(f);
    }
    if (d) closedir(d);
    for (int i = 0; i < n; i++) {
        char body[4096];
        int len = snprintf(body, sizeof body,
                           "From: a@test.domain\nSubject: fault %s %d\nMessage-ID: <%s.%d@t>\n\n",
                           user, i, user, i);
        for (int k = 0; k < 20 + i * 10 && len < 4000; k++)
            len += snprintf(body + len, sizeof body - (size_t)len, "line %d of message %d\n", k, i);
        int lf = 0;
        for (int k = 0; k < len; k++)
            lf += body[k] == '\n';
        snprintf(p, sizeof p, "%s/%s/Maildir/cur/%ld.M%dP%d.fault,S=%d,W=%d:2,", root, user,
                 (long)time(NULL), i, (int)getpid(), len, len + lf);
        FILE *f = fopen(p, "wb");
        if (!f) return -1;
        fwrite(body, 1, (size_t)len, f);
        fclose(f);
        if (chown(p, owner_uid, owner_gid)) return -1;
    }
    return 0;
}

static size_t server_count(const char *user)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/Maildir/new", root, user);
    size_t n = count_files(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", root, user);
    return n + count_files(p);
}

typedef struct fault {
    mw_store_op op;
    int err;
    /* let this many messages through first: every operation passes until
     * one more file is created (the files' fsyncs and moves into new/
     * come later, at the batch's sync: src/store/store_defer.h) */
    int allow_opens;
    int opens;
    int hits;
} fault;

static int hook(mw_store_op op, const char *path, void *ud)
{
    fault *f = ud;
    (void)path;
    if (op == MW_STORE_OP_OPEN && f->opens <= f->allow_opens) f->opens++;
    if (f->opens <= f->allow_opens) return 0;
    if (op == f->op) {
        f->hits++;
        return f->err;
    }
    return 0;
}

typedef struct run {
    mw_fetch_result res;
    mw_error err;
    int rc;
    char dest[512];
    unsigned progress_calls;
    uint64_t last_done;
} run;

static void on_progress(const mw_fetch_progress *p, void *ud)
{
    run *r = ud;
    r->progress_calls++;
    r->last_done = p->msgs_done;
}

static void do_fetch(run *r, const char *user, fault *store_fault, fault *state_fault)
{
    memset(r, 0, sizeof *r);
    char pw[64], state[512];
    snprintf(pw, sizeof pw, "pw-%s", user);
    snprintf(r->dest, sizeof r->dest, "%s/md-%s", work, user);
    snprintf(state, sizeof state, "%s/%s.state", work, user);
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.ca_file = ca;
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    po.port = port;
    po.tls = MW_TLS_STARTTLS;
    po.tls_opts = &t;
    po.user = user;
    po.password = pw;
    mw_store_options so = MW_STORE_OPTIONS_INIT;
    if (store_fault) {
        so.fault = hook;
        so.fault_userdata = store_fault;
    }
    mw_state_options sto = MW_STATE_OPTIONS_INIT;
    if (state_fault) {
        sto.fault = hook;
        sto.fault_userdata = state_fault;
    }
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    fo.host = "localhost";
    fo.pop3 = &po;
    fo.store_kind = MW_STORE_MAILDIR;
    fo.store_target = r->dest;
    fo.store_opts = &so;
    fo.state_path = state;
    fo.state_opts = &sto;
    fo.progress = on_progress;
    fo.progress_userdata = r;
    r->rc = mw_fetch_account(&r->res, &fo, &r->err);
}

static size_t dest_count(const run *r)
{
    char p[600];
    snprintf(p, sizeof p, "%s/new", r->dest);
    return count_files(p);
}

int main(void)
{
    const char *ps = getenv("MW_POP3_PORT");
    root = getenv("MW_MAILDIR_ROOT");
    ca = getenv("MW_CA_FILE");
    const char *owner = getenv("MW_MAIL_OWNER");
    if (!ps || !*ps || !root || !ca || !owner) {
        printf("1..1\nok 1 - fetch faults # SKIP servers not running\n");
        return 0;
    }
    port = (unsigned)atoi(ps);
    if (sscanf(owner, "%u:%u", &owner_uid, &owner_gid) != 2) return 1;
    snprintf(work, sizeof work, "/tmp/mw-fetch-faults.XXXXXX");
    if (!mkdtemp(work)) return 1;

    run r;
    /* Disk full from the first write. */
    if (fill("f10", 5)) return 1;
    fault full = {MW_STORE_OP_WRITE, ENOSPC, 0, 0, 0};
    do_fetch(&r, "f10", &full, NULL);
    tap(r.rc == MW_EIO && strstr(r.err.message, "store") &&
            strstr(r.err.message, strerror(ENOSPC)) && r.res.fetched == 0 && r.res.deleted == 0 &&
            server_count("f10") == 5 && dest_count(&r) == 0,
        "disk full: MW_EIO, nothing stored, nothing deleted (server keeps 5): %s", r.err.message);

    /* Disk full after two messages: those two are stored, recorded and
     * deleted; the rest stays. */
    if (fill("f11", 6)) return 1;
    fault later = {MW_STORE_OP_WRITE, ENOSPC, 2, 0, 0};
    do_fetch(&r, "f11", &later, NULL);
    tap(r.rc == MW_EIO && r.res.fetched == 2 && r.res.deleted == 2 && r.res.quit_confirmed &&
            server_count("f11") == 4 && dest_count(&r) == 2,
        "disk full after 2 messages: 2 stored and deleted, 4 left on the server (fetched %llu, "
        "deleted %llu, server %zu)",
        (unsigned long long)r.res.fetched, (unsigned long long)r.res.deleted, server_count("f11"));
    do_fetch(&r, "f11", NULL, NULL);
    tap(r.rc == 0 && r.res.fetched == 4 && r.res.deleted == 4 && server_count("f11") == 0 &&
            dest_count(&r) == 6,
        "after the disk is freed, the next run takes the other 4 and no duplicate");

    /* fsync failing. */
    if (fill("f12", 3)) return 1;
    fault fs = {MW_STORE_OP_FSYNC, EIO, 0, 0, 0};
    do_fetch(&r, "f12", &fs, NULL);
    tap(r.rc == MW_EIO && strstr(r.err.message, "fsync") && r.res.deleted == 0 &&
            server_count("f12") == 3 && dest_count(&r) == 0,
        "fsync failing: MW_EIO naming fsync, nothing left in new/, nothing deleted: %s",
        r.err.message);

    /* The state cannot be saved: messages are in the Maildir but must not
     * be deleted (a later run would not know it has them). */
    if (fill("f13", 3)) return 1;
    fault st = {MW_STORE_OP_RENAME, EIO, 0, 0, 0};
    do_fetch(&r, "f13", NULL, &st);
    tap(r.rc == MW_EIO && strstr(r.err.message, "state") && r.res.fetched == 3 &&
            r.res.deleted == 0 && server_count("f13") == 3,
        "state not saved (rename fails): 3 stored, none deleted: %s", r.err.message);

    /* Progress reported up to the last message. */
    if (fill("f14", 4)) return 1;
    do_fetch(&r, "f14", NULL, NULL);
    tap(r.rc == 0 && r.res.fetched == 4 && r.last_done == 4 && r.progress_calls >= 5,
        "progress callback: %u calls, last says %llu of 4 done", r.progress_calls,
        (unsigned long long)r.last_done);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    if (system(cmd)) {}
    return tap_done();
}
