/* mw_fetch_account against an in-memory POP3 server (a stream made of
 * callbacks): the order that never loses mail is checked at the moment
 * each command arrives — a DELE only for a message whose file is already
 * in new/ and whose UID is already in the state file ON DISK, QUIT last,
 * RETRs pipelined — plus option checks and the per-account lock.  The
 * store's and state's fault hooks follow the file system operations: the
 * new/ directory must have been fsync'd after the last link into it
 * before the state is written and before any DELE (the store defers that
 * fsync to one per batch), and a failing directory fsync stops the run
 * with nothing deleted and nothing recorded. */
#include "mwtest.h"

#include "mailwire/fetch.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define NMSG 7

typedef struct fake {
    char out[1 << 18]; /* what the server has to send */
    size_t out_len, out_pos;
    char in[4096]; /* a partial command line */
    size_t in_len;
    int closed;
    const char *dir; /* test directory: Maildir at dir/md, state dir/state */
    int dele_ok;     /* DELEs that found their message stored and recorded */
    int dele_bad;    /* DELEs that came too early */
    int after_quit;  /* commands after QUIT */
    int quit_seen;
    int logins;             /* USER or PASS lines */
    int stalled;            /* LIST went unanswered */
    int max_retr_in_flight; /* RETRs received before the first one was answered */
    int retr_unanswered;
    char deleted[NMSG + 1];
    /* file system order, seen through the fault hooks */
    int links;               /* messages linked into new/ */
    int unsynced;            /* links into new/ since new/ was last fsync'd */
    int dir_syncs;           /* fsyncs of new/ that made some link durable */
    int state_saves;         /* state files renamed into place */
    int state_save_unsynced; /* ... while a link into new/ was not yet durable */
    int dele_unsynced;       /* DELEs while a link into new/ was not yet durable */
    /* the events in order, one letter each: O a message file created in
     * tmp/, F its fsync, L its move into new/, D an fsync of new/, S a
     * state file saved, X a DELE arriving */
    char ops[256];
    size_t nops;
    int file_syncs;             /* fsyncs of message files */
    int link_before_fsync;      /* moves into new/ of a file not fsync'd before */
    char synced[NMSG * 2][200]; /* the tmp/ names fsync'd */
    int nsynced;
} fake;

static void op_log(fake *f, char c)
{
    if (f->nops + 1 < sizeof f->ops) f->ops[f->nops++] = c;
}

/* EIO for every fsync of new/ when set (test_dir_sync_fails). */
static int fail_dir_sync;
/* EIO for the fsync of the message file that is the Nth fsync'd (0: none;
 * test_file_sync_fails). */
static int fail_file_sync;
/* A message whose UIDL unique-id breaks RFC 1939 §7, one whose RETR runs
 * 80 KB past its size (0: none; test_bad_uid, test_retr_overflow). */
static int bad_uid_msg, overflow_msg;
/* mw_fetch_opts.filter and filter_timeout_ms for the next run (test_filter_timeout). */
static const char *filter_cmd;
/* test_no_login_retr_modes: the login and retr_mode asked, and a server
 * announcing one octet more than it sends */
static int auth_mode = MW_POP3_AUTH_USER, retr_mode = MW_POP3_RETR_RETR, lie_size;
/* test_command_timeout: the command deadline, and a server that never
 * answers LIST */
static int cmd_timeout_ms, stall_list;
static int filter_ms;

static int ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

static int store_hook(mw_store_op op, const char *path, void *ud)
{
    fake *f = ud;
    const char *tmp = strstr(path, "/md/tmp/"), *nw = strstr(path, "/md/new/");
    if (op == MW_STORE_OP_OPEN && tmp) {
        op_log(f, 'O');
    } else if (op == MW_STORE_OP_FSYNC && tmp) {
        op_log(f, 'F');
        if (++f->file_syncs == fail_file_sync) return EIO;
        if (f->nsynced < NMSG * 2)
            snprintf(f->synced[f->nsynced++], sizeof f->synced[0], "%s", tmp + 8);
    } else if (op == MW_STORE_OP_RENAME && nw) {
        op_log(f, 'L');
        f->links++;
        f->unsynced++;
        /* new/NAME,S=n comes from tmp/NAME: fsync'd before? */
        size_t n = strcspn(nw + 8, ",");
        int found = 0;
        for (int i = 0; i < f->nsynced && !found; i++)
            found = strlen(f->synced[i]) == n && !strncmp(f->synced[i], nw + 8, n);
        if (!found) f->link_before_fsync++;
    } else if (op == MW_STORE_OP_FSYNC && ends_with(path, "/md/new")) {
        op_log(f, 'D');
        if (fail_dir_sync) return EIO;
        if (f->unsynced) f->dir_syncs++;
        f->unsynced = 0;
    }
    return 0;
}

static int state_hook(mw_store_op op, const char *path, void *ud)
{
    fake *f = ud;
    if (op == MW_STORE_OP_RENAME && ends_with(path, "/state")) {
        op_log(f, 'S');
        f->state_saves++;
        if (f->unsynced) f->state_save_unsynced++;
    }
    return 0;
}

static void say(fake *f, const char *s)
{
    size_t n = strlen(s);
    assert_true(f->out_len + n < sizeof f->out);
    memcpy(f->out + f->out_len, s, n);
    f->out_len += n;
}

static void body_of(int n, char *buf, size_t size)
{
    /* The wire form: CRLF, a dot-stuffed line. */
    snprintf(buf, size, "Subject: m%d\r\n\r\nbody %d\r\n..dot line\r\n", n, n);
}

static size_t octets_of(int n)
{
    char b[256];
    body_of(n, b, sizeof b);
    return strlen(b) - 1; /* one stuffing dot is not part of the message */
}

static int file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static int maildir_has(const char *dir, int n)
{
    char p[512], want[64];
    snprintf(p, sizeof p, "%s/md/new", dir);
    snprintf(want, sizeof want, "Subject: m%d\n\nbody %d\n.dot line\n", n, n);
    DIR *d = opendir(p);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char f[800];
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        found = file_has(f, want);
    }
    closedir(d);
    return found;
}

static void command(fake *f, const char *line)
{
    char buf[512];
    int n = 0;
    if (f->quit_seen) f->after_quit++;
    if (f->stalled) return; /* a hung server answers nothing more */
    if (!strcmp(line, "CAPA")) {
        say(f, "+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\n.\r\n");
    } else if (!strncmp(line, "USER ", 5) || !strncmp(line, "PASS ", 5)) {
        f->logins++;
        say(f, "+OK\r\n");
    } else if (!strcmp(line, "STAT")) {
        snprintf(buf, sizeof buf, "+OK %d 0\r\n", NMSG);
        say(f, buf);
    } else if (!strcmp(line, "LIST") && stall_list) {
        f->stalled = 1; /* no answer */
    } else if (!strcmp(line, "LIST")) {
        say(f, "+OK\r\n");
        for (int i = 1; i <= NMSG; i++) {
            snprintf(buf, sizeof buf, "%d %zu\r\n", i, octets_of(i));
            say(f, buf);
        }
        say(f, ".\r\n");
    } else if (!strcmp(line, "UIDL")) {
        say(f, "+OK\r\n");
        for (int i = 1; i <= NMSG; i++) {
            if (i == bad_uid_msg)
                snprintf(buf, sizeof buf, "%d uid %d\r\n", i, i); /* a space in it */
            else
                snprintf(buf, sizeof buf, "%d uid-%d\r\n", i, i);
            say(f, buf);
        }
        say(f, ".\r\n");
    } else if (sscanf(line, "RETR %d", &n) == 1 && n >= 1 && n <= NMSG) {
        f->retr_unanswered++;
        if (f->retr_unanswered > f->max_retr_in_flight) f->max_retr_in_flight = f->retr_unanswered;
        char b[256];
        body_of(n, b, sizeof b);
        snprintf(buf, sizeof buf, "+OK %zu octets\r\n%s", octets_of(n) + (lie_size != 0), b);
        say(f, buf);
        for (int k = 0; n == overflow_msg && k < 1000; k++)
            say(f, "an 80-octet line of a message far longer than its announced size........\r\n");
        say(f, ".\r\n");
    } else if (sscanf(line, "TOP %d 0", &n) == 1 && n >= 1 && n <= NMSG) {
        snprintf(buf, sizeof buf, "+OK\r\nSubject: m%d\r\n\r\n.\r\n", n);
        say(f, buf);
    } else if (sscanf(line, "DELE %d", &n) == 1 && n >= 1 && n <= NMSG) {
        char state[512], uid[32];
        snprintf(state, sizeof state, "%s/state", f->dir);
        snprintf(uid, sizeof uid, " uid-%d\n", n);
        if (maildir_has(f->dir, n) && file_has(state, uid))
            f->dele_ok++;
        else
            f->dele_bad++;
        if (f->unsynced) f->dele_unsynced++;
        op_log(f, 'X');
        f->deleted[n] = 1;
        say(f, "+OK\r\n");
    } else if (!strcmp(line, "QUIT")) {
        f->quit_seen = 1;
        say(f, "+OK bye\r\n");
    } else {
        say(f, "-ERR unknown\r\n");
    }
}

static long fake_write(const void *data, size_t len, int64_t deadline, void *ud)
{
    fake *f = ud;
    (void)deadline;
    const char *p = data;
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && f->in_len && f->in[f->in_len - 1] == '\r') {
            f->in[f->in_len - 1] = '\0';
            command(f, f->in);
            f->in_len = 0;
        } else if (f->in_len + 1 < sizeof f->in) {
            f->in[f->in_len++] = p[i];
        }
    }
    return (long)len;
}

static long fake_read(void *buf, size_t len, int64_t deadline, void *ud)
{
    fake *f = ud;
    if (f->out_pos == f->out_len && f->stalled) {
        /* a server that never answers: the client's deadline ends the wait */
        while (deadline != MW_NO_DEADLINE && mw_now_ms() < deadline)
            usleep(1000);
        return deadline == MW_NO_DEADLINE ? MW_ENET : MW_ETIMEOUT;
    }
    if (f->out_pos == f->out_len) {
        if (f->quit_seen) return 0;
        return MW_ENET; /* the client waits for an answer to nothing */
    }
    /* Small reads: the client sees replies in pieces. */
    size_t n = f->out_len - f->out_pos;
    if (n > len) n = len;
    if (n > 100) n = 100;
    memcpy(buf, f->out + f->out_pos, n);
    f->out_pos += n;
    if (f->out_pos == f->out_len) f->retr_unanswered = 0;
    return (long)n;
}

static const mw_stream_ops fake_ops = {fake_read, fake_write, NULL};

typedef struct env {
    char dir[64];
    char md[128], state[128];
} env;

static void env_make(env *e)
{
    snprintf(e->dir, sizeof e->dir, "/tmp/mw-fetch-unit.XXXXXX");
    assert_non_null(mkdtemp(e->dir));
    snprintf(e->md, sizeof e->md, "%s/md", e->dir);
    snprintf(e->state, sizeof e->state, "%s/state", e->dir);
}

static void env_drop(env *e)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->dir);
    assert_int_equal(system(cmd), 0);
}

static int run_fake_at(env *e, fake *f, int keep, int days, int64_t now, mw_fetch_result *res,
                       mw_error *err)
{
    memset(f, 0, sizeof *f);
    f->dir = e->dir;
    say(f, "+OK fake POP3\r\n");
    mw_stream *s = NULL;
    assert_int_equal(mw_stream_callbacks(&s, &fake_ops, f, NULL), 0);
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    po.stream = s;
    po.user = "u";
    po.password = "pw";
    po.auth = auth_mode;
    po.retr_mode = retr_mode;
    po.command_timeout_ms = cmd_timeout_ms;
    po.tls = MW_TLS_NONE; /* the fake server speaks no TLS */
    po.allow_plaintext = 1;
    po.window = 4;
    /* static: mw_fetch_account keeps pointers only for the call */
    static mw_store_options so = MW_STORE_OPTIONS_INIT;
    static mw_state_options sto = MW_STATE_OPTIONS_INIT;
    so.fault = store_hook;
    so.fault_userdata = f;
    sto.fault = state_hook;
    sto.fault_userdata = f;
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    fo.store_opts = &so;
    fo.state_opts = &sto;
    fo.host = "fake";
    fo.pop3 = &po;
    fo.store_target = e->md;
    fo.state_path = e->state;
    fo.keep = keep;
    fo.delete_after_days = days;
    fo.now = now;
    fo.batch = 3; /* several saves in one run */
    fo.filter = filter_cmd;
    fo.filter_timeout_ms = filter_ms;
    return mw_fetch_account(res, &fo, err);
}

static int run_fake(env *e, fake *f, int keep, mw_fetch_result *res, mw_error *err)
{
    return run_fake_at(e, f, keep, -1, 0, res, err);
}

/* mw_pop3_opts.command_timeout_ms bounds the login and the listings as a
 * whole (the io timeout is a minute): a LIST never answered ends the run
 * with the operation deadline's words, nothing deleted.  The bound is
 * what is judged, not how long it took. */
static void test_command_timeout(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    cmd_timeout_ms = 300;
    stall_list = 1;
    int rc = run_fake(&e, f, 0, &r, &err);
    cmd_timeout_ms = 0;
    stall_list = 0;
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_non_null(strstr(err.message, "operation deadline passed while reading a line"));
    assert_int_equal(f->stalled, 1);
    assert_int_equal(r.fetched, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    free(f);
    env_drop(&e);
}

/* What only src/fetch's old blocking session took, on the machine: a
 * stream logged in already (no USER, no PASS), and retr_mode: a reply
 * announcing another size costs its message (RETR), is checked against
 * LIST (LIST: the sizes are right), or is not checked (SLOW). */
static void test_no_login_retr_modes(void **unused)
{
    (void)unused;
    static const int modes[] = {MW_POP3_RETR_RETR, MW_POP3_RETR_LIST, MW_POP3_RETR_SLOW};
    for (int i = 0; i < 3; i++) {
        env e;
        env_make(&e);
        fake *f = calloc(1, sizeof *f);
        mw_fetch_result r;
        mw_error err;
        auth_mode = MW_POP3_AUTH_NONE;
        retr_mode = modes[i];
        lie_size = 1;
        int rc = run_fake(&e, f, 1, &r, &err);
        auth_mode = MW_POP3_AUTH_USER;
        retr_mode = MW_POP3_RETR_RETR;
        lie_size = 0;
        assert_int_equal(f->logins, 0);
        assert_int_equal(f->quit_seen, 1);
        if (modes[i] == MW_POP3_RETR_RETR) {
            /* the first reply's size is wrong: that message stays */
            assert_int_equal(rc, MW_EPROTO);
            assert_int_equal(r.fetched, 0);
            assert_int_equal(r.errors, NMSG);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(r.fetched, NMSG);
        }
        free(f);
        env_drop(&e);
    }
}

static void test_order(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    assert_int_equal(run_fake(&e, f, 0, &r, &err), 0);
    assert_int_equal(r.fetched, NMSG);
    assert_int_equal(r.deleted, NMSG);
    assert_int_equal(f->dele_ok, NMSG); /* every DELE after file + state on disk */
    assert_int_equal(f->dele_bad, 0);
    assert_int_equal(f->quit_seen, 1);
    assert_int_equal(f->after_quit, 0);
    assert_true(f->max_retr_in_flight > 1); /* RETRs were pipelined */
    for (int i = 1; i <= NMSG; i++)
        assert_true(maildir_has(e.dir, i));
    /* new/ fsync'd before every state save and every DELE, but once per
     * batch of 3 (saves after messages 3, 6 and 7), not once per message */
    assert_int_equal(f->links, NMSG);
    assert_int_equal(f->unsynced, 0);
    assert_int_equal(f->state_save_unsynced, 0);
    assert_int_equal(f->dele_unsynced, 0);
    assert_int_equal(f->state_saves, 3);
    assert_int_equal(f->dir_syncs, 3);
    /* Each file's fsync waits for the batch's sync (src/store/store_defer.h):
     * the batch's files are all created before the first of them is
     * fsync'd, each fsync'd before its move into new/, new/ fsync'd once,
     * then the state saved; the DELEs come after the last save. */
    f->ops[f->nops] = '\0';
    printf("# events: %s\n", f->ops);
    assert_string_equal(f->ops, "OOOFLFLFLDS"
                                "OOOFLFLFLDS"
                                "OFLDS"
                                "XXXXXXX");
    assert_int_equal(f->file_syncs, NMSG);
    assert_int_equal(f->link_before_fsync, 0);
    free(f);
    env_drop(&e);
}

static int dir_entries(const char *path);

/* A message file's deferred fsync fails (the second of the first batch):
 * that file never reaches new/, no UID is recorded from then on, nothing
 * is deleted; the run says which file. */
static void test_file_sync_fails(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    fail_file_sync = 2;
    int rc = run_fake(&e, f, 0, &r, &err);
    fail_file_sync = 0;
    f->ops[f->nops] = '\0';
    printf("# events: %s (%s)\n", f->ops, err.message);
    assert_int_equal(rc, MW_EIO);
    assert_non_null(strstr(err.message, "fsync"));
    assert_non_null(strstr(err.message, "/md/tmp/"));
    assert_int_equal(r.deleted, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    assert_int_equal(f->state_saves, 0);
    assert_false(file_has(e.state, " uid-"));
    assert_false(maildir_has(e.dir, 2));
    assert_int_equal(f->link_before_fsync, 0);
    /* nothing of it left in tmp/ either */
    char tmpd[256];
    snprintf(tmpd, sizeof tmpd, "%s/tmp", e.md);
    assert_int_equal(dir_entries(tmpd), 0);
    free(f);
    env_drop(&e);
}

/* The directory fsync fails: the run fails, no UID is recorded and no
 * message is deleted (the files stay in new/: at worst fetched again). */
static void test_dir_sync_fails(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    fail_dir_sync = 1;
    int rc = run_fake(&e, f, 0, &r, &err);
    fail_dir_sync = 0;
    assert_int_equal(rc, MW_EIO);
    assert_non_null(strstr(err.message, "/md/new"));
    assert_int_equal(r.deleted, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    assert_int_equal(f->state_saves, 0);
    assert_false(file_has(e.state, " uid-"));
    free(f);
    env_drop(&e);
}

static void test_second_run_deletes_only(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    /* keep: stored and recorded, nothing deleted */
    assert_int_equal(run_fake(&e, f, 1, &r, &err), 0);
    assert_int_equal(r.fetched, NMSG);
    assert_int_equal(r.deleted, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    /* the same server again without keep: nothing fetched, all deleted,
     * each DELE backed by the state saved by the first run */
    assert_int_equal(run_fake(&e, f, 0, &r, &err), 0);
    assert_int_equal(r.fetched, 0);
    assert_int_equal(r.deleted, NMSG);
    assert_int_equal(f->dele_ok, NMSG);
    assert_int_equal(f->dele_bad, 0);
    free(f);
    env_drop(&e);
}

/* keep + delete after N days, counted from the first_seen time recorded
 * in the state when the message was fetched. */
static void test_delete_after_days(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    const int64_t t0 = 1700000000;
    assert_int_equal(run_fake_at(&e, f, 1, 3, t0, &r, &err), 0);
    assert_int_equal(r.fetched, NMSG);
    assert_int_equal(r.deleted, 0);
    /* two days later: not yet */
    assert_int_equal(run_fake_at(&e, f, 1, 3, t0 + 2 * 86400, &r, &err), 0);
    assert_int_equal(r.fetched, 0);
    assert_int_equal(r.deleted, 0);
    assert_int_equal(r.skipped, NMSG);
    /* three days later: all deleted, none fetched again */
    assert_int_equal(run_fake_at(&e, f, 1, 3, t0 + 3 * 86400, &r, &err), 0);
    assert_int_equal(r.fetched, 0);
    assert_int_equal(r.deleted, NMSG);
    assert_int_equal(f->dele_ok, NMSG);
    free(f);
    env_drop(&e);
}

/* A filter that outlives filter_timeout_ms is killed: that message is an
 * error and stays on the server (not stored, not deleted), and the run
 * does not wait for the filter's own end. */
static void test_filter_timeout(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    filter_cmd = "exec sleep 20"; /* exec: the kill reaches sleep itself */
    filter_ms = 200;
    int64_t t0 = mw_now_ms();
    int rc = run_fake(&e, f, 0, &r, &err);
    int64_t took = mw_now_ms() - t0;
    filter_cmd = NULL;
    filter_ms = 0;
    assert_int_equal(rc, MW_ETIMEOUT);
    assert_non_null(strstr(err.message, "ran longer than 200 ms and was killed"));
    assert_true(took >= NMSG * 200 && took < NMSG * 20000); /* not the filters' 20 s sleep */
    assert_int_equal(r.fetched, 0);
    assert_int_equal(r.errors, NMSG);
    assert_int_equal(r.skipped, NMSG);
    assert_int_equal(r.deleted, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    assert_int_equal(f->links, 0);
    assert_int_equal(f->quit_seen, 1);
    free(f);
    env_drop(&e);
}

/* A filter that answers in time decides: exit 2 skips, and the headers it
 * got on stdin are the message's (TOP n 0). */
static void test_filter_decides(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    filter_cmd = "if grep -q '^Subject: m[24]'; then exit 2; fi; exit 0";
    filter_ms = 5000;
    int rc = run_fake(&e, f, 0, &r, &err);
    filter_cmd = NULL;
    filter_ms = 0;
    assert_int_equal(rc, 0);
    assert_int_equal(r.fetched, NMSG - 2);
    assert_int_equal(r.skipped, 2);
    assert_int_equal(r.deleted, NMSG - 2);
    assert_false(maildir_has(e.dir, 2));
    assert_true(maildir_has(e.dir, 3));
    assert_int_equal(f->deleted[4], 0);
    free(f);
    env_drop(&e);
}

static void test_bad_options(void **unused)
{
    (void)unused;
    mw_fetch_result r;
    mw_error err;
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    assert_int_equal(mw_fetch_account(&r, &fo, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "no host"));
    fo.host = "h";
    assert_int_equal(mw_fetch_account(&r, &fo, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "delivery target"));
    fo.store_target = "/tmp/x";
    assert_int_equal(mw_fetch_account(&r, &fo, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "state file"));
    fo.version = 99;
    assert_int_equal(mw_fetch_account(&r, &fo, &err), MW_EINVAL);
    assert_int_equal(mw_fetch_account(&r, NULL, &err), MW_EINVAL);
}

/* The lock is taken before the network: a locked account fails with
 * MW_ETEMP and the server never hears from us. */
static void test_locked(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    char lock[200];
    snprintf(lock, sizeof lock, "%s.lock", e.state);
    int fd = open(lock, O_CREAT | O_RDWR, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    assert_int_equal(run_fake(&e, f, 0, &r, &err), MW_ETEMP);
    assert_non_null(strstr(err.message, "state"));
    assert_int_equal(f->out_pos, 0); /* the greeting was never read */
    assert_int_equal(r.fetched, 0);
    close(fd);
    free(f);
    env_drop(&e);
}

/* A UIDL line whose unique-id breaks RFC 1939 §7 costs that message only:
 * not fetched, not deleted, an error; every other message is fetched and
 * deleted in the safe order. */
static void test_bad_uid(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    bad_uid_msg = 3;
    int rc = run_fake(&e, f, 0, &r, &err);
    bad_uid_msg = 0;
    assert_int_equal(rc, MW_EPROTO);
    assert_non_null(strstr(err.message, "message 3: UIDL gave it a unique-id that breaks"));
    assert_int_equal(r.fetched, NMSG - 1);
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.deleted, NMSG - 1);
    assert_int_equal(f->dele_bad, 0);
    assert_int_equal(f->deleted[3], 0);
    assert_false(maildir_has(e.dir, 3));
    for (int i = 1; i <= NMSG; i++)
        if (i != 3) assert_true(maildir_has(e.dir, i) && f->deleted[i]);
    free(f);
    env_drop(&e);
}

static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

/* A RETR far past its announced size: cut at size + 64 KiB, the partial
 * copy removed, the message left on the server.  Over a caller-made
 * stream there is no new session for the rest: the run ends with what was
 * stored recorded in the state and nothing deleted (a later run does). */
static void test_retr_overflow(void **unused)
{
    (void)unused;
    env e;
    env_make(&e);
    fake *f = calloc(1, sizeof *f);
    mw_fetch_result r;
    mw_error err;
    overflow_msg = 3;
    int rc = run_fake(&e, f, 0, &r, &err);
    overflow_msg = 0;
    assert_int_equal(rc, MW_ETOOBIG);
    assert_non_null(strstr(err.message, "RETR 3: the server sent over"));
    assert_non_null(strstr(err.message, "left on the server"));
    assert_int_equal(r.fetched, 2);
    assert_int_equal(r.deleted, 0);
    assert_int_equal(f->dele_ok + f->dele_bad, 0);
    assert_true(maildir_has(e.dir, 1) && maildir_has(e.dir, 2));
    assert_false(maildir_has(e.dir, 3));
    char p[256];
    snprintf(p, sizeof p, "%s/md/tmp", e.dir);
    assert_int_equal(dir_entries(p), 0); /* the partial copy is gone */
    snprintf(p, sizeof p, "%s/state", e.dir);
    assert_true(file_has(p, " uid-1\n") && file_has(p, " uid-2\n"));
    assert_false(file_has(p, " uid-3\n"));
    free(f);
    env_drop(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_no_login_retr_modes),
        cmocka_unit_test(test_command_timeout),
        cmocka_unit_test(test_dir_sync_fails),
        cmocka_unit_test(test_file_sync_fails),
        cmocka_unit_test(test_second_run_deletes_only),
        cmocka_unit_test(test_delete_after_days),
        cmocka_unit_test(test_filter_timeout),
        cmocka_unit_test(test_filter_decides),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_locked),
        cmocka_unit_test(test_bad_uid),
        cmocka_unit_test(test_retr_overflow),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
