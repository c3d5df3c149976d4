/* Mail stores, the common part: open and free, errors, the byte pipeline
 * (CRLF to LF, mboxrd quoting, the output buffer, writes with the fault
 * hook) and the delivery API, which calls the backend chosen at open
 * through its ops table: maildir.c, mbox.c, mda.c.  One message at a time,
 * streamed. */
#include "store/store_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong delivery_counter; /* Q<n> of Maildir names: unique within the process */

unsigned long mwi_store_next_counter(void)
{
    return atomic_fetch_add(&delivery_counter, 1);
}

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

int mwi_store_sys_fail(mw_store *s, const char *what, const char *path, int e)
{
    char eb[128];
    return mwi_err_set(&s->err, MW_EIO, "cannot %s %s: %s", what, path,
                       mwi_errno_text(e, eb, sizeof eb));
}

int mwi_store_fault(mw_store *s, mw_store_op op, const char *path)
{
    return mwi_store_fault_check(s->fault, s->fault_ud, op, path);
}

/* ---- open / free ------------------------------------------------------------ */

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

/* The backend of each mw_store_kind, chosen once at open. */
static const struct mwi_store_ops *const backends[] = {
    [MW_STORE_MAILDIR] = &mwi_store_maildir_ops,
    [MW_STORE_MBOX] = &mwi_store_mbox_ops,
    [MW_STORE_MDA] = &mwi_store_mda_ops,
};

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
    if (strlen(target) > MWI_STORE_PATHMAX - 300)
        return mwi_err_set(err, MW_EINVAL, "store target is too long");
    if (opt->envelope_from && strpbrk(opt->envelope_from, " \t\r\n"))
        return mwi_err_set(err, MW_EINVAL, "envelope sender contains white space or CR/LF");

    mw_store *s = calloc(1, sizeof *s);
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    s->ops = backends[kind];
    s->fd = -1;
    s->own_budget.max = MWI_STORE_DEFER_OWN;
    s->budget = &s->own_budget;
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
    int rc = s->ops->open ? s->ops->open(s) : 0;
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
    free(s->deferred);
    free(s->target);
    free(s->hostname);
    free(s->envelope_from);
    free(s);
}

void mwi_store_budget_init(mwi_store_budget *b)
{
    struct rlimit rl;
    size_t max = 16384;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < max)
        max = rl.rlim_cur / 4 < 16 ? 16 : (size_t)(rl.rlim_cur / 4);
    b->open = 0;
    b->max = max;
}

int mwi_store_defer_files(mw_store *s, mwi_store_budget *b)
{
    if (s->ops != &mwi_store_maildir_ops) return 0;
    if (s->ndeferred)
        return mwi_err_set(&s->err, MW_ESTATE, "deferred files are waiting for mw_store_sync");
    if (b && !b->max) mwi_store_budget_init(b);
    s->budget = b ? b : &s->own_budget;
    s->defer_files = 1;
    return 0;
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

/* Writes all of p to the delivery's fd.  For the MDA the pipe is
 * non-blocking and every wait is bounded by the delivery's deadline. */
static int raw_write(mw_store *s, const char *p, size_t n)
{
    sigset_t old;
    int was_pending = 0, epipe = 0, rc = 0;
    if (s->ops->to_pipe) ignore_sigpipe_begin(&old, &was_pending);
    while (n > 0) {
        if (mwi_store_fault(s, MW_STORE_OP_WRITE, s->ops->fd_name(s))) {
            rc = mwi_store_sys_fail(s, "write", s->ops->fd_name(s), errno);
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
        if (w < 0 && errno == EAGAIN && s->ops->to_pipe) {
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
        rc = mwi_store_sys_fail(s, "write", s->ops->fd_name(s), w < 0 ? errno : EIO);
        break;
    }
    if (s->ops->to_pipe) ignore_sigpipe_end(&old, was_pending, epipe);
    return rc;
}

int mwi_store_flush(mw_store *s)
{
    int rc = s->outlen ? raw_write(s, s->out, s->outlen) : 0;
    s->outlen = 0;
    return rc;
}

int mwi_store_put_bytes(mw_store *s, const char *p, size_t n)
{
    while (n > 0) {
        if (s->outlen == MWI_STORE_OUTBUF) {
            int rc = mwi_store_flush(s);
            if (rc) return rc;
        }
        size_t k = MWI_STORE_OUTBUF - s->outlen;
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
    return mwi_store_put_bytes(s, &c, 1);
}

/* Emits the bytes held back while deciding whether a line is ">*From ". */
static int flush_prefix(mw_store *s, int quote)
{
    int rc = 0;
    if (quote) rc = put_char(s, '>');
    for (size_t i = 0; rc == 0 && i < s->gt; i++)
        rc = put_char(s, '>');
    if (rc == 0 && s->fm) rc = mwi_store_put_bytes(s, "From ", s->fm);
    if (s->gt || s->fm || quote) s->last_byte = s->fm ? "From "[s->fm - 1] : '>';
    s->in_prefix = 0;
    s->gt = s->fm = 0;
    return rc;
}

/* One message byte after CRLF conversion.  mboxrd: a line matching
 * ^>*From  gets one more '>' so a reader can strip exactly one. */
static int emit(mw_store *s, char c)
{
    if (s->ops->mboxrd && s->in_prefix) {
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
    if (c == '\n' && s->ops->mboxrd) {
        s->in_prefix = 1;
        s->gt = s->fm = 0;
    }
    return put_char(s, c);
}

static int feed(mw_store *s, const char *p, size_t n)
{
    int rc = 0;
    /* Fast path: nothing to convert or quote. */
    if (s->keep_crlf && !s->ops->mboxrd) {
        if (n) s->last_byte = (unsigned char)p[n - 1];
        return mwi_store_put_bytes(s, p, n);
    }
    int mbox = s->ops->mboxrd;
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
                if ((rc = mwi_store_put_bytes(s, p + i, j - i)) != 0) break;
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
    int rc = s->ops->begin(s, from);
    if (rc == 0) s->active = 1;
    return rc;
}

static int undo(mw_store *s)
{
    int rc = s->ops->undo(s);
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
    /* mbox adds its closing blank line before it flushes. */
    if (rc == 0 && !s->ops->mboxrd) rc = mwi_store_flush(s);
    if (rc == 0) rc = s->ops->commit(s);
    if (rc) undo(s);
    s->active = 0;
    return rc;
}

int mw_store_sync(mw_store *s)
{
    if (!s) return MW_EINVAL;
    return s->ops->sync ? s->ops->sync(s) : 0;
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
