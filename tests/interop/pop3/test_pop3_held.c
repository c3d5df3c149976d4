/* The blocking POP3 API, a thin loop over the loop's POP3 machine held
 * between its commands (src/loop/pop3_held.c), against the real Dovecot
 * of tests/servers: one long session over STLS (verified against the
 * test CA) in which every kind of call follows every other, a -ERR and a
 * receiver's stop leave the session usable, and what was asked for is
 * what the server did (checked by a second session).  Users i1 and i2.
 * Prints TAP; skipped when the servers are not running. */
#include "tap.h"
#include "mailwire/pop3.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NMSG 6

static const char *env(const char *n)
{
    const char *v = getenv(n);
    return v && *v ? v : NULL;
}

static unsigned owner_uid, owner_gid;

static void empty_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char path[2048];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
}

/* A fresh Maildir for user with NMSG messages; message i (1-based) has
 * i * 700 body lines, so sizes differ and the bigger ones span reads. */
static int fill(const char *user)
{
    const char *root = env("MW_MAILDIR_ROOT");
    char p[2048];
    const char *parts[] = {"", "/Maildir", "/Maildir/new", "/Maildir/cur", "/Maildir/tmp"};
    for (size_t i = 0; i < 5; i++) {
        snprintf(p, sizeof p, "%s/%s%s", root, user, parts[i]);
        if (mkdir(p, 0700) && errno != EEXIST) return -1;
        if (chown(p, owner_uid, owner_gid)) return -1;
    }
    snprintf(p, sizeof p, "%s/%s/Maildir/new", root, user);
    empty_dir(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", root, user);
    empty_dir(p);
    snprintf(p, sizeof p, "%s/%s/Maildir", root, user);
    DIR *d = opendir(p);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "dovecot", 7)) {
            char f[2400];
            snprintf(f, sizeof f, "%s/%s", p, e->d_name);
            unlink(f);
        }
    if (d) closedir(d);
    for (int i = 1; i <= NMSG; i++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/new/%ld.M%dP%d.held", root, user, (long)time(NULL), i,
                 (int)getpid());
        FILE *f = fopen(p, "w");
        if (!f) return -1;
        fprintf(f, "From: a@test.domain\nTo: %s@test.domain\nSubject: held %d\n\n", user, i);
        for (int k = 0; k < i * 700; k++)
            fprintf(f, "%s line %d of message %d\n", k % 50 ? "" : ".", k, i);
        if (fclose(f) || chown(p, owner_uid, owner_gid)) return -1;
    }
    return 0;
}

static char password[64];
static mw_error open_err;

static int open_as(mw_pop3 **p, const char *user, int skip_stat)
{
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    static mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.ca_file = env("MW_CA_FILE");
    o.tls_opts = &t;
    o.port = (unsigned)atoi(env("MW_POP3_PORT"));
    o.user = user;
    snprintf(password, sizeof password, "pw-%s", user);
    o.password = password;
    o.auth = MW_POP3_AUTH_USER;
    o.skip_stat = skip_stat;
    o.window = 2; /* ranges refill their window several times */
    return mw_pop3_open(p, "localhost", &o, &open_err);
}

typedef struct got {
    uint64_t ends, octets, last_msg;
    int order_ok;
    uint64_t stop_at; /* the callback says 7 in this message's data */
} got;

static int on_msg(uint64_t msg, const char *data, size_t len, const mw_pop3_retr_info *info,
                  void *ud)
{
    got *g = ud;
    if (data) {
        g->octets += len;
        return msg == g->stop_at ? 7 : 0;
    }
    if (msg <= g->last_msg || !info->complete) g->order_ok = 0;
    g->last_msg = msg;
    g->ends++;
    return 0;
}

static int count_sink(const char *data, size_t len, void *ud)
{
    (void)data;
    *(uint64_t *)ud += len;
    return *(uint64_t *)ud > 4000 ? 9 : 0; /* stops inside the message */
}

/* One session, every kind of call after every other. */
static void long_session(void)
{
    mw_pop3 *p = NULL;
    int rc = open_as(&p, "i1", 1);
    tap(rc == 0, "held: open over STLS as i1 without STAT (%s)", rc ? open_err.message : "");
    if (rc) return;
    mw_tls_info ti;
    tap(mw_pop3_tls_info(p, &ti) == 0 && ti.verified, "held: TLS details of the STLS stream");
    mw_pop3_listing *l = NULL;
    mw_pop3_uid *u = NULL;
    size_t n = 0, nu = 0;
    int urc = -1;
    rc = mw_pop3_list_uidl(p, &l, &n, &u, &nu, &urc);
    tap(rc == 0 && urc == 0 && n == NMSG && nu == NMSG && mw_pop3_count(p) == NMSG,
        "held: LIST and UIDL together, the count from the listing (%zu, %zu)", n, nu);
    uint64_t last = 0;
    rc = mw_pop3_last(p, &last);
    tap(rc == MW_EUNSUPPORTED && strstr(mw_pop3_error(p)->message, "no LAST"),
        "held: LAST refused by Dovecot: MW_EUNSUPPORTED (%s)", mw_pop3_error(p)->message);
    tap(mw_pop3_noop(p) == 0, "held: NOOP after the -ERR");
    got g = {0, 0, 0, 1, 0};
    mw_pop3_listing want[3] = {l[1], l[3], l[5]};
    rc = mw_pop3_retr_msgs(p, want, 3, 8192, on_msg, &g);
    uint64_t sizes = l[1].size + l[3].size + l[5].size;
    tap(rc == 0 && g.ends == 3 && g.order_ok && g.octets == sizes,
        "held: RETR of messages 2, 4, 6 in an 8 KiB window (%llu of %llu octets)",
        (unsigned long long)g.octets, (unsigned long long)sizes);
    uint64_t seen = 0;
    rc = mw_pop3_retr(p, 5, count_sink, &seen, NULL);
    tap(rc == 9, "held: a sink that stops inside message 5: its code back (%d)", rc);
    uint64_t c = 0, o = 0;
    rc = mw_pop3_stat(p, &c, &o);
    tap(rc == 0 && c == NMSG, "held: STAT after the stop: the reply was read to its end");
    got g2 = {0, 0, 0, 1, 3};
    rc = mw_pop3_retr_range(p, 1, NMSG, -1, on_msg, &g2);
    tap(rc == 7 && g2.ends == 2, "held: a range stopped in message 3: ends of 1 and 2 only (%llu)",
        (unsigned long long)g2.ends);
    char uid[71];
    tap(mw_pop3_uidl_one(p, 3, uid) == 0 && !strcmp(uid, u[2].uid),
        "held: UIDL 3 after the stopped range");
    uint64_t nums[3] = {2, 3, 4};
    size_t deleted = 0;
    tap(mw_pop3_dele(p, 3) == 0, "held: DELE 3");
    rc = mw_pop3_dele_msgs(p, nums, 3, &deleted);
    tap(rc == MW_ESERVER && deleted == 2,
        "held: DELE 2, 3, 4 with 3 deleted already: the -ERR named, the others done (%zu)",
        deleted);
    tap(mw_pop3_rset(p) == 0 && mw_pop3_dele_range(p, 5, 6) == 0, "held: RSET, then DELE 5-6");
    tap(mw_pop3_capa(p) == 0 && mw_pop3_has_capa(p, "UIDL"), "held: CAPA again");
    int confirmed = 0;
    tap(mw_pop3_quit(p, &confirmed) == 0 && confirmed, "held: QUIT confirmed");
    tap(mw_pop3_noop(p) == MW_ESTATE, "held: nothing after QUIT");
    mw_pop3_list_free(l);
    mw_pop3_uidl_free(u);
    mw_pop3_free(p);
    /* What the server did: 5 and 6 gone, RSET undid 2, 3, 4. */
    rc = open_as(&p, "i1", 0);
    l = NULL;
    n = 0;
    if (!rc) rc = mw_pop3_list(p, &l, &n);
    tap(rc == 0 && n == 4 && l[3].msg == 4, "held: a second session lists messages 1-4 (%zu)", n);
    mw_pop3_list_free(l);
    if (p) mw_pop3_quit(p, NULL);
    mw_pop3_free(p);
}

/* A session broken by the server's end: MW_ESTATE after. */
static void wrong_password(void)
{
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    static mw_tls_opts t = MW_TLS_OPTS_INIT;
    t.ca_file = env("MW_CA_FILE");
    o.tls_opts = &t;
    o.port = (unsigned)atoi(env("MW_POP3_PORT"));
    o.user = "i2";
    o.password = "not-pw-i2";
    o.auth = MW_POP3_AUTH_USER;
    mw_pop3 *p = NULL;
    int rc = mw_pop3_open(&p, "localhost", &o, &open_err);
    tap(rc == MW_EAUTH && p == NULL && strstr(open_err.message, "PASS refused"),
        "held: a wrong password: MW_EAUTH from the machine's login (%s)", open_err.message);
}

int main(void)
{
    if (!env("MW_POP3_PORT") || !env("MW_MAILDIR_ROOT") || !env("MW_MAIL_OWNER")) {
        printf("1..1\nok 1 - interop pop3 held # SKIP servers not running\n");
        return 0;
    }
    if (sscanf(env("MW_MAIL_OWNER"), "%u:%u", &owner_uid, &owner_gid) != 2 || fill("i1") ||
        fill("i2")) {
        printf("1..1\nnot ok 1 - the Maildirs of i1 and i2 cannot be filled\n");
        return 1;
    }
    long_session();
    wrong_password();
    return tap_done();
}
