/* Internal: the envelope file's text (src/queue/queue.c), apart from the
 * files, for the fuzz target. */
#ifndef MW_QUEUE_QUEUE_INT_H
#define MW_QUEUE_QUEUE_INT_H

#include "mailwire/queue.h"

#include <stddef.h>

/* Parses text[0..len) (up to its first NUL) into *e (zeroed first; its
 * strings freed with mwi_queue_entry_clear).
 * Returns 0, or -1 when malformed (e then cleared). */
int mwi_queue_env_parse(mw_queue_entry *e, const char *text, size_t len);
/* The envelope file's text for e, malloc'd (*len its length); NULL when out
 * of memory. */
char *mwi_queue_env_text(const mw_queue_entry *e, size_t *len);
void mwi_queue_entry_clear(mw_queue_entry *e);

#endif
