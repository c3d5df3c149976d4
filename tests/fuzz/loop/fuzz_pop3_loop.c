/* Fuzz target: the loop's POP3 fetch job (src/loop/pop3_job.c) fed
 * arbitrary server bytes in arbitrary splits, through the loop
 * (mw_loop_action), over a socketpair whose other end plays the server.
 *
 * Input: one flags byte (bit 0: keep, bits 1-2: window 1/2/4/16, bit 3:
 * plan and commit callbacks, bits 4-5: the plan's first action, bit 6: the
 * commit callback refuses, bit 7: a command sequence (pop3_cmds.c) instead
 * of a fetch, bits 0-3 then choosing where in a fixed list it starts);
 * bits 0 and 3-6 all set (0x79): the fetch filter's hooks too (its TOP
 * runs, pop3_top.c; the plan gets every message), deciding each message
 * from its headers, and a 4 KiB cap on a message (a cut RETR),
 * then chunks, each a length byte (1 + L % 64 octets follow) and the
 * octets. After the last chunk the server end is closed.  The job must then end, exactly once,
 * whatever came before: a job still running is a hang and aborts (a finding). */
#include "loop/loop_int.h"
#include "mailwire/loop.h"
#include "mailwire/store.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_dir[64];
static mw_store *g_store;

static void clean(void)
{
    char p[256];
    snprintf(p, sizeof p, "%s/new", g_dir);
    DIR *d = opendir(p);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.') {
            char f[512];
            if (snprintf(f, sizeof f, "%s/new/%s", g_dir, e->d_name) < (int)sizeof f) unlink(f);
        }
    closedir(d);
}

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    int *n = ud;
    (*n)++;
    if (getenv("MW_FUZZ_VERBOSE"))
        fprintf(stderr, "job: %d stored %llu deleted %llu quit %d: %s\n", res->code,
                (unsigned long long)res->stored, (unsigned long long)res->deleted, res->quit_ok,
                res->err->message);
    if (res->code != res->err->code || (res->code == 0 && !res->quit_ok)) abort();
}

/* The plan gives message i the actions (first + i) % 4 (none, GET, DELE,
 * both); a message without a UID must still be handled. */
static int plan_cb(mw_loop_job *job, const mw_loop_msg *msgs, size_t n, unsigned char *act,
                   void *ud)
{
    (void)job;
    uint8_t flags = *(const uint8_t *)ud;
    unsigned first = flags >> 4 & 3;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].uid && strlen(msgs[i].uid) > 70) abort(); /* RFC 1939 §7 bound kept */
        act[i] = (unsigned char)((first + i) % 4);
        if ((flags & 0x79) == 0x79) /* the filter decides: runs of TOPs */
            act[i] = (unsigned char)(MW_LOOP_GET | (i & 1 ? MW_LOOP_DELE : 0));
    }
    return 0;
}

/* The filter's hook: the headers are bounded (256 KiB); the decision is
 * drawn from their length (DELE only, or GET with or without DELE). */
static int headers_cb(mw_loop_job *job, uint64_t msg, const char *hdr, size_t len, void *ud)
{
    (void)job;
    (void)msg;
    (void)ud;
    if (!hdr || len > 256 * 1024) abort();
    return len % 4 == 3 ? MW_LOOP_DELE : MW_LOOP_GET | (int)(len & MW_LOOP_DELE);
}

static void top_fail_cb(mw_loop_job *job, uint64_t msg, int code, const mw_error *err,
                        const char *why, void *ud)
{
    (void)job;
    (void)msg;
    (void)ud;
    if (!code || (!err && !why)) abort();
}

static int commit_cb(mw_loop_job *job, void *ud)
{
    (void)job;
    return (*(const uint8_t *)ud & 64) ? MW_ECANCELED : 0;
}

/* Every reply piece is checked against what the job promises. */
static int reply_cb(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    (void)job;
    (void)ud;
    if (r->kind < MW_LOOP_POP3_STATUS || r->kind > MW_LOOP_POP3_END) abort();
    if (r->len && !r->data) abort();
    if (r->uid && strlen(r->uid) > 70) abort(); /* RFC 1939 §7 bound kept */
    return 0;
}

static void drain(int s)
{
    char buf[4096];
    while (recv(s, buf, sizeof buf, MSG_DONTWAIT) > 0) {}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_store) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(g_dir, sizeof g_dir, "%s/mw-fuzz-loop-XXXXXX", base);
        if (!mkdtemp(g_dir) || mw_store_open(&g_store, MW_STORE_MAILDIR, g_dir, NULL, NULL))
            abort();
    }
    if (size < 1) return 0;
    static const unsigned windows[] = {1, 2, 4, 16};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) != 0) abort();
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.user = "fuzz";
    o.password = "secret";
    o.allow_plaintext = 1;
    o.tls = MW_TLS_NONE;
    o.keep = data[0] & 1;
    o.window = windows[(data[0] >> 1) & 3];
    o.store = g_store;
    uint8_t flags = data[0];
    if (flags & 8) {
        o.plan = plan_cb;
        o.commit = commit_cb;
        o.plan_userdata = &flags;
    }
    int ended = 0;
    mw_loop_job *job = NULL;
    if (flags & 128) {
        static const mw_loop_pop3_cmd cmds[] = {
            {MW_LOOP_POP3_LIST, 0, 0, 0},          {MW_LOOP_POP3_UIDL, 1, 0, 0},
            {MW_LOOP_POP3_RETR, 1, 0, 0},          {MW_LOOP_POP3_TOP, 2, 3, 0},
            {MW_LOOP_POP3_UIDL, 0, 0, 0},          {MW_LOOP_POP3_LIST, 2, 0, 0},
            {MW_LOOP_POP3_RETR, 1, 0, UINT64_MAX}, {MW_LOOP_POP3_CAPA, 0, 0, 0},
            {MW_LOOP_POP3_LAST, 0, 0, 0},          {MW_LOOP_POP3_DELE, 1, 0, 3},
            {MW_LOOP_POP3_STAT, 0, 0, 0},          {MW_LOOP_POP3_NOOP, 0, 0, 0},
            {MW_LOOP_POP3_RSET, 0, 0, 0},
        };
        size_t from = (size_t)(flags & 15) % (sizeof cmds / sizeof cmds[0]);
        o.auth = flags & 16 ? MW_POP3_AUTH_USER : MW_POP3_AUTH_AUTO;
        if (mwi_loop_add_pop3_cmds_fd(loop, &job, &o, cmds + from,
                                      sizeof cmds / sizeof cmds[0] - from, reply_cb, NULL, sv[0],
                                      done_cb, &ended, NULL) != 0)
            abort();
    } else if (mwi_loop_add_pop3_fetch_fd(loop, &job, &o, sv[0], done_cb, &ended, NULL) != 0) {
        abort();
    } else if ((flags & 0x79) == 0x79) {
        mwi_loop_pop3_on_headers(job, headers_cb, top_fail_cb, NULL);
        mwi_loop_pop3_set_message_cap(job, 4096);
    }
    size_t i = 1;
    while (i < size && mw_loop_running(loop)) {
        size_t n = 1 + data[i++] % 64;
        if (n > size - i) n = size - i;
        if (n && send(sv[1], data + i, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) drain(sv[1]);
        i += n;
        mw_loop_action(loop, sv[0], MW_LOOP_IN | MW_LOOP_OUT);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
        drain(sv[1]);
    }
    close(sv[1]);
    /* The end of the stream must end the job: bytes still buffered are
     * taken a budget at a time, so a few rounds may be needed. */
    for (int round = 0; round < 1000 && mw_loop_running(loop); round++) {
        mw_loop_action(loop, sv[0], MW_LOOP_IN | MW_LOOP_OUT);
        mw_loop_action(loop, MW_LOOP_TIMEOUT, 0);
    }
    if (mw_loop_running(loop) || ended != 1) abort();
    mw_loop_free(loop);
    clean();
    return 0;
}
