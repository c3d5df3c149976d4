/* `mailwire send` under MAILWIRE_ENGINE=loop (cli/engine.h): the message
 * built as for the blocking path goes through mw_loop_add_smtp_send on a
 * private loop, and the outcome is printed as the blocking path prints it
 * (the same texts: the job's errors are the blocking session's).  What the
 * loop cannot do yet is an error naming it, never a fallback. */
#include "commands.h"
#include "send_int.h"

#include "mailwire/error.h"
#include "mailwire/loop.h"

#include <stdio.h>
#include <stdlib.h>

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

/* A single send in smtp_loop_failover's shape. */
static int add_send(mw_loop *loop, mw_loop_job **job, const mw_loop_smtp_opts *o,
                    const mw_loop_smtp_batch *b, mw_loop_done_fn done, void *ud, mw_error *err)
{
    (void)b;
    return mw_loop_add_smtp_send(loop, job, o, done, ud, err);
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
    int rc = smtp_loop_creds(c, 1);
    if (rc) return rc;
    mw_loop *loop = NULL;
    rc = mw_loop_new(&loop, NULL, &err);
    if (rc) return open_failed(c, rc, &err);
    mw_loop_smtp_opts o = MW_LOOP_SMTP_OPTS_INIT;
    mw_smtp_result *r = NULL;
    int ready = 0;
    mw_error out;
    mw_error_clear(&out);
    fill_opts(c, &o, m);
    o.result = &r;
    o.downgrade = A->downgrade;
    o.ready = &ready;
    rc = smtp_loop_failover(c, loop, &o, "send", add_send, NULL, &out, &err);
    mw_loop_free(loop);
    if (rc) return open_failed(c, rc, &err);
    if (ready <= 0) return open_failed(c, out.code, &out);
    print_result(c, NULL, out.code, r, &out);
    int ex = tx_exit(out.code, r);
    json_tx_error(ex, out.code, r, &out, NULL);
    if (A->verbose && !c->conn.json && r) send_verbose_result(r);
    mw_smtp_result_free(r);
    return ex;
}
