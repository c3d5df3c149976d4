/* The queue's envelope files (env/ID): their text, parsed and written,
 * and an entry loaded from disk or saved over env/ID (tmp/, fsync, rename,
 * fsync of env/), as src/queue/queue.c describes. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mailwire/queue.h"

#include "queue/queue_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void rcpt_free(mw_queue_rcpt *r)
{
    free(r->address);
    free(r->text);
}

void mwi_queue_entry_clear(mw_queue_entry *e)
{
    free(e->sender);
    free(e->account);
    free(e->dsn_notify);
    free(e->dsn_ret);
    free(e->dsn_envid);
    for (size_t i = 0; i < e->nrcpt; i++)
        rcpt_free(&e->rcpt[i]);
    free(e->rcpt);
    memset(e, 0, sizeof *e);
}

void mw_queue_entries_free(mw_queue_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++)
        mwi_queue_entry_clear(&e[i]);
    free(e);
}

/* A reply text made safe for one line of the envelope file. */
char *mwi_queue_one_line(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > Q_MAX_TEXT) n = Q_MAX_TEXT;
    char *o = malloc(n + 1);
    if (!o) return NULL;
    for (size_t i = 0; i < n; i++)
        o[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7F) ? ' ' : s[i];
    o[n] = '\0';
    return o;
}

static int put(FILE *f, const char *k, const char *v)
{
    return v ? fprintf(f, "%s %s\n", k, v) < 0 : 0;
}

/* Serialises e into a malloc'd buffer. */
char *mwi_queue_env_text(const mw_queue_entry *e, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    int bad = fprintf(f, "mailwire-queue 1\ncreated %lld\nnext %lld\nattempts %u\nbody %d\n",
                      (long long)e->created, (long long)e->next_attempt, e->attempts, e->body) < 0;
    bad |= fprintf(f, "sender %s\n", e->sender ? e->sender : "") < 0;
    if (e->raw) bad |= fprintf(f, "raw 1\n") < 0;
    bad |= put(f, "account", e->account) | put(f, "notify", e->dsn_notify) |
           put(f, "ret", e->dsn_ret) | put(f, "envid", e->dsn_envid);
    for (size_t i = 0; i < e->nrcpt && !bad; i++) {
        const mw_queue_rcpt *r = &e->rcpt[i];
        bad |=
            fprintf(f, "rcpt %c %d %s %s\t%s\n", "PSF"[r->state], r -> code,
                    r -> enhanced[0] ? r -> enhanced : "-", r->address, r->text ? r->text : "") < 0;
    }
    bad |= fclose(f) != 0;
    if (bad) {
        free(buf);
        return NULL;
    }
    return buf;
}

static char *dup_or_fail(const char *s, int *bad)
{
    char *d = strdup(s);
    if (!d) *bad = 1;
    return d;
}

/* Parses an envelope file's text; 0 or -1 (malformed or out of memory). */
static int env_parse(mw_queue_entry *e, char *t)
{
    int bad = 0, magic = 0;
    size_t cap = 0;
    for (char *save = NULL, *l = strtok_r(t, "\n", &save); l && !bad;
         l = strtok_r(NULL, "\n", &save)) {
        char *v = strchr(l, ' ');
        if (!v) {
            bad = 1;
            break;
        }
        *v++ = '\0';
        if (!strcmp(l, "mailwire-queue")) {
            magic = !strcmp(v, "1");
        } else if (!strcmp(l, "created")) {
            e->created = (time_t)strtoll(v, NULL, 10);
        } else if (!strcmp(l, "next")) {
            e->next_attempt = (time_t)strtoll(v, NULL, 10);
        } else if (!strcmp(l, "attempts")) {
            e->attempts = (unsigned)strtoul(v, NULL, 10);
        } else if (!strcmp(l, "raw")) {
            e->raw = !strcmp(v, "1");
        } else if (!strcmp(l, "body")) {
            e->body = (int)strtol(v, NULL, 10);
        } else if (!strcmp(l, "sender")) {
            free(e->sender);
            e->sender = dup_or_fail(v, &bad);
        } else if (!strcmp(l, "account")) {
            free(e->account);
            e->account = dup_or_fail(v, &bad);
        } else if (!strcmp(l, "notify")) {
            free(e->dsn_notify);
            e->dsn_notify = dup_or_fail(v, &bad);
        } else if (!strcmp(l, "ret")) {
            free(e->dsn_ret);
            e->dsn_ret = dup_or_fail(v, &bad);
        } else if (!strcmp(l, "envid")) {
            free(e->dsn_envid);
            e->dsn_envid = dup_or_fail(v, &bad);
        } else if (!strcmp(l, "rcpt")) {
            /* rcpt STATE CODE ENH ADDRESS\tTEXT */
            char st = v[0];
            const char *sp = strchr("PSF", st);
            char *code = v[0] && v[1] == ' ' ? v + 2 : NULL;
            char *enh = code ? strchr(code, ' ') : NULL;
            char *addr = enh ? strchr(enh + 1, ' ') : NULL;
            char *tab = addr ? strchr(addr + 1, '\t') : NULL;
            if (!sp || !st || !tab || e->nrcpt >= Q_MAX_RCPT) {
                bad = 1;
                break;
            }
            *enh++ = '\0';
            *addr++ = '\0';
            *tab++ = '\0';
            if (e->nrcpt == cap) {
                size_t nc = cap ? cap * 2 : 8;
                mw_queue_rcpt *nr = realloc(e->rcpt, nc * sizeof *nr);
                if (!nr) {
                    bad = 1;
                    break;
                }
                e->rcpt = nr;
                cap = nc;
            }
            mw_queue_rcpt *r = &e->rcpt[e->nrcpt];
            memset(r, 0, sizeof *r);
            r->state = (int)(sp - "PSF");
            r->code = (int)strtol(code, NULL, 10);
            if (strcmp(enh, "-")) snprintf(r->enhanced, sizeof r->enhanced, "%s", enh);
            r->address = strdup(addr);
            r->text = strdup(tab);
            e->nrcpt++;
            if (!r->address || !r->text) bad = 1;
        }
        /* unknown keys: from a later version; ignored */
    }
    if (!magic || !e->sender || e->nrcpt == 0) bad = 1;
    return bad ? -1 : 0;
}

int mwi_queue_env_parse(mw_queue_entry *e, const char *text, size_t len)
{
    memset(e, 0, sizeof *e);
    char *t = malloc(len + 1);
    if (!t) return -1;
    memcpy(t, text, len);
    t[len] = '\0';
    int rc = env_parse(e, t);
    free(t);
    if (rc) mwi_queue_entry_clear(e);
    return rc;
}

static int read_small(const char *path, char **out, size_t max)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < 0 || (uint64_t)st.st_size > max) {
        close(fd);
        return EFBIG;
    }
    char *b = malloc((size_t)st.st_size + 1);
    if (!b) {
        close(fd);
        return ENOMEM;
    }
    size_t n = 0;
    while (n < (size_t)st.st_size) {
        ssize_t r = read(fd, b + n, (size_t)st.st_size - n);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    *out = b;
    return 0;
}

int mwi_queue_load_entry(const mw_queue *q, const char *id, mw_queue_entry *e)
{
    char p[Q_PATH], *t = NULL;
    memset(e, 0, sizeof *e);
    if (mwi_queue_path(q, p, "env", id) || read_small(p, &t, Q_MAX_ENV)) return -1;
    snprintf(e->id, sizeof e->id, "%s", id);
    int rc = env_parse(e, t);
    free(t);
    struct stat st;
    if (rc == 0 && mwi_queue_path(q, p, "msg", id) == 0 && stat(p, &st) == 0)
        e->size = (uint64_t)st.st_size;
    else if (rc == 0)
        rc = -1; /* no message file: not a usable entry */
    if (rc) mwi_queue_entry_clear(e);
    return rc;
}

/* Writes e to tmp/, fsync, renames it over env/ID, fsyncs env/. */
int mwi_queue_save_entry(const mw_queue *q, const mw_queue_entry *e, mw_error *err)
{
    char tmp[Q_PATH], dst[Q_PATH], name[MW_QUEUE_ID_MAX + 8];
    size_t len = 0;
    snprintf(name, sizeof name, "%s.env", e->id);
    if (mwi_queue_path(q, tmp, "tmp", name) || mwi_queue_path(q, dst, "env", e->id))
        return mwi_err_set(err, MW_EINVAL, "queue: path too long");
    char *text = mwi_queue_env_text(e, &len);
    if (!text) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e2 = fd < 0 ? errno : mwi_queue_write_all(fd, text, len);
    free(text);
    const char *what = "write";
    if (!e2 && fsync(fd) != 0) {
        e2 = errno;
        what = "fsync";
    }
    if (fd >= 0 && close(fd) != 0 && !e2) e2 = errno;
    if (!e2 && rename(tmp, dst) != 0) {
        e2 = errno;
        what = "rename";
    }
    if (e2) {
        unlink(tmp);
        return mwi_queue_sys_err(err, what, dst, e2);
    }
    char d[Q_PATH];
    mwi_queue_path(q, d, "env", NULL);
    if ((e2 = mwi_queue_fsync_dir(d)) != 0) return mwi_queue_sys_err(err, "fsync", d, e2);
    return 0;
}
