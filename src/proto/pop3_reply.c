/* POP3 status lines, scan listings and the APOP timestamp (I/O-free). */
#include "proto/pop3_codec.h"

#include "mailwire/error.h"
#include "util/err.h"

#include <string.h>
#include <strings.h>

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 2449 §8: resp-code = "[" resp-level *("/" resp-level) "]" where a
 * level is one or more printable octets other than "/", "[", "]".  Returns
 * the length of the bracketed code (brackets included) or 0 if malformed. */
static size_t scan_resp_code(const char *s, size_t len, char *code, size_t code_size)
{
    if (len < 3 || s[0] != '[') return 0;
    size_t i = 1;
    int level_len = 0;
    for (; i < len && s[i] != ']'; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '/') {
            if (level_len == 0) return 0;
            level_len = 0;
            continue;
        }
        if (c <= 0x20 || c >= 0x7F || c == '[') return 0;
        level_len++;
    }
    if (i >= len || level_len == 0) return 0;
    size_t n = i - 1;
    if (n >= code_size) return 0; /* longer than any code we know; treat it as text */
    memcpy(code, s + 1, n);
    code[n] = '\0';
    return i + 1;
}

int mwi_pop3_parse_status(mw_pop3_status *out, const char *line, size_t len)
{
    memset(out, 0, sizeof *out);
    size_t skip;
    if (len >= 3 && !memcmp(line, "+OK", 3) && (len == 3 || line[3] == ' ')) {
        out->kind = MW_POP3_OK;
        skip = 3;
    } else if (len >= 4 && !memcmp(line, "-ERR", 4) && (len == 4 || line[4] == ' ')) {
        out->kind = MW_POP3_ERR;
        skip = 4;
    } else if (len >= 1 && line[0] == '+' && (len == 1 || line[1] == ' ')) {
        /* RFC 5034 §4: "+" SP [base64]; some servers send a bare "+". */
        out->kind = MW_POP3_CONT;
        skip = 1;
    } else {
        return MW_EPROTO;
    }
    if (skip < len) skip++; /* the single separating space */
    out->text = line + skip;
    out->text_len = len - skip;
    out->rest = out->text;
    out->rest_len = out->text_len;
    if (out->kind != MW_POP3_CONT) {
        size_t n = scan_resp_code(out->text, out->text_len, out->code, sizeof out->code);
        if (n) {
            out->rest = out->text + n;
            out->rest_len = out->text_len - n;
            if (out->rest_len && out->rest[0] == ' ') {
                out->rest++;
                out->rest_len--;
            }
        }
    }
    return 0;
}

/* Reads a decimal number at s[*pos], advancing *pos.  At least one digit,
 * at most 18 (so no overflow).  Returns 0 or -1. */
static int scan_number(const char *s, size_t len, size_t *pos, uint64_t *val)
{
    size_t i = *pos;
    uint64_t v = 0;
    size_t digits = 0;
    while (i < len && is_digit(s[i])) {
        if (++digits > 18) return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
        i++;
    }
    if (digits == 0) return -1;
    *pos = i;
    *val = v;
    return 0;
}

/* "A SP B" followed by end or SP anything. */
static int scan_pair(const char *s, size_t len, uint64_t *a, uint64_t *b)
{
    size_t pos = 0;
    if (scan_number(s, len, &pos, a) || pos >= len || s[pos] != ' ') return MW_EPROTO;
    pos++;
    if (scan_number(s, len, &pos, b) || (pos < len && s[pos] != ' ')) return MW_EPROTO;
    return 0;
}

int mwi_pop3_parse_stat(const char *text, size_t len, uint64_t *count, uint64_t *octets)
{
    return scan_pair(text, len, count, octets);
}

int mwi_pop3_parse_listing(const char *text, size_t len, uint64_t *msg, uint64_t *size)
{
    if (scan_pair(text, len, msg, size) || *msg == 0) return MW_EPROTO;
    return 0;
}

int mwi_pop3_uid_valid(const char *uid, size_t len)
{
    if (len < 1 || len > 70) return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uid[i];
        if (c < 0x21 || c > 0x7E) return 0;
    }
    return 1;
}

int mwi_pop3_parse_uidl(const char *text, size_t len, uint64_t *msg, const char **uid,
                        size_t *uid_len)
{
    size_t pos = 0;
    if (scan_number(text, len, &pos, msg) || *msg == 0 || pos >= len || text[pos] != ' ')
        return MW_EPROTO;
    pos++;
    size_t start = pos;
    while (pos < len && text[pos] != ' ')
        pos++;
    /* RFC 1939 §7 allows nothing after the uid; a trailing space is the
     * only slack we give (some servers pad). */
    for (size_t j = pos; j < len; j++)
        if (text[j] != ' ') return MW_EPROTO;
    if (!mwi_pop3_uid_valid(text + start, pos - start)) return MW_EPROTO;
    *uid = text + start;
    *uid_len = pos - start;
    return 0;
}

int mwi_pop3_parse_uidl_msg(const char *text, size_t len, uint64_t *msg)
{
    size_t pos = 0;
    if (scan_number(text, len, &pos, msg) || *msg == 0 || pos + 1 >= len || text[pos] != ' ')
        return MW_EPROTO;
    return 0;
}

int mwi_pop3_parse_retr_size(const char *text, size_t len, uint64_t *size)
{
    size_t pos = 0;
    uint64_t v;
    if (scan_number(text, len, &pos, &v) || (pos < len && text[pos] != ' ')) return 0;
    *size = v;
    return 1;
}

int mwi_pop3_find_timestamp(const char *g, size_t len, const char **ts, size_t *ts_len)
{
    const char *lt = memchr(g, '<', len);
    if (!lt) return 0;
    size_t start = (size_t)(lt - g);
    if (memchr(lt + 1, '<', len - start - 1)) return 0; /* two candidates: ambiguous, refuse */
    const char *gt = memchr(lt, '>', len - start);
    if (!gt) return 0;
    size_t n = (size_t)(gt - lt) + 1;
    if (n > 250 || memchr(gt + 1, '>', len - start - n)) return 0;
    size_t at = 0, ats = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        unsigned char c = (unsigned char)lt[i];
        if (c < 0x21 || c > 0x7E) return 0;
        if (c == '@') {
            at = i;
            ats++;
        }
    }
    /* RFC 1939 §7: the timestamp is a msg-id (RFC 822 §6): local@domain. */
    if (ats != 1 || at == 1 || at + 2 >= n) return 0;
    *ts = lt;
    *ts_len = n;
    return 1;
}

int mwi_pop3_status_error(mw_error *err, const mw_pop3_status *st, int dflt, const char *what)
{
    int code = dflt;
    if (!strcasecmp(st->code, "IN-USE") || !strcasecmp(st->code, "LOGIN-DELAY") ||
        !strncasecmp(st->code, "SYS/TEMP", 8))
        code = MW_ETEMP;
    else if (!strcasecmp(st->code, "AUTH"))
        code = MW_EAUTH;
    else if (!strncasecmp(st->code, "SYS/PERM", 8) && dflt != MW_EAUTH)
        code = MW_ESERVER;
    mwi_err_set_reply(err, st->text, st->text_len);
    mwi_copy_printable(err->resp_code, sizeof err->resp_code, st->code, strlen(st->code));
    if (st->kind == MW_POP3_CONT)
        return mwi_err_set(err, MW_EPROTO, "%s: unexpected continuation '+ %s'", what, err->reply);
    return mwi_err_set(err, code, "%s: server said -ERR %s", what, err->reply);
}
