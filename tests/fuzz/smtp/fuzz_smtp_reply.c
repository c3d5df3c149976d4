/* libFuzzer target: arbitrary server output split into lines (as the
 * transport does: LF ends a line, a CR before it is dropped) and fed to the
 * SMTP reply parser; complete 250 replies also go through the EHLO
 * capability parser.  Any reply must stay within its caps. */
#include "proto/smtp_reply.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static mw_smtp_reply r;
    mw_error err;
    const char *p = (const char *)data;
    const char *end = p + size;
    mwi_smtp_reply_init(&r);
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > 0 && p[len - 1] == '\r') len--;
        int rc = mwi_smtp_reply_feed(&r, p, len, &err);
        if (rc < 0) {
            mwi_smtp_reply_init(&r);
        } else if (rc == 1) {
            if (r.text_len > MW_SMTP_REPLY_MAX_TEXT || r.nlines > MW_SMTP_REPLY_MAX_LINES) abort();
            mw_smtp_caps caps;
            mwi_smtp_caps_parse(&caps, &r);
            if (strlen(caps.auth) >= sizeof caps.auth) abort();
            size_t sl;
            (void)mwi_smtp_reply_summary(&r, &sl);
            mwi_smtp_reply_init(&r);
        }
        p += (nl ? (size_t)(nl - p) + 1 : (size_t)(end - p));
    }
    return 0;
}
