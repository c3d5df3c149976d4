/* The SMTP session on the event loop (MAILWIRE_ENGINE=loop, engine.h),
 * for `mailwire smtp` and `mailwire send`: the loop job's options made
 * from the command line as smtp_open gives them to mw_smtp_open, and
 * mw_smtp_open's failover (every port of a server before the next, one
 * job at a time on a private loop) around a batch job. */
#include "commands.h"
#include "engine.h"
#include "oauth_cli.h"
#include "smtp_cli.h"
#include "token_async.h"

#include "mailwire/error.h"
#include "mailwire/loop.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void smtp_loop_opts(smtp_cli *c, mw_loop_smtp_opts *o, int login)
{
    mw_cli_conn_tls_opts(&c->conn, &c->tls);
    mw_cli_conn_net_opts(&c->conn, &c->net);
    o->tls = c->opportunistic                     ? MW_TLS_OPPORTUNISTIC
             : c->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
             : c->conn.tls == MW_CLI_TLS_NONE     ? MW_TLS_NONE
                                                  : MW_TLS_STARTTLS;
    o->tls_opts = &c->tls;
    o->proxy = c->net.proxy;
    /* As smtp_open_err (smtp_cli.c) gives them to mw_smtp_open. */
    int want_token = login && (c->token_file || c->token_eval);
    if (want_token || (login && c->conn.user)) {
        o->user = c->conn.user;
        o->auth = c->conn.auth;
    }
    if (want_token) {
        o->token = c->token;
    } else if (login && c->conn.user && mw_cli_auth_is_token(c->conn.auth)) {
        o->token = c->conn.password; /* the password sources hold the token */
    } else if (login && c->conn.user) {
        o->password = c->conn.password;
    }
    o->allow_plaintext = c->conn.allow_plaintext;
    o->helo = c->client;
    o->connect_timeout_ms = c->net.connect_timeout_ms;
    o->io_timeout_ms = c->net.io_timeout_ms;
    o->max_time_ms = c->net.max_time_ms;
    o->tx_max_time_ms = c->maxsecs * 1000;
    o->queue = c->queue;
    o->trace = c->conn.trace_fn;
    o->trace_userdata = c->conn.trace_ud;
}

int smtp_loop_creds(smtp_cli *c, int login)
{
    int want_token = login && (c->token_file || c->token_eval);
    if (want_token && !c->token) {
        int rc = smtp_load_token(c);
        if (rc) return rc;
    }
    if (login && c->conn.user && !want_token) return mw_cli_conn_password(&c->conn);
    return 0;
}

int smtp_loop_failed(const smtp_cli *c, int rc, const mw_error *err)
{
    fprintf(stderr, "mailwire %s: %s\n", c->prog, err->message);
    mw_cli_json_error(exit_for(rc), rc, err, NULL);
    return exit_for(rc);
}

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    *(mw_error *)ud = *res->err;
}

/* A failure another server would meet too (smtp.c's failover stops). */
static int stops(int ready, int rc)
{
    return ready < 0 || rc == MW_EINVAL || rc == MW_ENOMEM || rc == MW_ECANCELED ||
           rc == MW_EPOLICY;
}

/* One job per server and port until one got ready or a failure stops
 * the failover; a send's result from an attempt before is freed.  0, or
 * the loop's own failure (in err). */
static int run_servers(smtp_cli *c, mw_loop *loop, mw_loop_smtp_opts *o, const char *what,
                       smtp_loop_add_fn add, const mw_loop_smtp_batch *b, mw_error *outcome,
                       mw_error *err)
{
    for (size_t i = 0; i < c->nservers; i++) {
        for (size_t k = 0; k < c->nports; k++) {
            o->host = c->servers[i];
            o->port = c->ports[k];
            mw_error_clear(outcome);
            *o->ready = 0;
            if (o->result) {
                mw_smtp_result_free(*o->result);
                *o->result = NULL;
            }
            mw_loop_job *job = NULL;
            int rc = add(loop, &job, o, b, done_cb, outcome, err);
            if (!rc) /* the rate floor, the default one too, as the blocking stream's */
                mw_loop_set_speed_limit(loop, job, c->conn.speed_limit, c->conn.speed_time_ms);
            if (!rc) mw_cli_engine_note(what);
            if (!rc) rc = mw_loop_run(loop, MW_NO_DEADLINE, err);
            if (rc) return rc;
            if (*o->ready > 0 || stops(*o->ready, outcome->code)) return 0;
        }
    }
    return 0;
}

/* After a job that failed in AUTH (ready < 0) with an OAuth account's
 * token: the token refreshed once (cli/cmd_oauth.c), as smtp_open does;
 * 1 when the job should run again with o->token. */
static int refresh(smtp_cli *c, mw_loop_smtp_opts *o, int ready, int rc)
{
    int want_token = c->token_file || c->token_eval;
    if (ready >= 0 || rc != MW_EAUTH || !o->token || want_token || !mw_cli_oauth_account(&c->conn))
        return 0;
    if (mw_cli_oauth_conn_token(&c->conn, 1)) return 0; /* its failure printed */
    o->token = c->conn.password;
    return 1;
}

int smtp_loop_failover(smtp_cli *c, mw_loop *loop, mw_loop_smtp_opts *o, const char *what,
                       smtp_loop_add_fn add, const mw_loop_smtp_batch *b, mw_error *outcome,
                       mw_error *err)
{
    /* An OAuth account's token from the store, taken (and refreshed when
     * due, or once after a refusal, on the same connection) in a worker
     * thread while the loop runs (token_async.h). */
    const mw_account *oa = mw_cli_oauth_account(&c->conn);
    mw_cli_token_pool pool;
    mw_cli_token_src src = {&pool, loop, oa, c->conn.trace_fn, c->conn.trace_ud};
    int async = oa && o->token && o->token == c->conn.password && !c->token_file && !c->token_eval;
    if (async) {
        mw_cli_token_pool_init(&pool);
        o->token = NULL;
        o->token_async = mw_cli_token_async;
        o->token_async_userdata = &src;
    }
    int rc = run_servers(c, loop, o, what, add, b, outcome, err);
    if (async) { /* every worker done before the loop can go */
        mw_cli_token_pool_join(&pool);
        o->token = c->conn.password;
        o->token_async = NULL;
        o->token_async_userdata = NULL;
        return rc;
    }
    /* AUTH refused an OAuth account's token: nothing was sent or taken
     * from a batch (it starts once the session is ready): again. */
    if (!rc && refresh(c, o, *o->ready, outcome->code))
        rc = run_servers(c, loop, o, what, add, b, outcome, err);
    return rc;
}

int smtp_loop_run(smtp_cli *c, const mw_loop_smtp_batch *b, int login, int *ready, mw_error *err)
{
    mw_loop *loop = NULL;
    *ready = 0;
    int rc = mw_loop_new(&loop, NULL, err);
    if (rc) return rc;
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    smtp_loop_opts(c, &o, login);
    o.ready = ready;
    mw_error outcome;
    mw_error_clear(&outcome);
    rc = smtp_loop_failover(c, loop, &o, "smtp", mw_loop_add_smtp_batch, b, &outcome, err);
    mw_loop_free(loop);
    if (!rc) *err = outcome;
    return rc;
}
