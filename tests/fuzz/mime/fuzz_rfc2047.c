/* Fuzz target: RFC 2047 decoding, and encode -> decode of valid UTF-8. */
#include "mailwire/mime.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int valid_utf8(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t l = c < 0x80                  ? 1
                   : (c >= 0xc2 && c < 0xe0) ? 2
                   : (c >= 0xe0 && c < 0xf0) ? 3
                   : (c >= 0xf0 && c < 0xf5) ? 4
                                             : 0;
        if (!l || i + l > n) return 0;
        for (size_t k = 1; k < l; k++)
            if ((s[i + k] & 0xc0) != 0x80) return 0;
        if (c == 0) return 0;
        /* overlong forms, surrogates, above U+10FFFF (RFC 3629 §4) */
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] >= 0xa0) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] >= 0x90))
            return 0;
        i += l;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out;
    size_t n;
    if (mw_mime_decode_field(&out, &n, (const char *)data, size, NULL)) return 0;
    if (strlen(out) > n) abort();
    free(out);
    if (size < 2 || !valid_utf8(data + 1, size - 1)) return 0;
    /* Round trip: encoded words decode to the text. */
    char *w, *back;
    char m = data[0] & 1 ? 'B' : 'Q';
    if (mw_mime_word_encode(&w, (const char *)data + 1, size - 1, "UTF-8", m, NULL)) abort();
    if (mw_mime_decode_field(&back, &n, w, strlen(w), NULL)) abort();
    if (n != size - 1 || memcmp(back, data + 1, n)) abort();
    free(w);
    free(back);
    return 0;
}
