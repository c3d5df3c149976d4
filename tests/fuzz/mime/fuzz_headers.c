/* Fuzz target: the RFC 5322 header block parser.  Property: fed whole or
 * in two pieces (split at a point taken from the input), the fields and the
 * written bytes are the same, and writing gives back the consumed bytes. */
#include "mailwire/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *p;
    size_t n;
};

static int wr(const char *d, size_t n, void *ud)
{
    struct out *o = ud;
    char *np = realloc(o->p, o->n + n + 1);
    if (!np) abort();
    memcpy(np + o->n, d, n);
    o->p = np;
    o->n += n;
    return 0;
}

static int parse(const char *d, size_t n, size_t cut, struct out *o, size_t *used)
{
    mw_mime_header_opts opts = MW_MIME_HEADER_OPTS_INIT;
    opts.max_field_len = 4096;
    opts.max_fields = 64;
    mw_mime_headers *h;
    if (mw_mime_headers_new(&h, &opts, NULL)) abort();
    size_t u1 = 0, u2 = 0;
    int rc = mw_mime_headers_feed(h, d, cut, &u1);
    if (rc == 0) rc = mw_mime_headers_feed(h, d + cut, n - cut, &u2);
    if (rc == 0) rc = mw_mime_headers_finish(h);
    if (rc >= 0) {
        *used = u1 + u2;
        mw_mime_headers_write(h, wr, o);
        /* every accessor on every field */
        for (size_t i = 0; i < mw_mime_headers_count(h); i++) {
            mw_mime_field f;
            if (mw_mime_headers_at(h, i, &f)) abort();
            char name[64];
            if (f.name_len && f.name_len < sizeof name) {
                memcpy(name, f.name, f.name_len);
                name[f.name_len] = '\0';
                if (!mw_mime_headers_get(h, name, 0)) abort();
            }
        }
    }
    mw_mime_headers_free(h);
    return rc < 0 ? rc : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *d = (const char *)data;
    size_t cut = size ? data[0] % (size + 1) : 0;
    struct out a = {0}, b = {0};
    size_t ua = 0, ub = 0;
    int ra = parse(d, size, size, &a, &ua);
    int rb = parse(d, size, cut, &b, &ub);
    if (ra != rb) abort();
    if (!ra) {
        if (ua != ub || a.n != b.n || (a.n && memcmp(a.p, b.p, a.n))) abort();
        if (a.n != ua || (ua && memcmp(a.p, d, ua))) abort(); /* not byte-exact */
    }
    free(a.p);
    free(b.p);
    return 0;
}
