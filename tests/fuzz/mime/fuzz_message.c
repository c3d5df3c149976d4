/* Fuzz target: the whole-message parser.  Properties: fed whole and fed in
 * chunks whose size comes from the input, the tree is the same and both
 * write back the input byte for byte. */
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

static uint64_t sum;
static int on_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    for (size_t i = 0; i < n; i++)
        sum = (sum ^ (unsigned char)d[i]) * 1099511628211ull;
    return 0;
}

static int parse(const uint8_t *data, size_t size, size_t step, struct out *o, uint64_t *s,
                 int utf8)
{
    mw_mime_parse_opts opts = MW_MIME_PARSE_OPTS_INIT;
    opts.max_depth = 8;
    opts.max_parts = 64;
    opts.headers.max_field_len = 8192;
    opts.to_utf8 = utf8;
    opts.on_body = on_body;
    mw_mime_parser *p;
    if (mw_mime_parser_new(&p, &opts, NULL)) abort();
    sum = 1469598103934665603ull;
    int rc = 0;
    for (size_t at = 0; at < size && !rc; at += step)
        rc = mw_mime_parser_feed(p, (const char *)data + at, size - at < step ? size - at : step);
    mw_mime_part *root = NULL;
    if (!rc) rc = mw_mime_parser_finish(p, &root);
    mw_mime_parser_free(p);
    if (!rc) {
        if (mw_mime_part_write(root, wr, o, NULL)) abort();
        *s = sum;
    }
    mw_mime_part_free(root);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct out a = {0}, b = {0};
    uint64_t sa = 0, sb = 0;
    size_t step = size ? (size_t)data[0] % 17 + 1 : 1;
    int utf8 = size > 1 && (data[1] & 1);
    int ra = parse(data, size, size ? size : 1, &a, &sa, utf8);
    int rb = parse(data, size, step, &b, &sb, utf8);
    if (ra != rb) abort();
    if (!ra) {
        if (a.n != size || (size && memcmp(a.p, data, size)))
            abort(); /* round trip not byte-exact */
        if (b.n != size || (size && memcmp(b.p, data, size)) || sa != sb)
            abort(); /* chunking changed the result */
    }
    free(a.p);
    free(b.p);
    return 0;
}
