/* Fuzz target: POP3 status lines, listings, UIDL lines, the APOP timestamp
 * and the multi-line body decoder.  The first byte picks a chunk size for
 * the body; the body is decoded whole and in chunks, and both must agree. */
#include "proto/pop3_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void lines(const char *in, size_t len)
{
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(in + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - in) : len;
        size_t ll = end - i;
        if (ll && in[i + ll - 1] == '\r') ll--;
        mw_pop3_status st;
        if (mwi_pop3_parse_status(&st, in + i, ll) == 0) {
            if (st.text + st.text_len > in + i + ll || st.rest + st.rest_len > in + i + ll ||
                strlen(st.code) >= sizeof st.code)
                abort();
        }
        uint64_t a, b;
        const char *uid, *ts;
        size_t ul, tl;
        (void)mwi_pop3_parse_stat(in + i, ll, &a, &b);
        if (mwi_pop3_parse_listing(in + i, ll, &a, &b) == 0 && a == 0) abort();
        if (mwi_pop3_parse_uidl(in + i, ll, &a, &uid, &ul) == 0 && !mwi_pop3_uid_valid(uid, ul))
            abort();
        /* Every line parse_uidl takes names a message parse_uidl_msg finds. */
        if (mwi_pop3_parse_uidl(in + i, ll, &a, &uid, &ul) == 0 &&
            (mwi_pop3_parse_uidl_msg(in + i, ll, &b) != 0 || b != a))
            abort();
        (void)mwi_pop3_parse_retr_size(in + i, ll, &a);
        if (mwi_pop3_find_timestamp(in + i, ll, &ts, &tl) &&
            (tl < 5 || ts[0] != '<' || ts[tl - 1] != '>'))
            abort();
        i = end + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t chunk = (size_t)data[0] % 17 + 1;
    const char *in = (const char *)data + 1;
    size_t len = size - 1;
    lines(in, len);

    char *whole = malloc(len + 1), *work = malloc(len + 1), *out = malloc(len + 1);
    if (!whole || !work || !out) abort();
    memcpy(whole, in, len);
    mw_pop3_body b1, b2;
    mwi_pop3_body_init(&b1);
    size_t c1, p1;
    int d1 = mwi_pop3_body_decode(&b1, whole, len, &c1, &p1);
    if (p1 > c1 || c1 > len || (!d1 && len >= 2 && c1 == 0)) abort();

    mwi_pop3_body_init(&b2);
    size_t fed = 0, carry = 0, o = 0;
    int d2 = 0;
    while (!d2 && (fed < len || carry > 1)) {
        size_t take = len - fed < chunk ? len - fed : chunk;
        memcpy(work + carry, in + fed, take);
        fed += take;
        size_t have = carry + take, c, p;
        d2 = mwi_pop3_body_decode(&b2, work, have, &c, &p);
        if (p > c || c > have) abort();
        memcpy(out + o, work, p);
        o += p;
        carry = have - c;
        memmove(work, work + c, carry);
        if (take == 0 && c == 0) break;
    }
    if (d1 != d2 || (d1 && (o != p1 || memcmp(out, whole, p1) != 0)) || b2.produced != o) abort();
    free(whole);
    free(work);
    free(out);
    return 0;
}
