/* RFC 2047 encoded words: decoding (lenient) and encoding. */
#include "mime/codec.h"
#include "mime/mime_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static int hexv(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = mw_lower(c);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* One encoded word found at s (which starts with "=?").  RFC 2047 §2:
 * =?charset?encoding?encoded-text?= with no white space or controls. */
struct word {
    const char *cs;
    size_t cslen;
    char enc;
    const char *text;
    size_t tlen;
    size_t len; /* whole word */
};

static int find_word(const char *s, size_t n, struct word *w)
{
    if (n < 8 || s[0] != '=' || s[1] != '?') return 0;
    size_t i = 2;
    while (i < n && s[i] != '?' && (unsigned char)s[i] > 32 && s[i] != 127)
        i++;
    if (i >= n || s[i] != '?' || i == 2 || i - 2 > 60) return 0;
    w->cs = s + 2;
    w->cslen = i - 2;
    if (i + 2 >= n || s[i + 2] != '?') return 0;
    w->enc = (char)mw_lower((unsigned char)s[i + 1]);
    if (w->enc != 'b' && w->enc != 'q') return 0;
    size_t t = i + 3, j = t;
    while (j + 1 < n && !(s[j] == '?' && s[j + 1] == '=')) {
        if ((unsigned char)s[j] <= 32 || s[j] == 127) return 0;
        j++;
    }
    if (j + 1 >= n) return 0;
    w->text = s + t;
    w->tlen = j - t;
    w->len = j + 2;
    return 1;
}

static int decode_word_bytes(const struct word *w, mw_buf *b)
{
    if (w->enc == 'b') {
        int rc = mwi_buf_reserve(b, w->tlen / 4 * 3 + 6);
        if (rc) return rc;
        mw_b64dec d = {0};
        size_t o = mwi_b64dec_run(&d, w->text, w->tlen, (unsigned char *)b->data + b->len);
        o += mwi_b64dec_end(&d, (unsigned char *)b->data + b->len + o);
        b->len += o;
        b->data[b->len] = '\0';
        return 0;
    }
    /* RFC 2047 §4.2: "_" is a space, =XX a byte. */
    for (size_t i = 0; i < w->tlen; i++) {
        char c = w->text[i];
        int rc;
        if (c == '_') {
            rc = mwi_buf_append_char(b, ' ');
        } else if (c == '=' && i + 2 < w->tlen && hexv((unsigned char)w->text[i + 1]) >= 0 &&
                   hexv((unsigned char)w->text[i + 2]) >= 0) {
            rc = mwi_buf_append_char(b, (char)(hexv((unsigned char)w->text[i + 1]) << 4 |
                                               hexv((unsigned char)w->text[i + 2])));
            i += 2;
        } else {
            rc = mwi_buf_append_char(b, c);
        }
        if (rc) return rc;
    }
    return 0;
}

/* Converts the bytes gathered from adjacent words of one charset. */
static int flush_pending(mw_buf *pend, char *cs, mw_buf *out)
{
    int rc = 0;
    if (pend->len || cs[0]) {
        int r = mwi_charset_to_utf8(cs, pend->data ? pend->data : "", pend->len, out);
        if (r == 1) /* unknown charset: the bytes as they are */
            r = mwi_buf_append(out, pend->data ? pend->data : "", pend->len);
        rc = r;
    }
    pend->len = 0;
    cs[0] = '\0';
    return rc;
}

int mwi_rfc2047_decode(const char *in, size_t len, mw_buf *out)
{
    mw_buf pend = MW_BUF_INIT(0);
    char cs[64] = "";
    size_t i = 0;
    int rc = 0, last_was_word = 0;
    while (i < len && !rc) {
        const char *q = memmem(in + i, len - i, "=?", 2);
        size_t stop = q ? (size_t)(q - in) : len;
        struct word w;
        if (q && !find_word(q, len - stop, &w)) {
            stop += 2; /* not a word: "=?" is plain text */
            q = NULL;
        }
        /* Text before the word: RFC 2047 §6.2, white space between two
         * encoded words is dropped. */
        size_t k = i;
        int only_ws = 1;
        for (; k < stop; k++)
            if (!mw_is_wsp((unsigned char)in[k]) && in[k] != '\r' && in[k] != '\n') {
                only_ws = 0;
                break;
            }
        if (!(q && last_was_word && only_ws) && stop > i) {
            if ((rc = flush_pending(&pend, cs, out))) break;
            if ((rc = mwi_buf_append(out, in + i, stop - i))) break;
            last_was_word = 0;
        }
        if (!q) {
            i = stop;
            continue;
        }
        /* Words in the same charset are joined before conversion, so a
         * character split across two words comes out whole. */
        char wcs[64];
        size_t cl = strcspn(w.cs, "?");
        if (cl > w.cslen) cl = w.cslen;
        memcpy(wcs, w.cs, cl);
        wcs[cl] = '\0';
        if (strcmp(wcs, cs) && (rc = flush_pending(&pend, cs, out))) break;
        memcpy(cs, wcs, cl + 1);
        rc = decode_word_bytes(&w, &pend);
        last_was_word = 1;
        i = stop + w.len;
    }
    if (!rc) rc = flush_pending(&pend, cs, out);
    mwi_buf_free(&pend);
    if (!rc && !out->data) rc = mwi_buf_reserve(out, 1);
    return rc;
}

int mw_mime_decode_field(char **out, size_t *outlen, const char *in, size_t len, mw_error *err)
{
    mw_buf b = MW_BUF_INIT(0);
    if (!out || (!in && len)) return mwi_err_set(err, MW_EINVAL, "mw_mime_decode_field: no text");
    *out = NULL;
    int rc = mwi_rfc2047_decode(in, len, &b);
    if (rc) {
        mwi_buf_free(&b);
        return mwi_err_set(err, rc, "decoding a header field: out of memory");
    }
    *out = mwi_buf_take(&b, outlen);
    return 0;
}

/* Length of the UTF-8 sequence that starts with byte c (1 for anything else). */
static size_t utf8_len(unsigned char c)
{
    if (c >= 0xF0 && c < 0xF8) return 4;
    if (c >= 0xE0) return c < 0xF0 ? 3 : 1;
    if (c >= 0xC0) return 2;
    return 1;
}

static int q_needs(unsigned char c)
{
    /* RFC 2047 §5(3): in a phrase only letters, digits and !*+-/ may stay. */
    return !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             strchr("!*+-/", c));
}

int mw_mime_word_encode(char **out, const char *text, size_t len, const char *charset, char method,
                        mw_error *err)
{
    *out = NULL;
    if (!charset) charset = "UTF-8";
    size_t cl = strlen(charset);
    if (cl == 0 || cl > 40 || strpbrk(charset, "? \t\r\n"))
        return mwi_err_set(err, MW_EINVAL, "encoded word: bad charset name '%.40s'", charset);
    method = (char)mw_lower((unsigned char)method);
    if (method != 'b' && method != 'q')
        return mwi_err_set(err, MW_EINVAL, "encoded word: method '%c' is neither B nor Q",
                           method >= 32 && method < 127 ? method : '?');
    int utf8 = mwi_charset_is_utf8(charset);
    mw_buf b = MW_BUF_INIT(0);
    /* RFC 2047 §2: an encoded word is at most 75 characters. */
    size_t room = 75 - (cl + 7);
    size_t i = 0;
    int rc = 0;
    while (i < len && !rc) {
        if (b.len) rc = mwi_buf_append_char(&b, ' ');
        if (!rc) rc = mwi_buf_printf(&b, "=?%s?%c?", charset, method == 'b' ? 'B' : 'Q');
        size_t used = 0;
        while (i < len && !rc) {
            size_t cn = utf8 ? utf8_len((unsigned char)text[i]) : 1;
            if (i + cn > len) cn = len - i;
            size_t need;
            if (method == 'b') {
                /* bytes so far in this word + cn, in base64 */
                need = (used + cn + 2) / 3 * 4;
                if (need > room && used) break;
                used += cn;
                i += cn;
                continue;
            }
            need = 0;
            for (size_t k = 0; k < cn; k++)
                need += q_needs((unsigned char)text[i + k]) && text[i + k] != ' ' ? 3 : 1;
            if (used + need > room && used) break;
            for (size_t k = 0; k < cn && !rc; k++) {
                unsigned char c = (unsigned char)text[i + k];
                if (c == ' ')
                    rc = mwi_buf_append_char(&b, '_');
                else if (q_needs(c))
                    rc = mwi_buf_printf(&b, "=%02X", c);
                else
                    rc = mwi_buf_append_char(&b, (char)c);
            }
            used += need;
            i += cn;
        }
        if (method == 'b' && !rc) {
            size_t start = i - used;
            char *tmp = malloc((used + 2) / 3 * 4 + 8);
            if (!tmp) {
                rc = MW_ENOMEM;
                break;
            }
            mw_b64enc e = {0};
            size_t o = mwi_b64enc_run(&e, (const unsigned char *)text + start, used, tmp);
            o += mwi_b64enc_end(&e, tmp + o);
            while (o > 0 && (tmp[o - 1] == '\n' || tmp[o - 1] == '\r'))
                o--;
            rc = mwi_buf_append(&b, tmp, o);
            free(tmp);
        }
        if (!rc) rc = mwi_buf_append(&b, "?=", 2);
    }
    if (!rc && !b.data) rc = mwi_buf_reserve(&b, 1);
    if (rc) {
        mwi_buf_free(&b);
        return rc;
    }
    *out = mwi_buf_take(&b, NULL);
    return 0;
}

/* Header text (RFC 5322 unstructured) that needs encoding: non-ASCII,
 * controls, or something that would be read as an encoded word. */
static int needs_encoding(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || (c < 32 && c != '\t') || c == 127) return 1;
    }
    return memmem(s, n, "=?", 2) != NULL;
}

int mw_mime_encode_text(char **out, const char *text, mw_error *err)
{
    if (!out || !text) return mwi_err_set(err, MW_EINVAL, "mw_mime_encode_text: no text");
    size_t n = strlen(text);
    *out = NULL;
    /* A header value never carries a line break (header injection). */
    if (strpbrk(text, "\r\n"))
        return mwi_err_set(err, MW_EINVAL, "a header text may not hold CR or LF");
    if (!needs_encoding(text, n)) {
        *out = strdup(text);
        return *out ? 0 : mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    size_t qn = 0;
    for (size_t i = 0; i < n; i++)
        qn += q_needs((unsigned char)text[i]) && text[i] != ' ' ? 3 : 1;
    return mw_mime_word_encode(out, text, n, "UTF-8", qn <= (n + 2) / 3 * 4 ? 'q' : 'b', err);
}
