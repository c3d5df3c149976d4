/* Internal: the asynchronous token provider of a loop job (loop.h,
 * mw_loop_token_fn).  The loop keeps, under a mutex, one entry per job
 * waiting for an answer (by ticket); mw_loop_token_answer fills it from
 * any thread and writes a byte to the loop's wake pipe; the loop's thread,
 * on that descriptor, hands each answer to its job's SASL driver
 * (src/sasl/driver.h) and steps the job.  An entry goes when its job gets
 * the answer or ends (unlink), so an answer never outlives its job. */
#ifndef MW_LOOP_LTOKEN_H
#define MW_LOOP_LTOKEN_H

#include "loop/loop_int.h"
#include "mailwire/token.h"

struct mwi_sasld;
struct mwi_ltok;

/* Answers the driver's MWI_SASLD_TOKEN for job: with the job's
 * asynchronous provider when it has one, else with fn (the synchronous
 * token_fn, mwi_sasld_ask_token).  Returns the driver's next act, or
 * MWI_SASLD_TOKEN when the answer is pending: resume(job, act) is called
 * with the driver's act once it came (from mw_loop_action). */
int mwi_ltok_ask(mw_loop_job *job, struct mwi_sasld *d, mw_token_fn fn, void *ud,
                 void (*resume)(mw_loop_job *job, int act));
/* The job ends: its pending wait (if any) is dropped, an answer wiped. */
void mwi_ltok_forget(mw_loop *loop, mw_loop_job *job);
/* The wake descriptor (-1: none yet). */
int mwi_ltok_fd(const struct mwi_ltok *t);
/* On the wake descriptor: hands the answers to their jobs, each set to
 * step once more (again). */
void mwi_ltok_wake(mw_loop *loop);
/* Frees the loop's part (mw_loop_free). */
void mwi_ltok_free(struct mwi_ltok *t);

#endif
