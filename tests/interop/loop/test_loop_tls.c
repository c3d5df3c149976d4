/* The loop's TLS options against the real Dovecot, all jobs on one loop
 * (users n1..n8, tests/servers/README.md): a pin of the public key or of
 * the certificate that matches (the fetch succeeds without the CA), one
 * that does not (MW_ECERT, nothing sent), a client certificate, a policy
 * that accepts an unverified peer and one that refuses a verified one,
 * insecure, a CRL file without a CRL, and the control that makes the rest
 * mean something: without the CA, a pin, a policy or insecure, the same
 * server is refused.  The pins are computed here from the server's
 * certificate file with OpenSSL, not by the library.  Last, --auth auto
 * over TLS picks the same mechanism on the loop as on the blocking
 * session (Dovecot 2.3 offers no -PLUS: SCRAM-SHA-256; the -PLUS choice
 * is in tests/script/cases/pop3/scram-plus-*.case).  Two SMTP sends on
 * the same loop (n1 to n1, Postfix): pinned, and a pin mismatch.  TAP. */
#include "mailwire/loop.h"
#include "mailwire/pop3.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
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

#define NJOBS 9

typedef struct job {
    const char *name, *user;
    int results, code;
    mw_loop_result res;
    char msg[320];
    char trace[8192];
    size_t trace_len;
    mw_store *store;
    char local[256];
    /* what the policy callback saw */
    int policy_calls, policy_verified, policy_answer;
    unsigned char policy_spki[32];
} job;

static job jobs[NJOBS];
static const char *message = "From: tls@test.domain\nSubject: loop tls\n\nover the loop, pinned\n";

static void done_cb(mw_loop_job *j, const mw_loop_result *res, void *ud)
{
    (void)j;
    job *t = ud;
    t->results++;
    t->code = res->code;
    t->res = *res;
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

static int policy_cb(const mw_tls_peer *peer, void *ud)
{
    job *t = ud;
    t->policy_calls++;
    t->policy_verified = peer->verified;
    memcpy(t->policy_spki, peer->spki_sha256, 32);
    return t->policy_answer;
}

/* "sha256:BASE64" of the certificate (spki 0) or of its public key. */
static int pin_of(const char *pem, int spki, char out[64], unsigned char raw[32])
{
    FILE *f = fopen(pem, "r");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) fclose(f);
    unsigned char *der = NULL;
    int l = !x ? -1 : spki ? i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der) : i2d_X509(x, &der);
    unsigned int hl = 0;
    int good = l > 0 && EVP_Digest(der, (size_t)l, raw, &hl, EVP_sha256(), NULL) && hl == 32;
    OPENSSL_free(der);
    X509_free(x);
    if (!good) return -1;
    memcpy(out, "sha256:", 7);
    EVP_EncodeBlock((unsigned char *)out + 7, raw, 32);
    return 0;
}

/* The server's Maildir of u holds exactly `message`, under a new name. */
static int put_server(const char *root, const char *u, uid_t uid, gid_t gid)
{
    char p[1024];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s/Maildir/%s", root, u, i ? "cur" : "new");
        DIR *d = opendir(p);
        if (!d && errno != ENOENT) return -1;
        struct dirent *e;
        char f[1400];
        while (d && (e = readdir(d)))
            if (e->d_name[0] != '.' && snprintf(f, sizeof f, "%s/%s", p, e->d_name) < (int)sizeof f)
                unlink(f);
        if (d) closedir(d);
    }
    snprintf(p, sizeof p, "%s/%s/Maildir/new/%lld.M1P%d.looptls", root, u, (long long)time(NULL),
             (int)getpid());
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    int rc = fputs(message, f) < 0;
    if (fclose(f) != 0 || rc || chown(p, uid, gid) != 0) return -1;
    return 0;
}

/* The local Maildir's new/ holds exactly one file, equal to `message`. */
static int fetched_whole(const job *t)
{
    char p[600], f[900];
    snprintf(p, sizeof p, "%s/new", t->local);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0, same = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        n++;
        snprintf(f, sizeof f, "%s/%s", p, e->d_name);
        FILE *fp = fopen(f, "rb");
        char buf[512];
        size_t got = fp ? fread(buf, 1, sizeof buf, fp) : 0;
        if (fp) fclose(fp);
        same = got == strlen(message) && !memcmp(buf, message, got);
    }
    closedir(d);
    return n == 1 && same;
}

/* No line sent (the trace's info lines start with '#'). */
static int sent_nothing(const job *t)
{
    return t->trace[0] != '>' && !strstr(t->trace, "\n>");
}

/* The mechanism of the trace's AUTH line ("" without one). */
static void auth_mech(const char *trace, char *out, size_t len)
{
    const char *a = strstr(trace, "\n>AUTH ");
    a = a ? a + 1 : NULL;
    size_t n = a ? strcspn(a + 6, " \n") : 0;
    snprintf(out, len, "%.*s", (int)n, a ? a + 6 : "");
}

/* The blocking session's choice under --auth auto, for the comparison. */
static void blocking_mech(unsigned port, const mw_tls_opts *tls, char *out, size_t len)
{
    static job b;
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.port = port;
    o.tls = MW_TLS_IMPLICIT;
    o.tls_opts = tls;
    o.user = "n8";
    o.password = "pw-n8";
    o.trace = trace_cb;
    o.trace_userdata = &b;
    mw_pop3 *p = NULL;
    mw_error err = {0};
    int rc = mw_pop3_open(&p, "127.0.0.1", &o, &err);
    if (!rc) mw_pop3_quit(p, NULL);
    mw_pop3_free(p);
    printf("# blocking session: %d %s\n", rc, rc ? err.message : "");
    auth_mech(rc ? "" : b.trace, out, len);
}

static const char *const names[NJOBS] = {
    "pin of the public key, no CA (POP3S)",
    "pin of the certificate among two, no CA (STLS)",
    "pin mismatch with a trusted chain",
    "client certificate presented",
    "policy accepts an unverified peer",
    "policy refuses a verified peer",
    "insecure, no CA",
    "control: no CA, no pin, no policy",
    "CRL file without a CRL",
};
static const char *const users[NJOBS] = {"n8", "n7", "n6", "n5", "n4", "n3", "n2", "n1", "n1"};

/* The options of job i; tls is its own, filled here. */
static void job_opts(int i, mw_loop_pop3_opts *o, mw_tls_opts *tls, const char *ca,
                     const char *certs, const char *pins[2], unsigned pop3, unsigned pop3s)
{
    static char cert[512], key[512], two[160];
    snprintf(cert, sizeof cert, "%s/client.pem", certs);
    snprintf(key, sizeof key, "%s/client.key", certs);
    snprintf(two, sizeof two, "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;%s", pins[0]);
    static char pw[NJOBS][16];
    snprintf(pw[i], sizeof pw[i], "pw-%s", users[i]);
    o->host = "127.0.0.1";
    o->port = pop3s;
    o->tls = MW_TLS_IMPLICIT;
    o->tls_opts = tls;
    o->user = users[i];
    o->password = pw[i];
    o->store = jobs[i].store;
    o->keep = 1;
    o->trace = trace_cb;
    o->trace_userdata = &jobs[i];
    tls->ca_file = ca;
    switch (i) {
    case 0: /* the test CA is not in the system store: the pin decides */
        tls->ca_file = NULL;
        tls->pin = pins[1];
        break;
    case 1:
        tls->ca_file = NULL;
        tls->pin = two;
        o->port = pop3;
        o->tls = MW_TLS_STARTTLS;
        break;
    case 2:
        tls->pin = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        break;
    case 3: /* Dovecot asks for one and verifies it (tests/servers/start.sh) */
        tls->cert_file = cert;
        tls->key_file = key;
        break;
    case 4:
    case 5:
        tls->policy = policy_cb;
        tls->policy_userdata = &jobs[i];
        if (i == 4) tls->ca_file = NULL;
        jobs[i].policy_answer = i == 5;
        break;
    case 6:
        tls->ca_file = NULL;
        tls->insecure = 1;
        break;
    case 7:
        tls->ca_file = NULL;
        break;
    default:
        tls->crl_file = ca;
    }
}

static void check(const unsigned char spki[32])
{
    int once = 1;
    for (int i = 0; i < NJOBS; i++) {
        printf("# %s: %d %s\n", jobs[i].name, jobs[i].code, jobs[i].msg);
        if (jobs[i].results != 1) once = 0;
    }
    ok(once, "each job reported exactly one result");
    ok(jobs[0].code == 0 && fetched_whole(&jobs[0]), "pin of the public key: fetched, whole");
    ok(jobs[1].code == 0 && fetched_whole(&jobs[1]), "one of two pins, over STLS: fetched, whole");
    ok(jobs[2].code == MW_ECERT && strstr(jobs[2].msg, "pin mismatch") && jobs[2].res.stored == 0 &&
           sent_nothing(&jobs[2]),
       "pin mismatch: MW_ECERT naming it, nothing sent, nothing stored");
    ok(jobs[3].code == 0 && fetched_whole(&jobs[3]), "client certificate: fetched, whole");
    ok(jobs[4].code == 0 && jobs[4].policy_calls == 1 && jobs[4].policy_verified == 0 &&
           !memcmp(jobs[4].policy_spki, spki, 32) && fetched_whole(&jobs[4]),
       "policy called once with the unverified peer's key, accepts: fetched");
    ok(jobs[5].code == MW_ECERT && strstr(jobs[5].msg, "refused by the caller's policy") &&
           jobs[5].policy_calls == 1 && jobs[5].policy_verified == 1 && sent_nothing(&jobs[5]),
       "policy refuses a verified peer: MW_ECERT, nothing sent");
    ok(jobs[6].code == 0 && fetched_whole(&jobs[6]), "insecure: fetched");
    ok(jobs[7].code == MW_ECERT && strstr(jobs[7].msg, "CA not trusted"),
       "control: the same server without CA, pin, policy or insecure is refused, MW_ECERT");
    ok(jobs[8].code == MW_ETLS && strstr(jobs[8].msg, "cannot load CRLs from"),
       "a CRL file without a CRL: MW_ETLS naming it");
}

/* Two SMTP sends on the same loop, n1 to n1 through Postfix's submission
 * port (STARTTLS, its certificate is good.pem too): pinned without the
 * CA, and a pin that does not match. */
static job sends[2];
static int add_sends(mw_loop *loop, unsigned port, const char *pin)
{
    static mw_tls_opts tls[2];
    static const char *const to[] = {"n1@test.domain"};
    static const char msg[] =
        "From: n1@test.domain\nTo: n1@test.domain\nSubject: loop tls\n\npinned\n";
    int added = 1;
    for (int k = 0; k < 2; k++) {
        mw_tls_opts init = MW_TLS_OPTS_INIT;
        tls[k] = init;
        tls[k].pin = k ? "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=" : pin;
        mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
        o.host = "127.0.0.1";
        o.port = port;
        o.tls_opts = &tls[k];
        o.user = "n1";
        o.password = "pw-n1";
        o.from = "n1@test.domain";
        o.rcpt = to;
        o.nrcpt = 1;
        o.message = msg;
        o.message_len = strlen(msg);
        o.trace = trace_cb;
        o.trace_userdata = &sends[k];
        mw_error err = {0};
        if (mw_loop_add_smtp_send(loop, NULL, &o, done_cb, &sends[k], &err) != 0) {
            printf("# send %d not added: %s\n", k, err.message);
            added = 0;
        }
    }
    return added;
}

int main(void)
{
    const char *port = getenv("MW_POP3_PORT"), *sport = getenv("MW_POP3S_PORT");
    const char *ca = getenv("MW_CA_FILE"), *certs = getenv("MW_CERT_DIR");
    const char *root = getenv("MW_MAILDIR_ROOT"), *own = getenv("MW_MAIL_OWNER");
    if (!port || !sport || !ca || !certs || !root || !own) {
        printf("1..1\nok 1 - loop tls # SKIP servers not running\n");
        return 0;
    }
    uid_t uid = (uid_t)strtoul(own, NULL, 10);
    gid_t gid = (gid_t)strtoul(strchr(own, ':') ? strchr(own, ':') + 1 : own, NULL, 10);
    char good[512], cert_pin[64], spki_pin[64];
    unsigned char cert_raw[32], spki[32];
    snprintf(good, sizeof good, "%s/good.pem", certs);
    int setup = pin_of(good, 0, cert_pin, cert_raw) == 0 && pin_of(good, 1, spki_pin, spki) == 0;
    char tmpl[] = "/tmp/mw-loop-tls-XXXXXX";
    char *base = mkdtemp(tmpl);
    setup = setup && base;
    for (int i = 0; setup && i < NJOBS; i++) {
        jobs[i].name = names[i];
        snprintf(jobs[i].local, sizeof jobs[i].local, "%s/j%d", base, i);
        setup = mw_store_open(&jobs[i].store, MW_STORE_MAILDIR, jobs[i].local, NULL, NULL) == 0 &&
                (i == 8 || put_server(root, users[i], uid, gid) == 0);
    }
    mw_loop *loop = NULL;
    if (!setup || mw_loop_new(&loop, NULL, NULL) != 0) {
        printf("Bail out! setup failed (pins of %s, local Maildirs, the server's)\n", good);
        return 1;
    }
    printf("# good.pem: %s (certificate), %s (public key)\n", cert_pin, spki_pin);
    const char *pins[2] = {cert_pin, spki_pin};
    static mw_tls_opts tls[NJOBS];
    unsigned pop3 = (unsigned)strtoul(port, NULL, 10), pop3s = (unsigned)strtoul(sport, NULL, 10);
    int added = 1;
    for (int i = 0; i < NJOBS; i++) {
        mw_tls_opts init = MW_TLS_OPTS_INIT;
        tls[i] = init;
        mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
        job_opts(i, &o, &tls[i], ca, certs, pins, pop3, pop3s);
        mw_error err = {0};
        if (mw_loop_add_pop3_fetch(loop, NULL, &o, done_cb, &jobs[i], &err) != 0) {
            printf("# %s: not added: %s\n", jobs[i].name, err.message);
            added = 0;
        }
    }
    const char *smtp = getenv("MW_SMTP_PORT");
    if (smtp && !add_sends(loop, (unsigned)strtoul(smtp, NULL, 10), spki_pin)) added = 0;
    ok(added, "every TLS option is taken by the loop (none refused as unsupported)");
    mw_error err = {0};
    int rc = mw_loop_run(loop, mw_now_ms() + 300000, &err); /* a bound against a hang */
    ok(rc == 0 && mw_loop_running(loop) == 0, "every job ended");
    check(spki);
    for (int k = 0; k < 2; k++)
        printf("# send %d: %d %s\n", k, sends[k].code, sends[k].msg);
    ok(!smtp || (sends[0].results == 1 && sends[0].code == 0 && sends[0].res.sent),
       "SMTP on the same loop, pinned without the CA: sent");
    ok(!smtp || (sends[1].results == 1 && sends[1].code == MW_ECERT && !sends[1].res.sent &&
                 strstr(sends[1].msg, "pin mismatch") && !strstr(sends[1].trace, "\n>AUTH")),
       "SMTP with a pin that does not match: MW_ECERT, no AUTH, nothing sent");

    char lm[64], bm[64];
    auth_mech(jobs[0].trace, lm, sizeof lm);
    mw_tls_opts bt = MW_TLS_OPTS_INIT;
    bt.ca_file = ca;
    blocking_mech(pop3s, &bt, bm, sizeof bm);
    printf("# --auth auto over TLS: loop %s, blocking %s\n", lm, bm);
    ok(lm[0] && !strcmp(lm, bm) && !strcmp(lm, "SCRAM-SHA-256"),
       "auto over TLS: the loop picks what the blocking session picks (Dovecot: SCRAM-SHA-256)");

    mw_loop_free(loop);
    for (int i = 0; i < NJOBS; i++)
        mw_store_free(jobs[i].store);
    printf("1..%d\n", ntest);
    return failed;
}
