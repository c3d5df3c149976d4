/* Internal: what the fetch on the POP3 machine (src/loop/fetch_job.c, on
 * the loop or driven over a blocking stream) takes from src/fetch: the
 * plan of one run, its context, and the steps that do not talk to the
 * server (plan.c, filter.c). */
#ifndef MW_FETCH_INT_H
#define MW_FETCH_INT_H

#include "mailwire/fetch.h"

#include <stddef.h>
#include <stdint.h>

enum action { A_SKIP = 0, A_GET, A_DELE };

typedef struct plan {
    uint64_t num;
    uint64_t size;
    const char *uid; /* into the UIDL list, or NULL */
    int action;
    int stored;  /* committed in the store */
    int saved;   /* its UID is in a state file that was saved */
    int bad_uid; /* UIDL gave it a unique-id that breaks RFC 1939 §7 */
    int failed;  /* on the loop: its transfer failed (counted as an error, not a skip) */
} plan;

typedef struct fctx {
    const mw_fetch_opts *o;
    mw_fetch_result *res;
    mw_error *err;
    int first_rc;
    mw_store *s;
    mw_state *st;
    plan *pl;
    size_t n;
    int stop; /* the store or state failed: take no more messages */
    int state_dirty;
    size_t unsaved;
    int64_t now;
    mw_fetch_progress prog;
    uint64_t last_progress_bytes;
} fctx;

/* Keeps the first error (the message prefixed with the step's name) and
 * returns code. */
int mwi_fetch_fail(fctx *c, int code, const char *step, const mw_error *src, const char *fallback);
/* Reports progress (phase as in mw_fetch_progress) to the caller. */
void mwi_fetch_progress(fctx *c, int phase);
/* Store sync, then the state save; marks stored messages saved. */
int mwi_fetch_save_state(fctx *c);
/* Forgets state UIDs the server no longer lists (uids: those it lists). */
int mwi_fetch_prune(fctx *c, const char *const *uids, size_t n);
/* Sets every plan entry's action from the state and the options. */
void mwi_fetch_decide(fctx *c, uint64_t last);
/* Checks the options common to both ways of fetching. */
int mwi_fetch_check_opts(const mw_fetch_opts *o, mw_error *err);
/* Runs the filter on one message's headers (filter_run.c) and sets its
 * action; a filter that fails leaves the message (an error of the run). */
void mwi_fetch_filter_one(fctx *c, plan *p, const char *hdr, size_t len);
/* mw_fetch_account: the loop's POP3 fetch machine driven over a blocking
 * stream (src/loop/fetch_job.c, pop3_drive.c). */
int mwi_fetch_account_driven(mw_fetch_result *res, const mw_fetch_opts *o, mw_error *err);
/* Opens the store with the directory fsync deferred to mwi_fetch_save_state. */
int mwi_fetch_open_store(fctx *c);

#endif
