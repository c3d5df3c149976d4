/* The loop's POP3 job when things go wrong, all jobs at once in one loop
 * against the real Dovecot (users a8..a10, tests/servers/README.md) and
 * sockets of the test's own: a certificate for another name or from
 * another CA (MW_ECERT), a wrong password (MW_EAUTH), login in clear not
 * allowed (MW_EPOLICY, nothing sent), a server that never greets
 * (MW_ETIMEOUT by the job's own deadline), a refused connection (MW_ENET),
 * and what is refused before a job starts (a malformed pin, CR/LF).  One good
 * fetch checks that the trace masks the password.  TAP. */
#include "mailwire/loop.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

typedef struct job {
    const char *name;
    int results, code;
    char msg[320];
    char trace[8192];
    size_t trace_len;
} job;

static void done_cb(mw_loop_job *j, const mw_loop_result *res, void *ud)
{
    (void)j;
    job *t = ud;
    t->results++;
    t->code = res->code;
    snprintf(t->msg, sizeof t->msg, "%s", res->err->message);
}

static void trace_cb(int dir, const char *line, size_t len, void *ud)
{
    job *t = ud;
    if (t->trace_len + len + 4 < sizeof t->trace) {
        t->trace[t->trace_len++] = dir == MW_TRACE_SEND ? '>' : dir == MW_TRACE_RECV ? '<' : '#';
        memcpy(t->trace + t->trace_len, line, len);
        t->trace_len += len;
        t->trace[t->trace_len++] = '\n';
        t->trace[t->trace_len] = 0;
    }
}

/* A listening socket on 127.0.0.1 that nobody accepts from: the connect
 * succeeds (the kernel's backlog), no greeting ever comes. */
static int silent_listener(unsigned *port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    socklen_t al = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 8) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &al) != 0)
        return -1;
    *port = ntohs(a.sin_port);
    return s;
}

static unsigned closed_port(void)
{
    unsigned port = 0;
    int s = silent_listener(&port);
    if (s >= 0) close(s);
    return port;
}

int main(void)
{
    const char *port = getenv("MW_POP3_PORT"), *ca = getenv("MW_CA_FILE");
    const char *certs = getenv("MW_CERT_DIR"), *root = getenv("MW_MAILDIR_ROOT");
    if (!port || !ca || !certs || !root) {
        printf("1..1\nok 1 - loop errors # SKIP servers not running\n");
        return 0;
    }
    printf("1..13\n");
    char tmpl[] = "/tmp/mw-loop-err-XXXXXX";
    char *base = mkdtemp(tmpl);
    mw_store *store[8] = {0};
    char path[256];
    int setup = base != NULL;
    for (int i = 0; setup && i < 8; i++) {
        snprintf(path, sizeof path, "%s/s%d", base, i);
        setup = mw_store_open(&store[i], MW_STORE_MAILDIR, path, NULL, NULL) == 0;
    }
    mw_loop *loop = NULL;
    setup = setup && mw_loop_new(&loop, NULL, NULL) == 0;
    if (!setup) {
        printf("Bail out! setup failed\n");
        return 1;
    }
    char selfsigned[512];
    snprintf(selfsigned, sizeof selfsigned, "%s/selfsigned.pem", certs);
    unsigned pop3 = (unsigned)strtoul(port, NULL, 10), silent_port = 0;
    int silent = silent_listener(&silent_port);
    unsigned refused_port = closed_port();

    mw_tls_opts tls_good = MW_TLS_OPTS_INIT, tls_name = MW_TLS_OPTS_INIT, tls_ca = MW_TLS_OPTS_INIT;
    tls_good.ca_file = ca;
    tls_name.ca_file = ca;
    tls_name.servername = "wrong.example";
    tls_ca.ca_file = selfsigned; /* a CA that did not issue Dovecot's certificate */

    static const char *const names[7] = {"wrong name", "other CA", "wrong password", "plain text",
                                         "silent",     "refused",  "good, traced"};
    static job jobs[7];
    for (int i = 0; i < 7; i++)
        jobs[i].name = names[i];
    for (int i = 0; i < 7; i++) {
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        o.host = "127.0.0.1";
        o.port = pop3;
        o.tls_opts = &tls_good;
        o.user = "a8";
        o.password = "pw-a8";
        o.store = store[i];
        o.trace = trace_cb;
        o.trace_userdata = &jobs[i];
        o.keep = 1;
        switch (i) {
        case 0:
            o.tls_opts = &tls_name;
            break;
        case 1:
            o.tls_opts = &tls_ca;
            break;
        case 2:
            o.password = "not-the-password";
            break;
        case 3:
            o.tls = MW_TLS_NONE;
            o.user = "a9";
            o.password = "pw-a9";
            break;
        case 4:
            o.port = silent_port;
            o.io_timeout_ms = 500;
            break;
        case 5:
            o.port = refused_port;
            break;
        case 6:
            o.user = "a10";
            o.password = "pw-a10";
            o.auth = MW_POP3_AUTH_USER; /* the default (auto) takes SCRAM from Dovecot */
            break;
        }
        mw_error err = {0};
        if (mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, &jobs[i], &err) != 0)
            printf("# %s: not added: %s\n", jobs[i].name, err.message);
    }
    /* Refused before a job starts: done is never called for these. */
    mw_error err = {0};
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.port = pop3;
    o.user = "a8";
    o.password = "pw-a8";
    o.store = store[7];
    /* A host name is looked up on the loop now: test_loop_resolve.c. */
    mw_tls_opts tls_pin = MW_TLS_OPTS_INIT;
    tls_pin.pin = "sha256:AAAA"; /* not a 32-byte digest (pins: test_loop_tls.c) */
    o.host = "127.0.0.1";
    o.tls_opts = &tls_pin;
    int rc = mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, NULL, &err);
    ok(rc == MW_EINVAL && strstr(err.message, "invalid pin"),
       "a malformed TLS pin is refused before the job starts, MW_EINVAL");
    o.tls_opts = NULL;
    o.user = "a8\r\nDELE 1";
    rc = mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, NULL, &err);
    ok(rc == MW_EINVAL, "CR/LF in the user name is refused, MW_EINVAL");
    ok(mw_loop_running(loop) == 7, "7 jobs running");

    rc = mw_loop_run(loop, mw_now_ms() + 300000, &err); /* a bound against a hang */
    ok(rc == 0 && mw_loop_running(loop) == 0, "every job ended");
    int once = 1;
    for (int i = 0; i < 7; i++) {
        printf("# %s: %d %s\n", jobs[i].name, jobs[i].code, jobs[i].msg);
        if (jobs[i].results != 1) once = 0;
    }
    ok(once, "each job reported exactly one result");
    ok(jobs[0].code == MW_ECERT && strstr(jobs[0].msg, "wrong.example"),
       "certificate for another name: MW_ECERT naming the name");
    ok(jobs[1].code == MW_ECERT, "certificate from another CA: MW_ECERT");
    ok(jobs[2].code == MW_EAUTH, "wrong password: MW_EAUTH");
    ok(jobs[3].code == MW_EPOLICY && !strstr(jobs[3].trace, ">USER") &&
           !strstr(jobs[3].trace, ">PASS"),
       "login in clear not allowed: MW_EPOLICY, neither USER nor PASS sent");
    ok(jobs[4].code == MW_ETIMEOUT, "a server that never greets: MW_ETIMEOUT (io_timeout_ms)");
    ok(jobs[5].code == MW_ENET, "connection refused: MW_ENET");
    ok(jobs[6].code == 0 && strstr(jobs[6].trace, ">PASS ****") &&
           !strstr(jobs[6].trace, "pw-a10") && strstr(jobs[6].trace, "TLS established"),
       "good fetch after STLS; the trace shows PASS **** and never the password");
    ok(!strstr(jobs[2].trace, "not-the-password"), "a refused password is masked too");
    if (silent >= 0) close(silent);
    mw_loop_free(loop);
    for (int i = 0; i < 8; i++)
        mw_store_free(store[i]);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) printf("# cleanup of %s failed\n", base);
    return failed;
}
