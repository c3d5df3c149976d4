/* The UIDL state journal: which messages of an account were delivered
 * already (RFC 1939 §7: a UID is 1..70 characters in 0x21..0x7E; we accept
 * up to MW_STATE_UID_MAX), kept in an open-addressing hash set, saved
 * atomically (temp file, fsync, rename, fsync of the directory). */
#include "store/store_int.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STATE_MAGIC       "mailwire-uidl 1"
#define STATE_FILE_MAX    (64u << 20) /* 64 MiB: ~250,000 entries of the longest UIDs */
#define STATE_ENTRIES_MAX 4000000u

typedef struct entry {
    char *uid;
    int64_t first_seen;
    int live;
} entry;

struct mw_state {
    char *path;
    int lock_fd;
    mw_store_fault_fn fault;
    void *fault_ud;
    mw_error err;
    entry *e; /* in insertion order; removed entries stay with live=0 */
    size_t n, cap;
    size_t live;
    uint32_t *slot; /* index+1 into e, 0 = empty; size nslot (a power of two) */
    size_t nslot;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* The slot holding uid, or the empty slot where it would go. */
static size_t find_slot(const mw_state *st, const char *uid, size_t n)
{
    size_t mask = st->nslot - 1, i = (size_t)hash(uid, n) & mask;
    while (st->slot[i]) {
        const entry *x = &st->e[st->slot[i] - 1];
        if (strncmp(x->uid, uid, n) == 0 && x->uid[n] == '\0') return i;
        i = (i + 1) & mask;
    }
    return i;
}

static int grow_slots(mw_state *st)
{
    size_t nn = st->nslot ? st->nslot * 2 : 64;
    uint32_t *ns = calloc(nn, sizeof *ns);
    if (!ns) return -1;
    free(st->slot);
    st->slot = ns;
    st->nslot = nn;
    for (size_t k = 0; k < st->n; k++)
        st->slot[find_slot(st, st->e[k].uid, strlen(st->e[k].uid))] = (uint32_t)(k + 1);
    return 0;
}

static int uid_valid(const char *uid, size_t n)
{
    if (n == 0 || n > MW_STATE_UID_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)uid[i] < 0x21 || (unsigned char)uid[i] > 0x7E) return 0;
    return 1;
}

/* Inserts or revives; returns 0, 1 when already live, or -1 (no memory/limit). */
static int insert(mw_state *st, const char *uid, size_t n, int64_t first_seen)
{
    if ((st->n + 1) * 2 > st->nslot && grow_slots(st) != 0) return -1;
    size_t i = find_slot(st, uid, n);
    if (st->slot[i]) {
        entry *x = &st->e[st->slot[i] - 1];
        if (x->live) return 1;
        x->live = 1;
        x->first_seen = first_seen;
        st->live++;
        return 0;
    }
    if (st->n >= STATE_ENTRIES_MAX) return -1;
    if (st->n == st->cap) {
        size_t nc = st->cap ? st->cap * 2 : 64;
        entry *ne = realloc(st->e, nc * sizeof *ne);
        if (!ne) return -1;
        st->e = ne;
        st->cap = nc;
    }
    char *copy = strndup(uid, n);
    if (!copy) return -1;
    st->e[st->n] = (entry){copy, first_seen, 1};
    st->slot[i] = (uint32_t)(st->n + 1);
    st->n++;
    st->live++;
    return 0;
}

mw_state *mwi_state_new_detached(void)
{
    mw_state *st = calloc(1, sizeof *st);
    if (st) st->lock_fd = -1;
    return st;
}

static int parse_fail(mw_state *st, const char *name, size_t line, const char *what)
{
    return mwi_err_set(&st->err, MW_EFORMAT,
                       "%s:%zu: %s (the state file is damaged; fix or remove it)", name, line,
                       what);
}

int mwi_state_parse(mw_state *st, const char *data, size_t len, const char *name)
{
    size_t pos = 0, line = 0;
    while (pos < len) {
        line++;
        const char *p = data + pos;
        const char *nl = memchr(p, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - p) : len - pos;
        if (n > MW_STATE_LINE_MAX)
            return mwi_err_set(&st->err, MW_ETOOBIG, "%s:%zu: line longer than %d bytes", name,
                               line, MW_STATE_LINE_MAX);
        /* Every line we write ends with LF; a last line without one means
         * the file was cut short (not by us: we rename whole files). */
        if (!nl) return parse_fail(st, name, line, "last line has no newline (file truncated?)");
        pos += n + 1;
        if (line == 1) {
            if (n != strlen(STATE_MAGIC) || memcmp(p, STATE_MAGIC, n) != 0)
                return parse_fail(st, name, line,
                                  "not a mailwire UIDL state file (expected \"" STATE_MAGIC "\")");
            continue;
        }
        size_t i = 0;
        int64_t t = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9') {
            if (t > (INT64_MAX - 9) / 10)
                return parse_fail(st, name, line, "time stamp out of range");
            t = t * 10 + (p[i] - '0');
            i++;
        }
        if (i == 0) return parse_fail(st, name, line, "expected \"SECONDS UID\"");
        if (i >= n || p[i] != ' ')
            return parse_fail(st, name, line, "expected one space after the time stamp");
        i++;
        if (!uid_valid(p + i, n - i))
            return parse_fail(st, name, line,
                              "bad UID (1..200 printable characters, no spaces or controls)");
        int r = insert(st, p + i, n - i, t);
        if (r < 0)
            return mwi_err_set(&st->err, MW_ENOMEM, "%s:%zu: out of memory or too many entries",
                               name, line);
        if (r > 0) return parse_fail(st, name, line, "UID listed twice");
    }
    if (line == 0 && len == 0) return 0; /* empty file: treated like a missing one */
    return 0;
}

static int read_file(mw_state *st, char **out, size_t *outlen)
{
    char eb[128];
    *out = NULL;
    *outlen = 0;
    int fd = open(st->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return mwi_err_set(&st->err, MW_EIO, "cannot open state file %s: %s", st->path,
                           mwi_errno_text(errno, eb, sizeof eb));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return mwi_err_set(&st->err, MW_EIO, "cannot stat %s: %s", st->path,
                           mwi_errno_text(errno, eb, sizeof eb));
    }
    if ((uint64_t)sb.st_size > STATE_FILE_MAX) {
        close(fd);
        return mwi_err_set(&st->err, MW_ETOOBIG, "state file %s is larger than %u bytes", st->path,
                           STATE_FILE_MAX);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        close(fd);
        return mwi_err_set(&st->err, MW_ENOMEM, "out of memory reading %s", st->path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            free(buf);
            close(fd);
            return mwi_err_set(&st->err, MW_EIO, "cannot read state file %s: %s", st->path,
                               mwi_errno_text(e, eb, sizeof eb));
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    *outlen = size;
    return 0;
}

static int take_lock(mw_state *st, int timeout_ms)
{
    char eb[128], lp[4200];
    if ((size_t)snprintf(lp, sizeof lp, "%s.lock", st->path) >= sizeof lp)
        return mwi_err_set(&st->err, MW_EINVAL, "state file path is too long");
    st->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (st->lock_fd < 0)
        return mwi_err_set(&st->err, MW_EIO, "cannot open lock file %s: %s", lp,
                           mwi_errno_text(errno, eb, sizeof eb));
    int64_t deadline = mw_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    /* flock locks belong to the open file description: released by the
     * kernel when a fetch dies, so a crash never leaves the account locked. */
    while (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR) continue;
        if (errno != EWOULDBLOCK)
            return mwi_err_set(&st->err, MW_EIO, "cannot lock %s: %s", lp,
                               mwi_errno_text(errno, eb, sizeof eb));
        if (mw_now_ms() >= deadline)
            return mwi_err_set(&st->err, MW_ETEMP,
                               "%s is locked: another fetch of this account is running", lp);
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return 0;
}

int mw_state_open(mw_state **out, const char *path, const mw_state_options *opt, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_state_open: out is NULL");
    *out = NULL;
    mw_state_options def = MW_STATE_OPTIONS_INIT;
    if (!opt) opt = &def;
    if (opt->version != MW_STATE_OPTIONS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "state options: unknown version %u", opt->version);
    if (!path || !*path || strlen(path) > 4000)
        return mwi_err_set(err, MW_EINVAL, "state file path is empty or too long");
    mw_state *st = mwi_state_new_detached();
    if (!st || !(st->path = strdup(path))) {
        mw_state_free(st);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    st->fault = opt->fault;
    st->fault_ud = opt->fault_userdata;
    int rc = take_lock(st, opt->lock_timeout_ms);
    char *data = NULL;
    size_t len = 0;
    if (rc == 0) rc = read_file(st, &data, &len);
    if (rc == 0 && data) rc = mwi_state_parse(st, data, len, path);
    free(data);
    if (rc) {
        if (err) *err = st->err;
        mw_state_free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void mw_state_free(mw_state *st)
{
    if (!st) return;
    if (st->lock_fd >= 0) close(st->lock_fd); /* releases the flock */
    for (size_t i = 0; i < st->n; i++)
        free(st->e[i].uid);
    free(st->e);
    free(st->slot);
    free(st->path);
    free(st);
}

const mw_error *mw_state_error(const mw_state *st)
{
    return &st->err;
}

static const entry *lookup(const mw_state *st, const char *uid)
{
    if (!uid || !st->nslot) return NULL;
    size_t n = strlen(uid);
    size_t i = find_slot(st, uid, n);
    if (!st->slot[i]) return NULL;
    const entry *x = &st->e[st->slot[i] - 1];
    return x->live ? x : NULL;
}

int mw_state_contains(const mw_state *st, const char *uid)
{
    return lookup(st, uid) != NULL;
}

int64_t mw_state_first_seen(const mw_state *st, const char *uid)
{
    const entry *x = lookup(st, uid);
    return x ? x->first_seen : -1;
}

int mw_state_add(mw_state *st, const char *uid, int64_t first_seen)
{
    if (!uid || !uid_valid(uid, strlen(uid)))
        return mwi_err_set(&st->err, MW_EINVAL, "UID must be 1..%d characters in 0x21..0x7E",
                           MW_STATE_UID_MAX);
    if (first_seen < 0) return mwi_err_set(&st->err, MW_EINVAL, "first-seen time is negative");
    int r = insert(st, uid, strlen(uid), first_seen);
    if (r < 0) return mwi_err_set(&st->err, MW_ENOMEM, "out of memory or too many UIDs");
    return 0;
}

void mw_state_remove(mw_state *st, const char *uid)
{
    entry *x = (entry *)lookup(st, uid);
    if (x) {
        x->live = 0;
        st->live--;
    }
}

size_t mw_state_count(const mw_state *st)
{
    return st->live;
}

void mw_state_filter(mw_state *st, mw_state_visit_fn fn, void *userdata)
{
    for (size_t i = 0; i < st->n; i++) {
        if (st->e[i].live && fn(st->e[i].uid, st->e[i].first_seen, userdata)) {
            st->e[i].live = 0;
            st->live--;
        }
    }
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int mw_state_save(mw_state *st)
{
    char eb[128], tmp[4200], dir[4200];
    if (!st->path) return mwi_err_set(&st->err, MW_ESTATE, "state has no file");
    snprintf(tmp, sizeof tmp, "%s.tmp", st->path);
    if (mwi_store_dirname(dir, sizeof dir, st->path) != 0)
        return mwi_err_set(&st->err, MW_EINVAL, "state file path is too long");
    const char *what = "create";
    int fd = -1;
    if (mwi_store_fault_check(st->fault, st->fault_ud, MW_STORE_OP_OPEN, tmp)) goto fail;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) goto fail;
    what = "write";
    char buf[65536];
    size_t len = (size_t)snprintf(buf, sizeof buf, "%s\n", STATE_MAGIC);
    for (size_t i = 0; i <= st->n; i++) {
        if (i == st->n || len + MW_STATE_UID_MAX + 32 > sizeof buf) {
            if (mwi_store_fault_check(st->fault, st->fault_ud, MW_STORE_OP_WRITE, tmp) ||
                write_all(fd, buf, len) != 0)
                goto fail;
            len = 0;
        }
        if (i < st->n && st->e[i].live)
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%" PRId64 " %s\n",
                                    st->e[i].first_seen, st->e[i].uid);
    }
    what = "fsync";
    if (mwi_store_fault_check(st->fault, st->fault_ud, MW_STORE_OP_FSYNC, tmp) || fsync(fd) != 0)
        goto fail;
    what = "close";
    int c = close(fd);
    fd = -1;
    if (c != 0) goto fail;
    what = "rename";
    if (mwi_store_fault_check(st->fault, st->fault_ud, MW_STORE_OP_RENAME, st->path) ||
        rename(tmp, st->path) != 0)
        goto fail;
    /* The rename is durable only once the directory is on disk. */
    int e = mwi_store_fsync_dir(st->fault, st->fault_ud, dir);
    if (e)
        return mwi_err_set(&st->err, MW_EIO, "cannot fsync directory %s after saving %s: %s", dir,
                           st->path, mwi_errno_text(e, eb, sizeof eb));
    return 0;
fail:;
    int err = errno;
    if (fd >= 0) close(fd);
    unlink(tmp);
    return mwi_err_set(&st->err, MW_EIO, "cannot %s %s (state %s unchanged): %s", what, tmp,
                       st->path, mwi_errno_text(err, eb, sizeof eb));
}
