/* Internal: deferred durability of Maildir files, for the fetch
 * (src/fetch/plan.c, src/loop/fetch_job.c).
 *
 * With mwi_store_defer_files, a Maildir commit writes the message, starts
 * its write-back (sync_file_range) and keeps it in tmp/ with its
 * descriptor open; mw_store_sync() then fsyncs each such file, moves it
 * into new/ and fsyncs new/ once.  So a 0 from commit means "complete in
 * tmp/, not durable, not in new/", and only a 0 from mw_store_sync() makes
 * the messages committed before it delivered: the fetch's order (state
 * save and DELE only after that sync) is what keeps mail from being lost.
 * A file whose fsync or move fails is removed from tmp/, and from then on
 * every mw_store_sync() of that store fails (which of the messages since
 * the last sync are gone cannot be told), so nothing more is recorded or
 * deleted; at worst the next run fetches duplicates.
 *
 * The open descriptors are bounded by a budget, shared by every store that
 * points to it (the stores of one loop: one thread, no locking); when it is
 * spent, a commit first syncs its own store's deferred files (fsync, into
 * new/; the fsync of new/ still waits for mw_store_sync), and when that
 * frees nothing the message is fsync'd and moved at once. */
#ifndef MW_STORE_DEFER_H
#define MW_STORE_DEFER_H

#include "mailwire/store.h"

#include <stddef.h>

typedef struct mwi_store_budget {
    size_t open; /* deferred files open now, over every store using it */
    size_t max;  /* 0: mwi_store_budget_init not called yet */
} mwi_store_budget;

/* A budget from the process's descriptor limit: a quarter of the soft
 * RLIMIT_NOFILE, at least 16 and at most 16384. */
void mwi_store_budget_init(mwi_store_budget *b);
/* Turns deferred file sync on for a Maildir store (no-op for the others).
 * b: the shared budget (must outlive the store), or NULL for the store's
 * own of MWI_STORE_DEFER_OWN files.  Call it before the first commit or
 * right after a successful mw_store_sync().  Returns 0 or MW_ESTATE (files
 * still deferred). */
int mwi_store_defer_files(mw_store *s, mwi_store_budget *b);
#define MWI_STORE_DEFER_OWN 64

#endif
