/* Helper of test_oauth.py: a POP3 or SMTP session (the library, not the
 * command) that gets its token from mailwire's store through the
 * token-provider callback (token_fn = mw_oauth_token_cb).
 *
 *   session_token STORE TOKEN_URL CA PORT USER MECH TRACE pop3|smtp|loop-smtp
 *
 * pop3: logs in over POP3S, STAT, QUIT.  smtp: STARTTLS, AUTH, QUIT.
 * loop-smtp: the same on the event loop (a batch of no message, token_fn
 * in mw_loop_smtp_opts).
 * fetch: mw_fetch_account over POP3S into the Maildir TRACE.md (keep),
 * its state TRACE.state: the POP3 machine's login with token_fn.
 * Prints "ok ..." or "error: ..." and exits 0 or 1.  The trace (oauth
 * HTTP exchanges and the session's lines, secrets masked) goes to TRACE. */
#include "mailwire/fetch.h"
#include "mailwire/loop.h"
#include "mailwire/smtp.h"
#include "mailwire/oauth.h"
#include "mailwire/pop3.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void to_file(int dir, const char *line, size_t len, void *ud)
{
    fprintf(ud, "%s %.*s\n",
            dir == MW_TRACE_SEND   ? "C:"
            : dir == MW_TRACE_RECV ? "S:"
                                   : "*",
            (int)len, line);
}

static int no_message(mw_loop_job *job, size_t i, mw_smtp_msg *m, void *ud)
{
    (void)job, (void)i, (void)m, (void)ud;
    return 0;
}

static void no_report(mw_loop_job *job, size_t i, int rc, const mw_smtp_result *r,
                      const mw_error *e, void *ud)
{
    (void)job, (void)i, (void)rc, (void)r, (void)e, (void)ud;
}

typedef struct loop_end {
    int n;
    mw_error err;
} loop_end;

static void loop_done(mw_loop_job *job, const mw_loop_result *r, void *ud)
{
    (void)job;
    loop_end *end = ud;
    end->n++;
    end->err = *r->err;
    end->err.code = r->code;
}

/* loop-smtp: EHLO, STARTTLS, EHLO, AUTH (token_fn), QUIT on a loop. */
static int loop_smtp(char **argv, mw_tls_opts *tls, mw_oauth *oa, FILE *tr, mw_error *e)
{
    mw_loop *loop = NULL;
    int rc = mw_loop_new(&loop, NULL, e);
    if (rc) return rc;
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    o.host = "127.0.0.1";
    o.port = (unsigned)strtoul(argv[4], NULL, 10);
    o.tls = MW_TLS_STARTTLS;
    o.tls_opts = tls;
    o.user = argv[5];
    o.auth = argv[6];
    o.token_fn = mw_oauth_token_cb;
    o.token_userdata = oa;
    o.trace = to_file;
    o.trace_userdata = tr;
    mw_loop_smtp_batch b = MW_LOOP_SMTP_BATCH_INIT;
    b.next = no_message;
    b.done = no_report;
    loop_end end = {0};
    rc = mw_loop_add_smtp_batch(loop, NULL, &o, &b, loop_done, &end, e);
    if (!rc) rc = mw_loop_run(loop, mw_now_ms() + 240000, e);
    mw_loop_free(loop);
    if (!rc && end.n != 1) {
        snprintf(e->message, sizeof e->message, "the job ended %d times", end.n);
        return MW_ESTATE;
    }
    if (!rc) *e = end.err;
    return rc ? rc : end.err.code;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: session_token STORE TOKEN_URL CA PORT USER MECH TRACE "
                        "pop3|smtp|loop-smtp\n");
        return 2;
    }
    FILE *tr = fopen(argv[7], "w");
    if (!tr) return 2;
    mw_tls_opts tls = MW_TLS_OPTS_INIT;
    tls.ca_file = argv[3];
    mw_oauth_opts oo = MW_OAUTH_OPTS_INIT;
    oo.client_id = "mailwire";
    oo.token_url = argv[2];
    oo.store_path = argv[1];
    oo.tls_opts = &tls;
    oo.trace = to_file;
    oo.trace_userdata = tr;
    mw_oauth *oa = NULL;
    mw_error e;
    int rc = mw_oauth_new(&oa, &oo, &e);
    if (rc) {
        printf("error: %s\n", e.message);
        return 1;
    }
    if (!strcmp(argv[8], "loop-smtp")) {
        rc = loop_smtp(argv, &tls, oa, tr, &e);
        mw_oauth_free(oa);
        fclose(tr);
        if (rc) {
            printf("error: %s\n", e.message);
            return 1;
        }
        printf("ok loop-smtp\n");
        return 0;
    }
    if (!strcmp(argv[8], "smtp")) {
        const char *servers[] = {"127.0.0.1"};
        unsigned ports[] = {(unsigned)strtoul(argv[4], NULL, 10)};
        mw_smtp_opts so = MW_SMTP_OPTS_INIT;
        so.servers = servers;
        so.nservers = 1;
        so.ports = ports;
        so.nports = 1;
        so.tls = MW_TLS_STARTTLS;
        so.tls_opts = &tls;
        so.user = argv[5];
        so.sasl_mechs = argv[6];
        so.token_fn = mw_oauth_token_cb;
        so.token_userdata = oa;
        so.trace = to_file;
        so.trace_userdata = tr;
        mw_smtp *sm = NULL;
        rc = mw_smtp_open(&sm, &so, &e);
        if (!rc) mw_smtp_quit(sm);
        mw_smtp_free(sm);
        mw_oauth_free(oa);
        fclose(tr);
        if (rc) {
            printf("error: %s\n", e.message);
            return 1;
        }
        printf("ok smtp\n");
        return 0;
    }
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    po.port = (unsigned)strtoul(argv[4], NULL, 10);
    po.tls = MW_TLS_IMPLICIT;
    po.tls_opts = &tls;
    po.user = argv[5];
    po.auth = MW_POP3_AUTH_SASL;
    po.sasl_mechs = argv[6];
    po.token_fn = mw_oauth_token_cb;
    po.token_userdata = oa;
    po.trace = to_file;
    po.trace_userdata = tr;
    if (!strcmp(argv[8], "fetch")) {
        char md[4096], st[4096];
        snprintf(md, sizeof md, "%s.md", argv[7]);
        snprintf(st, sizeof st, "%s.state", argv[7]);
        mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
        fo.host = "127.0.0.1";
        fo.pop3 = &po;
        fo.store_kind = MW_STORE_MAILDIR;
        fo.store_target = md;
        fo.state_path = st;
        fo.keep = 1;
        mw_fetch_result res;
        rc = mw_fetch_account(&res, &fo, &e);
        mw_oauth_free(oa);
        fclose(tr);
        if (rc) {
            printf("error: %s\n", e.message);
            return 1;
        }
        printf("ok fetched %llu\n", (unsigned long long)res.fetched);
        return 0;
    }
    mw_pop3 *p = NULL;
    rc = mw_pop3_open(&p, "127.0.0.1", &po, &e);
    if (rc) {
        printf("error: %s\n", e.message);
        mw_oauth_free(oa);
        fclose(tr);
        return 1;
    }
    uint64_t n = 0, oct = 0;
    rc = mw_pop3_stat(p, &n, &oct);
    int confirmed = 0;
    mw_pop3_quit(p, &confirmed);
    mw_pop3_free(p);
    mw_oauth_free(oa);
    fclose(tr);
    if (rc) {
        printf("error: STAT failed (%d)\n", rc);
        return 1;
    }
    printf("ok %llu\n", (unsigned long long)n);
    return 0;
}
