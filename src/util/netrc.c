/* ~/.netrc and $MAILHOST, looked up only when the caller asks
 * (include/mailwire/netrc.h). */
#include "util/netrc.h"

#include "mailwire/netrc.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define NETRC_MAX_FILE  (1024 * 1024)
#define NETRC_MAX_TOKEN 255

static void wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

void mw_netrc_entry_clear(mw_netrc_entry *e)
{
    if (e) wipe(e, sizeof *e);
}

typedef struct lexer {
    const char *s;
    size_t len, pos;
} lexer;

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Next token into tok (NUL-terminated).  Returns 1 token, 0 end of input,
 * MW_EFORMAT on an over-long token or an unterminated quote. */
static int next_token(lexer *lx, char *tok)
{
    for (;;) {
        while (lx->pos < lx->len && is_space(lx->s[lx->pos]))
            lx->pos++;
        if (lx->pos >= lx->len) return 0;
        if (lx->s[lx->pos] != '#') break;
        while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
            lx->pos++;
    }
    size_t n = 0;
    if (lx->s[lx->pos] == '"') {
        lx->pos++;
        for (;;) {
            if (lx->pos >= lx->len) return MW_EFORMAT;
            char c = lx->s[lx->pos++];
            if (c == '"') break;
            if (c == '\\') {
                if (lx->pos >= lx->len) return MW_EFORMAT;
                c = lx->s[lx->pos++];
            }
            if (n >= NETRC_MAX_TOKEN) return MW_EFORMAT;
            tok[n++] = c;
        }
    } else {
        while (lx->pos < lx->len && !is_space(lx->s[lx->pos])) {
            char c = lx->s[lx->pos++];
            if (c == '\\' && lx->pos < lx->len) c = lx->s[lx->pos++];
            if (n >= NETRC_MAX_TOKEN) return MW_EFORMAT;
            tok[n++] = c;
        }
    }
    tok[n] = '\0';
    return 1;
}

/* macdef NAME is followed by lines up to an empty line (ftp(1)). */
static void skip_macdef(lexer *lx)
{
    while (lx->pos < lx->len) {
        const char *nl = memchr(lx->s + lx->pos, '\n', lx->len - lx->pos);
        if (!nl) {
            lx->pos = lx->len;
            return;
        }
        lx->pos = (size_t)(nl - lx->s) + 1;
        if (lx->pos < lx->len && lx->s[lx->pos] == '\n') {
            lx->pos++;
            return;
        }
        if (lx->pos + 1 < lx->len && lx->s[lx->pos] == '\r' && lx->s[lx->pos + 1] == '\n') {
            lx->pos += 2;
            return;
        }
    }
}

int mwi_netrc_parse(mw_netrc_entry *out, const char *text, size_t len, const char *host,
                    const char *login, mw_error *err)
{
    lexer lx = {text, len, 0};
    char tok[NETRC_MAX_TOKEN + 1];
    mw_netrc_entry cur, dflt;
    int have_dflt = 0, found = 0, r = 0;
    int in_entry = 0, cur_match = 0, cur_is_default = 0;
    memset(out, 0, sizeof *out);
    memset(&cur, 0, sizeof cur);
    memset(&dflt, 0, sizeof dflt);

/* Closes the entry being read: a machine match wins at once; the default is
 * kept for the end. */
#define CLOSE_ENTRY()                                                                              \
    do {                                                                                           \
        if (in_entry && (!login || !strcmp(cur.login, login))) {                                   \
            if (cur_is_default && !have_dflt) {                                                    \
                dflt = cur;                                                                        \
                dflt.is_default = 1;                                                               \
                have_dflt = 1;                                                                     \
            } else if (cur_match) {                                                                \
                *out = cur;                                                                        \
                found = 1;                                                                         \
            }                                                                                      \
        }                                                                                          \
        wipe(&cur, sizeof cur);                                                                    \
        in_entry = cur_match = cur_is_default = 0;                                                 \
    } while (0)

    while (!found && (r = next_token(&lx, tok)) > 0) {
        if (!strcmp(tok, "machine")) {
            CLOSE_ENTRY();
            if (found) break;
            if ((r = next_token(&lx, tok)) <= 0) goto syntax;
            in_entry = 1;
            cur_match = strcasecmp(tok, host) == 0;
        } else if (!strcmp(tok, "default")) {
            CLOSE_ENTRY();
            if (found) break;
            in_entry = 1;
            cur_is_default = 1;
        } else if (!strcmp(tok, "login") || !strcmp(tok, "password") || !strcmp(tok, "passwd") ||
                   !strcmp(tok, "account")) {
            char *dst = tok[0] == 'l' ? cur.login : tok[0] == 'a' ? cur.account : cur.password;
            if ((r = next_token(&lx, tok)) <= 0) goto syntax;
            if (!in_entry) continue; /* a field outside any entry: ignored, as ftp(1) */
            memcpy(dst, tok, strlen(tok) + 1);
        } else if (!strcmp(tok, "macdef")) {
            CLOSE_ENTRY();
            if (found) break;
            if ((r = next_token(&lx, tok)) <= 0) goto syntax;
            skip_macdef(&lx);
        } else {
            wipe(tok, sizeof tok);
            mwi_err_set(err, MW_EFORMAT, "netrc: unknown keyword");
            goto fail;
        }
    }
    if (r < 0 && !found) goto syntax;
    if (!found) CLOSE_ENTRY();
    if (!found && have_dflt) {
        *out = dflt;
        found = 1;
    }
    wipe(&cur, sizeof cur);
    wipe(&dflt, sizeof dflt);
    wipe(tok, sizeof tok);
    return found;
#undef CLOSE_ENTRY
syntax:
    mwi_err_set(err, MW_EFORMAT,
                "netrc: syntax error (missing value, unterminated quote or a "
                "token over 255 octets)");
fail:
    wipe(&cur, sizeof cur);
    wipe(&dflt, sizeof dflt);
    wipe(tok, sizeof tok);
    return MW_EFORMAT;
}

int mw_netrc_lookup(mw_netrc_entry *out, const char *path, const char *host, const char *login,
                    mw_error *err)
{
    if (!out || !path || !host)
        return mwi_err_set(err, MW_EINVAL, "netrc: path and host are required");
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return mwi_err_set(err, MW_EIO, "netrc: cannot open %s: %s", path, MW_ERRNO_TEXT(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return mwi_err_set(err, MW_EIO, "netrc: cannot stat %s: %s", path, MW_ERRNO_TEXT(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return mwi_err_set(err, MW_EPOLICY, "netrc: %s is not a regular file", path);
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        close(fd);
        return mwi_err_set(err, MW_EPOLICY,
                           "netrc: %s is accessible by group or others (mode %03o); "
                           "refusing to use it (chmod 600 it)",
                           path, (unsigned)(st.st_mode & 0777));
    }
    if (st.st_size > NETRC_MAX_FILE) {
        close(fd);
        return mwi_err_set(err, MW_EFORMAT, "netrc: %s is over 1 MiB", path);
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *text = malloc(cap);
    if (!text) {
        close(fd);
        return mwi_err_set(err, MW_ENOMEM, "netrc: out of memory");
    }
    for (;;) {
        if (len == cap) /* the file grew while we read it: keep what fits */
            break;
        ssize_t n = read(fd, text + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            wipe(text, len);
            free(text);
            close(fd);
            return mwi_err_set(err, MW_EIO, "netrc: cannot read %s: %s", path, MW_ERRNO_TEXT(e));
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    int r = mwi_netrc_parse(out, text, len, host, login, err);
    wipe(text, len);
    free(text);
    return r;
}

int mw_netrc_default_path(char *buf, size_t size)
{
    const char *home = getenv("HOME");
    if (!home || !*home) return MW_EINVAL;
    size_t hl = strlen(home);
    if (hl + sizeof "/.netrc" > size) return MW_ETOOBIG;
    memcpy(buf, home, hl);
    memcpy(buf + hl, "/.netrc", sizeof "/.netrc");
    return 0;
}

const char *mw_mailhost(void)
{
    const char *h = getenv("MAILHOST");
    return h && *h ? h : NULL;
}
