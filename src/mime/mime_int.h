/* Internal declarations shared by the files of src/mime. */
#ifndef MW_MIME_INT_H
#define MW_MIME_INT_H

#include "mailwire/mime.h"
#include "util/buf.h"

#include <stddef.h>

/* ASCII-only helpers: the library never depends on the locale. */
static inline int mw_is_wsp(int c)
{
    return c == ' ' || c == '\t';
}
static inline int mw_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}
int mw_ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen);

/* Header block internals used by the message parser. */
int mw_mime_headers_init_defaults(mw_mime_header_opts *o, const mw_mime_header_opts *in);
/* Appends a field built from name and value without validating the value
 * (used for parsed copies); fold != 0 folds long values. */
int mw_mime_headers_add_raw(mw_mime_headers *h, const char *raw, size_t len);
/* Sets the separator written after the fields. */
void mw_mime_headers_set_sep(mw_mime_headers *h, const char *sep, size_t len);

#endif
