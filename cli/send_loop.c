/* `mailwire send` under MAILWIRE_ENGINE=loop (cli/engine.h): the message
 * built as for the blocking path goes through mw_loop_add_smtp_send on a
 * private loop, and the outcome is printed as the blocking path prints it
 * (the same texts: the job's errors are the blocking session's).  What the
 * loop cannot do yet is an error naming it, never a fallback. */
#include "commands.h"
#include "send_int.h"

#include "mailwire/error.h"
#include "mailwire/loop.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct loop_out {
    int rc;
    mw_error err;
} loop_out;

static void done_cb(mw_loop_job *job, const mw_loop_result *res, void *ud)
{
    (void)job;
    loop_out *o = ud;
    o->rc = res->code;
    o->err = *res->err;
}

static int numeric_host(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* Why the loop cannot send this yet, or NULL. */
static const char *not_on_loop(const smtp_cli *c, const send_args *A)
{
    if (c->nservers > 1 || c->nports > 1) return "failover over several servers or ports";
    if (c->opportunistic) return "--tls opportunistic";
    if (c->token_file || c->token_eval || mw_cli_auth_is_token(c->conn.auth))
        return "OAuth tokens (SASL)";
    if (c->queue) return "--queue (QUED)";
    if (A->bcc_digest) return "--bcc-digest";
    if (A->downgrade && A->body == MW_SMTP_BODY_BINARYMIME) return "--downgrade";
    if (c->conn.proxy) return "--proxy";
    if (c->conn.speed_limit_given || c->conn.speed_time_given) return "--speed-limit/--speed-time";
    if (!numeric_host(c->servers[0])) return "a host name (name lookup is not on the loop yet)";
    return NULL;
}

/* A failure of the session (before it was ready), as smtp_open prints it. */
static int open_failed(const smtp_cli *c, int rc, const mw_error *err)
{
    fprintf(stderr, "mailwire %s: %s\n", c->prog, err->message);
    mw_cli_json_error(exit_for(rc), rc, err, NULL);
    return exit_for(rc);
}

static void fill_opts(smtp_cli *c, mw_loop_smtp_opts *o, const mw_smtp_msg *m)
{
    mw_cli_conn_tls_opts(&c->conn, &c->tls);
    mw_cli_conn_net_opts(&c->conn, &c->net);
    o->host = c->servers[0];
    o->port = c->ports[0];
    o->tls = c->conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
             : c->conn.tls == MW_CLI_TLS_NONE   ? MW_TLS_NONE
                                                : MW_TLS_STARTTLS;
    o->tls_opts = &c->tls;
    if (c->conn.user) {
        o->user = c->conn.user;
        o->password = c->conn.password;
        o->auth = c->conn.auth;
    }
    o->allow_plaintext = c->conn.allow_plaintext;
    o->helo = c->client;
    o->msg = m;
    o->connect_timeout_ms = c->net.connect_timeout_ms;
    o->io_timeout_ms = c->net.io_timeout_ms;
    o->max_time_ms = c->net.max_time_ms;
    o->trace = c->conn.trace_fn;
    o->trace_userdata = c->conn.trace_ud;
}

int send_loop_refuse(const smtp_cli *c, const char *why)
{
    mw_error err;
    mw_error_clear(&err);
    snprintf(err.message, sizeof err.message, "not on the loop engine yet: %s", why);
    return open_failed(c, MW_EUNSUPPORTED, &err);
}

int send_on_loop(smtp_cli *c, const send_args *A, const mw_smtp_msg *m)
{
    mw_error err;
    mw_error_clear(&err);
    const char *why = not_on_loop(c, A);
    if (why) return send_loop_refuse(c, why);
    if (c->conn.user) {
        int rc = mw_cli_conn_password(&c->conn);
        if (rc) return rc;
    }
    mw_loop *loop = NULL;
    int rc = mw_loop_new(&loop, NULL, &err);
    if (rc) return open_failed(c, rc, &err);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    mw_smtp_result *r = NULL;
    int ready = 0;
    loop_out out = {0};
    fill_opts(c, &o, m);
    o.result = &r;
    o.ready = &ready;
    rc = mw_loop_add_smtp_send(loop, NULL, &o, done_cb, &out, &err);
    if (!rc) rc = mw_loop_run(loop, MW_NO_DEADLINE, &err);
    mw_loop_free(loop);
    if (rc) return open_failed(c, rc, &err);
    if (!ready) {
        mw_smtp_result_free(r);
        return open_failed(c, out.rc, &out.err);
    }
    print_result(c, NULL, out.rc, r, &out.err);
    int ex = tx_exit(out.rc, r);
    json_tx_error(ex, out.rc, r, &out.err, NULL);
    if (A->verbose && !c->conn.json && r) send_verbose_result(r);
    mw_smtp_result_free(r);
    return ex;
}
