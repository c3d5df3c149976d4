/* Mail stores: Maildir, mbox (mboxrd) and MDA delivery, one message at a
 * time, streamed.  The durability order follows the Maildir rules: write
 * into tmp/, fsync, link into new/, fsync new/ — only then is a message
 * delivered. */
#include "store/store_int.h"
#include "util/err.h"
#include "util/proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define OUTBUF_SIZE     65536
#define PATH_MAX_       4096
#define DOTLOCK_STALE_S 600 /* a dotlock older than this is left over from a crash */

struct mw_store {
    mw_store_kind kind;
    char *target;
    char *hostname; /* Maildir: already made safe for a file name */
    char *envelope_from;
    int keep_crlf;
    int lock_timeout_ms;
    int mda_timeout_ms;
    mw_store_fault_fn fault;
    void *fault_ud;
    mw_error err;
    int defer_dir_sync; /* Maildir: commit leaves the fsync of new/ to mw_store_sync() */
    int dir_unsynced;   /* a link into new/ happened since new/ was last fsync'd */

    /* the delivery in progress */
    int active;
    int fd;                   /* tmp file, mbox, or the MDA's stdin pipe */
    char tmp_path[PATH_MAX_]; /* Maildir tmp file; mbox dotlock path */
    char unique[256];         /* Maildir unique name */
    int dotlocked, fcntl_locked;
    off_t mbox_old_size;
    char pending_path[PATH_MAX_]; /* mbox: "<mbox>.mwpending" while a message is written */
    int pending_written;
    mwi_proc mda;          /* the MDA's process; its stdin is fd */
    int mda_epipe;         /* the MDA closed its input early */
    int64_t deadline;      /* MDA */
    uint64_t written;      /* bytes handed to the file/pipe */
    int pending_cr;        /* CRLF→LF: a CR seen, its LF not yet */
    int at_bol, in_prefix; /* mboxrd quoting state */
    size_t gt, fm;
    int last_byte; /* last byte emitted into the message (-1: none) */
    char out[OUTBUF_SIZE];
    size_t outlen;

    char last_path[PATH_MAX_];
    uint64_t last_size;
};

static atomic_ulong delivery_counter; /* Q<n> of Maildir names: unique within the process */

/* ---- helpers shared with state.c ------------------------------------------ */

int mwi_store_fault_check(mw_store_fault_fn fn, void *ud, mw_store_op op, const char *path)
{
    if (!fn) return 0;
    int e = fn(op, path, ud);
    if (e) errno = e;
    return e;
}

int mwi_store_dirname(char *dir, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) return snprintf(dir, size, ".") < (int)size ? 0 : -1;
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= size) return -1;
    memcpy(dir, path, n);
    dir[n] = '\0';
    return 0;
}

int mwi_store_fsync_dir(mw_store_fault_fn fn, void *ud, const char *dir)
{
    if (mwi_store_fault_check(fn, ud, MW_STORE_OP_FSYNC, dir)) return errno;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return errno;
    int rc = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    return rc;
}

static int sys_fail(mw_store *s, const char *what, const char *path, int e)
{
    char eb[128];
    return mwi_err_set(&s->err, MW_EIO, "cannot %s %s: %s", what, path,
                       mwi_errno_text(e, eb, sizeof eb));
}

static int fault(mw_store *s, mw_store_op op, const char *path)
{
    return mwi_store_fault_check(s->fault, s->fault_ud, op, path);
}

/* ---- open / free ------------------------------------------------------------ */

static int ensure_dir(mw_store *s, const char *path)
{
    if (mkdir(path, 0700) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) != 0) return sys_fail(s, "stat", path, errno);
        if (!S_ISDIR(st.st_mode))
            return mwi_err_set(&s->err, MW_EIO, "%s exists and is not a directory", path);
        return 0;
    }
    return sys_fail(s, "create directory", path, errno);
}

/* Maildir spec: '/' and ':' in the host name are written as \057 and \072. */
static char *safe_hostname(const char *h)
{
    size_t n = strlen(h), j = 0;
    char *out = malloc(n * 4 + 1);
    if (!out) return NULL;
    for (size_t i = 0; i < n && j < 200; i++) {
        unsigned char c = (unsigned char)h[i];
        if (c == '/' || c == ':' || c < 0x21 || c > 0x7E) {
            j += (size_t)snprintf(out + j, n * 4 + 1 - j, "\\%03o", c);
        } else {
            out[j++] = (char)c;
        }
    }
    out[j] = '\0';
    return out;
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
    char p[PATH_MAX_];
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

static int open_mbox(mw_store *s)
{
    if (mwi_store_fault_check(s->fault, s->fault_ud, MW_STORE_OP_OPEN, s->target))
        return sys_fail(s, "open mbox", s->target, errno);
    int fd = open(s->target, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return sys_fail(s, "open mbox", s->target, errno);
    close(fd);
    return 0;
}

int mw_store_open(mw_store **out, mw_store_kind kind, const char *target,
                  const mw_store_options *opt, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_store_open: out is NULL");
    *out = NULL;
    mw_store_options def = MW_STORE_OPTIONS_INIT;
    if (!opt) opt = &def;
    if (opt->version != 1 && opt->version != MW_STORE_OPTIONS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "store options: unknown version %u", opt->version);
    if (kind != MW_STORE_MAILDIR && kind != MW_STORE_MBOX && kind != MW_STORE_MDA)
        return mwi_err_set(err, MW_EINVAL, "unknown store kind %d", (int)kind);
    if (!target || !*target) return mwi_err_set(err, MW_EINVAL, "store target is empty");
    if (strlen(target) > PATH_MAX_ - 300)
        return mwi_err_set(err, MW_EINVAL, "store target is too long");
    if (opt->envelope_from && strpbrk(opt->envelope_from, " \t\r\n"))
        return mwi_err_set(err, MW_EINVAL, "envelope sender contains white space or CR/LF");

    mw_store *s = calloc(1, sizeof *s);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    s->kind = kind;
    s->fd = -1;
    s->keep_crlf = opt->keep_crlf;
    s->lock_timeout_ms = opt->lock_timeout_ms > 0 ? opt->lock_timeout_ms : 0;
    s->mda_timeout_ms = opt->mda_timeout_ms > 0 ? opt->mda_timeout_ms : 300000;
    s->fault = opt->fault;
    s->fault_ud = opt->fault_userdata;
    /* A version-1 struct ends before defer_dir_sync: never read it there. */
    s->defer_dir_sync = opt->version >= 2 && opt->defer_dir_sync && kind == MW_STORE_MAILDIR;
    s->target = strdup(target);
    s->envelope_from = strdup(opt->envelope_from ? opt->envelope_from : "MAILER-DAEMON");
    char host[256] = "localhost";
    if (opt->hostname)
        snprintf(host, sizeof host, "%s", opt->hostname);
    else if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    s->hostname = safe_hostname(host);
    if (!s->target || !s->envelope_from || !s->hostname) {
        mw_store_free(s);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    int rc = 0;
    if (kind == MW_STORE_MAILDIR)
        rc = open_maildir(s);
    else if (kind == MW_STORE_MBOX)
        rc = open_mbox(s);
    if (rc) {
        if (err) *err = s->err;
        mw_store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void mw_store_free(mw_store *s)
{
    if (!s) return;
    if (s->active) mw_store_abort(s);
    /* Best effort for a caller that forgot: its result cannot be reported,
     * which is why callers that delete mail must call mw_store_sync(). */
    (void)mw_store_sync(s);
    free(s->target);
    free(s->hostname);
    free(s->envelope_from);
    free(s);
}

const mw_error *mw_store_error(const mw_store *s)
{
    return &s->err;
}

const char *mw_store_last_path(const mw_store *s)
{
    return s->last_path;
}

uint64_t mw_store_last_size(const mw_store *s)
{
    return s->last_size;
}

/* ---- output: buffer, CRLF→LF, mboxrd quoting ---------------------------------- */

static void ignore_sigpipe_begin(sigset_t *old, int *was_pending)
{
    sigset_t set, pend;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sigpending(&pend);
    *was_pending = sigismember(&pend, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void ignore_sigpipe_end(const sigset_t *old, int was_pending, int got_epipe)
{
    if (got_epipe && !was_pending) {
        /* Swallow the SIGPIPE our own write raised, so restoring the mask
         * does not deliver it to the process. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&set, NULL, &zero) < 0 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, old, NULL);
}

static const char *fd_name(const mw_store *s)
{
    if (s->kind == MW_STORE_MAILDIR) return s->tmp_path;
    if (s->kind == MW_STORE_MBOX) return s->target;
    return "the MDA's input";
}

/* Writes all of p to the delivery's fd.  For the MDA the pipe is
 * non-blocking and every wait is bounded by the delivery's deadline. */
static int raw_write(mw_store *s, const char *p, size_t n)
{
    sigset_t old;
    int was_pending = 0, epipe = 0, rc = 0;
    if (s->kind == MW_STORE_MDA) ignore_sigpipe_begin(&old, &was_pending);
    while (n > 0) {
        if (fault(s, MW_STORE_OP_WRITE, fd_name(s))) {
            rc = sys_fail(s, "write", fd_name(s), errno);
            break;
        }
        ssize_t w = write(s->fd, p, n);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            s->written += (uint64_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN && s->kind == MW_STORE_MDA) {
            int64_t left = s->deadline - mw_now_ms();
            if (left <= 0) {
                rc = mwi_err_set(&s->err, MW_ETIMEOUT,
                                 "MDA command '%s' did not read its input within %d ms", s->target,
                                 s->mda_timeout_ms);
                break;
            }
            struct pollfd pfd = {s->fd, POLLOUT, 0};
            poll(&pfd, 1, left > 1000 ? 1000 : (int)left);
            continue;
        }
        if (w < 0 && errno == EPIPE) {
            epipe = 1;
            s->mda_epipe = 1;
            rc = mwi_err_set(&s->err, MW_EIO,
                             "MDA command '%s' stopped reading its input after %llu bytes",
                             s->target, (unsigned long long)s->written);
            break;
        }
        rc = sys_fail(s, "write", fd_name(s), w < 0 ? errno : EIO);
        break;
    }
    if (s->kind == MW_STORE_MDA) ignore_sigpipe_end(&old, was_pending, epipe);
    return rc;
}

static int flush_out(mw_store *s)
{
    int rc = s->outlen ? raw_write(s, s->out, s->outlen) : 0;
    s->outlen = 0;
    return rc;
}

static int put_bytes(mw_store *s, const char *p, size_t n)
{
    while (n > 0) {
        if (s->outlen == OUTBUF_SIZE) {
            int rc = flush_out(s);
            if (rc) return rc;
        }
        size_t k = OUTBUF_SIZE - s->outlen;
        if (k > n) k = n;
        memcpy(s->out + s->outlen, p, k);
        s->outlen += k;
        p += k;
        n -= k;
    }
    return 0;
}

static int put_char(mw_store *s, char c)
{
    return put_bytes(s, &c, 1);
}

/* Emits the bytes held back while deciding whether a line is ">*From ". */
static int flush_prefix(mw_store *s, int quote)
{
    int rc = 0;
    if (quote) rc = put_char(s, '>');
    for (size_t i = 0; rc == 0 && i < s->gt; i++)
        rc = put_char(s, '>');
    if (rc == 0 && s->fm) rc = put_bytes(s, "From ", s->fm);
    if (s->gt || s->fm || quote) s->last_byte = s->fm ? "From "[s->fm - 1] : '>';
    s->in_prefix = 0;
    s->gt = s->fm = 0;
    return rc;
}

/* One message byte after CRLF conversion.  mboxrd: a line matching
 * ^>*From  gets one more '>' so a reader can strip exactly one. */
static int emit(mw_store *s, char c)
{
    if (s->kind == MW_STORE_MBOX && s->in_prefix) {
        if (c == '>' && s->fm == 0) {
            s->gt++;
            return 0;
        }
        if (c == "From "[s->fm]) {
            if (++s->fm == 5) return flush_prefix(s, 1);
            return 0;
        }
        int rc = flush_prefix(s, 0);
        if (rc) return rc;
    }
    s->last_byte = (unsigned char)c;
    if (c == '\n' && s->kind == MW_STORE_MBOX) {
        s->in_prefix = 1;
        s->gt = s->fm = 0;
    }
    return put_char(s, c);
}

static int feed(mw_store *s, const char *p, size_t n)
{
    int rc = 0;
    /* Fast path: nothing to convert or quote. */
    if (s->keep_crlf && s->kind != MW_STORE_MBOX) {
        if (n) s->last_byte = (unsigned char)p[n - 1];
        return put_bytes(s, p, n);
    }
    int mbox = s->kind == MW_STORE_MBOX;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        /* Bulk copy of a run with nothing to convert or quote: no CR held
         * back, not at the start of an mbox line, up to the next CR (LF
         * too for mbox, where a new line may need quoting). */
        if (!s->pending_cr && !(mbox && s->in_prefix)) {
            size_t j = i;
            while (j < n && (s->keep_crlf || p[j] != '\r') && !(mbox && p[j] == '\n'))
                j++;
            if (j > i) {
                s->last_byte = (unsigned char)p[j - 1];
                if ((rc = put_bytes(s, p + i, j - i)) != 0) break;
                i = j - 1;
                continue;
            }
        }
        char c = p[i];
        if (!s->keep_crlf) {
            if (s->pending_cr) {
                s->pending_cr = 0;
                if (c != '\n' && (rc = emit(s, '\r')) != 0) break;
            }
            if (c == '\r') {
                s->pending_cr = 1;
                continue;
            }
        }
        rc = emit(s, c);
    }
    return rc;
}

/* Ends the byte stream of a message: a CR held back, a held-back prefix. */
static int finish_stream(mw_store *s)
{
    int rc = 0;
    if (s->pending_cr) {
        s->pending_cr = 0;
        rc = emit(s, '\r');
    }
    if (rc == 0 && s->in_prefix) rc = flush_prefix(s, 0);
    return rc;
}

/* ---- Maildir ---------------------------------------------------------------- */

static int maildir_begin(mw_store *s)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        struct timeval tv;
        gettimeofday(&tv, NULL);
        unsigned long q = atomic_fetch_add(&delivery_counter, 1) + 1;
        snprintf(s->unique, sizeof s->unique, "%lld.M%ldP%ldQ%lu.%s", (long long)tv.tv_sec,
                 (long)tv.tv_usec, (long)getpid(), q, s->hostname);
        snprintf(s->tmp_path, sizeof s->tmp_path, "%s/tmp/%s", s->target, s->unique);
        if (fault(s, MW_STORE_OP_OPEN, s->tmp_path))
            return sys_fail(s, "create", s->tmp_path, errno);
        s->fd = open(s->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (s->fd >= 0) return 0;
        if (errno != EEXIST) return sys_fail(s, "create", s->tmp_path, errno);
    }
    return mwi_err_set(&s->err, MW_EIO, "cannot find a unique file name in %s/tmp", s->target);
}

static void maildir_cleanup(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->tmp_path[0]) unlink(s->tmp_path);
    s->tmp_path[0] = '\0';
}

static int maildir_commit(mw_store *s)
{
    char eb[128];
    if (fault(s, MW_STORE_OP_FSYNC, s->tmp_path) || fsync(s->fd) != 0)
        return sys_fail(s, "fsync", s->tmp_path, errno);
    struct stat st;
    if (fstat(s->fd, &st) != 0) return sys_fail(s, "stat", s->tmp_path, errno);
    if (close(s->fd) != 0) {
        s->fd = -1;
        return sys_fail(s, "close", s->tmp_path, errno);
    }
    s->fd = -1;
    char newp[PATH_MAX_];
    /* Maildir++: ",S=<size>" lets readers know the size without a stat. */
    snprintf(newp, sizeof newp, "%s/new/%s,S=%llu", s->target, s->unique,
             (unsigned long long)st.st_size);
    if (fault(s, MW_STORE_OP_RENAME, newp)) return sys_fail(s, "link into", newp, errno);
    /* link() never replaces an existing file; where hard links are not
     * supported, rename() is the fall back. */
    if (link(s->tmp_path, newp) != 0) {
        int e = errno;
        if (e != EPERM && e != ENOSYS && e != EOPNOTSUPP && e != EXDEV)
            return sys_fail(s, "link into", newp, e);
        if (rename(s->tmp_path, newp) != 0) return sys_fail(s, "rename into", newp, errno);
    }
    char newdir[PATH_MAX_];
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
    unlink(s->tmp_path);
    s->tmp_path[0] = '\0';
    snprintf(s->last_path, sizeof s->last_path, "%s", newp);
    s->last_size = (uint64_t)st.st_size;
    return 0;
}

/* ---- mbox ------------------------------------------------------------------- */

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
    char tmp[PATH_MAX_ + 64], pid[32];
    snprintf(tmp, sizeof tmp, "%s.%ld.%lu", s->tmp_path, (long)getpid(),
             atomic_fetch_add(&delivery_counter, 1));
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (fault(s, MW_STORE_OP_OPEN, s->tmp_path)) return errno;
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
    if (pfd < 0) return errno == ENOENT ? 0 : sys_fail(s, "open", s->pending_path, errno);
    char buf[65536];
    ssize_t n = read(pfd, buf, 31);
    close(pfd);
    buf[n > 0 ? n : 0] = '\0';
    char *end;
    long long old = strtoll(buf, &end, 10);
    struct stat st;
    if (fstat(s->fd, &st) != 0) return sys_fail(s, "stat", s->target, errno);
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
            if (r <= 0) return sys_fail(s, "read", s->target, r < 0 ? errno : EIO);
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
            if (fault(s, MW_STORE_OP_TRUNCATE, s->target) || ftruncate(s->fd, (off_t)old) != 0 ||
                fsync(s->fd) != 0)
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
    if (!fault(s, MW_STORE_OP_OPEN, s->pending_path))
        fd = open(s->pending_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        /* Without write access to the directory there is no marker; a
         * crash mid-write then leaves its half message (as with mpop). */
        if (no_permission(errno)) return 0;
        return sys_fail(s, "create", s->pending_path, errno);
    }
    int e = write(fd, line, (size_t)n) == n ? 0 : (errno ? errno : EIO);
    close(fd);
    if (e) {
        unlink(s->pending_path);
        return sys_fail(s, "write", s->pending_path, e);
    }
    s->pending_written = 1;
    return 0;
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
        if (e != EEXIST) return sys_fail(s, "create lock file", s->tmp_path, e);
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
    if (fault(s, MW_STORE_OP_OPEN, s->target)) {
        rc = sys_fail(s, "open mbox", s->target, errno);
        goto fail;
    }
    s->fd = open(s->target, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0) {
        rc = sys_fail(s, "open mbox", s->target, errno);
        goto fail;
    }
    for (;;) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
        if (fcntl(s->fd, F_SETLK, &fl) == 0) break;
        if (errno != EACCES && errno != EAGAIN) {
            rc = sys_fail(s, "lock mbox", s->target, errno);
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
        rc = sys_fail(s, "stat", s->target, errno);
        goto fail;
    }
    s->mbox_old_size = st.st_size;
    if ((rc = mbox_mark_pending(s)) != 0) goto fail;
    /* A previous message must end with a newline before the next "From ". */
    if (st.st_size > 0) {
        char last;
        if (pread(s->fd, &last, 1, st.st_size - 1) != 1) {
            rc = sys_fail(s, "read", s->target, errno ? errno : EIO);
            goto fail;
        }
        if (last != '\n' && (rc = put_char(s, '\n')) != 0) goto fail;
    }
    /* The separator: "From SENDER DATE" with the date as asctime() writes it. */
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
    if ((rc = put_bytes(s, line, (size_t)n)) != 0) goto fail;
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
        if (fault(s, MW_STORE_OP_TRUNCATE, s->target) || ftruncate(s->fd, s->mbox_old_size) != 0 ||
            fsync(s->fd) != 0) {
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
    if (s->last_byte != '\n') rc = put_char(s, '\n');
    if (rc == 0) rc = put_char(s, '\n');
    if (rc == 0) rc = flush_out(s);
    if (rc == 0 && (fault(s, MW_STORE_OP_FSYNC, s->target) || fsync(s->fd) != 0))
        rc = sys_fail(s, "fsync", s->target, errno);
    if (rc) return rc;
    struct stat st;
    s->last_size = fstat(s->fd, &st) == 0 ? (uint64_t)(st.st_size - s->mbox_old_size) : s->written;
    snprintf(s->last_path, sizeof s->last_path, "%s", s->target);
    mbox_unlock(s);
    return 0;
}

/* ---- MDA -------------------------------------------------------------------- */

static int mda_begin(mw_store *s)
{
    int rc = mwi_proc_start(&s->mda, s->target, MWI_PROC_IN_PIPE, &s->err);
    if (rc) return rc;
    s->fd = s->mda.in; /* the delivery writes it; s->mda.in is not closed twice */
    s->mda.in = -1;
    s->deadline = mw_now_ms() + s->mda_timeout_ms;
    return 0;
}

/* Waits for the MDA until the deadline; returns 1 with *status, 0 on
 * timeout, -1 on error (errno). */
static int mda_wait(mw_store *s, int *status)
{
    return mwi_proc_wait(&s->mda, s->deadline, status);
}

static void mda_kill(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    if (s->mda.pid > 0) {
        kill(s->mda.pid, SIGKILL);
        mwi_proc_wait(&s->mda, MW_NO_DEADLINE, NULL);
    }
    s->mda.pid = -1;
}

/* The MDA stopped reading early: say how it ended, then make sure it is gone. */
static void mda_reap_after_epipe(mw_store *s)
{
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    int status = 0;
    if (mda_wait(s, &status) == 1) {
        size_t len = strlen(s->err.message);
        if (WIFEXITED(status))
            snprintf(s->err.message + len, sizeof s->err.message - len, " (exit status %d)",
                     WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
            snprintf(s->err.message + len, sizeof s->err.message - len, " (killed by signal %d)",
                     WTERMSIG(status));
    }
    mda_kill(s);
}

static int mda_commit(mw_store *s)
{
    int rc = flush_out(s);
    int epipe = s->mda_epipe;
    if (rc && !epipe) return rc;
    close(s->fd);
    s->fd = -1;
    int status = 0;
    int w = mda_wait(s, &status);
    if (w == 0)
        return mwi_err_set(&s->err, MW_ETIMEOUT, "MDA command '%s' did not finish within %d ms",
                           s->target, s->mda_timeout_ms);
    if (w < 0) {
        int e = errno;
        s->mda.pid = -1;
        return sys_fail(s, "wait for MDA command", s->target, e);
    }
    if (WIFSIGNALED(status))
        return mwi_err_set(&s->err, MW_EIO, "MDA command '%s' was killed by signal %d", s->target,
                           WTERMSIG(status));
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return mwi_err_set(&s->err, MW_EIO, "MDA command '%s' failed with exit status %d%s",
                           s->target, WEXITSTATUS(status),
                           epipe ? " (it did not read the whole message)" : "");
    if (epipe)
        return mwi_err_set(
            &s->err, MW_EIO,
            "MDA command '%s' exited 0 without reading the whole message (%llu bytes read)",
            s->target, (unsigned long long)s->written);
    s->last_path[0] = '\0';
    s->last_size = s->written;
    return 0;
}

/* ---- the delivery API ---------------------------------------------------- */

int mw_store_begin(mw_store *s, const char *envelope_from)
{
    if (!s) return MW_EINVAL;
    if (s->active) return mwi_err_set(&s->err, MW_ESTATE, "a delivery is already in progress");
    mw_error_clear(&s->err);
    const char *from = envelope_from ? envelope_from : s->envelope_from;
    if (!*from || strpbrk(from, " \t\r\n") || strlen(from) > 320)
        return mwi_err_set(&s->err, MW_EINVAL,
                           "envelope sender is empty, too long, or contains white space or CR/LF");
    s->last_path[0] = '\0';
    s->last_size = 0;
    s->written = 0;
    s->outlen = 0;
    s->pending_cr = 0;
    s->in_prefix = 0;
    s->gt = s->fm = 0;
    s->last_byte = -1;
    s->mda_epipe = 0;
    s->tmp_path[0] = '\0';
    int rc = s->kind == MW_STORE_MAILDIR ? maildir_begin(s)
             : s->kind == MW_STORE_MBOX  ? mbox_begin(s, from)
                                         : mda_begin(s);
    if (rc == 0) s->active = 1;
    return rc;
}

static int undo(mw_store *s)
{
    int rc = 0;
    if (s->kind == MW_STORE_MAILDIR)
        maildir_cleanup(s);
    else if (s->kind == MW_STORE_MBOX)
        rc = mbox_rollback(s);
    else if (s->mda_epipe && s->mda.pid > 0)
        mda_reap_after_epipe(s);
    else
        mda_kill(s);
    s->active = 0;
    s->outlen = 0;
    return rc;
}

int mw_store_write(mw_store *s, const void *data, size_t len)
{
    if (!s) return MW_EINVAL;
    if (!s->active) return mwi_err_set(&s->err, MW_ESTATE, "no delivery in progress");
    if (len && !data) return mwi_err_set(&s->err, MW_EINVAL, "mw_store_write: data is NULL");
    int rc = feed(s, data, len);
    if (rc) undo(s);
    return rc;
}

int mw_store_commit(mw_store *s)
{
    if (!s) return MW_EINVAL;
    if (!s->active) return mwi_err_set(&s->err, MW_ESTATE, "no delivery in progress");
    int rc = finish_stream(s);
    if (rc == 0 && s->kind != MW_STORE_MBOX) rc = flush_out(s);
    if (rc == 0)
        rc = s->kind == MW_STORE_MAILDIR ? maildir_commit(s)
             : s->kind == MW_STORE_MBOX  ? mbox_commit(s)
                                         : mda_commit(s);
    if (rc) undo(s);
    s->active = 0;
    return rc;
}

int mw_store_sync(mw_store *s)
{
    if (!s) return MW_EINVAL;
    if (!s->dir_unsynced) return 0;
    char newdir[PATH_MAX_], eb[128];
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

int mw_store_abort(mw_store *s)
{
    if (!s) return MW_EINVAL;
    if (!s->active) return 0;
    return undo(s);
}

int mw_store_deliver(mw_store *s, const void *data, size_t len, const char *envelope_from)
{
    int rc = mw_store_begin(s, envelope_from);
    if (rc == 0) rc = mw_store_write(s, data, len);
    if (rc == 0) rc = mw_store_commit(s);
    return rc;
}
