/* resolv.conf and hosts files for the stub resolver (resolve.h). */
#include "resolve/resolve.h"
#include "util/addrorder.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define CONF_FILE_MAX (64 * 1024)
#define LINE_MAX_LEN  4096

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* The next word of s[*i..len): its start and length (0 at the end). */
static size_t word(const char *s, size_t len, size_t *i, const char **start)
{
    while (*i < len && is_space(s[*i]))
        (*i)++;
    *start = s + *i;
    size_t b = *i;
    while (*i < len && !is_space(s[*i]))
        (*i)++;
    return *i - b;
}

static int word_is(const char *w, size_t wl, const char *lit)
{
    return wl == strlen(lit) && memcmp(w, lit, wl) == 0;
}

/* An address (no scope) of wl octets into a; 0 or -1. */
static int parse_addr(const char *w, size_t wl, mwi_raddr *a)
{
    char buf[64];
    if (wl == 0 || wl >= sizeof buf) return -1;
    memcpy(buf, w, wl);
    buf[wl] = 0;
    memset(a, 0, sizeof *a);
    if (inet_pton(AF_INET, buf, a->addr) == 1) {
        a->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, buf, a->addr) == 1) {
        a->family = AF_INET6;
        return 0;
    }
    return -1;
}

/* "address" or "[address]:port" (port 1..65535). */
static int parse_ns(const char *w, size_t wl, mwi_raddr *a)
{
    unsigned port = 53;
    if (wl > 2 && w[0] == '[') {
        const char *close = memchr(w, ']', wl);
        if (!close) return -1;
        size_t rest = wl - (size_t)(close - w) - 1;
        if (rest) {
            if (close[1] != ':' || rest < 2 || rest > 6) return -1;
            port = 0;
            for (size_t k = 2; k <= rest; k++) {
                if (close[k] < '0' || close[k] > '9') return -1;
                port = port * 10 + (unsigned)(close[k] - '0');
            }
            if (port == 0 || port > 65535) return -1;
        }
        wl = (size_t)(close - w) - 1;
        w++;
    }
    if (parse_addr(w, wl, a)) return -1;
    a->port = port;
    return 0;
}

static void parse_option(mwi_rslv_conf *c, const char *w, size_t wl)
{
    static const struct {
        const char *name;
        int max;
    } opt[] = {{"ndots:", 15}, {"timeout:", 30}, {"attempts:", 5}};
    for (size_t k = 0; k < sizeof opt / sizeof opt[0]; k++) {
        size_t nl = strlen(opt[k].name);
        if (wl <= nl || memcmp(w, opt[k].name, nl) != 0) continue;
        int v = 0;
        for (size_t i = nl; i < wl; i++) {
            if (w[i] < '0' || w[i] > '9') return;
            if (v < 1000) v = v * 10 + (w[i] - '0');
        }
        if (v > opt[k].max) v = opt[k].max;
        if (k == 0) c->ndots = v;
        if (k == 1) c->timeout_ms = (v ? v : 1) * 1000;
        if (k == 2) c->attempts = v ? v : 1;
    }
}

static void add_search(mwi_rslv_conf *c, const char *w, size_t wl)
{
    if (wl && w[wl - 1] == '.') wl--;
    if (!wl || wl >= sizeof c->search[0] || c->nsearch >= MWI_RSLV_SEARCH_MAX) return;
    memcpy(c->search[c->nsearch], w, wl);
    c->search[c->nsearch++][wl] = 0;
}

static void parse_line(mwi_rslv_conf *c, const char *s, size_t len)
{
    size_t i = 0;
    const char *w, *k;
    size_t kl = word(s, len, &i, &k);
    if (!kl || k[0] == '#' || k[0] == ';') return;
    if (word_is(k, kl, "nameserver")) {
        size_t wl = word(s, len, &i, &w);
        if (c->nns < MWI_RSLV_NS_MAX && parse_ns(w, wl, &c->ns[c->nns]) == 0) c->nns++;
    } else if (word_is(k, kl, "search") || word_is(k, kl, "domain")) {
        c->nsearch = 0; /* the last search or domain line wins */
        size_t wl;
        while ((wl = word(s, len, &i, &w)) != 0 && w[0] != '#' && w[0] != ';') {
            add_search(c, w, wl);
            if (word_is(k, kl, "domain")) break;
        }
    } else if (word_is(k, kl, "options")) {
        size_t wl;
        while ((wl = word(s, len, &i, &w)) != 0)
            parse_option(c, w, wl);
    }
}

void mwi_rslv_conf_parse(mwi_rslv_conf *c, const char *text, size_t len)
{
    memset(c, 0, sizeof *c);
    c->ndots = 1;
    c->timeout_ms = 5000;
    c->attempts = 2;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        parse_line(c, text + i, end - i);
        i = end + 1;
    }
    if (!c->nns) { /* the system resolver's default */
        c->ns[0].family = AF_INET;
        c->ns[0].addr[0] = 127;
        c->ns[0].addr[3] = 1;
        c->ns[0].port = 53;
        c->nns = 1;
    }
}

int mwi_rslv_conf_load(mwi_rslv_conf *c, const char *path, mw_error *err)
{
    FILE *f = fopen(path, "re");
    if (!f && errno != ENOENT)
        return mwi_err_set(err, MW_EIO, "%s: %s", path, MW_ERRNO_TEXT(errno));
    char *buf = malloc(CONF_FILE_MAX);
    if (!buf) {
        if (f) fclose(f);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    size_t n = f ? fread(buf, 1, CONF_FILE_MAX, f) : 0;
    int bad = f && ferror(f);
    if (f) fclose(f);
    if (bad) {
        free(buf);
        return mwi_err_set(err, MW_EIO, "%s: read error", path);
    }
    mwi_rslv_conf_parse(c, buf, n);
    free(buf);
    return 0;
}

static int name_eq(const char *w, size_t wl, const char *name)
{
    if (wl && w[wl - 1] == '.') wl--;
    if (wl != strlen(name)) return 0;
    for (size_t i = 0; i < wl; i++) {
        char a = w[i], b = name[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a + 32);
        if (b >= 'A' && b <= 'Z') b = (char)(b + 32);
        if (a != b) return 0;
    }
    return 1;
}

size_t mwi_hosts_line(const char *line, const char *name, int family, mwi_raddr *out, size_t n,
                      size_t max)
{
    const char *hash = strchr(line, '#');
    size_t len = hash ? (size_t)(hash - line) : strlen(line), i = 0;
    const char *w;
    size_t wl = word(line, len, &i, &w);
    mwi_raddr a;
    if (!wl || parse_addr(w, wl, &a)) return n;
    if ((family == 4 && a.family != AF_INET) || (family == 6 && a.family != AF_INET6)) return n;
    while ((wl = word(line, len, &i, &w)) != 0) {
        if (!name_eq(w, wl, name)) continue;
        for (size_t k = 0; k < n; k++)
            if (out[k].family == a.family && !memcmp(out[k].addr, a.addr, sizeof a.addr)) return n;
        if (n < max) out[n++] = a;
        break;
    }
    return n;
}

int mwi_hosts_lookup(const char *path, const char *name, int family, mwi_raddr *out, size_t *n,
                     size_t max, mw_error *err)
{
    *n = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT) return 0;
        return mwi_err_set(err, MW_EIO, "%s: %s", path, MW_ERRNO_TEXT(errno));
    }
    char line[LINE_MAX_LEN];
    int skipping = 0; /* the rest of a line over LINE_MAX_LEN: ignored */
    while (fgets(line, sizeof line, f)) {
        size_t l = strlen(line);
        int whole = l && line[l - 1] == '\n';
        if (!skipping && (whole || feof(f))) *n = mwi_hosts_line(line, name, family, out, *n, max);
        skipping = !whole && !feof(f);
    }
    int bad = ferror(f);
    fclose(f);
    return bad ? mwi_err_set(err, MW_EIO, "%s: read error", path) : 0;
}

void mwi_rslv_interleave(mwi_raddr *a, size_t n)
{
    mwi_raddr tmp[MWI_RSLV_ADDRS_MAX];
    int fam[MWI_RSLV_ADDRS_MAX];
    size_t idx[MWI_RSLV_ADDRS_MAX];
    if (n > MWI_RSLV_ADDRS_MAX) n = MWI_RSLV_ADDRS_MAX;
    for (size_t i = 0; i < n; i++)
        fam[i] = a[i].family;
    /* The blocking side's order (util/addrorder.h), IPv6 first: the
     * resolver has no RFC 6724 sort of its own. */
    size_t k = mwi_he_order(fam, n, AF_INET6, idx, n);
    for (size_t i = 0; i < k; i++)
        tmp[i] = a[idx[i]];
    memcpy(a, tmp, k * sizeof *a);
}
