#include "proto/smtp_data.h"

#include "util/err.h"

#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#if defined(__SSE2__) && defined(__x86_64__) && defined(__GNUC__)
#define MWI_DATA_AVX2 1
#include <immintrin.h>
#endif

void mwi_smtp_data_init(mw_smtp_data_enc *e, int bdat)
{
    memset(e, 0, sizeof *e);
    e->bdat = bdat;
    e->at_line_start = 1;
    e->line_no = 1;
    e->max_line = MW_SMTP_MAX_LINE_OCTETS;
#if defined(MWI_DATA_AVX2)
    e->avx2 = __builtin_cpu_supports("avx2") != 0;
#endif
}

static int end_line(mw_smtp_data_enc *e, mw_buf *out)
{
    e->at_line_start = 1;
    e->line_len = 0;
    e->line_no++;
    return mwi_buf_append(out, "\r\n", 2);
}

/* Whether any octet of p[0..n) is >= 0x80: eight octets at a time. */
static int has_8bit(const char *p, size_t n)
{
    uint64_t acc = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        acc |= w;
    }
    for (; i < n; i++)
        acc |= (unsigned char)p[i];
    return (acc & UINT64_C(0x8080808080808080)) != 0;
}

#if defined(__SSE2__)
/* Copies in[i..) to o up to the first CR or LF, sixteen octets at a time,
 * and returns that octet's index (n: none).  One pass instead of two
 * searches and a copy per line; every octet loaded is ORed into *acc (the
 * 8-bit check).  A store never reaches past o + (n - i), as a copy of the
 * whole rest would not. */
static inline size_t copy_run(const char *in, size_t i, size_t n, char *o, __m128i *acc)
{
    const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    size_t k = i;
    for (; k + 16 <= n; k += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(in + k));
        _mm_storeu_si128((__m128i *)(void *)(o + (k - i)), v);
        *acc = _mm_or_si128(*acc, v);
        int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, lf), _mm_cmpeq_epi8(v, cr)));
        if (m) return k + (size_t)__builtin_ctz((unsigned)m);
    }
    unsigned char hi = 0;
    for (; k < n; k++) {
        char c = in[k];
        if (c == '\n' || c == '\r') break;
        hi |= (unsigned char)c;
        o[k - i] = c;
    }
    *acc = _mm_or_si128(*acc, _mm_cvtsi32_si128(hi));
    return k;
}

/* Whole lines from the line start i, each ended by a bare LF, at most
 * max_line octets (0: no limit) and followed by a line that starts with
 * neither '.' nor the end of the input: copied with CRLF, *o and *lines
 * moved on.  Returns where it stopped, a line start; that line is the
 * caller's (dot-stuffing, CR, a long line, the input's end). */
static size_t plain_lines(const char *in, size_t i, size_t n, char **o, size_t max_line,
                          uint64_t *lines, __m128i *acc)
{
    char *w = *o;
    for (;;) {
        size_t j = copy_run(in, i, n, w, acc);
        if (j + 1 >= n || in[j] != '\n' || in[j + 1] == '.' || (max_line && j - i > max_line))
            break;
        w += j - i;
        *w++ = '\r';
        *w++ = '\n';
        (*lines)++;
        i = j + 1;
    }
    *o = w;
    return i;
}
#endif

#if defined(MWI_DATA_AVX2)
/* plain_lines with 32 octets a step, for CPUs that have AVX2 (chosen in
 * mwi_smtp_data_init): the same lines, the same stops. */
__attribute__((target("avx2"))) static size_t plain_lines32(const char *in, size_t i, size_t n,
                                                            char **o, size_t max_line,
                                                            uint64_t *lines, __m128i *acc)
{
    const __m256i lf = _mm256_set1_epi8('\n'), cr = _mm256_set1_epi8('\r');
    __m256i wide = _mm256_setzero_si256();
    unsigned char hi = 0;
    char *w = *o;
    for (;;) {
        size_t j = i;
        for (; j + 32 <= n; j += 32) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(in + j));
            _mm256_storeu_si256((__m256i *)(void *)(w + (j - i)), v);
            wide = _mm256_or_si256(wide, v);
            unsigned m = (unsigned)_mm256_movemask_epi8(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, lf), _mm256_cmpeq_epi8(v, cr)));
            if (m) {
                j += (size_t)__builtin_ctz(m);
                goto found;
            }
        }
        for (; j < n && in[j] != '\n' && in[j] != '\r'; j++) {
            hi |= (unsigned char)in[j];
            w[j - i] = in[j];
        }
    found:
        if (j + 1 >= n || in[j] != '\n' || in[j + 1] == '.' || (max_line && j - i > max_line))
            break;
        w += j - i;
        *w++ = '\r';
        *w++ = '\n';
        (*lines)++;
        i = j + 1;
    }
    /* Octets copied past the stop are copied again by the caller; the
     * 8-bit flag may see them twice, which changes nothing. */
    __m128i folded = _mm_or_si128(_mm256_castsi256_si128(wide), _mm256_extracti128_si256(wide, 1));
    *acc = _mm_or_si128(*acc, _mm_or_si128(folded, _mm_cvtsi32_si128(hi)));
    *o = w;
    return i;
}
#endif

/* The DATA encoding of in[0..n), appended to out.  long: one pass over the
 * message's bytes with its state in locals (the write pointer, the next CR
 * and LF; with SSE2 copy_run finds and copies each run at once), the send
 * path's hot loop; cut up, that state would go through
 * memory on every line. */
int mwi_smtp_data_encode(mw_smtp_data_enc *e, const char *in, size_t n, mw_buf *out, mw_error *err)
{
    int rc = 0;
    e->in_octets += n;
    /* Every input octet yields at most two output octets (a bare CR or LF
     * becomes CRLF, a line-start '.' becomes "..", the LF of a CRLF yields
     * nothing of its own), so one reservation covers the whole call and the
     * loop writes straight into the buffer. */
    if (n > SIZE_MAX / 4 || (rc = mwi_buf_reserve(out, 2 * n)) != 0)
        return mwi_err_set(err, rc ? rc : MW_ETOOBIG, "no room for the encoded message data");
#if defined(__SSE2__)
    __m128i acc = _mm_setzero_si128(); /* every octet of a run: saw_8bit at the end */
#else
    /* Once per call, not per line (the flag matters after a call that
     * succeeded, when every octet has gone through). */
    if (!e->saw_8bit && has_8bit(in, n)) e->saw_8bit = 1;
#endif
    char *const start = out->data + out->len;
    char *o = start;
    size_t i = 0;
#if !defined(__SSE2__)
    /* The next LF and the next CR at or after i (n: none), each looked for
     * again only once passed: CR-only input is not scanned quadratically
     * for LFs, and LF-only input costs one scan for CRs per call. */
    size_t next_lf = 0, next_cr = 0;
    int known = 0;
#endif
    while (i < n) {
        if (e->after_cr) {
            e->after_cr = 0;
            if (in[i] == '\n') { /* the LF of a CRLF */
                i++;
                continue;
            }
            e->saw_bare_eol = 1; /* the CR was bare */
        }
        if (e->in_body) { /* binary: the rest as it is */
#if defined(__SSE2__)
            if (!e->saw_8bit && has_8bit(in + i, n - i)) e->saw_8bit = 1;
#endif
            memcpy(o, in + i, n - i);
            o += n - i;
            break;
        }
        if (e->at_line_start) {
            e->at_line_start = 0;
            /* RFC 5321 §4.5.2: a line starting with "." gets one more. */
            if (in[i] == '.' && !e->bdat) *o++ = '.';
        }
        /* The run up to the next CR or LF, copied in one go. */
#if defined(__SSE2__)
        size_t j = copy_run(in, i, n, o, &acc); /* copied already; o moves below */
#else
        if (!known || next_lf < i) {
            const char *lf = memchr(in + i, '\n', n - i);
            next_lf = lf ? (size_t)(lf - in) : n;
        }
        if (!known || next_cr < i) {
            const char *cr = memchr(in + i, '\r', n - i);
            next_cr = cr ? (size_t)(cr - in) : n;
        }
        known = 1;
        size_t j = next_lf < next_cr ? next_lf : next_cr;
#endif
        if (e->max_line && e->line_len + (j - i) > e->max_line) {
            out->len += (size_t)(o - start);
            out->data[out->len] = '\0';
            return mwi_err_set(err, MW_ETOOBIG,
                               "line %llu of the message is longer than %zu octets "
                               "(RFC 5321 §4.5.3.1.6); encode it (quoted-printable or base64)",
                               (unsigned long long)e->line_no, e->max_line);
        }
#if !defined(__SSE2__)
        memcpy(o, in + i, j - i);
#endif
        o += j - i;
        e->line_len += j - i;
        i = j;
        if (i == n) break;
        /* A line end: CRLF, or a bare CR or LF, all become CRLF.  After a
         * CR, an LF (maybe in the next chunk) is its pair and is skipped at
         * the top of the loop. */
        if (in[i] == '\r')
            e->after_cr = 1;
        else
            e->saw_bare_eol = 1;
        i++;
        *o++ = '\r';
        *o++ = '\n';
        if (e->binary_body && e->line_len == 0) e->in_body = 1; /* the header's end */
        e->at_line_start = 1;
        e->line_len = 0;
        e->line_no++;
#if defined(__SSE2__)
        /* After a bare LF, the lines that need none of the checks above
         * (the send path's common case: text with LF line ends). */
        if (!e->after_cr && !e->binary_body && i < n && in[i] != '.') {
#if defined(MWI_DATA_AVX2)
            if (e->avx2)
                i = plain_lines32(in, i, n, &o, e->max_line, &e->line_no, &acc);
            else
#endif
                i = plain_lines(in, i, n, &o, e->max_line, &e->line_no, &acc);
        }
#endif
    }
#if defined(__SSE2__)
    if (_mm_movemask_epi8(acc)) e->saw_8bit = 1;
#endif
    out->len += (size_t)(o - start);
    out->data[out->len] = '\0';
    e->out_octets += (size_t)(o - start);
    return 0;
}

int mwi_smtp_data_finish(mw_smtp_data_enc *e, mw_buf *out, mw_error *err)
{
    size_t before = out->len;
    int rc = 0;
    /* RFC 5321 §4.1.1.4: the data ends with CRLF "." CRLF, the CRLF being
     * the end of the last line; add one when the message lacks it. */
    if (!e->at_line_start && !e->in_body) rc = end_line(e, out);
    if (!rc && !e->bdat) rc = mwi_buf_append(out, ".\r\n", 3);
    if (rc) return mwi_err_set(err, rc, "no room for the end of the message data");
    e->after_cr = 0;
    e->out_octets += out->len - before;
    return 0;
}
