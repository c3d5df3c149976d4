/* Conversion of text in a declared charset to UTF-8 with glibc iconv. */
#include "mime/mime_int.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

int mw_charset_is_utf8(const char *cs)
{
    return !mw_ascii_casecmp_n(cs, strlen(cs), "utf-8", 5) ||
           !mw_ascii_casecmp_n(cs, strlen(cs), "utf8", 4) ||
           !mw_ascii_casecmp_n(cs, strlen(cs), "us-ascii", 8) ||
           !mw_ascii_casecmp_n(cs, strlen(cs), "ascii", 5);
}

int mw_cv_open(mw_cv *cv, const char *charset)
{
    memset(cv, 0, sizeof *cv);
    cv->cd = (void *)-1;
    /* UTF-8 goes through iconv too, so that invalid bytes are replaced. */
    if (!charset || !*charset) {
        cv->identity = 1;
        return 0;
    }
    /* RFC 2231 §5 allows a language after '*' in an encoded word's charset. */
    char name[64];
    size_t n = strcspn(charset, "*");
    if (n >= sizeof name) return -1;
    memcpy(name, charset, n);
    name[n] = '\0';
    iconv_t cd = iconv_open("UTF-8", name);
    if (cd == (iconv_t)-1) return -1;
    cv->cd = cd;
    return 0;
}

void mw_cv_close(mw_cv *cv)
{
    if (cv->cd != (void *)-1) iconv_close((iconv_t)cv->cd);
    cv->cd = (void *)-1;
}

int mw_cv_run(mw_cv *cv, const char *in, size_t len, int final, mw_buf *out)
{
    int rc;
    if (cv->identity) return mw_buf_append(out, in, len);
    /* Bytes left over from the previous call (an incomplete sequence). */
    char tmp[sizeof cv->carry + 4096];
    while (len > 0 || (final && cv->ncarry)) {
        size_t take = sizeof tmp - cv->ncarry;
        if (take > len) take = len;
        memcpy(tmp, cv->carry, cv->ncarry);
        memcpy(tmp + cv->ncarry, in, take);
        size_t tl = cv->ncarry + take;
        in += take;
        len -= take;
        cv->ncarry = 0;
        char *ip = tmp;
        size_t il = tl;
        while (il > 0) {
            if ((rc = mw_buf_reserve(out, il * 4 + 16))) return rc;
            char *op = out->data + out->len;
            size_t ol = out->cap - out->len;
            size_t r = iconv((iconv_t)cv->cd, &ip, &il, &op, &ol);
            out->len = (size_t)(op - out->data);
            out->data[out->len] = '\0';
            if (r != (size_t)-1) break;
            if (errno == E2BIG) continue;
            /* An incomplete sequence: keep it for the next call.  Some
             * converters (glibc's UTF-7) say EILSEQ for a sequence cut
             * short, so an error in the last few bytes is retried too:
             * the result must not depend on where the input was cut. */
            if ((errno == EINVAL || (errno == EILSEQ && il < 8)) && !(final && len == 0) &&
                il < sizeof cv->carry) {
                memcpy(cv->carry, ip, il);
                cv->ncarry = il;
                il = 0;
                break;
            }
            /* EILSEQ (or an incomplete sequence at the very end): one
             * replacement character, skip one byte, go on. */
            cv->bad++;
            if ((rc = mw_buf_append(out, REPLACEMENT, 3))) return rc;
            ip++;
            il--;
        }
        if (final && len == 0) break;
    }
    return 0;
}

int mw_charset_to_utf8(const char *charset, const char *in, size_t len, mw_buf *out)
{
    mw_cv cv;
    if (mw_cv_open(&cv, charset)) return 1;
    int rc = mw_cv_run(&cv, in, len, 1, out);
    mw_cv_close(&cv);
    return rc;
}
