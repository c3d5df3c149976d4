/* Internal: the netrc parser behind mw_netrc_lookup(), exposed so the unit
 * tests can feed it text without files. */
#ifndef MW_UTIL_NETRC_H
#define MW_UTIL_NETRC_H

#include "mailwire/netrc.h"

/* Same result as mw_netrc_lookup() on text[0..len). */
int mwi_netrc_parse(mw_netrc_entry *out, const char *text, size_t len, const char *host,
                    const char *login, mw_error *err);

#endif
