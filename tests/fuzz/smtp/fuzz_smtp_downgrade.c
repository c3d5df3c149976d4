/* Fuzzes mw_smtp_downgrade_7bit (src/smtp/downgrade.c): any bytes give a
 * clean refusal or a message that is 7-bit throughout (RFC 2045 §2.7: no
 * octet over 127, no NUL, CR only before LF, lines of at most 998). */
#include "mailwire/smtp.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *out = NULL;
    size_t n = 0;
    mw_error err;
    int rc = mw_smtp_downgrade_7bit((const char *)data, size, &out, &n, &err);
    if (rc != 0) {
        if (rc != MW_EFORMAT || !err.message[0]) abort();
        return 0;
    }
    size_t line = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)out[i];
        if (ch == '\n') {
            line = 0;
            continue;
        }
        if (ch == '\r' && i + 1 < n && out[i + 1] == '\n') continue;
        if (ch >= 0x80 || ch == 0 || ch == '\r' || ++line > 998) abort();
    }
    free(out);
    return 0;
}
