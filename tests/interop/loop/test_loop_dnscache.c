/* The loop's cache of name lookups (src/loop/lcache.c), counted at the
 * scripted DNS server (tests/tools/dnsserver.py --log: one line per query),
 * with a POP3 peer of the test's own on 127.0.0.1, no mail server:
 *   - 5 jobs to "cached.test" (TTL 3600) and 5 to "ttl0.test" (TTL 0) at
 *     once, then the same again on the same loop: cached.test is looked up
 *     once in all (one A and one AAAA query), ttl0.test once per batch
 *     (the jobs of a batch wait for the first one's lookup);
 *   - 3 jobs to "nx.test" at once: one lookup, its NXDOMAIN given to all.
 * Counts, not times.  TAP.
 *
 *   test_loop_dnscache DNSSERVER_PY */
#include "loop/loop_int.h"
#include "mailwire/loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

/* The POP3 peer: `n` connections one after the other, each greeted and
 * answered (CAPA refused, QUIT). */
typedef struct peer {
    int l, n, served;
    pthread_t th;
} peer;

static void serve_one(int s)
{
    const char *hi = "+OK ready\r\n";
    if (write(s, hi, strlen(hi)) < 0) return;
    char buf[512];
    size_t have = 0;
    for (;;) {
        struct pollfd pf = {.fd = s, .events = POLLIN};
        if (poll(&pf, 1, 120000) != 1) return;
        ssize_t got = read(s, buf + have, sizeof buf - 1 - have);
        if (got <= 0) return;
        have += (size_t)got;
        char *eol;
        while ((eol = memchr(buf, '\n', have))) {
            size_t len = (size_t)(eol - buf) + 1;
            int quit = !strncmp(buf, "QUIT", 4);
            const char *r = quit ? "+OK bye\r\n" : "-ERR no\r\n";
            if (write(s, r, strlen(r)) < 0 || quit) return;
            memmove(buf, buf + len, have - len);
            have -= len;
        }
        if (have == sizeof buf - 1) return;
    }
}

static void *peer_run(void *arg)
{
    peer *p = arg;
    while (p->served < p->n) {
        struct pollfd pf = {.fd = p->l, .events = POLLIN};
        if (poll(&pf, 1, 120000) != 1) break;
        int s = accept(p->l, NULL, NULL);
        if (s < 0) break;
        serve_one(s);
        close(s);
        p->served++;
    }
    return NULL;
}

typedef struct res {
    int n, code;
    char msg[320];
} res;

static void done_cb(mw_loop_job *j, const mw_loop_result *r, void *ud)
{
    (void)j;
    res *t = ud;
    t->n++;
    t->code = r->code;
    snprintf(t->msg, sizeof t->msg, "%s", r->err->message);
}

static unsigned port;

static int add(mw_loop *loop, const char *host, res *r)
{
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.host = host;
    o.port = port;
    o.tls = MW_TLS_NONE;
    o.auth = MW_POP3_AUTH_NONE;
    o.connect_timeout_ms = 120000;
    o.io_timeout_ms = 120000;
    return mw_loop_add_pop3_cmds(loop, NULL, &o, NULL, 0, NULL, NULL, done_cb, r, NULL);
}

/* Queries of name in the server's log. */
static int queries(const char *log, const char *name)
{
    FILE *f = fopen(log, "r");
    if (!f) return -1;
    char line[300], want[280];
    snprintf(want, sizeof want, "%s ", name);
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += !strncmp(line, want, strlen(want));
    fclose(f);
    return n;
}

static int start_dns(const char *script, const char *log, pid_t *pid, int *in_fd)
{
    int to[2], from[2];
    if (pipe(to) || pipe(from)) return -1;
    *pid = fork();
    if (*pid == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execlp("python3", "python3", script, "--log", log, (char *)NULL);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    *in_fd = to[1];
    char buf[32] = {0};
    size_t n = 0;
    while (n < sizeof buf - 1 && read(from[0], buf + n, 1) == 1 && buf[n] != '\n')
        n++;
    close(from[0]);
    return n > 0 ? atoi(buf) : -1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("1..0 # SKIP no dnsserver.py given\n");
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    char dir[] = "/tmp/mw-dnscache-XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char log[128], rc_path[128], hosts[128];
    snprintf(log, sizeof log, "%s/queries.log", dir);
    snprintf(rc_path, sizeof rc_path, "%s/resolv.conf", dir);
    snprintf(hosts, sizeof hosts, "%s/hosts", dir); /* none: every name from the DNS */
    pid_t dpid = -1;
    int din = -1;
    int dport = start_dns(argv[1], log, &dpid, &din);
    FILE *f = fopen(rc_path, "w");
    if (f) {
        fprintf(f, "nameserver [127.0.0.1]:%d\noptions timeout:30 attempts:1\n", dport);
        fclose(f);
    }
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    int up = dport > 0 && f && l >= 0 && bind(l, (struct sockaddr *)&a, sizeof a) == 0 &&
             listen(l, 64) == 0 && getsockname(l, (struct sockaddr *)&a, &al) == 0;
    port = ntohs(a.sin_port);
    ok(up, "scripted DNS server, resolv.conf and the POP3 peer up");

    peer p = {.l = l, .n = 20};
    pthread_create(&p.th, NULL, peer_run, &p);
    mw_loop *loop = NULL;
    mw_loop_new(&loop, NULL, NULL);
    mwi_loop_set_resolv_paths(loop, rc_path, hosts);
    res r[2][10];
    memset(r, 0, sizeof r);
    for (int batch = 0; batch < 2; batch++) {
        int added = 0;
        for (int i = 0; i < 10; i++)
            added += add(loop, i < 5 ? "cached.test" : "ttl0.test", &r[batch][i]) == 0;
        mw_loop_run(loop, mw_now_ms() + 120000, NULL);
        int good = 0;
        for (int i = 0; i < 10; i++) {
            good += r[batch][i].n == 1 && r[batch][i].code == 0;
            if (r[batch][i].code) printf("# job %d: %s\n", i, r[batch][i].msg);
        }
        char name[120];
        snprintf(name, sizeof name, "batch %d: 10 jobs by name, each connected and done",
                 batch + 1);
        ok(added == 10 && good == 10, name);
    }
    int qc = queries(log, "cached.test"), q0 = queries(log, "ttl0.test");
    printf("# queries: cached.test %d, ttl0.test %d\n", qc, q0);
    ok(qc == 2, "cached.test (TTL 3600): one lookup (A and AAAA) for both batches");
    ok(q0 == 4, "ttl0.test (TTL 0): one lookup per batch, not kept between them");

    res nx[3];
    memset(nx, 0, sizeof nx);
    for (int i = 0; i < 3; i++)
        add(loop, "nx.test", &nx[i]);
    mw_loop_run(loop, mw_now_ms() + 120000, NULL);
    int same = 1;
    for (int i = 0; i < 3; i++) {
        printf("# nx.test job %d: %s\n", i, nx[i].msg);
        same &= nx[i].n == 1 && nx[i].code == MW_ENET && strstr(nx[i].msg, "NXDOMAIN") != NULL;
    }
    int qn = queries(log, "nx.test");
    printf("# queries: nx.test %d\n", qn);
    ok(same && qn == 2, "3 jobs to nx.test: one lookup, its NXDOMAIN for each");

    mw_loop_free(loop);
    shutdown(l, SHUT_RDWR);
    pthread_join(p.th, NULL);
    close(l);
    close(din);
    if (dpid > 0) waitpid(dpid, NULL, 0);
    unlink(log);
    unlink(rc_path);
    rmdir(dir);
    printf("1..%d\n", ntest);
    return failed;
}
