/* The loop's SMTP send job against the real Postfix (submission, STARTTLS,
 * AUTH PLAIN through Dovecot; tests/servers/README.md), then sends and a
 * POP3 fetch mixed on one loop.  Users: a8 sends, a9 and a10 receive.
 * Phase 1: 5 messages to a9 at once, one to an unknown user (550 at
 * RCPT: MW_ESERVER), one with a wrong password (MW_EAUTH); the 5 must
 * arrive in a9's Maildir, dot lines intact.  Phase 2, one loop: a POP3
 * fetch of a9 (the 5 messages, stored and deleted) while 3 messages go to
 * a10.  TAP; waits are bounds, never measurements. */
#include "mailwire/loop.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct res {
    int n, code, sent, quit_ok, reply_code;
    uint64_t stored, deleted;
    char msg[320];
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    t->sent = r->sent;
    t->quit_ok = r->quit_ok;
    t->stored = r->stored;
    t->deleted = r->deleted;
    t->reply_code = r->err->reply_code;
    snprintf(t->msg, sizeof t->msg, "%s", r->err->message);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 20);
    *len = b ? fread(b, 1, (1 << 20) - 1, f) : 0;
    fclose(f);
    if (b) b[*len] = 0;
    return b;
}

/* How many of the subjects appear in files of dir (new/ and cur/ of a
 * Maildir), each file checked to hold the dot lines intact. */
static int count_subjects(const char *md, char subj[][64], int n, int *intact)
{
    int found = 0;
    *intact = 1;
    for (int k = 0; k < n; k++) {
        int hit = 0;
        for (int s = 0; s < 2 && !hit; s++) {
            char dir[600];
            snprintf(dir, sizeof dir, "%s/%s", md, s ? "cur" : "new");
            DIR *d = opendir(dir);
            struct dirent *e;
            while (d && (e = readdir(d)) && !hit) {
                if (e->d_name[0] == '.') continue;
                char f[1200];
                size_t len;
                if (snprintf(f, sizeof f, "%s/%s", dir, e->d_name) >= (int)sizeof f) continue;
                char *b = slurp(f, &len);
                if (b && strstr(b, subj[k])) {
                    hit = 1;
                    if (!strstr(b, "\n.dot line\n..two dots\n")) *intact = 0;
                }
                free(b);
            }
            if (d) closedir(d);
        }
        found += hit;
    }
    return found;
}

int main(void)
{
    const char *sport = getenv("MW_SMTP_PORT"), *pport = getenv("MW_POP3_PORT");
    const char *ca = getenv("MW_CA_FILE"), *root = getenv("MW_MAILDIR_ROOT");
    if (!sport || !pport || !ca || !root) {
        printf("1..1\nok 1 - loop smtp # SKIP servers not running\n");
        return 0;
    }
    printf("1..9\n");
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = ca;
    char subj[8][64], msgs[8][1024];
    for (int k = 0; k < 8; k++) {
        snprintf(subj[k], sizeof subj[k], "loop-smtp %d-%lld-%d", (int)getpid(),
                 (long long)time(NULL), k);
        snprintf(msgs[k], sizeof msgs[k],
                 "From: a8@test.domain\nTo: a%d@test.domain\nSubject: %s\n\n.dot line\n"
                 "..two dots\n.\nlast line\n",
                 k < 5 ? 9 : 10, subj[k]);
    }
    const char *to9[] = {"a9@test.domain"}, *to10[] = {"a10@test.domain"};
    const char *nobody[] = {"nobody-loop@test.domain"};
    mw_loop *loop = NULL;
    if (mw_loop_new(&loop, NULL, NULL) != 0) return 1;
    res r[8];
    memset(r, 0, sizeof r);
    for (int k = 0; k < 7; k++) {
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "127.0.0.1";
        o.port = (unsigned)strtoul(sport, NULL, 10);
        o.tls_opts = &tls;
        o.user = "a8";
        o.password = k == 6 ? "wrong-password" : "pw-a8";
        o.from = "a8@test.domain";
        o.rcpt = k == 5 ? nobody : to9;
        o.nrcpt = 1;
        o.message = msgs[k < 5 ? k : 0];
        o.message_len = strlen(o.message);
        mw_error err = {0};
        if (mw_loop_add_smtp_send(loop, NULL, &o, done_cb, &r[k], &err) != 0)
            printf("# send %d not added: %s\n", k, err.message);
    }
    mw_error err = {0};
    int rc = mw_loop_run(loop, mw_now_ms() + 300000, &err);
    int good = rc == 0;
    for (int k = 0; k < 7; k++)
        printf("# send %d: %d %s\n", k, r[k].code, r[k].msg);
    for (int k = 0; k < 5; k++)
        if (r[k].n != 1 || r[k].code != 0 || !r[k].sent || !r[k].quit_ok) good = 0;
    ok(good, "5 sends at once through STARTTLS + AUTH PLAIN: 0, data accepted, 221 to QUIT");
    ok(r[5].n == 1 && r[5].code == MW_ESERVER && r[5].reply_code == 550 && !r[5].sent,
       "unknown recipient: MW_ESERVER with the 550 reply");
    ok(r[6].n == 1 && r[6].code == MW_EAUTH && !r[6].sent, "wrong password: MW_EAUTH");
    char md9[512];
    snprintf(md9, sizeof md9, "%s/a9/Maildir", root);
    int found = 0, intact = 0;
    /* Postfix delivers within ~0.1 s usually; 60 s is a bound, not a measure. */
    for (int i = 0; i < 600 && (found = count_subjects(md9, subj, 5, &intact)) < 5; i++)
        usleep(100 * 1000);
    ok(found == 5, "the 5 messages arrived in a9's Maildir");
    ok(intact, "their dot lines arrived intact (dot-stuffed on the wire)");

    /* Phase 2: one loop, a fetch and sends at once. */
    char tmpl[] = "/tmp/mw-loop-smtp-XXXXXX";
    char *base = mkdtemp(tmpl);
    mw_store *store = NULL;
    if (!base || mw_store_open(&store, MW_STORE_MAILDIR, base, NULL, NULL) != 0) return 1;
    mw_loop_pop3_opts po = MW_LOOP_POP3_OPTS_INIT;
    po.host = "127.0.0.1";
    po.port = (unsigned)strtoul(pport, NULL, 10);
    po.tls_opts = &tls;
    po.user = "a9";
    po.password = "pw-a9";
    po.store = store;
    res fetch = {0};
    int added = mw_loop_add_pop3_fetch(loop, NULL, &po, done_cb, &fetch, &err) == 0;
    for (int k = 5; k < 8; k++) {
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "127.0.0.1";
        o.port = (unsigned)strtoul(sport, NULL, 10);
        o.tls_opts = &tls;
        o.user = "a8";
        o.password = "pw-a8";
        o.from = "a8@test.domain";
        o.rcpt = to10;
        o.nrcpt = 1;
        o.message = msgs[k];
        o.message_len = strlen(msgs[k]);
        memset(&r[k], 0, sizeof r[k]);
        added += mw_loop_add_smtp_send(loop, NULL, &o, done_cb, &r[k], &err) == 0;
    }
    ok(added == 4 && mw_loop_running(loop) == 4, "one loop: a POP3 fetch and 3 sends running");
    rc = mw_loop_run(loop, mw_now_ms() + 300000, &err);
    printf("# fetch a9: %d stored %llu deleted %llu %s\n", fetch.code,
           (unsigned long long)fetch.stored, (unsigned long long)fetch.deleted, fetch.msg);
    ok(rc == 0 && fetch.n == 1 && fetch.code == 0 && fetch.stored >= 5 &&
           fetch.deleted == fetch.stored,
       "the fetch of a9 stored and deleted every message");
    int intact2 = 0;
    ok(count_subjects(base, subj, 5, &intact2) == 5 && intact2,
       "the 5 sent messages are in the local Maildir, dot lines intact");
    ok(r[5].code == 0 && r[6].code == 0 && r[7].code == 0 && r[5].sent && r[6].sent && r[7].sent,
       "the 3 sends beside the fetch: 0, data accepted");
    mw_loop_free(loop);
    mw_store_free(store);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) printf("# cleanup of %s failed\n", base);
    return failed;
}
