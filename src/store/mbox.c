/* The mbox backend (mboxrd): a dotlock and an fcntl lock with bounded
 * waits, the "From " separator, a pending marker while a message is
 * written so a crashed delivery is cut off by the next one, and a
 * rollback of a failed one.  Called through mwi_store_mbox_ops by
 * store.c, whose byte pipeline does the mboxrd quoting. */
#include "store/store_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DOTLOCK_STALE_S 600 /* a dotlock older than this is left over from a crash */

static int open_mbox(mw_store *s)
{
    if (mwi_store_fault_check(s->fault, s->fault_ud, MW_STORE_OP_OPEN, s->target))
        return mwi_store_sys_fail(s, "open mbox", s->target, errno);
    int fd = open(s->target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return mwi_store_sys_fail(s, "open mbox", s->target, errno);
    close(fd);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int mbox_unlock(mw_store *s)
{
    if (s->pending_written) unlink(s->pending_path);
    s->pending_written = 0;
    if (s->fcntl_locked && s->fd >= 0) {
        struct flock fl = {.l_type = F_UNLCK, .l_whence = SEEK_SET};
        fcntl(s->fd, F_SETLK, &fl);
    }
    s->fcntl_locked = 0;
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->dotlocked) unlink(s->tmp_path);
    s->dotlocked = 0;
    return 0;
}

/* A dotlock is left over from a crash when the process named in it is gone
 * (same host), or when it is older than DOTLOCK_STALE_S. */
static int dotlock_stale(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    if (time(NULL) - st.st_mtime > DOTLOCK_STALE_S) return 1;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return 0;
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return time(NULL) - st.st_mtime > 30; /* not ours: written by another tool */
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (pid <= 0 || (*end != '\n' && *end != '\0')) return 0;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Creates the dotlock holding our pid: written to a unique file first and
 * linked to the lock name, so a lock never exists without its pid (a crash
 * between create and write would leave an anonymous lock). Returns 0 or
 * an errno (EEXIST: someone holds it). */
static int no_permission(int e)
{
    return e == EACCES || e == EPERM || e == EROFS;
}

static int dotlock_try(mw_store *s)
{
    char tmp[MWI_STORE_PATHMAX + 64], pid[32];
    snprintf(tmp, sizeof tmp, "%s.%ld.%lu", s->tmp_path, (long)getpid(), mwi_store_next_counter());
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (mwi_store_fault(s, MW_STORE_OP_OPEN, s->tmp_path)) return errno;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) return errno;
    int e = write(fd, pid, (size_t)n) == n ? 0 : (errno ? errno : EIO);
    close(fd);
    if (e == 0 && link(tmp, s->tmp_path) != 0) e = errno;
    unlink(tmp);
    return e;
}

/* A delivery killed mid-write (SIGKILL, power cut) cannot truncate the
 * mbox itself.  So while a message is written, "<mbox>.mwpending" holds the
 * mbox's size before it; the next delivery (under the same locks) finds it
 * and cuts the half message off -- but only when nothing but that one
 * message follows, i.e. a single "From " line starts in the tail (our own
 * body lines are quoted), so mail appended later by others is never cut. */
static int mbox_recover(mw_store *s)
{
    char eb[128];
    snprintf(s->pending_path, sizeof s->pending_path, "%s.mwpending", s->target);
    int pfd = open(s->pending_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (pfd < 0) return errno == ENOENT ? 0 : mwi_store_sys_fail(s, "open", s->pending_path, errno);
    char buf[65536];
    ssize_t n = read(pfd, buf, 31);
    close(pfd);
    buf[n > 0 ? n : 0] = '\0';
    char *end;
    long long old = strtoll(buf, &end, 10);
    struct stat st;
    if (fstat(s->fd, &st) != 0) return mwi_store_sys_fail(s, "stat", s->target, errno);
    if (n > 0 && *end == '\n' && old >= 0 && old < st.st_size) {
        /* count "From " at line starts in [old, size) */
        int froms = 0, bol = 1;
        size_t match = 0;
        if (old > 0) {
            char c;
            bol = pread(s->fd, &c, 1, old - 1) == 1 && c == '\n';
        }
        for (off_t pos = old; pos < st.st_size && froms < 2;) {
            ssize_t r = pread(s->fd, buf, sizeof buf, pos);
            if (r <= 0) return mwi_store_sys_fail(s, "read", s->target, r < 0 ? errno : EIO);
            for (ssize_t i = 0; i < r; i++) {
                if (bol || match) {
                    if (buf[i] == "From "[match]) {
                        if (++match == 5) {
                            froms++;
                            match = 0;
                        }
                        bol = 0;
                        continue;
                    }
                    match = 0;
                }
                bol = buf[i] == '\n';
            }
            pos += r;
        }
        if (froms <= 1) {
            if (mwi_store_fault(s, MW_STORE_OP_TRUNCATE, s->target) ||
                ftruncate(s->fd, (off_t)old) != 0 || fsync(s->fd) != 0)
                return mwi_err_set(&s->err, MW_EIO,
                                   "cannot cut a half-written message off %s (from a crashed "
                                   "delivery): %s",
                                   s->target, mwi_errno_text(errno, eb, sizeof eb));
        }
    }
    unlink(s->pending_path);
    return 0;
}

static int mbox_mark_pending(mw_store *s)
{
    char line[32];
    int n = snprintf(line, sizeof line, "%lld\n", (long long)s->mbox_old_size);
    int fd = -1;
    if (!mwi_store_fault(s, MW_STORE_OP_OPEN, s->pending_path))
        fd = open(s->pending_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        /* Without write access to the directory there is no marker; a
         * crash mid-write then leaves its half message (as with mpop). */
        if (no_permission(errno)) return 0;
        return mwi_store_sys_fail(s, "create", s->pending_path, errno);
    }
    int e = write(fd, line, (size_t)n) == n ? 0 : (errno ? errno : EIO);
    close(fd);
    if (e) {
        unlink(s->pending_path);
        return mwi_store_sys_fail(s, "write", s->pending_path, e);
    }
    s->pending_written = 1;
    return 0;
}

/* The separator: "From SENDER DATE" with the date as asctime() writes it. */
static int put_from_line(mw_store *s, const char *from)
{
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char line[512];
    int n =
        snprintf(line, sizeof line, "From %s %s %s %2d %02d:%02d:%02d %d\n", from, wd[tm.tm_wday],
                 mo[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
    return mwi_store_put_bytes(s, line, (size_t)n);
}

static int mbox_begin(mw_store *s, const char *from)
{
    int64_t deadline = mw_now_ms() + s->lock_timeout_ms;
    snprintf(s->tmp_path, sizeof s->tmp_path, "%s.lock", s->target);
    /* The dotlock is for readers that do not use fcntl locks (mutt, old
     * MUAs); the fcntl lock is for those that do.  Both with a bounded wait. */
    for (;;) {
        int e = dotlock_try(s);
        if (e == 0) {
            s->dotlocked = 1;
            break;
        }
        /* A spool directory we may not write to (/var/mail without the
         * mail group): go on with the fcntl lock alone, as procmail does. */
        if (no_permission(e)) break;
        if (e != EEXIST) return mwi_store_sys_fail(s, "create lock file", s->tmp_path, e);
        if (dotlock_stale(s->tmp_path)) {
            unlink(s->tmp_path);
            continue;
        }
        if (mw_now_ms() >= deadline)
            return mwi_err_set(&s->err, MW_ETIMEOUT, "mbox %s is locked (%s exists)", s->target,
                               s->tmp_path);
        sleep_ms(50);
    }
    int rc = 0;
    if (mwi_store_fault(s, MW_STORE_OP_OPEN, s->target)) {
        rc = mwi_store_sys_fail(s, "open mbox", s->target, errno);
        goto fail;
    }
    s->fd = open(s->target, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        rc = mwi_store_sys_fail(s, "open mbox", s->target, errno);
        goto fail;
    }
    for (;;) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(s->fd, F_SETLK, &fl) == 0) break;
        if (errno != EACCES && errno != EAGAIN) {
            rc = mwi_store_sys_fail(s, "lock mbox", s->target, errno);
            goto fail;
        }
        if (mw_now_ms() >= deadline) {
            rc = mwi_err_set(&s->err, MW_ETIMEOUT, "mbox %s is locked by another process (fcntl)",
                             s->target);
            goto fail;
        }
        sleep_ms(50);
    }
    s->fcntl_locked = 1;
    if ((rc = mbox_recover(s)) != 0) goto fail;
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        rc = mwi_store_sys_fail(s, "stat", s->target, errno);
        goto fail;
    }
    s->mbox_old_size = st.st_size;
    if ((rc = mbox_mark_pending(s)) != 0) goto fail;
    /* A previous message must end with a newline before the next "From ". */
    if (st.st_size > 0) {
        char last;
        if (pread(s->fd, &last, 1, st.st_size - 1) != 1) {
            rc = mwi_store_sys_fail(s, "read", s->target, errno ? errno : EIO);
            goto fail;
        }
        if (last != '\n' && (rc = mwi_store_put_bytes(s, "\n", 1)) != 0) goto fail;
    }
    if ((rc = put_from_line(s, from)) != 0) goto fail;
    s->in_prefix = 1;
    s->last_byte = '\n';
    return 0;
fail:
    mbox_unlock(s);
    return rc;
}

/* Cuts the mbox back to its size before this message, so a failed
 * delivery never leaves half a message behind. */
static int mbox_rollback(mw_store *s)
{
    int rc = 0;
    s->outlen = 0;
    if (s->fd >= 0 && s->fcntl_locked) {
        if (mwi_store_fault(s, MW_STORE_OP_TRUNCATE, s->target) ||
            ftruncate(s->fd, s->mbox_old_size) != 0 || fsync(s->fd) != 0) {
            char eb[128];
            rc = MW_EIO;
            /* Keep the first error (why delivery failed) and add this one. */
            size_t len = strlen(s->err.message);
            snprintf(s->err.message + len, sizeof s->err.message - len,
                     "; and cannot truncate %s back to %lld bytes: %s", s->target,
                     (long long)s->mbox_old_size, mwi_errno_text(errno, eb, sizeof eb));
            s->pending_written = 0; /* keep the marker: the next delivery cuts it off */
        }
    }
    mbox_unlock(s);
    return rc;
}

static int mbox_commit(mw_store *s)
{
    int rc = 0;
    /* mboxrd: every message ends with a newline and one blank line. */
    if (s->last_byte != '\n') rc = mwi_store_put_bytes(s, "\n", 1);
    if (rc == 0) rc = mwi_store_put_bytes(s, "\n", 1);
    if (rc == 0) rc = mwi_store_flush(s);
    if (rc == 0 && (mwi_store_fault(s, MW_STORE_OP_FSYNC, s->target) || fsync(s->fd) != 0))
        rc = mwi_store_sys_fail(s, "fsync", s->target, errno);
    if (rc) return rc;
    struct stat st;
    s->last_size = fstat(s->fd, &st) == 0 ? (uint64_t)(st.st_size - s->mbox_old_size) : s->written;
    snprintf(s->last_path, sizeof s->last_path, "%s", s->target);
    mbox_unlock(s);
    return 0;
}

static const char *mbox_fd_name(const mw_store *s)
{
    return s->target;
}

const struct mwi_store_ops mwi_store_mbox_ops = {
    .mboxrd = 1,
    .to_pipe = 0,
    .open = open_mbox,
    .begin = mbox_begin,
    .commit = mbox_commit,
    .undo = mbox_rollback,
    .sync = NULL,
    .fd_name = mbox_fd_name,
};
