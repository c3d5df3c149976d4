/* A POP3 loop job's facts before its login (mw_loop_pop3_greeting and the
 * others, loop.h) against Dovecot, over STLS and POP3S, with no login
 * (MW_POP3_AUTH_NONE, no user taken), read at the end of a
 * MW_LOOP_POP3_CAPA_IF_NONE command, and compared with what the blocking
 * session (mw_pop3_open, mw_pop3_tls_info, mw_pop3_capa_line) says of the
 * same server.  TAP; a SKIP without the servers (tests/servers/). */
#include "mailwire/loop.h"
#include "mailwire/pop3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ntest, failed;
static void ok(int cond, const char *name)
{
    printf("%sok %d - %s\n", cond ? "" : "not ", ++ntest, name);
    if (!cond) failed = 1;
}

#define MAXL 32
typedef struct facts {
    char greeting[512];
    int capa_known, tls_rc;
    mw_tls_info ti;
    size_t n;
    char lines[MAXL][256];
} facts;

typedef struct run {
    facts f;
    int ends, code, ndone;
    char message[400];
} run;

static int on_reply(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    run *x = ud;
    if (r->kind != MW_LOOP_POP3_END) return 0;
    x->ends++;
    const char *g = mw_loop_pop3_greeting(job);
    snprintf(x->f.greeting, sizeof x->f.greeting, "%s", g ? g : "");
    x->f.capa_known = mw_loop_pop3_capa_known(job);
    x->f.n = mw_loop_pop3_capa_count(job);
    for (size_t i = 0; i < x->f.n && i < MAXL; i++)
        snprintf(x->f.lines[i], sizeof x->f.lines[i], "%s", mw_loop_pop3_capa_line(job, i));
    x->f.tls_rc = mw_loop_pop3_tls_info(job, &x->f.ti);
    return 0;
}

static void on_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    run *x = ud;
    x->ndone++;
    x->code = r->code;
    snprintf(x->message, sizeof x->message, "%s", r->err->message);
}

/* The greeting up to its APOP timestamp (a new one for each session). */
static size_t stem(const char *g)
{
    const char *lt = strchr(g, '<');
    return lt ? (size_t)(lt - g) : strlen(g);
}

static int has_line(const facts *f, const char *kw)
{
    for (size_t i = 0; i < f->n && i < MAXL; i++)
        if (!strncmp(f->lines[i], kw, strlen(kw))) return 1;
    return 0;
}

static void one(const char *what, unsigned port, int tls, const mw_tls_opts *to)
{
    char name[700];
    run x;
    memset(&x, 0, sizeof x);
    mw_loop *loop = NULL;
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.host = "127.0.0.1";
    o.port = port;
    o.tls = tls;
    o.tls_opts = to;
    o.auth = MW_POP3_AUTH_NONE;
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_CAPA, 0, MW_LOOP_POP3_CAPA_IF_NONE, 0};
    mw_error e = {0};
    int rc = mw_loop_new(&loop, NULL, &e);
    if (!rc) rc = mw_loop_add_pop3_cmds(loop, NULL, &o, &c, 1, on_reply, &x, on_done, &x, &e);
    while (!rc && mw_loop_running(loop))
        rc = mw_loop_run(loop, mw_now_ms() + 120000, &e);
    mw_loop_free(loop);
    if (rc || x.code) printf("# %s\n", rc ? e.message : x.message);
    snprintf(name, sizeof name, "%s: the job ends with 0 after one END", what);
    ok(!rc && x.ndone == 1 && x.code == 0 && x.ends == 1, name);
    snprintf(name, sizeof name,
             "%s: Dovecot's greeting, CAPA answered, USER and SASL listed, no STLS over TLS", what);
    ok(strstr(x.f.greeting, "Dovecot") && x.f.capa_known == 1 && has_line(&x.f, "USER") &&
           has_line(&x.f, "SASL ") && !has_line(&x.f, "STLS"),
       name);
    snprintf(name, sizeof name, "%s: TLS details (TLSv1.x, verified, SHA-256 and pins set)", what);
    ok(x.f.tls_rc == 0 && !strncmp(x.f.ti.protocol, "TLSv1.", 6) && x.f.ti.verified == 1 &&
           strlen(x.f.ti.sha256) == 95 && !strncmp(x.f.ti.cert_pin, "sha256:", 7) &&
           strstr(x.f.ti.subject, "CN=localhost"),
       name);

    /* The blocking session of the same server says the same. */
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    po.port = port;
    po.tls = tls;
    po.tls_opts = to;
    po.auth = MW_POP3_AUTH_NONE;
    mw_pop3 *p = NULL;
    rc = mw_pop3_open(&p, "127.0.0.1", &po, &e);
    mw_tls_info bt;
    mw_pop3_config cf;
    int same = 0;
    if (!rc && mw_pop3_tls_info(p, &bt) == 0) {
        mw_pop3_config_get(p, &cf);
        same = stem(cf.greeting) == stem(x.f.greeting) &&
               !strncmp(cf.greeting, x.f.greeting, stem(x.f.greeting)) &&
               mw_pop3_capa_count(p) == x.f.n && !strcmp(bt.protocol, x.f.ti.protocol) &&
               !strcmp(bt.cipher, x.f.ti.cipher) && !strcmp(bt.sha256, x.f.ti.sha256) &&
               !strcmp(bt.subject, x.f.ti.subject) && !strcmp(bt.issuer, x.f.ti.issuer) &&
               !strcmp(bt.not_after, x.f.ti.not_after) && !strcmp(bt.spki_pin, x.f.ti.spki_pin) &&
               bt.verified == x.f.ti.verified;
        for (size_t i = 0; same && i < x.f.n && i < MAXL; i++)
            same = !strcmp(mw_pop3_capa_line(p, i), x.f.lines[i]);
    }
    if (p) mw_pop3_quit(p, NULL);
    mw_pop3_free(p);
    snprintf(name, sizeof name,
             "%s: greeting, CAPA lines and TLS details equal to the blocking session's", what);
    ok(same, name);
}

int main(void)
{
    const char *port = getenv("MW_POP3_PORT"), *sport = getenv("MW_POP3S_PORT");
    const char *ca = getenv("MW_CA_FILE");
    if (!port || !sport || !ca) {
        printf("1..1\nok 1 - loop pop3 info # SKIP servers not running\n");
        return 0;
    }
    mw_tls_opts to = MW_TLS_OPTS_INIT;
    to.ca_file = ca;
    one("STLS", (unsigned)atoi(port), MW_TLS_STARTTLS, &to);
    one("POP3S", (unsigned)atoi(sport), MW_TLS_IMPLICIT, &to);

    /* Without TLS: no details. */
    run x;
    memset(&x, 0, sizeof x);
    mw_loop *loop = NULL;
    mw_loop_pop3_opts o = MW_LOOP_POP3_OPTS_INIT;
    o.host = "127.0.0.1";
    o.port = (unsigned)atoi(port);
    o.tls = MW_TLS_NONE;
    o.auth = MW_POP3_AUTH_NONE;
    mw_loop_pop3_cmd c = {MW_LOOP_POP3_CAPA, 0, MW_LOOP_POP3_CAPA_IF_NONE, 0};
    mw_error e = {0};
    int rc = mw_loop_new(&loop, NULL, &e);
    if (!rc) rc = mw_loop_add_pop3_cmds(loop, NULL, &o, &c, 1, on_reply, &x, on_done, &x, &e);
    while (!rc && mw_loop_running(loop))
        rc = mw_loop_run(loop, mw_now_ms() + 120000, &e);
    mw_loop_free(loop);
    ok(!rc && x.code == 0 && x.f.tls_rc == MW_EUNSUPPORTED && x.f.ti.protocol[0] == 0 &&
           has_line(&x.f, "STLS"),
       "plain text: tls_info MW_EUNSUPPORTED (zeroed), STLS among the lines");
    printf("1..%d\n", ntest);
    return failed;
}
