#include "proto/smtp_reply.h"

#include "util/err.h"

#include <string.h>
#include <strings.h>

void mwi_smtp_reply_init(mw_smtp_reply *r)
{
    r->code = 0;
    r->enhanced[0] = '\0';
    r->nlines = 0;
    r->complete = 0;
    r->text[0] = '\0';
    r->text_len = 0;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 3463 §2: status-code = class "." subject "." detail; class is 2, 4
 * or 5; subject and detail are 1 to 3 digits. */
size_t mwi_smtp_parse_enhanced(const char *text, size_t len, char *out, size_t outsize)
{
    size_t i = 0;
    if (outsize > 0) out[0] = '\0';
    if (len < 5 || (text[0] != '2' && text[0] != '4' && text[0] != '5') || text[1] != '.') return 0;
    i = 2;
    for (int part = 0; part < 2; part++) {
        size_t start = i;
        while (i < len && is_digit(text[i]) && i - start < 4)
            i++;
        if (i == start || i - start > 3) return 0;
        if (part == 0) {
            if (i >= len || text[i] != '.') return 0;
            i++;
        }
    }
    if (i < len && text[i] != ' ') return 0;
    if (outsize < i + 1) return 0;
    memcpy(out, text, i);
    out[i] = '\0';
    return i < len ? i + 1 : i;
}

int mwi_smtp_reply_feed(mw_smtp_reply *r, const char *line, size_t len, mw_error *err)
{
    if (r->complete) return mwi_err_set(err, MW_EPROTO, "reply line after the end of the reply");
    if (len > MW_SMTP_REPLY_MAX_LINE)
        return mwi_err_set(err, MW_ETOOBIG, "reply line of %zu octets is over the limit of %d", len,
                           MW_SMTP_REPLY_MAX_LINE);
    if (r->nlines >= MW_SMTP_REPLY_MAX_LINES)
        return mwi_err_set(err, MW_ETOOBIG, "reply has more than %d lines",
                           MW_SMTP_REPLY_MAX_LINES);
    /* RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
     *   Reply-code [ SP textstring ] CRLF; codes are 2-5, 0-5, 0-9. */
    if (len < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        !is_digit(line[2]) || (len > 3 && line[3] != ' ' && line[3] != '-')) {
        char shown[64];
        mwi_copy_printable(shown, sizeof shown, line, len);
        return mwi_err_set(err, MW_EPROTO, "not an SMTP reply line: \"%s\"", shown);
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code)
        return mwi_err_set(err, MW_EPROTO,
                           "multi-line reply mixes codes %d and %d (RFC 5321 §4.2.1)", r->code,
                           code);
    const char *text = len > 4 ? line + 4 : "";
    size_t tlen = len > 4 ? len - 4 : 0;
    if (r->text_len + tlen + 1 > MW_SMTP_REPLY_MAX_TEXT)
        return mwi_err_set(err, MW_ETOOBIG, "reply text is over the limit of %d octets",
                           MW_SMTP_REPLY_MAX_TEXT);
    if (r->nlines == 0) {
        r->code = code;
        /* RFC 3463 §3: the class of the enhanced code matches the reply's
         * first digit; anything else is ordinary text. */
        char enh[16];
        if (mwi_smtp_parse_enhanced(text, tlen, enh, sizeof enh) && enh[0] == line[0])
            memcpy(r->enhanced, enh, sizeof enh);
    }
    memcpy(r->text + r->text_len, text, tlen);
    r->text_len += tlen;
    r->text[r->text_len++] = '\n';
    r->text[r->text_len] = '\0';
    r->nlines++;
    if (len == 3 || line[3] == ' ') {
        r->complete = 1;
        return 1;
    }
    return 0;
}

const char *mwi_smtp_reply_line(const mw_smtp_reply *r, size_t i, size_t *len)
{
    const char *p = r->text;
    const char *end = r->text + r->text_len;
    for (size_t k = 0; p < end; k++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        if (k == i) {
            *len = (size_t)(nl - p);
            return p;
        }
        p = nl + 1;
    }
    *len = 0;
    return "";
}

const char *mwi_smtp_reply_summary(const mw_smtp_reply *r, size_t *len)
{
    size_t l;
    const char *t = mwi_smtp_reply_line(r, 0, &l);
    if (r->enhanced[0]) {
        size_t e = strlen(r->enhanced);
        if (l >= e) {
            t += e;
            l -= e;
            while (l > 0 && *t == ' ') {
                t++;
                l--;
            }
        }
    }
    *len = l;
    return t;
}

/* ---- EHLO ---- */

static int word_eq(const char *w, size_t wl, const char *kw)
{
    size_t kl = strlen(kw);
    return wl == kl && strncasecmp(w, kw, kl) == 0;
}

static void add_mech(mw_smtp_caps *caps, const char *m, size_t ml)
{
    if (ml == 0 || ml > 64) return;
    /* RFC 4422 §3.1 mechanism names: A-Z 0-9 - _ (we upper-case). */
    char up[65];
    for (size_t i = 0; i < ml; i++) {
        char c = m[i];
        if (c >= 'a' && c <= 'z') c = (char)(c - 'a' + 'A');
        if (!((c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_')) return;
        up[i] = c;
    }
    up[ml] = '\0';
    if (mwi_smtp_caps_has_auth(caps, up)) return;
    size_t cur = strlen(caps->auth);
    if (cur + (cur ? 1 : 0) + ml + 1 > sizeof caps->auth) return;
    if (cur) caps->auth[cur++] = ' ';
    memcpy(caps->auth + cur, up, ml + 1);
}

static void add_mechs(mw_smtp_caps *caps, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && p[i] == ' ')
            i++;
        size_t s = i;
        while (i < n && p[i] != ' ')
            i++;
        add_mech(caps, p + s, i - s);
    }
}

int mwi_smtp_caps_parse(mw_smtp_caps *caps, const mw_smtp_reply *ehlo)
{
    memset(caps, 0, sizeof *caps);
    for (size_t i = 1; i < ehlo->nlines; i++) {
        size_t len;
        const char *l = mwi_smtp_reply_line(ehlo, i, &len);
        size_t kl = 0;
        while (kl < len && l[kl] != ' ' && l[kl] != '=')
            kl++;
        const char *arg = l + kl + (kl < len ? 1 : 0);
        size_t al = kl < len ? len - kl - 1 : 0;
        if (kl < len && l[kl] == '=') {
            /* Pre-RFC 4954 servers announce "AUTH=LOGIN PLAIN" (Tcllib
             * only looked at the first AUTH line; we merge them all). */
            if (word_eq(l, kl, "AUTH")) {
                caps->flags |= MW_SMTP_CAP_AUTH;
                add_mechs(caps, arg, al);
            }
            continue;
        }
        if (word_eq(l, kl, "PIPELINING"))
            caps->flags |= MW_SMTP_CAP_PIPELINING;
        else if (word_eq(l, kl, "STARTTLS"))
            caps->flags |= MW_SMTP_CAP_STARTTLS;
        else if (word_eq(l, kl, "8BITMIME"))
            caps->flags |= MW_SMTP_CAP_8BITMIME;
        else if (word_eq(l, kl, "SMTPUTF8"))
            caps->flags |= MW_SMTP_CAP_SMTPUTF8;
        else if (word_eq(l, kl, "DSN"))
            caps->flags |= MW_SMTP_CAP_DSN;
        else if (word_eq(l, kl, "CHUNKING"))
            caps->flags |= MW_SMTP_CAP_CHUNKING;
        else if (word_eq(l, kl, "BINARYMIME"))
            caps->flags |= MW_SMTP_CAP_BINARYMIME;
        else if (word_eq(l, kl, "ENHANCEDSTATUSCODES"))
            caps->flags |= MW_SMTP_CAP_ENHANCED;
        else if (word_eq(l, kl, "XQUE"))
            caps->flags |= MW_SMTP_CAP_XQUE;
        else if (word_eq(l, kl, "ONEX"))
            caps->flags |= MW_SMTP_CAP_ONEX;
        else if (word_eq(l, kl, "AUTH")) {
            caps->flags |= MW_SMTP_CAP_AUTH;
            add_mechs(caps, arg, al);
        } else if (word_eq(l, kl, "SIZE")) {
            /* RFC 1870 §4: "SIZE" [SP number]; 0 or absent = no limit.
             * At most 19 digits so the value cannot overflow. */
            caps->flags |= MW_SMTP_CAP_SIZE;
            uint64_t v = 0;
            size_t d = 0;
            while (d < al && d < 20 && is_digit(arg[d]))
                v = v * 10 + (uint64_t)(arg[d++] - '0');
            caps->size_max = (d > 0 && d <= 19 && d == al) ? v : 0;
        }
    }
    return 0;
}

int mwi_smtp_caps_has_auth(const mw_smtp_caps *caps, const char *mech)
{
    size_t ml = strlen(mech);
    const char *p = caps->auth;
    while (*p) {
        const char *sp = strchr(p, ' ');
        size_t wl = sp ? (size_t)(sp - p) : strlen(p);
        if (wl == ml && strncasecmp(p, mech, ml) == 0) return 1;
        if (!sp) break;
        p = sp + 1;
    }
    return 0;
}
