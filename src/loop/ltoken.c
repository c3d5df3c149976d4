/* The asynchronous token provider (ltoken.h, loop.h's mw_loop_token_fn):
 * the tickets, the answers kept under a mutex, the wake pipe. */
#include "loop/ltoken.h"
#include "sasl/driver.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Longest token an answer may carry (sasl.c's own bound is lower). */
#define LTOK_MAX_LEN 65536

typedef struct ltok_wait {
    struct ltok_wait *next;
    uint64_t ticket;
    mw_loop_job *job;
    int answered;
    int rc;
    char *token; /* malloc'd, wiped when dropped */
    mw_error err;
} ltok_wait;

struct mwi_ltok {
    pthread_mutex_t mu;
    int rfd, wfd; /* the wake pipe, both non-blocking */
    uint64_t last_ticket;
    ltok_wait *head;
};

static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static void wait_free(ltok_wait *w)
{
    wipe_free(w->token);
    free(w);
}

static int make(mw_loop *loop, struct mwi_ltok **out, mw_error *err)
{
    struct mwi_ltok **tp = mwi_loop_tok(loop);
    if (*tp) {
        *out = *tp;
        return 0;
    }
    struct mwi_ltok *t = calloc(1, sizeof *t);
    if (!t) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int p[2];
    if (pipe(p) != 0) {
        int e = errno;
        free(t);
        return mwi_err_set(err, MW_ENET, "the token provider's wake pipe: %s", MW_ERRNO_TEXT(e));
    }
    for (int k = 0; k < 2; k++) {
        fcntl(p[k], F_SETFL, fcntl(p[k], F_GETFL) | O_NONBLOCK);
        fcntl(p[k], F_SETFD, FD_CLOEXEC);
    }
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        close(p[0]);
        close(p[1]);
        free(t);
        return mwi_err_set(err, MW_ENOMEM, "the token provider's mutex");
    }
    t->rfd = p[0];
    t->wfd = p[1];
    *tp = *out = t;
    return 0;
}

/* Unlinks the wait of ticket (under the lock); NULL when none. */
static ltok_wait *take_locked(struct mwi_ltok *t, uint64_t ticket)
{
    for (ltok_wait **pp = &t->head; *pp; pp = &(*pp)->next) {
        if ((*pp)->ticket == ticket) {
            ltok_wait *w = *pp;
            *pp = w->next;
            w->next = NULL;
            return w;
        }
    }
    return NULL;
}

int mwi_ltok_ask(mw_loop_job *job, mwi_sasld *d, mw_token_fn fn, void *ud,
                 void (*resume)(mw_loop_job *job, int act))
{
    if (!job->tok_fn || !job->loop) return mwi_sasld_ask_token(d, fn, ud);
    mw_error e;
    mw_error_clear(&e);
    struct mwi_ltok *t = NULL;
    ltok_wait *w = calloc(1, sizeof *w);
    int rc = w ? make(job->loop, &t, &e) : mwi_err_set(&e, MW_ENOMEM, "out of memory");
    if (rc) {
        free(w);
        return mwi_sasld_token(d, rc, NULL, &e);
    }
    /* Listed before the provider runs: it may answer from another thread
     * before it returns. */
    pthread_mutex_lock(&t->mu);
    w->ticket = ++t->last_ticket;
    w->job = job;
    w->next = t->head;
    t->head = w;
    pthread_mutex_unlock(&t->mu);
    uint64_t ticket = w->ticket;
    job->tok_ticket = ticket;
    job->tok_sd = d;
    job->tok_resume = resume;
    char *tok = NULL;
    rc = job->tok_fn(job, ticket, mwi_sasld_token_refresh(d), &tok, &e, job->tok_ud);
    if (rc == MW_LOOP_TOKEN_PENDING && !job->done) {
        wipe_free(tok);
        return MWI_SASLD_TOKEN;
    }
    pthread_mutex_lock(&t->mu);
    w = take_locked(t, ticket);
    pthread_mutex_unlock(&t->mu);
    if (w) wait_free(w); /* an answer given besides this one is dropped */
    job->tok_ticket = 0;
    job->tok_sd = NULL;
    if (rc == MW_LOOP_TOKEN_PENDING) { /* the job was ended from inside the provider */
        wipe_free(tok);
        return mwi_sasld_token(d, MW_ECANCELED, NULL, NULL);
    }
    return mwi_sasld_token(d, rc, tok, &e);
}

void mwi_ltok_forget(mw_loop *loop, mw_loop_job *job)
{
    struct mwi_ltok *t = *mwi_loop_tok(loop);
    if (!t || !job->tok_ticket) return;
    pthread_mutex_lock(&t->mu);
    ltok_wait *w = take_locked(t, job->tok_ticket);
    pthread_mutex_unlock(&t->mu);
    if (w) wait_free(w);
    job->tok_ticket = 0;
    job->tok_sd = NULL;
}

int mwi_ltok_fd(const struct mwi_ltok *t)
{
    return t ? t->rfd : -1;
}

void mwi_ltok_wake(mw_loop *loop)
{
    struct mwi_ltok *t = *mwi_loop_tok(loop);
    if (!t) return;
    char buf[256];
    while (read(t->rfd, buf, sizeof buf) > 0)
        ;
    /* The answered waits, out of the list; their jobs are alive (a job's
     * wait leaves the list in this thread before the job is freed). */
    ltok_wait *ready = NULL;
    pthread_mutex_lock(&t->mu);
    for (ltok_wait **pp = &t->head; *pp;) {
        ltok_wait *w = *pp;
        if (w->answered) {
            *pp = w->next;
            w->next = ready;
            ready = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&t->mu);
    while (ready) {
        ltok_wait *w = ready;
        ready = w->next;
        mw_loop_job *j = w->job;
        if (j->done || j->tok_ticket != w->ticket) {
            wait_free(w);
            continue;
        }
        if (j->cancel_rc) { /* the next step ends it, still waiting */
            wait_free(w);
            j->again = 1;
            continue;
        }
        j->tok_ticket = 0;
        mwi_sasld *d = j->tok_sd;
        j->tok_sd = NULL;
        char *tok = w->token;
        w->token = NULL;
        int act = mwi_sasld_token(d, w->rc, tok, &w->err);
        wait_free(w);
        j->tok_resume(j, act);
        if (!j->done) j->again = 1; /* the step writes what the login queued */
    }
}

void mwi_ltok_free(struct mwi_ltok *t)
{
    if (!t) return;
    while (t->head) {
        ltok_wait *w = t->head;
        t->head = w->next;
        wait_free(w);
    }
    close(t->rfd);
    close(t->wfd);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

int mw_loop_set_token_provider(mw_loop *loop, mw_loop_job *job, mw_loop_token_fn fn, void *userdata)
{
    if (!loop || !job || !fn || job->loop != loop || job->done) return MW_EINVAL;
    job->tok_fn = fn;
    job->tok_ud = userdata;
    return 0;
}

int mw_loop_token_answer(mw_loop *loop, uint64_t ticket, int rc, const char *token, size_t len,
                         const mw_error *err)
{
    if (!loop || !ticket || rc > 0 || (!rc && !token) || (!rc && len > LTOK_MAX_LEN))
        return MW_EINVAL;
    struct mwi_ltok *t = *mwi_loop_tok(loop);
    if (!t) return MW_ESTATE; /* no provider was ever asked on this loop */
    char *copy = NULL;
    mw_error e;
    mw_error_clear(&e);
    if (!rc && memchr(token, 0, len)) {
        rc = mwi_err_set(&e, MW_EINVAL, "the token provider's token holds a NUL octet");
    } else if (!rc) {
        if (!(copy = malloc(len + 1))) return MW_ENOMEM;
        memcpy(copy, token, len);
        copy[len] = 0;
    } else if (err && err->message[0]) {
        e = *err;
        e.code = rc;
    } else {
        mwi_err_set(&e, rc, "the token provider failed (%s)", mw_strerror(rc));
    }
    pthread_mutex_lock(&t->mu);
    ltok_wait *w = t->head;
    while (w && w->ticket != ticket)
        w = w->next;
    int found = w && !w->answered;
    if (found) {
        w->answered = 1;
        w->rc = rc;
        w->token = copy;
        w->err = e;
        copy = NULL;
    }
    pthread_mutex_unlock(&t->mu);
    if (!found) {
        if (copy) {
            explicit_bzero(copy, len);
            free(copy);
        }
        return MW_ESTATE;
    }
    /* A full pipe already wakes the loop. */
    char one = 1;
    ssize_t n;
    do
        n = write(t->wfd, &one, 1);
    while (n < 0 && errno == EINTR);
    return 0;
}
