/* `mailwire send` under MAILWIRE_ENGINE=loop (cli/engine.h): the message
 * built as for the blocking path goes through mw_loop_add_smtp_send on a
 * private loop, and the outcome is printed as the blocking path prints it
 * (the same texts: the job's errors are the blocking session's).  What the
 * loop cannot do yet is an error naming it, never a fallback. */
#include "commands.h"
#include "engine.h"
#include "oauth_cli.h"
#include "send_int.h"

#include "mailwire/error.h"
#include "mailwire/loop.h"

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

/* Why the loop cannot send this yet, or NULL. */
static const char *not_on_loop(const smtp_cli *c, const send_args *A)
{
    (void)A;
    return smtp_loop_gap(c, 1);
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
    smtp_loop_opts(c, o, 1);
    o->msg = m;
}

/* A failure another server would meet too (smtp.c's failover stops). */
static int stops(int ready, int rc)
{
    return ready < 0 || rc == MW_EINVAL || rc == MW_ENOMEM || rc == MW_ECANCELED ||
           rc == MW_EPOLICY;
}

/* mw_smtp_open's failover: every port of a server before the next, one
 * job at a time, until one got ready or a failure that stops it.  0, or
 * the loop's own failure (in err). */
static int failover(mw_loop *loop, const smtp_cli *c, mw_loop_smtp_opts *o, loop_out *out,
                    mw_error *err)
{
    for (size_t i = 0; i < c->nservers; i++) {
        for (size_t k = 0; k < c->nports; k++) {
            o->host = c->servers[i];
            o->port = c->ports[k];
            mw_loop_job *job = NULL;
            int rc = mw_loop_add_smtp_send(loop, &job, o, done_cb, out, err);
            if (!rc) /* the rate floor, the default one too, as the blocking stream's */
                mw_loop_set_speed_limit(loop, job, c->conn.speed_limit, c->conn.speed_time_ms);
            if (!rc) mw_cli_engine_note("send");
            if (!rc) rc = mw_loop_run(loop, MW_NO_DEADLINE, err);
            if (rc) return rc;
            if (*o->ready > 0 || stops(*o->ready, out->rc)) return 0;
            mw_smtp_result_free(*o->result);
            *o->result = NULL;
        }
    }
    return 0;
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
    int rc = smtp_loop_creds(c, 1);
    if (rc) return rc;
    mw_loop *loop = NULL;
    rc = mw_loop_new(&loop, NULL, &err);
    if (rc) return open_failed(c, rc, &err);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    mw_smtp_result *r = NULL;
    int ready = 0;
    loop_out out = {0};
    fill_opts(c, &o, m);
    o.result = &r;
    o.downgrade = A->downgrade;
    o.ready = &ready;
    rc = failover(loop, c, &o, &out, &err);
    mw_loop_free(loop);
    if (rc) return open_failed(c, rc, &err);
    if (ready <= 0) return open_failed(c, out.rc, &out.err);
    print_result(c, NULL, out.rc, r, &out.err);
    int ex = tx_exit(out.rc, r);
    json_tx_error(ex, out.rc, r, &out.err, NULL);
    if (A->verbose && !c->conn.json && r) send_verbose_result(r);
    mw_smtp_result_free(r);
    return ex;
}
