/* Internals shared by the store module's files. */
#ifndef MW_STORE_INT_H
#define MW_STORE_INT_H

#include "mailwire/error.h"
#include "mailwire/store.h"

#include <stddef.h>

/* Asks the fault hook (if any) about op on path; returns the errno it
 * injects (and sets errno to it), or 0. */
int mwi_store_fault_check(mw_store_fault_fn fn, void *ud, mw_store_op op, const char *path);
/* fsync of a directory, asking the fault hook first; returns 0 or an errno. */
int mwi_store_fsync_dir(mw_store_fault_fn fn, void *ud, const char *dir);
/* The directory part of path into dir ("." when none); 0 or -1 when too long. */
int mwi_store_dirname(char *dir, size_t size, const char *path);

/* Parses a state file image (the UIDL journal format) into st; used by
 * mw_state_open and the fuzz target.  name is used in error messages. */
int mwi_state_parse(mw_state *st, const char *data, size_t len, const char *name);
/* An unlocked, empty state for parsing (fuzzing, tests). */
mw_state *mwi_state_new_detached(void);

#endif
