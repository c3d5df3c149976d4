/* Internal: the one source of random bytes (boundaries, Message-IDs). */
#ifndef MW_UTIL_RANDOM_H
#define MW_UTIL_RANDOM_H

#include "mailwire/error.h"

#include <stddef.h>

/* Fills buf[0..n) from the kernel's generator.  Returns 0, or MW_EIO with
 * err filled (err may be NULL) when the kernel gives none: there is no
 * weaker fallback, so a caller never gets predictable bytes silently. */
int mwi_random_bytes(void *buf, size_t n, mw_error *err);

#endif
