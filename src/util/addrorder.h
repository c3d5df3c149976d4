/* Internal: the order in which a host's addresses are tried, shared by the
 * blocking connect (src/net/s_tcp.c) and the loop's resolver
 * (src/resolve/conf.c, for src/loop/leyes.c), and the delay between two
 * attempts of a race (RFC 8305 §5). */
#ifndef MW_UTIL_ADDRORDER_H
#define MW_UTIL_ADDRORDER_H

#include <stddef.h>

/* RFC 8305 §5 "Connection Attempt Delay": the next attempt starts when
 * none has connected this long after the last one started. */
#define MWI_HE_ATTEMPT_DELAY_MS 250

/* RFC 8305 §4: the families alternating, starting with `first` (0: the
 * family of family[0]), each family's own order kept, so that one broken
 * family costs one attempt delay, not every address of it in turn.
 * family[i] is the i-th address's; order gets up to max indices.
 * Returns how many. */
size_t mwi_he_order(const int *family, size_t n, int first, size_t *order, size_t max);

#endif
