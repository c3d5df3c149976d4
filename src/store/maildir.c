/* The Maildir backend: write into tmp/, fsync, link into new/, fsync new/
 * -- only then is a message delivered (the order in
 * include/mailwire/fetch.h).  Called through mwi_store_maildir_ops by
 * store.c. */
#include "store/store_int.h"
#include "util/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static int ensure_dir(mw_store *s, const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) != 0) return mwi_store_sys_fail(s, "stat", path, errno);
        if (!S_ISDIR(st.st_mode))
            return mwi_err_set(&s->err, MW_EIO, "%s exists and is not a directory", path);
        return 0;
    }
    return mwi_store_sys_fail(s, "create directory", path, errno);
}

/* Maildir spec: files in tmp/ not accessed for 36 hours are left over from
 * deliveries that crashed and may be deleted.  Best effort: errors here do
 * not stop a delivery. */
#define MAILDIR_TMP_STALE_S (36 * 3600)
static void maildir_clean_tmp(const char *tmpdir)
{
    DIR *d = opendir(tmpdir);
    if (!d) return;
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (now - st.st_atime > MAILDIR_TMP_STALE_S && now - st.st_mtime > MAILDIR_TMP_STALE_S)
            unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

static int open_maildir(mw_store *s)
{
    char p[MWI_STORE_PATHMAX];
    int rc = ensure_dir(s, s->target);
    static const char *const sub[] = {"tmp", "new", "cur"};
    for (size_t i = 0; rc == 0 && i < 3; i++) {
        if ((size_t)snprintf(p, sizeof p, "%s/%s", s->target, sub[i]) >= sizeof p)
            return mwi_err_set(&s->err, MW_EINVAL, "Maildir path too long: %s", s->target);
        rc = ensure_dir(s, p);
    }
    if (rc == 0) {
        snprintf(p, sizeof p, "%s/tmp", s->target);
        maildir_clean_tmp(p);
    }
    return rc;
}

static int maildir_begin(mw_store *s, const char *from)
{
    (void)from;
    for (int attempt = 0; attempt < 5; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        unsigned long q = mwi_store_next_counter() + 1;
        snprintf(s->unique, sizeof s->unique, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
                 (long)tv.tv_usec, (long)getpid(), q, s->hostname);
        snprintf(s->tmp_path, sizeof s->tmp_path, "%s/tmp/%s", s->target, s->unique);
        if (mwi_store_fault(s, MW_STORE_OP_OPEN, s->tmp_path))
            return mwi_store_sys_fail(s, "create", s->tmp_path, errno);
        s->fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0) return 0;
        if ((errno == EMFILE || errno == ENFILE) && s->ndeferred) {
            /* Out of descriptors: the deferred files give theirs back
             * (their errors are kept for mw_store_sync). */
            (void)mwi_store_maildir_flush_deferred(s);
            attempt--;
            continue;
        }
        if (errno != EEXIST) return mwi_store_sys_fail(s, "create", s->tmp_path, errno);
    }
    return mwi_err_set(&s->err, MW_EIO, "cannot find a unique file name in %s/tmp", s->target);
}

static int maildir_cleanup(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->tmp_path[0]) unlink(s->tmp_path);
    s->tmp_path[0] = '\0';
    return 0;
}

/* tmp/ to new/ without ever replacing a file there (the Maildir rule):
 * renameat2(RENAME_NOREPLACE), one call, where the kernel and the file
 * system have it; else link(2), the tmp name then unlinked by the caller;
 * where hard links are not supported either, rename(2).  Returns 1 when
 * the tmp name is gone, 0 when it is still to unlink, or a negative MW_E*
 * code (s->err set). */
static int move_into_new(mw_store *s, const char *tmpp, const char *newp)
{
#ifdef RENAME_NOREPLACE
    if (renameat2(AT_FDCWD, tmpp, AT_FDCWD, newp, RENAME_NOREPLACE) == 0) return 1;
    if (errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP)
        return mwi_store_sys_fail(s, "link into", newp, errno);
#endif
    if (link(tmpp, newp) == 0) return 0;
    int e = errno;
    if (e != EPERM && e != ENOSYS && e != EOPNOTSUPP && e != EXDEV)
        return mwi_store_sys_fail(s, "link into", newp, e);
    if (rename(tmpp, newp) != 0) return mwi_store_sys_fail(s, "rename into", newp, errno);
    return 1;
}

/* A deferred file was not made durable: the first reason is kept and
 * every later mw_store_sync() fails with it (store_defer.h). */
static void lose(mw_store *s, const mw_error *why)
{
    if (s->lost) return;
    s->lost = 1;
    s->lost_err = *why;
}

/* Makes every deferred file durable and moves it into new/ (new/ itself is
 * left unsynced, dir_unsynced set).  A file that fails is removed from
 * tmp/ and the store is lost.  Returns 0 or MW_EIO (s->err: why). */
int mwi_store_maildir_flush_deferred(mw_store *s)
{
    char tmpp[MWI_STORE_PATHMAX], newp[MWI_STORE_PATHMAX];
    for (size_t i = 0; i < s->ndeferred; i++) {
        struct mwi_store_deferred *d = &s->deferred[i];
        snprintf(tmpp, sizeof tmpp, "%s/tmp/%s", s->target, d->unique);
        snprintf(newp, sizeof newp, "%s/new/%s,S=%llu", s->target, d->unique,
                 (unsigned long long)d->size);
        int rc = 0;
        /* Its data was written back since commit started it: this waits
         * for what is left and writes the inode. */
        if (mwi_store_fault(s, MW_STORE_OP_FSYNC, tmpp) || fsync(d->fd) != 0)
            rc = mwi_store_sys_fail(s, "fsync", tmpp, errno);
        if (close(d->fd) != 0 && !rc) rc = mwi_store_sys_fail(s, "close", tmpp, errno);
        d->fd = -1;
        int moved = 0;
        if (!rc && mwi_store_fault(s, MW_STORE_OP_RENAME, newp))
            rc = mwi_store_sys_fail(s, "link into", newp, errno);
        if (!rc && (moved = move_into_new(s, tmpp, newp)) < 0) rc = moved;
        if (rc) {
            lose(s, &s->err);
            moved = 0;
        } else {
            s->dir_unsynced = 1;
        }
        if (!moved) unlink(tmpp); /* after link(2), or the failed file */
        free(d->unique);
        d->unique = NULL;
    }
    s->budget->open -= s->ndeferred;
    s->ndeferred = 0;
    if (!s->lost) return 0;
    s->err = s->lost_err;
    return MW_EIO;
}

/* Deferred commit (store_defer.h): the file stays in tmp/, open, its
 * write-back started.  Returns 1 when deferred, 0 when the message is to
 * be made durable at once (no room in the budget, no memory), or a
 * negative MW_E* code. */
static int commit_deferred(mw_store *s, uint64_t size)
{
    mwi_store_budget *b = s->budget;
    if (b->open >= b->max && s->ndeferred) (void)mwi_store_maildir_flush_deferred(s);
    if (b->open >= b->max) return 0;
    if (s->ndeferred == s->deferred_cap) {
        size_t cap = s->deferred_cap ? s->deferred_cap * 2 : 16;
        struct mwi_store_deferred *n = realloc(s->deferred, cap * sizeof *n);
        if (!n) return 0;
        s->deferred = n;
        s->deferred_cap = cap;
    }
    char *u = strdup(s->unique);
    if (!u) return 0;
#ifdef SYNC_FILE_RANGE_WRITE
    /* Start writing the data now, without waiting: by mw_store_sync() most
     * of it is on the disk. */
    if (sync_file_range(s->fd, 0, 0, SYNC_FILE_RANGE_WRITE) != 0 && errno != ENOSYS &&
        errno != EINVAL && errno != ESPIPE) {
        int e = errno;
        free(u);
        return mwi_store_sys_fail(s, "write back", s->tmp_path, e);
    }
#endif
    s->deferred[s->ndeferred++] = (struct mwi_store_deferred){s->fd, size, u};
    b->open++;
    s->fd = -1;
    s->tmp_path[0] = '\0';
    snprintf(s->last_path, sizeof s->last_path, "%s/new/%s,S=%llu", s->target, u,
             (unsigned long long)size);
    s->last_size = size;
    return 1;
}

static int maildir_commit(mw_store *s)
{
    char eb[128];
    if (s->defer_files) {
        int d = commit_deferred(s, s->written);
        if (d) return d < 0 ? d : 0;
    }
    if (mwi_store_fault(s, MW_STORE_OP_FSYNC, s->tmp_path) || fsync(s->fd) != 0)
        return mwi_store_sys_fail(s, "fsync", s->tmp_path, errno);
    /* The file is new and written in order from its start: its size is
     * what the pipeline wrote into it (store.c), no stat needed. */
    const uint64_t size = s->written;
    if (close(s->fd) != 0) {
        s->fd = -1;
        return mwi_store_sys_fail(s, "close", s->tmp_path, errno);
    }
    s->fd = -1;
    char newp[MWI_STORE_PATHMAX];
    /* Maildir++: ",S=<size>" lets readers know the size without a stat. */
    snprintf(newp, sizeof newp, "%s/new/%s,S=%llu", s->target, s->unique, (unsigned long long)size);
    if (mwi_store_fault(s, MW_STORE_OP_RENAME, newp))
        return mwi_store_sys_fail(s, "link into", newp, errno);
    int moved = move_into_new(s, s->tmp_path, newp);
    if (moved < 0) return moved;
    char newdir[MWI_STORE_PATHMAX];
    snprintf(newdir, sizeof newdir, "%s/new", s->target);
    /* Deferred mode: the file's data is durable (fsync above) and complete
     * in new/, but its directory entry is not until new/ is fsync'd.  That
     * is left to mw_store_sync(), one fsync for a whole batch instead of
     * one per message (about 5 ms each here).  Nothing is lost by waiting:
     * a message only counts as delivered — recorded in the state, deleted
     * on the server — after that sync returned 0, and a crash before it
     * leaves the message on the server to be fetched again. */
    int e = 0;
    if (s->defer_dir_sync)
        s->dir_unsynced = 1;
    else
        e = mwi_store_fsync_dir(s->fault, s->fault_ud, newdir);
    if (e) {
        /* Not durable, so not delivered: take it back out of new/. */
        unlink(newp);
        return mwi_err_set(&s->err, MW_EIO, "cannot fsync directory %s: %s", newdir,
                           mwi_errno_text(e, eb, sizeof eb));
    }
    if (!moved) unlink(s->tmp_path);
    s->tmp_path[0] = '\0';
    snprintf(s->last_path, sizeof s->last_path, "%s", newp);
    s->last_size = size;
    return 0;
}

static int maildir_sync_dir(mw_store *s);

/* mw_store_sync: the deferred files (fsync, into new/), then new/. */
static int maildir_sync(mw_store *s)
{
    if (s->ndeferred) (void)mwi_store_maildir_flush_deferred(s);
    /* new/ is fsync'd even when a deferred file failed: the others in it
     * are complete, and a later run need not fetch them again. */
    int rc = maildir_sync_dir(s);
    if (s->lost) {
        s->err = s->lost_err;
        return MW_EIO;
    }
    return rc;
}

/* The fsync of new/ that deferred commits left for a whole batch. */
static int maildir_sync_dir(mw_store *s)
{
    if (!s->dir_unsynced) return 0;
    char newdir[MWI_STORE_PATHMAX], eb[128];
    snprintf(newdir, sizeof newdir, "%s/new", s->target);
    int e = mwi_store_fsync_dir(s->fault, s->fault_ud, newdir);
    if (e)
        /* dir_unsynced stays set: the next call tries again.  The files are
         * not taken back out of new/ (they are complete and fsync'd); the
         * caller just must not treat them as delivered. */
        return mwi_err_set(&s->err, MW_EIO, "cannot fsync directory %s: %s", newdir,
                           mwi_errno_text(e, eb, sizeof eb));
    s->dir_unsynced = 0;
    return 0;
}

static const char *maildir_fd_name(const mw_store *s)
{
    return s->tmp_path;
}

const struct mwi_store_ops mwi_store_maildir_ops = {
    .mboxrd = 0,
    .to_pipe = 0,
    .open = open_maildir,
    .begin = maildir_begin,
    .commit = maildir_commit,
    .undo = maildir_cleanup,
    .sync = maildir_sync,
    .fd_name = maildir_fd_name,
};
