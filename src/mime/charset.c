/* Conversion of text in a declared charset to UTF-8 with glibc iconv. */
#include "mime/mime_int.h"

#include <errno.h>
#include <iconv.h>
#include <string.h>

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

int mwi_charset_is_utf8(const char *cs)
{
    return !mwi_ascii_casecmp_n(cs, strlen(cs), "utf-8", 5) ||
           !mwi_ascii_casecmp_n(cs, strlen(cs), "utf8", 4) ||
           !mwi_ascii_casecmp_n(cs, strlen(cs), "us-ascii", 8) ||
           !mwi_ascii_casecmp_n(cs, strlen(cs), "ascii", 5);
}

int mwi_cv_open(mw_cv *cv, const char *charset)
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

void mwi_cv_close(mw_cv *cv)
{
    if (cv->cd != (void *)-1) iconv_close((iconv_t)cv->cd);
    cv->cd = (void *)-1;
}

/* Converts one block (after the bytes carried from the block before).
 * Blocks are always MW_CV_BLOCK bytes but the last, whatever the chunks
 * the caller passed, so the result never depends on where the input was
 * cut (stateful converters such as glibc's UTF-7 report errors at places
 * that depend on the cuts). */
static int cv_block(mw_cv *cv, const char *in, size_t len, int last, mw_buf *out)
{
    int rc;
    char tmp[sizeof cv->carry + MW_CV_BLOCK];
    memcpy(tmp, cv->carry, cv->ncarry);
    memcpy(tmp + cv->ncarry, in, len);
    char *ip = tmp;
    size_t il = cv->ncarry + len;
    cv->ncarry = 0;
    while (il > 0) {
        if ((rc = mwi_buf_reserve(out, il * 4 + 16))) return rc;
        char *op = out->data + out->len;
        size_t ol = out->cap - out->len;
        size_t r = iconv((iconv_t)cv->cd, &ip, &il, &op, &ol);
        out->len = (size_t)(op - out->data);
        out->data[out->len] = '\0';
        if (r != (size_t)-1) break;
        if (errno == E2BIG) continue;
        if (errno == EINVAL && !last && il < sizeof cv->carry) {
            /* An incomplete sequence: it continues in the next block. */
            memcpy(cv->carry, ip, il);
            cv->ncarry = il;
            break;
        }
        /* EILSEQ (or an incomplete sequence at the very end): one
         * replacement character, skip one byte, go on. */
        cv->bad++;
        if ((rc = mwi_buf_append(out, REPLACEMENT, 3))) return rc;
        ip++;
        il--;
    }
    return 0;
}

int mwi_cv_run(mw_cv *cv, const char *in, size_t len, int final, mw_buf *out)
{
    int rc;
    if (cv->identity) return mwi_buf_append(out, in, len);
    while (len > 0) {
        size_t take = MW_CV_BLOCK - cv->nstage;
        if (take > len) take = len;
        memcpy(cv->stage + cv->nstage, in, take);
        cv->nstage += take;
        in += take;
        len -= take;
        if (cv->nstage == MW_CV_BLOCK) {
            cv->nstage = 0;
            if ((rc = cv_block(cv, cv->stage, MW_CV_BLOCK, 0, out))) return rc;
        }
    }
    if (final) {
        size_t n = cv->nstage;
        cv->nstage = 0;
        return cv_block(cv, cv->stage, n, 1, out);
    }
    return 0;
}

int mwi_charset_to_utf8(const char *charset, const char *in, size_t len, mw_buf *out)
{
    mw_cv cv;
    if (mwi_cv_open(&cv, charset)) return 1;
    int rc = mwi_cv_run(&cv, in, len, 1, out);
    mwi_cv_close(&cv);
    return rc;
}
