/* The POP3 job held between commands, over a blocking stream
 * (pop3_held.h): the machine of pop3_job.c in P3L_CMDS mode with `held`
 * set, driven by pop3_drive.c.  After its login (and STAT) the job waits
 * in S_HELD instead of sending QUIT. */
#include "loop/pop3_held.h"
#include "loop/pop3_job.h"
#include "net/stream.h"
#include "util/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define P3H_MAX_CAPA 128 /* lines kept, as src/pop3 kept them */

_Static_assert(MWI_P3H_FAIL == P3L_FAIL, "one event kind for a failed command");

struct mwi_p3h {
    mw_loop_job *job;
    p3l_drive d;
    char *host;
    mw_net_opts net;
};

void mwi_p3l_capa_keep(p3l *p, const char *l, size_t len)
{
    if (len == 0 || p->ncapa_kept >= P3H_MAX_CAPA) return; /* more than looked at */
    if (!p->capa_kept && !(p->capa_kept = calloc(P3H_MAX_CAPA, sizeof *p->capa_kept))) return;
    char *s = malloc(len + 1);
    if (!s) return;
    mwi_copy_printable(s, len + 1, l, len);
    p->capa_kept[p->ncapa_kept++] = s;
}

void mwi_p3l_capa_forget(p3l *p)
{
    for (size_t i = 0; i < p->ncapa_kept; i++)
        free(p->capa_kept[i]);
    p->ncapa_kept = 0;
}

/* ---- a job's facts before the login (loop.h) ----------------------------- */

static const p3l *p3l_of(const mw_loop_job *job)
{
    return job && job->ops == &mwi_p3l_ops && !job->done ? job->impl : NULL;
}

const char *mw_loop_pop3_greeting(const mw_loop_job *job)
{
    const p3l *p = p3l_of(job);
    return p ? p->greeting : NULL;
}

int mw_loop_pop3_capa_known(const mw_loop_job *job)
{
    const p3l *p = p3l_of(job);
    return p && p->capa_known;
}

size_t mw_loop_pop3_capa_count(const mw_loop_job *job)
{
    const p3l *p = p3l_of(job);
    return p ? p->ncapa_kept : 0;
}

const char *mw_loop_pop3_capa_line(const mw_loop_job *job, size_t i)
{
    const p3l *p = p3l_of(job);
    return p && i < p->ncapa_kept ? p->capa_kept[i] : NULL;
}

int mw_loop_pop3_tls_info(const mw_loop_job *job, mw_tls_info *out)
{
    if (!out) return MW_EINVAL;
    memset(out, 0, sizeof *out);
    const p3l *p = p3l_of(job);
    if (!p) return MW_EINVAL;
    const mw_tls_peer *peer = MWI_LCONN_SECURE(&p->c) ? mwi_ltls_peer(p->c.tls) : NULL;
    return peer ? mwi_tls_info_of_peer(peer, out) : MW_EUNSUPPORTED;
}

void mwi_loop_pop3_opts_from(mw_loop_pop3_opts *lo, const mw_pop3_opts *po, const char *host)
{
    lo->host = host;
    lo->port = po->port;
    lo->tls = po->tls;
    lo->user = po->user;
    lo->password = po->password;
    lo->allow_plaintext = po->allow_plaintext;
    lo->auth = po->auth;
    lo->sasl_mechs = po->sasl_mechs;
    lo->authzid = po->authzid;
    lo->sasl_ir = po->sasl_ir;
    lo->trace_secrets = po->trace_secrets;
    lo->token = po->token;
    lo->trace = po->trace;
    lo->trace_userdata = po->trace_userdata;
    lo->msex = po->msex;
    lo->retr_mode = po->retr_mode;
}

/* The input buffer holds a line of max_line octets and its CR LF, and
 * at least a read of HELD_READ: one session per thread takes the blocks
 * src/net reads (64 KiB), where a loop's thousands keep 32 KiB. */
#define HELD_READ (64 * 1024)
static int line_room(p3l *p, size_t max_line)
{
    if (!max_line) max_line = 8192;
    size_t want = max_line + 2 > HELD_READ ? max_line + 2 : HELD_READ;
    if (want > p->c.in_cap) {
        char *n = realloc(p->c.in, want);
        if (!n) return MW_ENOMEM;
        p->c.in = n;
        p->c.in_cap = want;
    }
    p->max_line = max_line;
    return 0;
}

/* Room for mw_pop3_retr_msgs' window of MW_POP3_WINDOW_MAX commands. */
static int queue_room(p3l *p)
{
    size_t cap = MW_POP3_WINDOW_MAX + 8;
    p3l_cmd *q = realloc(p->q, cap * sizeof *q);
    if (!q) return MW_ENOMEM;
    p->q = q;
    p->q_cap = cap;
    p->c.out.max = cap * (P3L_CMD_MAX + 2) + 16386;
    return 0;
}

static int is_held(const p3l *p)
{
    return p->state == S_HELD;
}

static void fail_open(mwi_p3h *h, mw_error *err)
{
    if (err) *err = h->job->err;
    mwi_p3h_free(h);
}

int mwi_p3h_open(mwi_p3h **out, const char *host, const mw_pop3_opts *po, mw_error *err)
{
    *out = NULL;
    mwi_p3h *h = calloc(1, sizeof *h);
    if (h) h->host = strdup(host ? host : "");
    if (!h || !h->host) {
        free(h);
        if (po->stream) mw_stream_free(po->stream);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    mw_net_opts ndflt = MW_NET_OPTS_INIT;
    h->net = po->net ? *po->net : ndflt;
    mw_loop_pop3_opts lo = MW_LOOP_POP3_OPTS_INIT;
    mwi_loop_pop3_opts_from(&lo, po, h->host);
    lo.tls_opts = NULL; /* the stream's TLS is src/net's, from po */
    lo.window = !po->pipelining ? 1 : po->window ? po->window : 32;
    int rc = mwi_p3l_held_new(&h->job, &lo, err);
    if (rc) {
        if (po->stream) mw_stream_free(po->stream);
        mwi_p3h_free(h);
        return rc;
    }
    p3l *p = h->job->impl;
    p->no_stat = po->skip_stat;
    mwi_loop_pop3_set_login(h->job, po->version >= 2 ? po->token_fn : NULL,
                            po->version >= 2 ? po->token_userdata : NULL, po->msex);
    p3l_drive *d = &h->d;
    d->p = p;
    d->host = h->host;
    d->tls_opts = po->tls_opts;
    d->net = &h->net;
    d->io_timeout_ms = h->net.io_timeout_ms;
    d->command_timeout_ms = po->command_timeout_ms;
    d->cancel = h->net.cancel;
    d->given = po->stream;
    d->deadline = MW_NO_DEADLINE;
    if ((rc = line_room(p, po->max_line)) != 0) {
        mwi_err_set(&h->job->err, rc, "out of memory");
        fail_open(h, err);
        return rc;
    }
    p->want_pipe = po->pipelining;
    if ((rc = queue_room(p)) != 0) {
        mwi_err_set(&h->job->err, rc, "out of memory");
        fail_open(h, err);
        return rc;
    }
    p->c.connecting = 1;
    mwi_p3l_drive(d, is_held);
    d->deadline = MW_NO_DEADLINE;
    d->net = NULL;
    d->tls_opts = NULL; /* STLS only while opening */
    if (h->job->done) {
        rc = h->job->err.code ? h->job->err.code : MW_EPROTO;
        fail_open(h, err);
        return rc;
    }
    *out = h;
    return 0;
}

void mwi_p3h_info_get(const mwi_p3h *h, mwi_p3h_info *out)
{
    const p3l *p = h->job->impl;
    out->greeting = p->greeting;
    out->auth_used = p->auth_used;
    out->capa = p->capa_kept;
    out->ncapa = p->ncapa_kept;
    out->capa_known = p->capa_known;
    out->secure = MWI_LCONN_SECURE(&p->c);
}

typedef struct trampoline {
    p3l *p;
    mwi_p3h_fn fn;
    void *ud;
} trampoline;

static int on_reply(mw_loop_job *job, const mw_loop_pop3_reply *r, void *ud)
{
    (void)job;
    trampoline *t = ud;
    return t->fn(r, r->kind == MWI_P3H_FAIL ? &t->p->cmd_err : NULL, t->ud);
}

/* The commands src/pop3 bounded as a whole by command_timeout_ms (a
 * reply that never ends): STAT, a whole LIST or UIDL, one RETR or TOP. */
static int bounded(const mw_loop_pop3_cmd *c)
{
    if (c->last) return 0;
    if (c->op == MW_LOOP_POP3_LIST || c->op == MW_LOOP_POP3_UIDL) return c->msg == 0;
    return c->op == MW_LOOP_POP3_STAT || c->op == MW_LOOP_POP3_RETR || c->op == MW_LOOP_POP3_TOP;
}

/* Drives until the job is held again (or over). */
static int drive_held(mwi_p3h *h, mw_error *err)
{
    p3l *p = h->job->impl;
    mwi_p3l_drive(&h->d, is_held);
    h->d.deadline = MW_NO_DEADLINE;
    if (h->job->done) {
        if (err) *err = h->job->err;
        return h->job->err.code ? h->job->err.code : MW_ESTATE;
    }
    if (p->cmd_err.code) {
        if (err) *err = p->cmd_err;
        return p->cmd_err.code;
    }
    return 0;
}

int mwi_p3h_run(mwi_p3h *h, const mw_loop_pop3_cmd *cmds, size_t n, const mwi_p3h_opts *ro,
                mwi_p3h_fn fn, void *ud, mw_error *err)
{
    p3l *p = h->job->impl;
    if (h->job->done || p->state != S_HELD) {
        if (err) *err = h->job->err;
        return h->job->err.code ? h->job->err.code : MW_ESTATE;
    }
    static const mwi_p3h_opts none;
    if (!ro) ro = &none;
    p->run_list = ro->list;
    p->run_n = ro->nlist;
    p->run_go_on = ro->go_on;
    p->run_max_cmds = ro->max_cmds;
    p->run_max_bytes = ro->max_bytes;
    p->lenient_uidl = ro->lenient_uidl;
    trampoline t = {p, fn, ud};
    if (h->d.command_timeout_ms > 0 && bounded(cmds))
        h->d.deadline = mw_now_ms() + h->d.command_timeout_ms;
    mwi_p3l_push(p, cmds, n, on_reply, &t);
    mwi_p3l_drive_resume(&h->d);
    int rc = drive_held(h, err);
    p->run_list = NULL;
    p->reply = NULL;
    return rc;
}

int mwi_p3h_quit(mwi_p3h *h, int *confirmed, mw_error *err)
{
    p3l *p = h->job->impl;
    *confirmed = 0;
    if (h->job->done || p->state != S_HELD) {
        if (err) *err = h->job->err;
        return h->job->err.code ? h->job->err.code : MW_ESTATE;
    }
    mw_error_clear(&h->job->err);
    mwi_p3l_held_quit(p);
    mwi_p3l_drive_resume(&h->d);
    mwi_p3l_drive(&h->d, NULL);
    mwi_p3l_drive_free(&h->d); /* QUIT closes the connection, answered or not */
    *confirmed = h->job->result.quit_ok;
    if (h->job->err.code && err) *err = h->job->err;
    return h->job->err.code;
}

int mwi_p3h_alive(const mwi_p3h *h)
{
    return h && !h->job->done;
}

int mwi_p3h_count(const mwi_p3h *h, uint64_t *count)
{
    const p3l *p = h->job->impl;
    *count = p->have_count ? p->count : 0;
    return p->have_count;
}

void mwi_p3h_set_count(mwi_p3h *h, uint64_t count)
{
    p3l *p = h->job->impl;
    p->count = count;
    p->have_count = 1;
}

void mwi_p3h_set_pipelining(mwi_p3h *h, int on)
{
    ((p3l *)h->job->impl)->capa_pipelining = on;
}

int mwi_p3h_retr_mode(const mwi_p3h *h)
{
    return ((const p3l *)h->job->impl)->retr_mode;
}

int mwi_p3h_tls_info(const mwi_p3h *h, mw_tls_info *out)
{
    if (!h->d.s) return MW_EUNSUPPORTED;
    return mw_stream_tls_info(h->d.s, out);
}

void mwi_p3h_free(mwi_p3h *h)
{
    if (!h) return;
    mwi_p3l_drive_free(&h->d);
    if (h->job) {
        h->job->ops->destroy(h->job);
        free(h->job);
    }
    free(h->host);
    free(h);
}
