/* The OAuth token in a worker thread (token_async.h). */
#include "token_async.h"

#include "oauth_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct req {
    mw_cli_token_src src;
    uint64_t ticket;
    int refused;
} req;

void mw_cli_token_pool_init(mw_cli_token_pool *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
}

void mw_cli_token_pool_join(mw_cli_token_pool *p)
{
    /* A worker only adds itself before it starts (under the lock, in the
     * loop's thread): none is added while this runs. */
    for (size_t k = 0; k < p->n; k++)
        pthread_join(p->th[k], NULL);
    free(p->th);
    p->th = NULL;
    p->n = p->cap = 0;
    pthread_mutex_destroy(&p->mu);
}

static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void *worker(void *arg)
{
    req *q = arg;
    char *tok = NULL;
    mw_error e;
    mw_error_clear(&e);
    int rc =
        mw_cli_oauth_token_err(q->src.oauth, q->src.trace, q->src.trace_ud, q->refused, &tok, &e);
    if (!rc && !tok) {
        rc = MW_EAUTH;
        e.code = rc;
        snprintf(e.message, sizeof e.message, "the OAuth token store gave no token");
    }
    /* MW_ESTATE: the job ended meanwhile; the token is dropped. */
    mw_loop_token_answer(q->src.loop, q->ticket, rc, tok, tok ? strlen(tok) : 0, &e);
    wipe_free(tok);
    free(q);
    return NULL;
}

int mw_cli_token_async(mw_loop_job *job, uint64_t ticket, int refused, char **token, mw_error *err,
                       void *userdata)
{
    (void)job;
    mw_cli_token_src *s = userdata;
    req *q = malloc(sizeof *q);
    mw_cli_token_pool *p = s->pool;
    int started = 0;
    if (q) {
        q->src = *s;
        q->ticket = ticket;
        q->refused = refused;
        pthread_mutex_lock(&p->mu);
        if (p->n == p->cap) {
            size_t cap = p->cap ? p->cap * 2 : 16;
            pthread_t *t = realloc(p->th, cap * sizeof *t);
            if (t) {
                p->th = t;
                p->cap = cap;
            }
        }
        if (p->n < p->cap && pthread_create(&p->th[p->n], NULL, worker, q) == 0) {
            p->n++;
            p->started++;
            started = 1;
        }
        pthread_mutex_unlock(&p->mu);
    }
    if (started) return MW_LOOP_TOKEN_PENDING;
    free(q);
    /* No thread to spare: the token now, in this thread. */
    return mw_cli_oauth_token_err(s->oauth, s->trace, s->trace_ud, refused, token, err);
}
