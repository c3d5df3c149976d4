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

/* The machine's options from src/pop3's. */
static void opts_from(mw_loop_pop3_opts *lo, const mw_pop3_opts *po, const char *host)
{
    lo->host = host;
    lo->port = po->port;
    lo->tls = po->tls;
    lo->tls_opts = NULL; /* the stream's TLS is src/net's, from po */
    lo->user = po->user;
    lo->password = po->password;
    lo->allow_plaintext = po->allow_plaintext;
    lo->auth = po->auth;
    lo->sasl_mechs = po->sasl_mechs;
    lo->authzid = po->authzid;
    lo->sasl_ir = po->sasl_ir;
    lo->trace_secrets = po->trace_secrets;
    lo->token = po->token;
    lo->window = !po->pipelining ? 1 : po->window ? po->window : 32;
    lo->trace = po->trace;
    lo->trace_userdata = po->trace_userdata;
    lo->msex = po->msex;
    lo->retr_mode = po->retr_mode;
}

/* The input buffer holds a line of max_line octets and its CR LF. */
static int line_room(p3l *p, size_t max_line)
{
    if (!max_line) max_line = 8192;
    if (max_line + 2 > p->c.in_cap) {
        char *n = realloc(p->c.in, max_line + 2);
        if (!n) return MW_ENOMEM;
        p->c.in = n;
        p->c.in_cap = max_line + 2;
    }
    p->max_line = max_line;
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
    opts_from(&lo, po, h->host);
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
    out->count = p->count;
    out->have_count = p->have_count;
    out->secure = MWI_LCONN_SECURE(&p->c);
}

mw_stream *mwi_p3h_release(mwi_p3h *h, const char **left, size_t *nleft)
{
    p3l *p = h->job->impl;
    *left = p->c.in;
    *nleft = p->c.in_len;
    mw_stream *s = h->d.s;
    h->d.s = NULL;
    p->c.ext_stream = NULL;
    return s;
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
