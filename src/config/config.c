/* The accounts configuration file: a line-oriented parser in the manner of
 * mpop and msmtp (`defaults`, `account NAME [: PARENT, …]`, `key value`). */
#include "mailwire/config.h"
#include "mailwire/store.h"
#include "util/err.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONFIG_FILE_MAX     (1u << 20)
#define CONFIG_LINE_MAX     4096
#define CONFIG_ACCOUNTS_MAX 1000

enum kind {
    K_TOKEN,
    K_TEXT,
    K_PATH,
    K_PORT,
    K_TLS,
    K_AUTH,
    K_PIN,
    K_TIMEOUT,
    K_DELIVERY,
    K_BOOL,
    K_SIZE,
    K_DAYS,
    K_MSECS, /* seconds with up to three decimals, kept in ms (max_time, speed_time) */
    K_RATE,  /* bytes per second (speed_limit), a long */
};

struct key {
    const char *name;
    enum kind kind;
    size_t off;  /* of the field in mw_account */
    size_t off2; /* delivery: the target */
};

#define F(field) offsetof(mw_account, field)
static const struct key keys[] = {
    {"host", K_TOKEN, F(host), 0},
    {"port", K_PORT, F(port), 0},
    {"tls", K_TLS, F(tls), 0},
    {"user", K_TEXT, F(user), 0},
    {"auth", K_AUTH, F(auth), 0},
    {"password", K_TEXT, F(password), 0},
    {"passwordeval", K_TEXT, F(passwordeval), 0},
    {"password_file", K_PATH, F(password_file), 0},
    {"cafile", K_PATH, F(cafile), 0},
    {"crlfile", K_PATH, F(crlfile), 0},
    {"proxy", K_TEXT, F(proxy), 0},
    {"pin", K_PIN, F(pin), 0},
    {"cert", K_PATH, F(cert), 0},
    {"key", K_PATH, F(key), 0},
    {"timeout", K_TIMEOUT, F(timeout_s), 0},
    {"delivery", K_DELIVERY, F(delivery), F(delivery_target)},
    {"keep", K_BOOL, F(keep), 0},
    {"only_new", K_BOOL, F(only_new), 0},
    {"size_limit", K_SIZE, F(size_limit), 0},
    {"filter", K_TEXT, F(filter), 0},
    {"delete_after_days", K_DAYS, F(delete_after_days), 0},
    {"from", K_TOKEN, F(from), 0},
    {"max_time", K_MSECS, F(max_time_ms), 0},
    {"speed_limit", K_RATE, F(speed_limit), 0},
    {"speed_time", K_MSECS, F(speed_time_ms), 0},
    {"queue", K_BOOL, F(queue), 0},
    {"oauth_provider", K_TOKEN, F(oauth_provider), 0},
    {"oauth_client_id", K_TOKEN, F(oauth_client_id), 0},
    {"oauth_client_secret", K_TEXT, F(oauth_client_secret), 0},
    {"oauth_device_url", K_TOKEN, F(oauth_device_url), 0},
    {"oauth_auth_url", K_TOKEN, F(oauth_auth_url), 0},
    {"oauth_token_url", K_TOKEN, F(oauth_token_url), 0},
    {"oauth_revoke_url", K_TOKEN, F(oauth_revoke_url), 0},
    {"oauth_scope", K_TEXT, F(oauth_scope), 0},
    {"oauth_secret_store", K_TEXT, F(oauth_secret_store), 0},
    {"oauth_secret_lookup", K_TEXT, F(oauth_secret_lookup), 0},
};
#undef F
#define NKEYS (sizeof keys / sizeof keys[0])

/* The string fields, for copying and freeing. */
static const size_t str_fields[] = {
    offsetof(mw_account, host),
    offsetof(mw_account, user),
    offsetof(mw_account, auth),
    offsetof(mw_account, password),
    offsetof(mw_account, passwordeval),
    offsetof(mw_account, password_file),
    offsetof(mw_account, cafile),
    offsetof(mw_account, crlfile),
    offsetof(mw_account, pin),
    offsetof(mw_account, cert),
    offsetof(mw_account, key),
    offsetof(mw_account, delivery_target),
    offsetof(mw_account, filter),
    offsetof(mw_account, from),
    offsetof(mw_account, name),
    offsetof(mw_account, proxy),
    offsetof(mw_account, oauth_provider),
    offsetof(mw_account, oauth_client_id),
    offsetof(mw_account, oauth_client_secret),
    offsetof(mw_account, oauth_device_url),
    offsetof(mw_account, oauth_auth_url),
    offsetof(mw_account, oauth_token_url),
    offsetof(mw_account, oauth_revoke_url),
    offsetof(mw_account, oauth_scope),
    offsetof(mw_account, oauth_secret_store),
    offsetof(mw_account, oauth_secret_lookup),
};
#define NSTR (sizeof str_fields / sizeof str_fields[0])

typedef struct cfg_acct {
    mw_account pub;
    unsigned long set; /* bit i: keys[i] was given (here or inherited) */
} cfg_acct;

struct mw_config {
    cfg_acct *a;
    size_t n, cap;
    char *file;
};

typedef struct parser {
    mw_config *c;
    const char *name;
    size_t line;
    const mw_config_options *opt;
    mw_error *err;
    cfg_acct defaults;
    cfg_acct *cur; /* the section keys go to; NULL before the first */
    int has_password;
} parser;

static char **str_at(mw_account *a, size_t off)
{
    return (char **)((char *)a + off);
}

static void acct_init(cfg_acct *a)
{
    memset(a, 0, sizeof *a);
    a->pub.only_new = 1;
    a->pub.delete_after_days = -1;
    a->pub.speed_limit = -1;
}

static void acct_clear(cfg_acct *a)
{
    for (size_t i = 0; i < NSTR; i++) {
        char **p = str_at(&a->pub, str_fields[i]);
        if (*p && str_fields[i] == offsetof(mw_account, password))
            memset(*p, 0, strlen(*p)); /* do not leave passwords in freed memory */
        free(*p);
        *p = NULL;
    }
}

/* Copies the settings of src that are set into dst (not name/file/line). */
static int acct_inherit(cfg_acct *dst, const cfg_acct *src)
{
    for (size_t k = 0; k < NKEYS; k++) {
        if (!(src->set & (1ul << k))) continue;
        const struct key *key = &keys[k];
        size_t offs[2] = {key->off, key->off2};
        for (int j = 0; j < (key->off2 ? 2 : 1); j++) {
            int is_str = 0;
            for (size_t i = 0; i < NSTR; i++)
                is_str |= str_fields[i] == offs[j];
            if (is_str) {
                char **d = str_at(&dst->pub, offs[j]);
                char *const *s = (char *const *)((const char *)&src->pub + offs[j]);
                free(*d);
                *d = *s ? strdup(*s) : NULL;
                if (*s && !*d) return -1;
            } else if (key->kind == K_SIZE) {
                memcpy((char *)&dst->pub + offs[j], (const char *)&src->pub + offs[j],
                       sizeof(uint64_t));
            } else if (key->kind == K_RATE) {
                memcpy((char *)&dst->pub + offs[j], (const char *)&src->pub + offs[j],
                       sizeof(long));
            } else {
                memcpy((char *)&dst->pub + offs[j], (const char *)&src->pub + offs[j], sizeof(int));
            }
        }
        dst->set |= 1ul << k;
    }
    return 0;
}

static int perr(parser *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr(parser *p, int code, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return mwi_err_set(p->err, code, "%s:%zu: %s", p->name, p->line, what);
}

/* ~ expansion: "~" and "~/…" only. */
static int expand_path(parser *p, const char *key, const char *v, char **out)
{
    if (v[0] != '~') {
        *out = strdup(v);
        return *out ? 0 : MW_ENOMEM;
    }
    if (v[1] != '\0' && v[1] != '/')
        return perr(p, MW_EFORMAT, "%s: \"~user\" is not supported, write the path in full", key);
    if (!p->opt->home || !*p->opt->home)
        return perr(p, MW_EFORMAT, "%s: \"~\" used but no home directory is known", key);
    size_t hl = strlen(p->opt->home), vl = strlen(v + 1);
    *out = malloc(hl + vl + 1);
    if (!*out) return MW_ENOMEM;
    memcpy(*out, p->opt->home, hl);
    memcpy(*out + hl, v + 1, vl + 1);
    return 0;
}

/* Parses an unsigned decimal number; 0 or -1 when not a number or > max. */
static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
    if (!*s) return -1;
    unsigned long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return -1;
        if (v > (max - (unsigned long long)(*s - '0')) / 10) return -1;
        v = v * 10 + (unsigned long long)(*s - '0');
    }
    *out = v;
    return 0;
}

/* Seconds with up to three decimals ("2.5") into ms, at most max_ms; -1
 * when not that. */
static int parse_msecs(const char *s, unsigned long long max_ms, unsigned long long *out)
{
    unsigned long long ms = 0;
    if (*s < '0' || *s > '9') return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        ms = ms * 10 + (unsigned long long)(*s - '0');
        if (ms > max_ms) return -1;
    }
    ms *= 1000;
    if (*s == '.') {
        unsigned long long scale = 100;
        if (s[1] < '0' || s[1] > '9') return -1;
        for (s++; *s >= '0' && *s <= '9'; s++, scale /= 10) {
            if (!scale) return -1; /* finer than a millisecond */
            ms += (unsigned long long)(*s - '0') * scale;
        }
    }
    if (*s || ms > max_ms) return -1;
    *out = ms;
    return 0;
}

static int is_on_off(const char *v, int *out)
{
    if (!strcmp(v, "on")) {
        *out = 1;
        return 0;
    }
    if (!strcmp(v, "off")) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* size_limit: bytes, with an optional k, m or g suffix (powers of 1024). */
static int parse_size(parser *p, const char *v, uint64_t *out)
{
    char num[32];
    size_t n = strlen(v);
    unsigned long long mult = 1, u;
    if (n >= sizeof num) return perr(p, MW_EFORMAT, "size_limit: \"%s\" is too long", v);
    memcpy(num, v, n + 1);
    char last = n ? (char)tolower((unsigned char)num[n - 1]) : 0;
    if (last == 'k' || last == 'm' || last == 'g') {
        mult = last == 'k' ? 1024ull : last == 'm' ? 1024ull * 1024 : 1024ull * 1024 * 1024;
        num[n - 1] = '\0';
    }
    if (parse_uint(num, (1ull << 50) / mult, &u) != 0)
        return perr(p, MW_EFORMAT,
                    "size_limit: \"%s\" is not a size in bytes (suffix k, m or g allowed)", v);
    *out = u * mult;
    return 0;
}

/* delivery maildir PATH | mbox PATH | mda COMMAND: the kind into *kind_out,
 * the path (expanded) or command into *val (malloc'd). */
static int parse_delivery(parser *p, const char *v, int *kind_out, char **val)
{
    const char *sp2 = strpbrk(v, " \t");
    size_t wl = sp2 ? (size_t)(sp2 - v) : strlen(v);
    const char *target = sp2 ? sp2 : "";
    int rc;
    while (*target == ' ' || *target == '\t')
        target++;
    int kind;
    if (wl == 7 && !strncmp(v, "maildir", 7))
        kind = MW_STORE_MAILDIR;
    else if (wl == 4 && !strncmp(v, "mbox", 4))
        kind = MW_STORE_MBOX;
    else if (wl == 3 && !strncmp(v, "mda", 3))
        kind = MW_STORE_MDA;
    else
        return perr(p, MW_EFORMAT, "delivery: expected maildir PATH, mbox PATH or mda COMMAND");
    if (!*target)
        return perr(p, MW_EFORMAT, "delivery %s needs a %s", kind == MW_STORE_MDA ? "mda" : "",
                    kind == MW_STORE_MDA ? "command" : "path");
    if (kind == MW_STORE_MDA)
        *val = strdup(target);
    else if ((rc = expand_path(p, "delivery", target, val)) != 0)
        return rc;
    if (!*val) return mwi_err_set(p->err, MW_ENOMEM, "out of memory");
    *kind_out = kind;
    return 0;
}

/* One key's value into the current account.  long: one flat switch, a case
 * per kind of value. */
static int set_value(parser *p, size_t k, const char *v)
{
    const struct key *key = &keys[k];
    mw_account *a = &p->cur->pub;
    int *ip = (int *)((char *)a + key->off);
    char **sp = str_at(a, key->off);
    unsigned long long u;
    int rc = 0;
    char *val = NULL;

    if (!*v && key->kind != K_TEXT) return perr(p, MW_EFORMAT, "%s needs a value", key->name);
    switch (key->kind) {
    case K_TOKEN:
        if (strpbrk(v, " \t"))
            return perr(p, MW_EFORMAT, "%s: \"%s\" must not contain spaces", key->name, v);
        val = strdup(v);
        break;
    case K_TEXT:
        if (!*v) return perr(p, MW_EFORMAT, "%s needs a value", key->name);
        val = strdup(v);
        break;
    case K_PATH:
        if ((rc = expand_path(p, key->name, v, &val)) != 0) return rc;
        break;
    case K_PIN:
        if (strncmp(v, "sha256:", 7) != 0 || !v[7] || strpbrk(v, " \t"))
            return perr(p, MW_EFORMAT, "pin: \"%s\" is not of the form sha256:BASE64", v);
        val = strdup(v);
        break;
    case K_PORT:
        if (parse_uint(v, 65535, &u) != 0 || u == 0)
            return perr(p, MW_EFORMAT, "port: \"%s\" is not a number from 1 to 65535", v);
        *ip = (int)u;
        break;
    case K_TIMEOUT:
        if (parse_uint(v, 86400, &u) != 0 || u == 0)
            return perr(p, MW_EFORMAT, "timeout: \"%s\" is not a number of seconds from 1 to 86400",
                        v);
        *ip = (int)u;
        break;
    case K_DAYS:
        if (parse_uint(v, 100000, &u) != 0)
            return perr(p, MW_EFORMAT, "delete_after_days: \"%s\" is not a number from 0 to 100000",
                        v);
        *ip = (int)u;
        break;
    case K_MSECS: {
        /* max_time: 0 = none, up to a week; speed_time: above 0, up to a day. */
        int is_max = key->off == offsetof(mw_account, max_time_ms);
        unsigned long long lim = is_max ? 604800000ull : 86400000ull;
        if (parse_msecs(v, lim, &u) != 0 || (!is_max && u == 0))
            return perr(p, MW_EFORMAT, "%s: \"%s\" is not a number of seconds from %s to %s",
                        key->name, v, is_max ? "0 (none)" : "0.001", is_max ? "604800" : "86400");
        *ip = (int)u;
        break;
    }
    case K_RATE:
        if (parse_uint(v, 1000000000ull, &u) != 0)
            return perr(p, MW_EFORMAT,
                        "speed_limit: \"%s\" is not a number of bytes per second from 0 (none) to "
                        "1000000000",
                        v);
        a->speed_limit = (long)u;
        break;
    case K_TLS:
        if (!strcmp(v, "off"))
            *ip = MW_CONFIG_TLS_OFF;
        else if (!strcmp(v, "starttls"))
            *ip = MW_CONFIG_TLS_STARTTLS;
        else if (!strcmp(v, "implicit"))
            *ip = MW_CONFIG_TLS_IMPLICIT;
        else
            return perr(p, MW_EFORMAT, "tls: \"%s\" is not one of off, starttls, implicit", v);
        break;
    case K_AUTH:
        for (const char *q = v; *q; q++)
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_')
                return perr(p, MW_EFORMAT, "auth: \"%s\" is not on, off or a mechanism name", v);
        val = strdup(v);
        break;
    case K_BOOL:
        if (is_on_off(v, ip) != 0)
            return perr(p, MW_EFORMAT, "%s: \"%s\" is not on or off", key->name, v);
        break;
    case K_SIZE:
        if ((rc = parse_size(p, v, &a->size_limit)) != 0) return rc;
        break;
    case K_DELIVERY:
        if ((rc = parse_delivery(p, v, ip, &val)) != 0) return rc;
        sp = str_at(a, key->off2);
        break;
    }
    if (key->kind == K_TOKEN || key->kind == K_TEXT || key->kind == K_PATH || key->kind == K_PIN ||
        key->kind == K_AUTH || key->kind == K_DELIVERY) {
        if (!val) return mwi_err_set(p->err, MW_ENOMEM, "out of memory");
        if (*sp && sp == str_at(a, offsetof(mw_account, password))) memset(*sp, 0, strlen(*sp));
        free(*sp);
        *sp = val;
    }
    if (!strcmp(key->name, "password")) p->has_password = 1;
    p->cur->set |= 1ul << k;
    return 0;
}

static cfg_acct *find_acct(mw_config *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->a[i].pub.name, name)) return &c->a[i];
    return NULL;
}

static int valid_name(const char *s, size_t n)
{
    if (n == 0 || n > 100) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-_.@+", s[i])) return 0;
    return 1;
}

/* "account NAME" or "account NAME : P1, P2" (args is what follows "account"). */
static int start_account(parser *p, char *args)
{
    char *colon = strchr(args, ':');
    char *name = args, *parents = NULL;
    if (colon) {
        *colon = '\0';
        parents = colon + 1;
    }
    size_t nl = strlen(name);
    while (nl && (name[nl - 1] == ' ' || name[nl - 1] == '\t'))
        name[--nl] = '\0';
    if (!valid_name(name, nl))
        return perr(p, MW_EFORMAT,
                    "account name \"%s\" is empty or has characters other than letters, digits, "
                    "- _ . @ +",
                    name);
    cfg_acct *old = find_acct(p->c, name);
    if (old) {
        char where[64];
        snprintf(where, sizeof where, "%d", old->pub.line);
        return perr(p, MW_EFORMAT, "account \"%s\" is defined twice (first on line %s)", name,
                    where);
    }
    if (p->c->n >= CONFIG_ACCOUNTS_MAX) return perr(p, MW_ETOOBIG, "more than 1000 accounts");
    if (p->c->n == p->c->cap) {
        size_t nc = p->c->cap ? p->c->cap * 2 : 8;
        cfg_acct *na = realloc(p->c->a, nc * sizeof *na);
        if (!na) return mwi_err_set(p->err, MW_ENOMEM, "out of memory");
        p->c->a = na;
        p->c->cap = nc;
    }
    cfg_acct *a = &p->c->a[p->c->n];
    acct_init(a);
    p->c->n++;
    a->pub.line = (int)p->line;
    a->pub.file = p->c->file;
    if (!(*str_at(&a->pub, offsetof(mw_account, name)) = strdup(name)) ||
        acct_inherit(a, &p->defaults) != 0)
        return mwi_err_set(p->err, MW_ENOMEM, "out of memory");
    while (parents) {
        char *comma = strchr(parents, ',');
        if (comma) *comma = '\0';
        while (*parents == ' ' || *parents == '\t')
            parents++;
        size_t pl = strlen(parents);
        while (pl && (parents[pl - 1] == ' ' || parents[pl - 1] == '\t'))
            parents[--pl] = '\0';
        if (!pl)
            return perr(p, MW_EFORMAT, "account \"%s\": empty parent name after ':' or ','", name);
        cfg_acct *par = find_acct(p->c, parents);
        if (!par || par == a)
            return perr(p, MW_EFORMAT, "account \"%s\": parent \"%s\" is not defined above", name,
                        parents);
        if (acct_inherit(a, par) != 0) return mwi_err_set(p->err, MW_ENOMEM, "out of memory");
        parents = comma ? comma + 1 : NULL;
    }
    p->cur = a;
    return 0;
}

/* Takes the value part of a line: plain (trimmed) or "quoted" with \" and
 * \\ escapes; writes it over itself. */
static int unquote(parser *p, char *v)
{
    if (*v != '"') return 0;
    char *o = v;
    const char *s = v + 1;
    for (;;) {
        if (!*s) return perr(p, MW_EFORMAT, "missing closing '\"'");
        if (*s == '"') break;
        if (*s == '\\') {
            if (s[1] != '"' && s[1] != '\\')
                return perr(p, MW_EFORMAT, "in quotes, only \\\" and \\\\ are escapes");
            s++;
        }
        *o++ = *s++;
    }
    s++;
    if (*s) return perr(p, MW_EFORMAT, "text after the closing '\"'");
    *o = '\0';
    return 0;
}

static int parse_line(parser *p, char *l)
{
    while (*l == ' ' || *l == '\t')
        l++;
    size_t n = strlen(l);
    while (n && (l[n - 1] == ' ' || l[n - 1] == '\t'))
        l[--n] = '\0';
    if (!*l || *l == '#') return 0;
    char *kw = l;
    char *rest = l + strcspn(l, " \t");
    if (*rest) {
        *rest++ = '\0';
        while (*rest == ' ' || *rest == '\t')
            rest++;
    }
    if (!strcmp(kw, "defaults")) {
        if (*rest) return perr(p, MW_EFORMAT, "\"defaults\" takes no argument");
        p->cur = &p->defaults;
        return 0;
    }
    if (!strcmp(kw, "account")) return start_account(p, rest);
    size_t k = 0;
    while (k < NKEYS && strcmp(keys[k].name, kw) != 0)
        k++;
    if (k == NKEYS) return perr(p, MW_EFORMAT, "unknown key \"%s\"", kw);
    if (!p->cur)
        return perr(p, MW_EFORMAT, "\"%s\" before any \"defaults\" or \"account\" line", kw);
    int rc = unquote(p, rest);
    return rc ? rc : set_value(p, k, rest);
}

static int parse_all(parser *p, const char *text, size_t len)
{
    if (len > CONFIG_FILE_MAX)
        return mwi_err_set(p->err, MW_ETOOBIG, "%s: larger than %u bytes", p->name,
                           CONFIG_FILE_MAX);
    char line[CONFIG_LINE_MAX + 1];
    size_t pos = 0;
    while (pos < len) {
        p->line++;
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        if (n && text[pos + n - 1] == '\r') n--; /* accept CRLF files */
        if (n > CONFIG_LINE_MAX) return perr(p, MW_ETOOBIG, "line longer than 4096 bytes");
        if (memchr(text + pos, '\0', n)) return perr(p, MW_EFORMAT, "NUL byte in line");
        for (size_t i = 0; i < n; i++)
            if (text[pos + i] == '\r') return perr(p, MW_EFORMAT, "carriage return inside a line");
        memcpy(line, text + pos, n);
        line[n] = '\0';
        int rc = parse_line(p, line);
        memset(line, 0, n); /* it may have held a password */
        if (rc) return rc;
        pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
    }
    return 0;
}

static int do_parse(mw_config **out, const char *text, size_t len, const char *name,
                    const mw_config_options *opt, mw_error *err, int *has_password)
{
    mw_config_options def = MW_CONFIG_OPTIONS_INIT;
    if (!opt) opt = &def;
    if (opt->version != MW_CONFIG_OPTIONS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "config options: unknown version %u", opt->version);
    mw_config *c = calloc(1, sizeof *c);
    if (!c || !(c->file = strdup(name ? name : "(config)"))) {
        free(c);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    parser p = {c, c->file, 0, opt, err, {{0}, 0}, NULL, 0};
    acct_init(&p.defaults);
    int rc = parse_all(&p, text, len);
    acct_clear(&p.defaults);
    if (rc) {
        mw_config_free(c);
        return rc;
    }
    *has_password = p.has_password;
    *out = c;
    return 0;
}

int mw_config_parse(mw_config **out, const char *text, size_t len, const char *name,
                    const mw_config_options *opt, mw_error *err)
{
    if (!out || (!text && len))
        return mwi_err_set(err, MW_EINVAL, "mw_config_parse: bad arguments");
    *out = NULL;
    int hp;
    return do_parse(out, text ? text : "", len, name, opt, err, &hp);
}

/* Reads a whole small file, at most max bytes. */
static int slurp(const char *path, size_t max, char **out, size_t *outlen, struct stat *sb,
                 mw_error *err)
{
    char eb[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return mwi_err_set(err, MW_EIO, "%s: %s", path, mwi_errno_text(errno, eb, sizeof eb));
    if (fstat(fd, sb) != 0 || !S_ISREG(sb->st_mode)) {
        int e = errno;
        close(fd);
        return mwi_err_set(err, MW_EIO, "%s: %s", path,
                           S_ISREG(sb->st_mode) ? mwi_errno_text(e, eb, sizeof eb)
                                                : "not a regular file");
    }
    if ((uint64_t)sb->st_size > max) {
        close(fd);
        return mwi_err_set(err, MW_ETOOBIG, "%s: larger than %zu bytes", path, max);
    }
    size_t size = (size_t)sb->st_size, got = 0;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *outlen = got;
    return 0;
}

int mw_config_load(mw_config **out, const char *path, const mw_config_options *opt, mw_error *err)
{
    if (!out || !path || !*path)
        return mwi_err_set(err, MW_EINVAL, "mw_config_load: bad arguments");
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    struct stat sb;
    int rc = slurp(path, CONFIG_FILE_MAX, &text, &len, &sb, err);
    if (rc) return rc;
    int has_password = 0;
    rc = do_parse(out, text, len, path, opt, err, &has_password);
    memset(text, 0, len);
    free(text);
    if (rc == 0 && has_password && (sb.st_mode & 077) && !(opt && opt->skip_permission_check)) {
        mw_config_free(*out);
        *out = NULL;
        return mwi_err_set(err, MW_EPOLICY,
                           "%s: holds a password but group or others can read it (chmod 600 %s)",
                           path, path);
    }
    return rc;
}

void mw_config_free(mw_config *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        acct_clear(&c->a[i]);
    free(c->a);
    free(c->file);
    free(c);
}

size_t mw_config_count(const mw_config *c)
{
    return c ? c->n : 0;
}

const mw_account *mw_config_account_at(const mw_config *c, size_t i)
{
    return c && i < c->n ? &c->a[i].pub : NULL;
}

const mw_account *mw_config_find(const mw_config *c, const char *name)
{
    if (!c || !name) return NULL;
    cfg_acct *a = find_acct((mw_config *)c, name);
    return a ? &a->pub : NULL;
}

const mw_account *mw_config_find_by_from(const mw_config *c, const char *address)
{
    if (!c || !address) return NULL;
    for (size_t i = 0; i < c->n; i++)
        if (c->a[i].pub.from && !strcasecmp(c->a[i].pub.from, address)) return &c->a[i].pub;
    return NULL;
}

int mw_config_read_password_file(char **out, const char *path, mw_error *err)
{
    return mw_secret_from_file(out, path, err);
}
