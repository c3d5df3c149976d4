/* Loop jobs whose host is a name (src/resolve through src/loop/lconn.c),
 * against the real Dovecot (tests/servers/README.md, users r4..r10) and
 * the scripted DNS server (tests/tools/dnsserver.py), all on one loop at
 * once:
 *   r10 fetches from "mail.hosts", found in a hosts file of the test's own
 *       (::1 first, where nothing listens: the next address is tried);
 *   r9  fetches from "mail.test", answered by the scripted DNS server;
 *   r8  "mail.hosts" without a certificate name: MW_ECERT, the name checked
 *       is the host name, not its address;
 *   r7  "nx.test": MW_ENET naming NXDOMAIN, nothing fetched;
 *   and "silent.test" (no answer) ends by the job's connect deadline;
 *   r5  fetches from "mail2.test": SERVFAIL from the first server, the
 *       second answers (the job's descriptor changes: a new socket);
 *   r4  fetches from "tcmail.test": truncated over UDP, then over TCP;
 *   r6  sends to itself through Postfix at "mail.test" (the SMTP job).
 * Every message of r10 and r9 is stored and deleted on the server; r7 and
 * r8 keep theirs.  Deadlines are generous bounds, never measurements.  TAP.
 *
 *   test_loop_resolve DNSSERVER_PY */
#include "mailwire/loop.h"
#include "loop/loop_int.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NMSG 3

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct job {
    const char *user, *host;
    int results, code;
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
    snprintf(jb->msg, sizeof jb->msg, "%s", res->err->message);
}

/* The jobs' info lines as TAP comments: what was looked up, tried. */
static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    const job *jb = ud;
    if (dir == MW_TRACE_INFO) printf("# %s %s: %.*s\n", jb->user, jb->host, (int)len, line);
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
        snprintf(p, sizeof p, "%s/%s/Maildir/new/%lld%02d.P%d.resolve", root, user,
                 (long long)time(NULL), k, (int)getpid());
        FILE *f = fopen(p, "wb");
        if (!f) return -1;
        fprintf(f, "From: r@test.domain\nTo: %s@test.domain\nSubject: by name %d\n\nbody %d\n",
                user, k, k);
        if (fclose(f) != 0 || chown(p, uid, gid) != 0) return -1;
    }
    return 0;
}

/* Starts the scripted DNS server; its port, and its pid and stdin (closing
 * it ends the server). */
static int start_dns(const char *script, const char *role, pid_t *pid, int *in_fd)
{
    int to[2], from[2];
    if (pipe(to) || pipe(from)) return -1;
    *pid = fork();
    if (*pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execlp("python3", "python3", script, "--role", role, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    *in_fd = to[1];
    char buf[32] = {0};
    size_t n = 0; /* up to the newline: the server writes nothing after it */
    while (n < sizeof buf - 1 && read(from[0], buf + n, 1) == 1 && buf[n] != '\n')
        n++;
    close(from[0]);
    return n > 0 ? atoi(buf) : -1;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static job jobs[] = {{.user = "r10", .host = "mail.hosts"}, {.user = "r9", .host = "mail.test"},
                     {.user = "r8", .host = "mail.hosts"},  {.user = "r7", .host = "nx.test"},
                     {.user = "r7", .host = "silent.test"}, {.user = "r5", .host = "mail2.test"},
                     {.user = "r4", .host = "tcmail.test"}};
enum { NJOBS = sizeof jobs / sizeof jobs[0] };
static job sendjob = {.user = "r6", .host = "mail.test"};

/* The fetches, and a send through Postfix (r6 to itself), all by name.
 * Returns how many were added. */
static int add_jobs(mw_loop *loop, const char *port, const char *sport, const char *ca)
{
    static mw_tls_opts tls = MW_TLS_OPTS_INIT, tls_noname = MW_TLS_OPTS_INIT;
    tls.ca_file = tls_noname.ca_file = ca;
    tls.servername = "localhost"; /* the name in the servers' certificate */
    mw_error err = {0};
    int added = 0;
    for (int i = 0; i < NJOBS; i++) {
        char pw[16];
        snprintf(pw, sizeof pw, "pw-%s", jobs[i].user);
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = jobs[i].host;
        o.port = (unsigned)strtoul(port, NULL, 10);
        o.tls_opts = i == 2 ? &tls_noname : &tls;
        o.user = jobs[i].user;
        o.password = pw;
        o.store = jobs[i].store;
        o.trace = trace_cb;
        o.trace_userdata = &jobs[i];
        if (i == 4) o.connect_timeout_ms = 1000; /* the silent server: the job's deadline */
        added += mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, &jobs[i], &err) == 0;
    }
    static const char *const to[] = {"r6@test.domain"};
    static const char msg[] = "From: r6@test.domain\nTo: r6@test.domain\nSubject: by name\n\nhi\n";
    mw_loop_smtp_opts so = MW_LOOP_SMTP_OPTS_INIT;
    so.host = sendjob.host;
    so.port = (unsigned)strtoul(sport, NULL, 10);
    so.tls_opts = &tls;
    so.user = "r6";
    so.password = "pw-r6";
    so.from = "r6@test.domain";
    so.rcpt = to;
    so.nrcpt = 1;
    so.message = msg;
    so.message_len = sizeof msg - 1;
    so.trace = trace_cb;
    so.trace_userdata = &sendjob;
    added += mw_loop_add_smtp_send(loop, NULL, &so, done_cb, &sendjob, &err) == 0;
    return added;
}

static void check(const char *root)
{
    for (int i = 0; i < NJOBS; i++)
        printf("# %s %s: %d %s (%d results)\n", jobs[i].user, jobs[i].host, jobs[i].code,
               jobs[i].msg, jobs[i].results);
    printf("# send: %d %s\n", sendjob.code, sendjob.msg);
    char d[400];
    snprintf(d, sizeof d, "%s/new", jobs[0].local);
    ok(jobs[0].code == 0 && count_dir(d) == NMSG && server_count(root, "r10") == 0,
       "r10 by a hosts-file name (::1 first, then 127.0.0.1): all fetched and deleted");
    snprintf(d, sizeof d, "%s/new", jobs[1].local);
    ok(jobs[1].code == 0 && count_dir(d) == NMSG && server_count(root, "r9") == 0,
       "r9 by a name from the scripted DNS server: all fetched and deleted");
    ok(jobs[2].code == MW_ECERT && strstr(jobs[2].msg, "mail.hosts") &&
           server_count(root, "r8") == NMSG,
       "the certificate is checked against the host name: MW_ECERT, r8 untouched");
    ok(jobs[3].code == MW_ENET && strstr(jobs[3].msg, "nx.test: no such name (NXDOMAIN)") &&
           server_count(root, "r7") == NMSG,
       "an unknown name: MW_ENET naming NXDOMAIN and its server, r7 untouched");
    ok(jobs[4].code == MW_ETIMEOUT && strstr(jobs[4].msg, "silent.test"),
       "a name no server answers: MW_ETIMEOUT by the job's connect deadline");
    snprintf(d, sizeof d, "%s/new", jobs[5].local);
    ok(jobs[5].code == 0 && count_dir(d) == NMSG && server_count(root, "r5") == 0,
       "r5 by a name the first server fails (SERVFAIL), the second answers: all fetched");
    snprintf(d, sizeof d, "%s/new", jobs[6].local);
    ok(jobs[6].code == 0 && count_dir(d) == NMSG && server_count(root, "r4") == 0,
       "r4 by a name whose UDP reply is truncated, asked again over TCP: all fetched");
    ok(sendjob.code == 0, "an SMTP send to a name from the scripted DNS server (Postfix)");
    int once = sendjob.results == 1;
    for (int i = 0; i < NJOBS; i++)
        once &= jobs[i].results == 1;
    ok(once, "each job reported exactly one result");
}

int main(int argc, char **argv)
{
    const char *port = getenv("MW_POP3_PORT"), *ca = getenv("MW_CA_FILE");
    const char *root = getenv("MW_MAILDIR_ROOT"), *own = getenv("MW_MAIL_OWNER");
    const char *sport = getenv("MW_SMTP_PORT");
    if (!port || !sport || !ca || !root || !own || argc < 2) {
        printf("1..1\nok 1 - loop by name # SKIP servers not running\n");
        return 0;
    }
    printf("1..13\n");
    uid_t uid = (uid_t)strtoul(own, NULL, 10);
    gid_t gid = (gid_t)strtoul(strchr(own, ':') ? strchr(own, ':') + 1 : own, NULL, 10);
    char tmpl[] = "/tmp/mw-resolve-XXXXXX";
    char *base = mkdtemp(tmpl);
    pid_t dns_pid = -1, dns2_pid = -1;
    int dns_in = -1, dns2_in = -1;
    int dport = base ? start_dns(argv[1], "main", &dns_pid, &dns_in) : -1;
    int dport2 = base ? start_dns(argv[1], "backup", &dns2_pid, &dns2_in) : -1;
    char rc_path[300], hosts_path[300], text[200];
    snprintf(rc_path, sizeof rc_path, "%s/resolv.conf", base ? base : "/nonexistent");
    snprintf(hosts_path, sizeof hosts_path, "%s/hosts", base ? base : "/nonexistent");
    snprintf(text, sizeof text,
             "nameserver [127.0.0.1]:%d\nnameserver [127.0.0.1]:%d\noptions timeout:30 "
             "attempts:2\n",
             dport, dport2);
    int setup = dport > 0 && dport2 > 0 && write_file(rc_path, text) == 0 &&
                write_file(hosts_path, "::1 mail.hosts\n127.0.0.1 mail.hosts\n") == 0;
    for (int i = 0; setup && i < NJOBS; i++)
        setup = i == 4 || fill(root, jobs[i].user, uid, gid) == 0;
    for (int i = 0; setup && i < NJOBS; i++) {
        snprintf(jobs[i].local, sizeof jobs[i].local, "%s/local%d", base, i);
        setup = mw_store_open(&jobs[i].store, MW_STORE_MAILDIR, jobs[i].local, NULL, NULL) == 0;
    }
    ok(setup, "two scripted DNS servers up, resolv.conf and hosts written, mailboxes filled");
    mw_loop *loop = NULL;
    mw_error err = {0};
    ok(setup && mw_loop_new(&loop, NULL, &err) == 0 &&
           mwi_loop_set_resolv_paths(loop, rc_path, hosts_path) == 0,
       "a loop reading the test's resolv.conf and hosts file");
    if (!loop) {
        printf("Bail out! setup failed\n");
        return 1;
    }
    ok(add_jobs(loop, port, sport, ca) == NJOBS + 1,
       "eight jobs by name added (no lookup in the call)");
    int rc = mw_loop_run(loop, mw_now_ms() + 300000, &err); /* a bound against a hang */
    ok(rc == 0 && mw_loop_running(loop) == 0, "every job ended");
    check(root);
    mw_loop_free(loop);
    for (int i = 0; i < NJOBS; i++)
        mw_store_free(jobs[i].store);
    if (dns_in >= 0) close(dns_in);
    if (dns2_in >= 0) close(dns2_in);
    if (dns_pid > 0) waitpid(dns_pid, NULL, 0);
    if (dns2_pid > 0) waitpid(dns2_pid, NULL, 0);
    return failed;
}
