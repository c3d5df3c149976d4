/* Address lists (RFC 5322 §3.4, obsolete forms §4.4), read leniently into
 * structures: the Tcllib parseaddress equivalent. */
#include "mime/mime_int.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ADDRS  1000
#define MAX_TOKENS 20000

enum { T_ATOM, T_QUOTED, T_LITERAL, T_SPECIAL };

struct tok {
    int kind;
    const char *s; /* raw text (quoted strings with their quotes) */
    size_t n;
    int ws_before; /* white space or a comment came before it */
};

struct mw_mime_addrlist {
    mw_mime_address *a;
    size_t n;
};

static int is_atext(unsigned char c)
{
    /* RFC 5322 §3.2.3 atext; 8-bit bytes are accepted as in RFC 6532. */
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c >= 0x80 || strchr("!#$%&'*+-/=?^_`{|}~", c);
}

struct lexer {
    const char *s;
    size_t n, i;
    mw_buf comment; /* the last comment, for display names */
};

static int lex(struct lexer *lx, struct tok *t)
{
    int ws = 0;
    while (lx->i < lx->n) {
        char c = lx->s[lx->i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            lx->i++;
            ws = 1;
            continue;
        }
        if (c == '(') {
            int depth = 0;
            size_t st = lx->i;
            while (lx->i < lx->n) {
                char x = lx->s[lx->i++];
                if (x == '\\' && lx->i < lx->n)
                    lx->i++;
                else if (x == '(')
                    depth++;
                else if (x == ')' && --depth == 0)
                    break;
            }
            size_t a = st + 1, b = lx->i;
            if (b > a && lx->s[b - 1] == ')') b--;
            lx->comment.len = 0;
            if (b - a > lx->comment.max) b = a + lx->comment.max; /* a display name needs no more */
            if (mwi_buf_append(&lx->comment, lx->s + a, b - a)) return -2;
            ws = 1;
            continue;
        }
        break;
    }
    if (lx->i >= lx->n) return 0;
    t->ws_before = ws;
    t->s = lx->s + lx->i;
    char c = lx->s[lx->i];
    if (c == '"' || c == '[') {
        char end = c == '"' ? '"' : ']';
        size_t j = lx->i + 1;
        while (j < lx->n && lx->s[j] != end) {
            if (lx->s[j] == '\\' && j + 1 < lx->n) j++;
            j++;
        }
        if (j < lx->n) j++;
        t->kind = c == '"' ? T_QUOTED : T_LITERAL;
        t->n = j - lx->i;
        lx->i = j;
        return 1;
    }
    if (is_atext((unsigned char)c) || c == '.') {
        size_t j = lx->i;
        while (j < lx->n && (is_atext((unsigned char)lx->s[j]) || lx->s[j] == '.'))
            j++;
        t->kind = T_ATOM;
        t->n = j - lx->i;
        lx->i = j;
        return 1;
    }
    t->kind = T_SPECIAL;
    t->n = 1;
    lx->i++;
    return 1;
}

static int append_unquoted(mw_buf *b, const struct tok *t)
{
    const char *s = t->s + 1;
    size_t n = t->n >= 2 && t->s[t->n - 1] == '"' ? t->n - 2 : t->n - 1;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (s[i] == '\\' && i + 1 < n) i++;
        if (s[i] != '\r' && s[i] != '\n') rc = mwi_buf_append_char(b, s[i]);
    }
    return rc;
}

/* A phrase (display name): words joined by one space; encoded words
 * decoded (RFC 2047 §5(3)); quoted strings unquoted. */
static int phrase_text(const struct tok *t, size_t n, char **out)
{
    mw_buf raw = MW_BUF_INIT(0);
    int rc = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        if (k && t[k].ws_before) rc = mwi_buf_append_char(&raw, ' ');
        if (rc) break;
        if (t[k].kind == T_QUOTED)
            rc = append_unquoted(&raw, &t[k]);
        else
            rc = mwi_buf_append(&raw, t[k].s, t[k].n);
    }
    mw_buf dec = MW_BUF_INIT(0);
    if (!rc) rc = mwi_rfc2047_decode(raw.data ? raw.data : "", raw.len, &dec);
    mwi_buf_free(&raw);
    if (rc) {
        mwi_buf_free(&dec);
        return rc;
    }
    *out = mwi_buf_take(&dec, NULL);
    return *out ? 0 : MW_ENOMEM;
}

static char *dupn(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static void free_addr(mw_mime_address *a)
{
    free((char *)a->display);
    free((char *)a->local);
    free((char *)a->domain);
    free((char *)a->address);
    free((char *)a->comment);
    free((char *)a->group);
}

void mw_mime_addrlist_free(mw_mime_addrlist *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++)
        free_addr(&l->a[i]);
    free(l->a);
    free(l);
}

size_t mw_mime_addrlist_count(const mw_mime_addrlist *l)
{
    return l->n;
}

const mw_mime_address *mw_mime_addrlist_at(const mw_mime_addrlist *l, size_t i)
{
    return i < l->n ? &l->a[i] : NULL;
}

static int is_sp(const struct tok *t, char c)
{
    return t->kind == T_SPECIAL && t->s[0] == c;
}

/* One mailbox from tokens t[0..n). */
static int mailbox(const struct tok *t, size_t n, const char *comment, const char *group,
                   mw_mime_address *a)
{
    memset(a, 0, sizeof *a);
    size_t lt = n, gt = n;
    for (size_t k = 0; k < n; k++)
        if (is_sp(&t[k], '<')) {
            lt = k;
            break;
        }
    const struct tok *spec = t;
    size_t ns = n;
    int rc;
    if (lt < n) {
        for (size_t k = lt + 1; k < n; k++)
            if (is_sp(&t[k], '>')) {
                gt = k;
                break;
            }
        if (lt > 0 && (rc = phrase_text(t, lt, (char **)&a->display))) return rc;
        spec = t + lt + 1;
        ns = gt - lt - 1;
        if (gt == n) a->error = "missing '>'";
        /* RFC 5322 §4.4 obs-route: "@a,@b:" before the address is dropped. */
        for (size_t k = 0; k < ns; k++)
            if (is_sp(&spec[k], ':')) {
                spec += k + 1;
                ns -= k + 1;
                break;
            }
    }
    size_t at = ns;
    for (size_t k = ns; k-- > 0;)
        if (is_sp(&spec[k], '@')) {
            at = k;
            break;
        }
    mw_buf local = MW_BUF_INIT(0), dom = MW_BUF_INIT(0);
    rc = 0;
    for (size_t k = 0; k < at && !rc; k++)
        rc = mwi_buf_append(&local, spec[k].s, spec[k].n);
    for (size_t k = at + 1; k < ns && !rc; k++)
        rc = mwi_buf_append(&dom, spec[k].s, spec[k].n);
    if (!rc) {
        a->local = dupn(local.data ? local.data : "", local.len);
        a->domain = at < ns ? dupn(dom.data ? dom.data : "", dom.len) : NULL;
        mw_buf full = MW_BUF_INIT(0);
        rc = mwi_buf_reserve(&full, local.len + 1 + dom.len); /* one allocation */
        if (!rc) rc = mwi_buf_append(&full, local.data ? local.data : "", local.len);
        if (!rc && at < ns) rc = mwi_buf_append(&full, "@", 1);
        if (!rc && at < ns) rc = mwi_buf_append(&full, dom.data ? dom.data : "", dom.len);
        if (!rc) a->address = full.data ? mwi_buf_take(&full, NULL) : dupn("", 0);
        mwi_buf_free(&full);
        if (!a->local || (at < ns && !a->domain) || !a->address) rc = MW_ENOMEM;
    }
    mwi_buf_free(&local);
    mwi_buf_free(&dom);
    if (!rc && !a->error) {
        if (ns == 0)
            a->error = "empty address";
        else if (at == ns)
            a->error = "no domain in address";
        else if (at == 0)
            a->error = "no local part in address";
        else if (at + 1 == ns)
            a->error = "empty domain in address";
    }
    if (!rc && lt == n && comment && *comment && !(a->comment = strdup(comment))) rc = MW_ENOMEM;
    if (!rc && group && !(a->group = strdup(group))) rc = MW_ENOMEM;
    return rc;
}

/* Appends tk to the item's tokens (at most MAX_TOKENS); 0, MW_ETOOBIG
 * (err set) or MW_ENOMEM. */
static int push_tok(struct tok **t, size_t *nt, size_t *cap, const struct tok *tk, mw_error *err)
{
    if (*nt == MAX_TOKENS)
        return mwi_err_set(err, MW_ETOOBIG, "address list has more than %d tokens", MAX_TOKENS);
    if (*nt == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        struct tok *nn = realloc(*t, nc * sizeof *nn);
        if (!nn) return MW_ENOMEM;
        *t = nn;
        *cap = nc;
    }
    (*t)[(*nt)++] = *tk;
    return 0;
}

/* The mailbox of one item's tokens appended to l (at most MAX_ADDRS); 0,
 * MW_ETOOBIG (err set) or MW_ENOMEM. */
static int add_mailbox(mw_mime_addrlist *l, const struct tok *t, size_t nt, const char *comment,
                       const char *group, mw_error *err)
{
    if (l->n == MAX_ADDRS) return mwi_err_set(err, MW_ETOOBIG, "more than %d addresses", MAX_ADDRS);
    mw_mime_address *na = realloc(l->a, (l->n + 1) * sizeof *na);
    if (!na) return MW_ENOMEM;
    l->a = na;
    int rc = mailbox(t, nt, comment, group, &l->a[l->n]);
    if (rc) {
        free_addr(&l->a[l->n]);
        return rc;
    }
    l->n++;
    return 0;
}

int mw_mime_addrlist_parse(mw_mime_addrlist **out, const char *s, size_t len, mw_error *err)
{
    *out = NULL;
    mw_mime_addrlist *l = calloc(1, sizeof *l);
    struct tok *t = NULL;
    size_t nt = 0, cap = 0;
    struct lexer lx = {s, len, 0, MW_BUF_INIT(4096)};
    char *group = NULL;
    int rc = 0, in_angle = 0, seen_at = 0;
    if (!l) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    for (;;) {
        struct tok tk;
        int r = lex(&lx, &tk);
        if (r < 0) {
            rc = MW_ENOMEM;
            break;
        }
        int end = r == 0;
        /* An item ends at ',' (outside <>), at ';' (group end), or at ':'
         * that starts a group (before any '<' or '@'). */
        if (!end && tk.kind == T_SPECIAL && tk.s[0] == ':' && !in_angle && !seen_at && !group &&
            nt > 0 && !is_sp(&t[0], '<')) {
            char *g;
            if ((rc = phrase_text(t, nt, &g))) break;
            group = g;
            nt = 0;
            continue;
        }
        int boundary = end || (tk.kind == T_SPECIAL && !in_angle &&
                               (tk.s[0] == ',' || (tk.s[0] == ';' && group)));
        if (!boundary) {
            if ((rc = push_tok(&t, &nt, &cap, &tk, err))) break;
            if (is_sp(&tk, '<'))
                in_angle = 1;
            else if (is_sp(&tk, '>'))
                in_angle = 0;
            else if (is_sp(&tk, '@'))
                seen_at = 1;
            continue;
        }
        if (nt > 0 && (rc = add_mailbox(l, t, nt, lx.comment.data, group, err))) break;
        lx.comment.len = 0;
        if (lx.comment.data) lx.comment.data[0] = '\0';
        nt = 0;
        in_angle = seen_at = 0;
        if (!end && tk.s[0] == ';') {
            free(group);
            group = NULL;
        }
        if (end) break;
    }
    free(t);
    free(group);
    mwi_buf_free(&lx.comment);
    if (rc) {
        mw_mime_addrlist_free(l);
        if (rc == MW_ENOMEM) mwi_err_set(err, rc, "out of memory");
        return rc;
    }
    *out = l;
    return 0;
}

/* RFC 5322 §3.2.3: a phrase of atoms needs no quotes. */
static int needs_quotes(const char *s)
{
    if (!*s) return 1;
    for (const char *p = s; *p; p++)
        if (!is_atext((unsigned char)*p) && *p != ' ') return 1;
    return 0;
}

int mw_mime_address_format(char **out, const char *display, const char *addr)
{
    *out = NULL;
    if (!addr || strpbrk(addr, "\r\n<>") || (display && strpbrk(display, "\r\n"))) return MW_EINVAL;
    mw_buf b = MW_BUF_INIT(0);
    int rc = 0;
    if (display && *display) {
        int ascii = 1;
        for (const char *p = display; *p; p++)
            if ((unsigned char)*p >= 0x80) ascii = 0;
        if (!ascii || strstr(display, "=?")) {
            char *w;
            /* RFC 2047 §5(3): in a phrase, an encoded word stands alone. */
            rc = mw_mime_word_encode(&w, display, strlen(display), "UTF-8", 'q', NULL);
            if (!rc) {
                rc = mwi_buf_append_str(&b, w);
                free(w);
            }
        } else if (needs_quotes(display)) {
            rc = mwi_buf_append_char(&b, '"');
            for (const char *p = display; *p && !rc; p++) {
                if (*p == '"' || *p == '\\') rc = mwi_buf_append_char(&b, '\\');
                if (!rc) rc = mwi_buf_append_char(&b, *p);
            }
            if (!rc) rc = mwi_buf_append_char(&b, '"');
        } else {
            rc = mwi_buf_append_str(&b, display);
        }
        if (!rc) rc = mwi_buf_printf(&b, " <%s>", addr);
    } else {
        rc = mwi_buf_append_str(&b, addr);
    }
    if (rc) {
        mwi_buf_free(&b);
        return rc;
    }
    *out = mwi_buf_take(&b, NULL);
    return 0;
}
