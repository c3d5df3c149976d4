/* An OAuth account's token for a loop job without stalling the loop
 * (loop.h, mw_loop_token_fn): the token store's token, refreshed over
 * HTTPS when due or after the server refused it, is taken in a worker
 * thread, which hands it to the job with mw_loop_token_answer.  The
 * token stays in memory: never in argv, the environment or a trace. */
#ifndef MW_CLI_TOKEN_ASYNC_H
#define MW_CLI_TOKEN_ASYNC_H

#include "mailwire/config.h"
#include "mailwire/loop.h"
#include "mailwire/trace.h"

#include <pthread.h>

/* The worker threads started for one loop; joined before it is freed. */
typedef struct mw_cli_token_pool {
    pthread_mutex_t mu;
    pthread_t *th;
    size_t n, cap;
    size_t started; /* workers started, for the tests' counts */
} mw_cli_token_pool;

/* Where a job's token comes from: the provider's userdata. */
typedef struct mw_cli_token_src {
    mw_cli_token_pool *pool;
    mw_loop *loop;
    const mw_account *oauth;
    mw_trace_fn trace; /* the refresh's HTTPS trace (masked by src/oauth) */
    void *trace_ud;
} mw_cli_token_src;

void mw_cli_token_pool_init(mw_cli_token_pool *p);
/* Joins every worker (each ends within its HTTPS timeout), frees. */
void mw_cli_token_pool_join(mw_cli_token_pool *p);
/* The provider (mw_loop_token_fn), userdata a mw_cli_token_src: pending,
 * a worker answers; without a thread, the token at once. */
int mw_cli_token_async(mw_loop_job *job, uint64_t ticket, int refused, char **token, mw_error *err,
                       void *userdata);

#endif
