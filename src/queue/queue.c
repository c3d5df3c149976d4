/* The durable outgoing queue (include/mailwire/queue.h).
 *
 * Durability follows the fetch path's store (src/store/store.c): a file is
 * written in tmp/, fsync'd, renamed into place, and the directory fsync'd
 * before the step counts.  Enqueue writes msg/ID first and env/ID last:
 * env/ID is the commit point.  A run records each transaction's outcome
 * by replacing env/ID the same way before it goes on, and removes env/ID
 * (then msg/ID) only when no recipient is left pending. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mailwire/queue.h"

#include "queue/queue_int.h"
#include "util/err.h"
#include "util/random.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define Q_MAX_ENV      (4u * 1024 * 1024) /* an envelope file (10,000 recipients fit) */
#define Q_MAX_RCPT     10000
#define Q_MAX_TEXT     400  /* a reply text kept per recipient */
#define Q_ORPHAN_AGE_S 3600 /* tmp/ and msg/ files without env/ older than this go */
#define Q_PATH         4096

struct mw_queue {
    char dir[Q_PATH];
    long lifetime_s, backoff_min_s, backoff_max_s;
};

static int sys_err(mw_error *err, const char *what, const char *path, int e)
{
    char b[128];
    return mwi_err_set(err, MW_EIO, "queue: cannot %s %s: %s", what, path,
                       mwi_errno_text(e, b, sizeof b));
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int sub(const mw_queue *q, char *out, const char *a, const char *b)
{
    /* Put together by hand: DIR/A[/B], refused when over Q_PATH. */
    size_t ld = strlen(q->dir), la = strlen(a), lb = b ? strlen(b) : 0;
    if (ld + 1 + la + (b ? 1 + lb : 0) >= Q_PATH) return -1;
    char *o = out;
    memcpy(o, q->dir, ld);
    o += ld;
    *o++ = '/';
    memcpy(o, a, la);
    o += la;
    if (b) {
        *o++ = '/';
        memcpy(o, b, lb);
        o += lb;
    }
    *o = '\0';
    return 0;
}

/* An ID: fixed-width hex time (so names sort by age), then pid and random
 * (MW_EIO when the kernel has no random bytes: no weaker fallback). */
static int new_id(char id[MW_QUEUE_ID_MAX], mw_error *err)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint32_t r = 0;
    if (mwi_random_bytes(&r, sizeof r, err)) return MW_EIO;
    snprintf(id, MW_QUEUE_ID_MAX, "%010llX%05lX.%lX.%08" PRIX32, (unsigned long long)tv.tv_sec,
             (unsigned long)tv.tv_usec, (unsigned long)getpid(), r);
    return 0;
}

static int valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= MW_QUEUE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F') || id[i] == '.'))
            return 0;
    return id[0] != '.';
}

static int clean_value(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
    return 1;
}

int mw_queue_open(mw_queue **out, const mw_queue_opts *o, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_queue_open: no out");
    *out = NULL;
    if (!o || !o->dir || !*o->dir) return mwi_err_set(err, MW_EINVAL, "queue: no directory given");
    mw_queue *q = calloc(1, sizeof *q);
    if (!q) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (strlen(o->dir) >= Q_PATH - 64) {
        free(q);
        return mwi_err_set(err, MW_EINVAL, "queue: directory name too long");
    }
    snprintf(q->dir, sizeof q->dir, "%s", o->dir);
    q->lifetime_s = o->lifetime_s > 0 ? o->lifetime_s : 5L * 24 * 3600;
    q->backoff_min_s = o->backoff_min_s > 0 ? o->backoff_min_s : 60;
    q->backoff_max_s = o->backoff_max_s > 0 ? o->backoff_max_s : 3600;
    if (q->backoff_max_s < q->backoff_min_s) q->backoff_max_s = q->backoff_min_s;
    const char *subs[] = {NULL, "tmp", "msg", "env"};
    char p[Q_PATH];
    for (size_t i = 0; i < 4; i++) {
        if (subs[i])
            sub(q, p, subs[i], NULL);
        else
            snprintf(p, sizeof p, "%s", q->dir);
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            free(q);
            return sys_err(err, "create", p, e);
        }
    }
    *out = q;
    return 0;
}

void mw_queue_close(mw_queue *q)
{
    free(q);
}

/* ---- envelope files ---- */

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
static char *one_line(const char *s)
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

static int load_entry(const mw_queue *q, const char *id, mw_queue_entry *e)
{
    char p[Q_PATH], *t = NULL;
    memset(e, 0, sizeof *e);
    if (sub(q, p, "env", id) || read_small(p, &t, Q_MAX_ENV)) return -1;
    snprintf(e->id, sizeof e->id, "%s", id);
    int rc = env_parse(e, t);
    free(t);
    struct stat st;
    if (rc == 0 && sub(q, p, "msg", id) == 0 && stat(p, &st) == 0)
        e->size = (uint64_t)st.st_size;
    else if (rc == 0)
        rc = -1; /* no message file: not a usable entry */
    if (rc) mwi_queue_entry_clear(e);
    return rc;
}

/* Writes e to tmp/, fsync, renames it over env/ID, fsyncs env/. */
static int save_entry(const mw_queue *q, const mw_queue_entry *e, mw_error *err)
{
    char tmp[Q_PATH], dst[Q_PATH], name[MW_QUEUE_ID_MAX + 8];
    size_t len = 0;
    snprintf(name, sizeof name, "%s.env", e->id);
    if (sub(q, tmp, "tmp", name) || sub(q, dst, "env", e->id))
        return mwi_err_set(err, MW_EINVAL, "queue: path too long");
    char *text = mwi_queue_env_text(e, &len);
    if (!text) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e2 = fd < 0 ? errno : write_all(fd, text, len);
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
        return sys_err(err, what, dst, e2);
    }
    char d[Q_PATH];
    sub(q, d, "env", NULL);
    if ((e2 = fsync_dir(d)) != 0) return sys_err(err, "fsync", d, e2);
    return 0;
}

/* ---- enqueue ---- */

static int check_env(const mw_queue_env *env, mw_error *err)
{
    if (env->version < 1 || env->version > MW_QUEUE_ENV_VERSION)
        return mwi_err_set(err, MW_EINVAL, "queue: mw_queue_env version %u unknown", env->version);
    if (!env->sender || !clean_value(env->sender) || strchr(env->sender, '\t'))
        return mwi_err_set(err, MW_EINVAL, "queue: bad sender address");
    if (env->nrecipients == 0 || env->nrecipients > Q_MAX_RCPT)
        return mwi_err_set(err, MW_EINVAL, "queue: %s recipients",
                           env->nrecipients ? "too many" : "no");
    for (size_t i = 0; i < env->nrecipients; i++)
        if (!env->recipients[i] || !env->recipients[i][0] || !clean_value(env->recipients[i]) ||
            strchr(env->recipients[i], ' ') || strchr(env->recipients[i], '\t'))
            return mwi_err_set(err, MW_EINVAL, "queue: bad recipient address %zu", i + 1);
    if (!clean_value(env->account) || !clean_value(env->dsn_notify) || !clean_value(env->dsn_ret) ||
        !clean_value(env->dsn_envid))
        return mwi_err_set(err, MW_EINVAL, "queue: control character in an envelope option");
    return 0;
}

/* A new entry pointing at env's strings (only rcpt[] and the recipients'
 * texts are its own: entry_shallow_free). */
static int entry_from_env(mw_queue_entry *e, const mw_queue_env *env, mw_error *err)
{
    memset(e, 0, sizeof *e);
    if (new_id(e->id, err)) return MW_EIO;
    e->created = e->next_attempt = time(NULL);
    e->body = env->body;
    e->raw = env->raw != 0;
    e->sender = (char *)env->sender;
    e->account = (char *)env->account;
    e->dsn_notify = (char *)env->dsn_notify;
    e->dsn_ret = (char *)env->dsn_ret;
    e->dsn_envid = (char *)env->dsn_envid;
    e->nrcpt = env->nrecipients;
    e->rcpt = calloc(e->nrcpt, sizeof *e->rcpt);
    if (!e->rcpt) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    for (size_t i = 0; i < e->nrcpt; i++)
        e->rcpt[i].address = (char *)env->recipients[i];
    return 0;
}

static void entry_shallow_free(mw_queue_entry *e)
{
    for (size_t i = 0; e->rcpt && i < e->nrcpt; i++)
        free(e->rcpt[i].text);
    free(e->rcpt);
    e->rcpt = NULL;
}

static void tmp_names(const mw_queue *q, const char *id, char *tmsg, char *tenv)
{
    char name[MW_QUEUE_ID_MAX + 8];
    snprintf(name, sizeof name, "%s.msg", id);
    sub(q, tmsg, "tmp", name);
    snprintf(name, sizeof name, "%s.env", id);
    sub(q, tenv, "tmp", name);
}

/* The message from `read` into tmp/ID.msg (fsync'd when `sync`); on
 * failure nothing is left.  Returns 0 with *fd_out open for reading. */
static int spool(const mw_queue *q, const char *id, mw_smtp_read_fn read, void *ud, int sync,
                 int *fd_out, mw_error *err)
{
    char tmsg[Q_PATH], tenv[Q_PATH];
    tmp_names(q, id, tmsg, tenv);
    int rc = 0;
    char *buf = malloc(65536);
    int fd = buf ? open(tmsg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    if (!buf) {
        rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
        goto fail;
    }
    if (fd < 0) {
        rc = sys_err(err, "create", tmsg, errno);
        goto fail;
    }
    for (;;) {
        long n = read(buf, 65536, ud);
        if (n < 0) {
            rc = mwi_err_set(err, (int)n, "queue: reading the message failed");
            goto fail;
        }
        if (n == 0) break;
        int e2 = write_all(fd, buf, (size_t)n);
        if (e2) {
            rc = sys_err(err, "write", tmsg, e2);
            goto fail;
        }
    }
    if (sync && fsync(fd) != 0) {
        rc = sys_err(err, "fsync", tmsg, errno);
        goto fail;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        rc = sys_err(err, "seek", tmsg, errno);
        goto fail;
    }
    free(buf);
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmsg);
    free(buf);
    return rc;
}

/* Moves a spooled message into the queue: (fsync of the message unless
 * done,) the envelope written beside it in tmp/ and fsync'd, the message
 * renamed into msg/, msg/ fsync'd, the envelope renamed into env/ (the
 * commit), env/ fsync'd.  On failure nothing of it is left. */
static int commit(const mw_queue *q, const mw_queue_entry *e, int msgfd, int msg_synced,
                  mw_error *err)
{
    char tmsg[Q_PATH], tenv[Q_PATH], dmsg[Q_PATH], denv[Q_PATH], d[Q_PATH];
    tmp_names(q, e->id, tmsg, tenv);
    sub(q, dmsg, "msg", e->id);
    sub(q, denv, "env", e->id);
    int rc = 0, moved = 0, e2;
    if (!msg_synced && fsync(msgfd) != 0) {
        rc = sys_err(err, "fsync", tmsg, errno);
        goto fail;
    }
    {
        size_t len = 0;
        char *text = mwi_queue_env_text(e, &len);
        if (!text) {
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
            goto fail;
        }
        int efd = open(tenv, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        e2 = efd < 0 ? errno : write_all(efd, text, len);
        free(text);
        if (!e2 && fsync(efd) != 0) e2 = errno;
        if (efd >= 0 && close(efd) != 0 && !e2) e2 = errno;
        if (e2) {
            rc = sys_err(err, "write", tenv, e2);
            goto fail;
        }
    }
    if (rename(tmsg, dmsg) != 0) {
        rc = sys_err(err, "rename", dmsg, errno);
        goto fail;
    }
    moved = 1;
    sub(q, d, "msg", NULL);
    if ((e2 = fsync_dir(d)) != 0) {
        rc = sys_err(err, "fsync", d, e2);
        goto fail;
    }
    if (rename(tenv, denv) != 0) {
        rc = sys_err(err, "rename", denv, errno);
        goto fail;
    }
    sub(q, d, "env", NULL);
    if ((e2 = fsync_dir(d)) != 0) {
        /* In place but perhaps not on disk: take it back out. */
        unlink(denv);
        rc = sys_err(err, "fsync", d, e2);
        goto fail;
    }
    return 0;
fail:
    unlink(tmsg);
    unlink(tenv);
    if (moved) unlink(dmsg);
    return rc;
}

int mw_queue_add(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                 char id[MW_QUEUE_ID_MAX], mw_error *err)
{
    if (!q || !env || !read || !id)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_add: bad arguments");
    id[0] = '\0';
    int rc = check_env(env, err);
    if (rc) return rc;
    mw_queue_entry e;
    if ((rc = entry_from_env(&e, env, err)) != 0) return rc;
    int fd = -1;
    rc = spool(q, e.id, read, ud, 1, &fd, err);
    if (!rc) rc = commit(q, &e, fd, 1, err);
    if (fd >= 0) close(fd);
    if (!rc) snprintf(id, MW_QUEUE_ID_MAX, "%s", e.id);
    entry_shallow_free(&e);
    return rc;
}

/* ---- listing ---- */

static int cmp_entry(const void *a, const void *b)
{
    const mw_queue_entry *x = a, *y = b;
    if (x->created != y->created) return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

int mw_queue_list(mw_queue *q, mw_queue_entry **out, size_t *n, mw_error *err)
{
    if (!q || !out || !n) return mwi_err_set(err, MW_EINVAL, "mw_queue_list: bad arguments");
    *out = NULL;
    *n = 0;
    char d[Q_PATH];
    sub(q, d, "env", NULL);
    DIR *dir = opendir(d);
    if (!dir) return sys_err(err, "open", d, errno);
    mw_queue_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(dir)) != NULL) {
        if (!valid_id(de->d_name)) continue;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            mw_queue_entry *nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
                break;
            }
            v = nv;
            cap = nc;
        }
        if (load_entry(q, de->d_name, &v[cnt]) == 0) cnt++;
    }
    closedir(dir);
    if (rc) {
        mw_queue_entries_free(v, cnt);
        return rc;
    }
    if (cnt > 1) qsort(v, cnt, sizeof *v, cmp_entry);
    *out = v;
    *n = cnt;
    return 0;
}

/* ---- lock, drop ---- */

static int take_lock(const mw_queue *q, int wait, int *fd_out, mw_error *err)
{
    char p[Q_PATH];
    sub(q, p, "lock", NULL);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return sys_err(err, "open", p, errno);
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return mwi_err_set(err, MW_ESTATE, "queue %s: another run holds its lock", q->dir);
        return sys_err(err, "lock", p, e);
    }
    *fd_out = fd;
    return 0;
}

/* Removes an entry: env/ID first (it leaves the queue), then msg/ID. */
static int remove_entry(const mw_queue *q, const char *id, mw_error *err)
{
    char p[Q_PATH], d[Q_PATH];
    sub(q, p, "env", id);
    if (unlink(p) != 0)
        return errno == ENOENT ? mwi_err_set(err, MW_EINVAL, "queue: no entry %s", id)
                               : sys_err(err, "remove", p, errno);
    sub(q, d, "env", NULL);
    int e = fsync_dir(d);
    if (e) return sys_err(err, "fsync", d, e);
    sub(q, p, "msg", id);
    unlink(p); /* a leftover would only be an orphan, cleaned by a run */
    return 0;
}

int mw_queue_drop(mw_queue *q, const char *id, mw_error *err)
{
    if (!q || !id || !valid_id(id))
        return mwi_err_set(err, MW_EINVAL, "queue: bad ID '%s'", id ? id : "");
    int lk = -1;
    int rc = take_lock(q, 0, &lk, err);
    if (rc) return rc;
    rc = remove_entry(q, id, err);
    close(lk);
    return rc;
}

/* tmp/ files, and msg/ files without an envelope, older than an hour: what
 * an enqueue killed half-way left (a live enqueue is never that old). */
static void clean_orphans(const mw_queue *q)
{
    const char *dirs[] = {"tmp", "msg"};
    time_t now = time(NULL);
    for (size_t k = 0; k < 2; k++) {
        char d[Q_PATH], p[Q_PATH], ep[Q_PATH];
        sub(q, d, dirs[k], NULL);
        DIR *dir = opendir(d);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.') continue;
            struct stat st;
            if (sub(q, p, dirs[k], de->d_name) || stat(p, &st) != 0) continue;
            if (now - st.st_mtime < Q_ORPHAN_AGE_S) continue;
            if (k == 1 && (sub(q, ep, "env", de->d_name) || access(ep, F_OK) == 0)) continue;
            unlink(p);
        }
        closedir(dir);
    }
}

/* ---- run ---- */

static long backoff(const mw_queue *q, unsigned attempts)
{
    long b = q->backoff_min_s;
    for (unsigned i = 1; i < attempts && b < q->backoff_max_s; i++)
        b *= 2;
    return b < q->backoff_max_s ? b : q->backoff_max_s;
}

static void set_rcpt(mw_queue_rcpt *r, int state, int code, const char *enh, const char *text)
{
    r->state = state;
    r->code = code;
    snprintf(r->enhanced, sizeof r->enhanced, "%s", enh ? enh : "");
    char *t = one_line(text);
    if (t) {
        free(r->text);
        r->text = t;
    }
}

static int same_key(const mw_queue_entry *a, const char *acct, const char *sender)
{
    const char *x = a->account ? a->account : "";
    return !strcmp(x, acct ? acct : "") && !strcmp(a->sender, sender ? sender : "");
}

/* The outcome of one transaction, onto the entry's pending recipients. */
static void apply_result(mw_queue_entry *e, const size_t *idx, size_t npend, int rc,
                         const mw_smtp_result *r, const mw_error *err)
{
    for (size_t k = 0; k < npend; k++) {
        mw_queue_rcpt *q = &e->rcpt[idx[k]];
        const mw_smtp_rcpt *p = NULL;
        if (r)
            for (size_t j = 0; j < r->nrcpt && !p; j++)
                if (!strcmp(r->rcpt[j].address, q->address)) p = &r->rcpt[j];
        if (p && p->code && !p->accepted) {
            set_rcpt(q, p->permanent ? MW_QUEUE_FAILED : MW_QUEUE_PENDING, p->code, p->enhanced,
                     p->text);
        } else if (p && p->accepted && r->sent) {
            set_rcpt(q, MW_QUEUE_SENT, r->final_code, "", r->final_text);
        } else if (r && r->final_code >= 400) {
            /* MAIL or the data refused: for every recipient of the transaction. */
            set_rcpt(q, r->final_code >= 500 ? MW_QUEUE_FAILED : MW_QUEUE_PENDING, r->final_code,
                     err ? err->enhanced : "",
                     r->final_text ? r->final_text
                     : err         ? err->message
                                   : "");
        } else if (rc == MW_EFORMAT || rc == MW_EINVAL || rc == MW_ETOOBIG ||
                   rc == MW_EUNSUPPORTED) {
            /* The message itself cannot go: no later attempt would differ. */
            set_rcpt(q, MW_QUEUE_FAILED, 554, rc == MW_ETOOBIG ? "5.3.4" : "5.6.0",
                     err ? err->message : mw_strerror(rc));
        } else {
            set_rcpt(q, MW_QUEUE_PENDING, err ? err->reply_code : 0, err ? err->enhanced : "",
                     err && err->message[0] ? err->message : mw_strerror(rc));
        }
    }
}

/* One attempt at e's pending recipients over *s with the message on fd
 * (or, when trc is set, the failure to get that far: terr), recorded in
 * e's recipients, attempts and next attempt.  A session left unusable is
 * freed (*s = NULL).  Returns how many recipients are still pending. */
static size_t attempt(const mw_queue *q, mw_queue_entry *e, mw_smtp **s, int fd, int trc,
                      mw_error *terr, int maxtime_ms)
{
    size_t npend = 0;
    size_t *idx = calloc(e->nrcpt, sizeof *idx);
    const char **rl = calloc(e->nrcpt, sizeof *rl);
    mw_smtp_result *r = NULL;
    if (!idx || !rl) {
        trc = mwi_err_set(terr, MW_ENOMEM, "out of memory");
        for (size_t k = 0; k < e->nrcpt; k++)
            npend += e->rcpt[k].state == MW_QUEUE_PENDING;
        goto out;
    }
    for (size_t k = 0; k < e->nrcpt; k++)
        if (e->rcpt[k].state == MW_QUEUE_PENDING) {
            rl[npend] = e->rcpt[k].address;
            idx[npend++] = k;
        }
    if (*s && !trc && fd >= 0) {
        mw_smtp_msg m = MW_SMTP_MSG_INIT;
        m.fd = fd;
        m.originator = e->sender;
        m.recipients = rl;
        m.nrecipients = npend;
        /* The queued message already holds what sendmail mode adds
         * (cli/cmd_send.c); Bcc goes. */
        m.rewrite_headers = e->raw ? 0 : MW_SMTP_REWRITE_SENDMAIL;
        m.atleastone = 1;
        m.body = e->body;
        m.dsn_notify = e->dsn_notify;
        m.dsn_ret = e->dsn_ret;
        m.dsn_envid = e->dsn_envid;
        mw_smtp_set_maxtime(*s, maxtime_ms);
        trc = mw_smtp_send(*s, &m, &r);
        if (trc) *terr = *mw_smtp_error(*s);
        if (!mw_smtp_alive(*s)) {
            mw_smtp_free(*s);
            *s = NULL;
        }
    }
    apply_result(e, idx, npend, trc, r, terr);
    npend = 0;
    for (size_t k = 0; k < e->nrcpt; k++)
        npend += e->rcpt[k].state == MW_QUEUE_PENDING;
out:
    e->attempts++;
    e->next_attempt = time(NULL) + backoff(q, e->attempts);
    mw_smtp_result_free(r);
    free(rl);
    free(idx);
    return npend;
}

int mw_queue_run(mw_queue *q, const mw_queue_run_opts *ro, mw_queue_stats *stats, mw_error *err)
{
    mw_queue_stats st0;
    if (!stats) stats = &st0;
    memset(stats, 0, sizeof *stats);
    if (!q || !ro || !ro->connect)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_run: bad arguments");
    if (ro->only && !valid_id(ro->only))
        return mwi_err_set(err, MW_EINVAL, "queue: bad ID '%s'", ro->only);
    int lk = -1;
    int rc = take_lock(q, ro->wait_lock, &lk, err);
    if (rc) return rc;
    clean_orphans(q);
    mw_queue_entry *v = NULL;
    size_t n = 0;
    if ((rc = mw_queue_list(q, &v, &n, err)) != 0) {
        close(lk);
        return rc;
    }
    mw_smtp *s = NULL;
    const char *s_acct = NULL, *s_sender = NULL;
    /* A connection that failed is not tried again for the same key in this
     * run: the entries behind it are deferred with the same error. */
    int conn_failed = 0, conn_rc = 0;
    mw_error conn_err;
    mw_error_clear(&conn_err);
    size_t *idx = NULL;
    time_t now = time(NULL);
    for (size_t i = 0; i < n && !rc; i++) {
        mw_queue_entry *e = &v[i];
        if (ro->only && strcmp(ro->only, e->id)) continue;
        if (!ro->only && !ro->flush && e->next_attempt > now) continue;
        stats->tried++;
        free(idx);
        idx = calloc(e->nrcpt, sizeof *idx);
        if (!idx) {
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
            break;
        }
        size_t npend = 0;
        for (size_t k = 0; k < e->nrcpt; k++)
            if (e->rcpt[k].state == MW_QUEUE_PENDING) idx[npend++] = k;
        int trc = 0;
        mw_error terr;
        mw_error_clear(&terr);
        if (npend > 0 && now - e->created >= q->lifetime_s) {
            /* Given up: what is still pending fails, with its last reason. */
            for (size_t k = 0; k < npend; k++) {
                mw_queue_rcpt *r = &e->rcpt[idx[k]];
                char why[Q_MAX_TEXT + 80];
                snprintf(why, sizeof why, "gave up after %u attempts; last: %s", e->attempts,
                         r->text && r->text[0] ? r->text : "no reply");
                set_rcpt(r, MW_QUEUE_FAILED, r->code ? r->code : 0, "4.4.7", why);
            }
            npend = 0;
        }
        if (npend > 0) {
            if (s && !same_key(e, s_acct, s_sender)) {
                mw_smtp_quit(s);
                mw_smtp_free(s);
                s = NULL;
                conn_failed = 0;
            }
            if (conn_failed && same_key(e, s_acct, s_sender)) {
                trc = conn_rc;
                terr = conn_err;
            } else if (!s) {
                s_acct = e->account;
                s_sender = e->sender;
                mw_error_clear(&conn_err);
                conn_rc = ro->connect(e, &s, &conn_err, ro->connect_userdata);
                if (conn_rc || !s) {
                    if (!conn_rc) conn_rc = MW_ENET;
                    s = NULL;
                    conn_failed = 1;
                    trc = conn_rc;
                    terr = conn_err;
                } else {
                    conn_failed = 0;
                }
            }
            int fd = -1;
            if (s && !trc) {
                char p[Q_PATH];
                sub(q, p, "msg", e->id);
                if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0)
                    trc = sys_err(&terr, "open", p, errno);
            }
            npend = attempt(q, e, &s, fd, trc, &terr, ro->maxtime_ms);
            if (fd >= 0) close(fd);
        }
        size_t nfail = 0;
        for (size_t k = 0; k < e->nrcpt; k++)
            nfail += e->rcpt[k].state == MW_QUEUE_FAILED;
        mw_queue_event ev = {0, e, terr.code, terr.code ? &terr : NULL};
        if (npend > 0) {
            /* Recorded before anything else happens. */
            if ((rc = save_entry(q, e, err)) != 0) break;
            stats->deferred++;
            ev.kind = MW_QUEUE_EV_DEFERRED;
            if (ro->event) ro->event(&ev, ro->event_userdata);
        } else {
            /* Done: the report first (a crash then repeats it, never loses
             * it), then the entry leaves the queue. */
            ev.kind = nfail ? MW_QUEUE_EV_FAILED : MW_QUEUE_EV_SENT;
            if (nfail) {
                if ((rc = save_entry(q, e, err)) != 0) break;
                stats->failed++;
            } else {
                stats->sent++;
            }
            if (ro->event) ro->event(&ev, ro->event_userdata);
            if ((rc = remove_entry(q, e->id, err)) != 0) break;
        }
    }
    free(idx);
    if (s) {
        mw_smtp_quit(s);
        mw_smtp_free(s);
    }
    mw_queue_entries_free(v, n);
    /* What is left, counted after the run. */
    mw_queue_entry *left = NULL;
    size_t nleft = 0;
    mw_error lerr;
    if (mw_queue_list(q, &left, &nleft, &lerr) == 0) stats->left = nleft;
    mw_queue_entries_free(left, nleft);
    close(lk);
    return rc;
}

/* ---- send now, queue what cannot go ---- */

int mw_queue_send(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                  const mw_queue_run_opts *ro, char id[MW_QUEUE_ID_MAX], int *queued, mw_error *err)
{
    if (!q || !env || !read || !id || !ro || !ro->connect || !queued)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_send: bad arguments");
    id[0] = '\0';
    *queued = 0;
    int rc = check_env(env, err);
    if (rc) return rc;
    mw_queue_entry e;
    if ((rc = entry_from_env(&e, env, err)) != 0) return rc;
    /* Not fsync'd yet: while the attempt runs the message is not in the
     * queue, and the caller has not been told it was taken. */
    int fd = -1;
    if ((rc = spool(q, e.id, read, ud, 0, &fd, err)) != 0) {
        entry_shallow_free(&e);
        return rc;
    }
    snprintf(id, MW_QUEUE_ID_MAX, "%s", e.id);
    mw_smtp *s = NULL;
    mw_error terr;
    mw_error_clear(&terr);
    int trc = ro->connect(&e, &s, &terr, ro->connect_userdata);
    if (trc || !s) {
        if (!trc) trc = mwi_err_set(&terr, MW_ENET, "no session");
        s = NULL;
    }
    size_t npend = attempt(q, &e, &s, fd, trc, &terr, ro->maxtime_ms);
    if (s) {
        mw_smtp_quit(s);
        mw_smtp_free(s);
    }
    size_t nfail = 0;
    for (size_t k = 0; k < e.nrcpt; k++)
        nfail += e.rcpt[k].state == MW_QUEUE_FAILED;
    mw_queue_event ev = {0, &e, terr.code, terr.code ? &terr : NULL};
    if (npend > 0) {
        /* Some recipients must wait: now the message enters the queue. */
        if ((rc = commit(q, &e, fd, 0, err)) == 0) {
            *queued = 1;
            ev.kind = MW_QUEUE_EV_DEFERRED;
            if (ro->event) ro->event(&ev, ro->event_userdata);
        }
    } else {
        char tmsg[Q_PATH], tenv[Q_PATH];
        tmp_names(q, e.id, tmsg, tenv);
        unlink(tmsg);
        ev.kind = nfail ? MW_QUEUE_EV_FAILED : MW_QUEUE_EV_SENT;
        if (ro->event) ro->event(&ev, ro->event_userdata);
    }
    close(fd);
    entry_shallow_free(&e);
    return rc;
}
