/* Fuzz target: Content-Type / Content-Disposition values with RFC 2231
 * parameters. */
#include "mailwire/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mw_mime_ctype *ct;
    if (mw_mime_ctype_parse(&ct, (const char *)data, size, NULL)) return 0;
    if (!mw_mime_ctype_value(ct)) abort();
    for (size_t i = 0; i < mw_mime_ctype_param_count(ct); i++) {
        mw_mime_param p;
        if (mw_mime_ctype_param_at(ct, i, &p) || !p.name || !p.value) abort();
        if (mw_mime_ctype_param(ct, p.name) == NULL) abort();
    }
    mw_mime_ctype_free(ct);
    return 0;
}
