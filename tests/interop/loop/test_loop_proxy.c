/* Loop jobs through proxies (src/loop/lproxy.c over src/net/proxy_hs.c),
 * against the real Dovecot and Postfix (users v9, v10; tests/servers/
 * README.md) and tests/tools/proxy.py, all on one loop at once:
 *   v10 fetches over POP3S from "mail.proxy-only.invalid" through
 *       socks5h://: a name only the proxy knows (proxy.py --alias); the
 *       loop never looks it up, TLS checks the certificate against the
 *       servername "localhost";
 *   the same name through socks5://: the loop looks it up itself (the
 *       test's hosts file and a nameserver that is not there): MW_ENET,
 *       the proxy never asked;
 *   the same name through socks5h:// without a servername: MW_ECERT, TLS
 *       verifies the mail server's name, never the proxy's address;
 *   v9 sends to itself through Postfix submission (STARTTLS, AUTH PLAIN)
 *       through http:// CONNECT with Basic credentials;
 *   a proxy that accepts and never answers: the job's own connect timeout
 *       ends it with src/net's words.
 * Deadlines are generous bounds, never measurements.  TAP.
 *
 *   test_loop_proxy PROXY_PY */
#include "mailwire/loop.h"
#include "loop/loop_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NMSG  3
#define PNAME "mail.proxy-only.invalid"

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct job {
    const char *what;
    int results, code, looked_up, sent;
    char msg[320];
    mw_store *store;
    char local[256];
} job;

static void done_cb(mw_loop_job *j, const mw_loop_result *res, void *ud)
{
    job *jb = ud;
    (void)j;
    jb->results++;
    jb->code = res->code;
    jb->sent = res->sent;
    snprintf(jb->msg, sizeof jb->msg, "%s", res->err->message);
}

/* The info lines as TAP comments; a lookup of the proxy-only name noted. */
static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    job *jb = ud;
    if (dir != MW_TRACE_INFO) return;
    printf("# %s: %.*s\n", jb->what, (int)len, line);
    if (len >= 11 + strlen(PNAME) && !memcmp(line, "looking up " PNAME, 11 + strlen(PNAME)))
        jb->looked_up = 1;
}

static int count_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int server_count(const char *root, const char *user)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s/Maildir/new", root, user);
    int a = count_dir(p);
    snprintf(p, sizeof p, "%s/%s/Maildir/cur", root, user);
    int b = count_dir(p);
    return a < 0 || b < 0 ? -1 : a + b;
}

/* Empties user's server Maildir and puts NMSG messages in it. */
static int fill(const char *root, const char *user, uid_t uid, gid_t gid)
{
    char p[512];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/%s", root, user, i ? "cur" : "new");
        mkdir(p, 0700);
        DIR *d = opendir(p);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char f[1024];
            if (e->d_name[0] != '.' && snprintf(f, sizeof f, "%s/%s", p, e->d_name) < 1024)
                unlink(f);
        }
        if (d) closedir(d);
    }
    for (int k = 1; k <= NMSG; k++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/new/%lld%02d.P%d.proxy", root, user,
                 (long long)time(NULL), k, (int)getpid());
        FILE *f = fopen(p, "wb");
        if (!f) return -1;
        fprintf(f, "From: v@test.domain\nTo: %s@test.domain\nSubject: tunnel %d\n\nbody %d\n", user,
                k, k);
        if (fclose(f) != 0 || chown(p, uid, gid) != 0) return -1;
    }
    return 0;
}

static int read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return (int)n;
}

/* Starts proxy.py with flags (NULL-terminated, at most 4) in dir; its port
 * or -1.  The wait for its port file is a bound against a hang. */
static int start_proxy(const char *script, const char *dir, const char *const *flags, pid_t *pid)
{
    char portfile[300], log[300];
    snprintf(portfile, sizeof portfile, "%s/port", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    if (mkdir(dir, 0700) != 0) return -1;
    const char *argv[10] = {"python3", script};
    int n = 2;
    for (int i = 0; flags[i] && i < 4; i++)
        argv[n++] = flags[i];
    argv[n++] = portfile;
    argv[n++] = log;
    argv[n] = NULL;
    *pid = fork();
    if (*pid == 0) {
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    char buf[32];
    for (int i = 0; i < 600; i++) { /* 60 s at most */
        if (read_file(portfile, buf, sizeof buf) > 0) return atoi(buf);
        usleep(100000);
    }
    return -1;
}

/* A listener that never accepts: the kernel completes the connect, no
 * answer ever comes. */
static int silent_listener(int *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 8) ||
        getsockname(s, (struct sockaddr *)&a, &al))
        return -1;
    *port = ntohs(a.sin_port);
    return s;
}

enum { J_NAME, J_LOCAL, J_CERT, J_SILENT, NFETCH };
static job jobs[NFETCH] = {{.what = "socks5h " PNAME},
                           {.what = "socks5 " PNAME},
                           {.what = "socks5h without servername"},
                           {.what = "a silent proxy"}};
static job sendjob = {.what = "send through http"};

static int add_jobs(mw_loop *loop, const char *urls[NFETCH], const char *http_url, const char *ca)
{
    static mw_tls_opts tls = MW_TLS_OPTS_INIT, tls_noname = MW_TLS_OPTS_INIT;
    tls.ca_file = tls_noname.ca_file = ca;
    tls.servername = "localhost"; /* the name in the servers' certificate */
    mw_error err = {0};
    int added = 0;
    for (int i = 0; i < NFETCH; i++) {
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = PNAME;
        o.port = (unsigned)strtoul(getenv("MW_POP3S_PORT"), NULL, 10);
        o.tls = MW_TLS_IMPLICIT;
        o.tls_opts = i == J_CERT ? &tls_noname : &tls;
        o.user = "v10";
        o.password = "pw-v10";
        o.store = jobs[i].store;
        o.trace = trace_cb;
        o.trace_userdata = &jobs[i];
        o.proxy = urls[i];
        if (i == J_SILENT) o.connect_timeout_ms = 1500; /* must pass: nothing answers */
        added += mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, &jobs[i], &err) == 0;
    }
    static const char *const to[] = {"v9@test.domain"};
    static const char msg[] = "From: v9@test.domain\nTo: v9@test.domain\nSubject: tunnel\n\nhi\n";
    mw_loop_smtp_opts so = MW_LOOP_SMTP_OPTS_INIT;
    so.host = "127.0.0.1";
    so.port = (unsigned)strtoul(getenv("MW_SMTP_PORT"), NULL, 10);
    so.tls_opts = &tls_noname; /* the certificate names 127.0.0.1 too */
    so.user = "v9";
    so.password = "pw-v9";
    so.from = "v9@test.domain";
    so.rcpt = to;
    so.nrcpt = 1;
    so.message = msg;
    so.message_len = sizeof msg - 1;
    so.trace = trace_cb;
    so.trace_userdata = &sendjob;
    so.proxy = http_url;
    added += mw_loop_add_smtp_send(loop, NULL, &so, done_cb, &sendjob, &err) == 0;
    return added;
}

static void check(const char *root, const char *plog, const char *hlog)
{
    for (int i = 0; i < NFETCH; i++)
        printf("# %s: %d %s (%d results)\n", jobs[i].what, jobs[i].code, jobs[i].msg,
               jobs[i].results);
    printf("# send: %d %s\n", sendjob.code, sendjob.msg);
    char d[400], pl[4096] = "", hl[4096] = "", want[200];
    read_file(plog, pl, sizeof pl);
    read_file(hlog, hl, sizeof hl);
    printf("# proxy log: %s# http proxy log: %s", pl, hl);
    snprintf(d, sizeof d, "%s/new", jobs[J_NAME].local);
    snprintf(want, sizeof want, "socks5 %s %s\n", PNAME, getenv("MW_POP3S_PORT"));
    ok(jobs[J_NAME].code == 0 && count_dir(d) == NMSG && server_count(root, "v10") == 0 &&
           strstr(pl, want),
       "POP3S through socks5h:// to a name only the proxy knows: all fetched and deleted");
    ok(!jobs[J_NAME].looked_up && jobs[J_LOCAL].looked_up,
       "socks5h:// never looks the name up on the loop; socks5:// does");
    ok((jobs[J_LOCAL].code == MW_ENET || jobs[J_LOCAL].code == MW_ETIMEOUT) &&
           strstr(jobs[J_LOCAL].msg, PNAME) && !strstr(pl, "socks5-ip"),
       "socks5:// with a name the loop cannot find: the lookup's error, the proxy never asked");
    ok(jobs[J_CERT].code == MW_ECERT && strstr(jobs[J_CERT].msg, PNAME),
       "TLS through the tunnel checks the mail server's name, not the proxy: MW_ECERT");
    ok(jobs[J_SILENT].code == MW_ETIMEOUT && strstr(jobs[J_SILENT].msg, "did not answer within"),
       "a proxy that never answers: the connect timeout ends the job, src/net's words");
    snprintf(want, sizeof want, "http 127.0.0.1 %s\n", getenv("MW_SMTP_PORT"));
    ok(sendjob.code == 0 && sendjob.sent == 1 && strstr(hl, want),
       "an SMTP send (STARTTLS, AUTH PLAIN) through http:// CONNECT with Basic credentials");
    int once = sendjob.results == 1;
    for (int i = 0; i < NFETCH; i++)
        once &= jobs[i].results == 1;
    ok(once, "each job reported exactly one result");
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

int main(int argc, char **argv)
{
    const char *ca = getenv("MW_CA_FILE"), *root = getenv("MW_MAILDIR_ROOT");
    const char *own = getenv("MW_MAIL_OWNER");
    if (!getenv("MW_POP3S_PORT") || !getenv("MW_SMTP_PORT") || !ca || !root || !own || argc < 2) {
        printf("1..1\nok 1 - loop through proxies # SKIP servers not running\n");
        return 0;
    }
    printf("1..11\n");
    uid_t uid = (uid_t)strtoul(own, NULL, 10);
    gid_t gid = (gid_t)strtoul(strchr(own, ':') ? strchr(own, ':') + 1 : own, NULL, 10);
    char tmpl[] = "/tmp/mw-lproxy-XXXXXX";
    char *base = mkdtemp(tmpl);
    char pdir[300], hdir[300], plog[320], hlog[320], rc_path[300], hosts_path[300];
    snprintf(pdir, sizeof pdir, "%s/socks", base ? base : "/nonexistent");
    snprintf(hdir, sizeof hdir, "%s/http", base ? base : "/nonexistent");
    snprintf(plog, sizeof plog, "%s/log", pdir);
    snprintf(hlog, sizeof hlog, "%s/log", hdir);
    snprintf(rc_path, sizeof rc_path, "%s/resolv.conf", base ? base : "/nonexistent");
    snprintf(hosts_path, sizeof hosts_path, "%s/hosts", base ? base : "/nonexistent");
    static const char *const pflags[] = {"--alias", PNAME "=127.0.0.1", NULL};
    static const char *const hflags[] = {"--auth", "bob:pw2", NULL};
    pid_t ppid = -1, hpid = -1;
    int pport = base ? start_proxy(argv[1], pdir, pflags, &ppid) : -1;
    int hport = base ? start_proxy(argv[1], hdir, hflags, &hpid) : -1;
    int sport = 0, silent = silent_listener(&sport);
    /* No nameserver listens on port 1: the name is found nowhere here. */
    int setup =
        pport > 0 && hport > 0 && silent >= 0 &&
        write_file(rc_path, "nameserver [127.0.0.1]:1\noptions timeout:5 attempts:1\n") == 0 &&
        write_file(hosts_path, "127.0.0.1 localhost\n") == 0 && fill(root, "v10", uid, gid) == 0;
    for (int i = 0; setup && i < NFETCH; i++) {
        snprintf(jobs[i].local, sizeof jobs[i].local, "%s/local%d", base, i);
        setup = mw_store_open(&jobs[i].store, MW_STORE_MAILDIR, jobs[i].local, NULL, NULL) == 0;
    }
    ok(setup, "two proxies and a silent listener up, v10's mailbox filled");
    char u[NFETCH][100], hu[100];
    snprintf(u[J_NAME], sizeof u[0], "socks5h://127.0.0.1:%d", pport);
    snprintf(u[J_LOCAL], sizeof u[0], "socks5://127.0.0.1:%d", pport);
    snprintf(u[J_CERT], sizeof u[0], "socks5h://127.0.0.1:%d", pport);
    snprintf(u[J_SILENT], sizeof u[0], "socks5h://127.0.0.1:%d", sport);
    snprintf(hu, sizeof hu, "http://bob:pw2@127.0.0.1:%d", hport);
    const char *urls[NFETCH] = {u[0], u[1], u[2], u[3]};
    mw_loop *loop = NULL;
    mw_error err = {0};
    ok(setup && mw_loop_new(&loop, NULL, &err) == 0 &&
           mwi_loop_set_resolv_paths(loop, rc_path, hosts_path) == 0,
       "a loop reading the test's resolv.conf and hosts file");
    if (!loop) {
        printf("Bail out! setup failed\n");
        return 1;
    }
    ok(add_jobs(loop, urls, hu, ca) == NFETCH + 1, "five jobs through proxies added");
    int rc = mw_loop_run(loop, mw_now_ms() + 300000, &err); /* a bound against a hang */
    ok(rc == 0 && mw_loop_running(loop) == 0, "every job ended");
    check(root, plog, hlog);
    mw_loop_free(loop);
    for (int i = 0; i < NFETCH; i++)
        mw_store_free(jobs[i].store);
    if (ppid > 0) kill(ppid, SIGKILL);
    if (hpid > 0) kill(hpid, SIGKILL);
    if (ppid > 0) waitpid(ppid, NULL, 0);
    if (hpid > 0) waitpid(hpid, NULL, 0);
    close(silent);
    return failed;
}
