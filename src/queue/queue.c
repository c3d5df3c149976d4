/* The durable outgoing queue (include/mailwire/queue.h): the directory,
 * paths, listing, the runner's lock, drop and orphans.  Files:
 * envfile.c, enqueue.c, run.c (see queue_int.h).
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

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int mwi_queue_sys_err(mw_error *err, const char *what, const char *path, int e)
{
    char b[128];
    return mwi_err_set(err, MW_EIO, "queue: cannot %s %s: %s", what, path,
                       mwi_errno_text(e, b, sizeof b));
}

int mwi_queue_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

int mwi_queue_write_all(int fd, const char *p, size_t n)
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

int mwi_queue_path(const mw_queue *q, char *out, const char *a, const char *b)
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

int mwi_queue_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= MW_QUEUE_ID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'A' && id[i] <= 'F') || id[i] == '.'))
            return 0;
    return id[0] != '.';
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
            mwi_queue_path(q, p, subs[i], NULL);
        else
            snprintf(p, sizeof p, "%s", q->dir);
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            free(q);
            return mwi_queue_sys_err(err, "create", p, e);
        }
    }
    *out = q;
    return 0;
}

void mw_queue_close(mw_queue *q)
{
    free(q);
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
    mwi_queue_path(q, d, "env", NULL);
    DIR *dir = opendir(d);
    if (!dir) return mwi_queue_sys_err(err, "open", d, errno);
    mw_queue_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(dir)) != NULL) {
        if (!mwi_queue_valid_id(de->d_name)) continue;
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
        if (mwi_queue_load_entry(q, de->d_name, &v[cnt]) == 0) cnt++;
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

int mwi_queue_lock(const mw_queue *q, int wait, int *fd_out, mw_error *err)
{
    char p[Q_PATH];
    mwi_queue_path(q, p, "lock", NULL);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return mwi_queue_sys_err(err, "open", p, errno);
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR) continue;
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return mwi_err_set(err, MW_ESTATE, "queue %s: another run holds its lock", q->dir);
        return mwi_queue_sys_err(err, "lock", p, e);
    }
    *fd_out = fd;
    return 0;
}

/* Removes an entry: env/ID first (it leaves the queue), then msg/ID. */
int mwi_queue_remove(const mw_queue *q, const char *id, mw_error *err)
{
    char p[Q_PATH], d[Q_PATH];
    mwi_queue_path(q, p, "env", id);
    if (unlink(p) != 0)
        return errno == ENOENT ? mwi_err_set(err, MW_EINVAL, "queue: no entry %s", id)
                               : mwi_queue_sys_err(err, "remove", p, errno);
    mwi_queue_path(q, d, "env", NULL);
    int e = mwi_queue_fsync_dir(d);
    if (e) return mwi_queue_sys_err(err, "fsync", d, e);
    mwi_queue_path(q, p, "msg", id);
    unlink(p); /* a leftover would only be an orphan, cleaned by a run */
    return 0;
}

int mw_queue_drop(mw_queue *q, const char *id, mw_error *err)
{
    if (!q || !id || !mwi_queue_valid_id(id))
        return mwi_err_set(err, MW_EINVAL, "queue: bad ID '%s'", id ? id : "");
    int lk = -1;
    int rc = mwi_queue_lock(q, 0, &lk, err);
    if (rc) return rc;
    rc = mwi_queue_remove(q, id, err);
    close(lk);
    return rc;
}

/* tmp/ files, and msg/ files without an envelope, older than an hour: what
 * an enqueue killed half-way left (a live enqueue is never that old). */
void mwi_queue_clean_orphans(const mw_queue *q)
{
    const char *dirs[] = {"tmp", "msg"};
    time_t now = time(NULL);
    for (size_t k = 0; k < 2; k++) {
        char d[Q_PATH], p[Q_PATH], ep[Q_PATH];
        mwi_queue_path(q, d, dirs[k], NULL);
        DIR *dir = opendir(d);
        if (!dir) continue;
        struct dirent *de;
        while ((de = readdir(dir)) != NULL) {
            if (de->d_name[0] == '.') continue;
            struct stat st;
            if (mwi_queue_path(q, p, dirs[k], de->d_name) || stat(p, &st) != 0) continue;
            if (now - st.st_mtime < Q_ORPHAN_AGE_S) continue;
            if (k == 1 && (mwi_queue_path(q, ep, "env", de->d_name) || access(ep, F_OK) == 0))
                continue;
            unlink(p);
        }
        closedir(dir);
    }
}
