/* Secrets (passwords, OAuth tokens) from the first line of a descriptor, a
 * file or a command's output: one reader, one limit (MW_SECRET_MAX), every
 * copy wiped. */
#include "mailwire/config.h"

#include "util/err.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static void wipe(void *p, size_t n)
{
    if (p && n) explicit_bzero(p, n);
}

int mw_secret_from_fd(char **out, int fd, const char *what, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_secret_from_fd: bad arguments");
    *out = NULL;
    if (!what) what = "the secret";
    /* The longest line, its CR LF, and one byte to tell "longer". */
    size_t cap = MW_SECRET_MAX + 3, len = 0;
    char *buf = malloc(cap);
    if (!buf) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    char *nl = NULL;
    while (!nl && len < cap) {
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            wipe(buf, len);
            free(buf);
            return mwi_err_set(err, MW_EIO, "%s: cannot read: %s", what, MW_ERRNO_TEXT(e));
        }
        if (r == 0) break;
        nl = memchr(buf + len, '\n', (size_t)r);
        len += (size_t)r;
    }
    size_t n = nl ? (size_t)(nl - buf) : len;
    if (n > 0 && buf[n - 1] == '\r') n--;
    int rc = 0;
    if (n > MW_SECRET_MAX)
        rc = mwi_err_set(err, MW_ETOOBIG, "%s: the first line is over %u bytes", what,
                         (unsigned)MW_SECRET_MAX);
    else if (n == 0)
        rc = mwi_err_set(err, MW_EFORMAT, "%s: the first line is empty", what);
    else if (memchr(buf, '\0', n))
        rc = mwi_err_set(err, MW_EFORMAT, "%s: NUL byte in the first line", what);
    else if (memchr(buf, '\r', n))
        rc = mwi_err_set(err, MW_EFORMAT, "%s: CR in the first line", what);
    if (rc) {
        wipe(buf, len);
        free(buf);
        return rc;
    }
    wipe(buf + n, len - n);
    buf[n] = '\0';
    *out = buf;
    return 0;
}

int mw_secret_from_file(char **out, const char *path, mw_error *err)
{
    if (!out || !path) return mwi_err_set(err, MW_EINVAL, "mw_secret_from_file: bad arguments");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mwi_err_set(err, MW_EIO, "%s: %s", path, MW_ERRNO_TEXT(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = mwi_err_set(err, MW_EIO, "%s: %s", path, MW_ERRNO_TEXT(errno));
    else if (!S_ISREG(sb.st_mode))
        rc = mwi_err_set(err, MW_EIO, "%s: not a regular file", path);
    else if (sb.st_mode & 077)
        rc = mwi_err_set(err, MW_EPOLICY, "%s: can be read by group or others (chmod 600 %s)", path,
                         path);
    if (!rc) rc = mw_secret_from_fd(out, fd, path, err);
    close(fd);
    return rc;
}

int mw_secret_from_command(char **out, const char *command, mw_error *err)
{
    if (!out || !command || !*command)
        return mwi_err_set(err, MW_EINVAL, "mw_secret_from_command: bad arguments");
    *out = NULL;
    mwi_proc pr;
    int rc = mwi_proc_start(&pr, command, MWI_PROC_OUT_PIPE, err);
    if (rc) return rc;
    char *secret = NULL;
    mw_error mine;
    mw_error_clear(&mine);
    rc = mw_secret_from_fd(&secret, pr.out, "the command's output", &mine);
    /* Drain the rest so the command is not killed by SIGPIPE mid-write. */
    char sink[512];
    ssize_t r;
    while ((r = read(pr.out, sink, sizeof sink)) > 0 || (r < 0 && errno == EINTR))
        ;
    wipe(sink, sizeof sink);
    close(pr.out);
    pr.out = -1;
    /* No deadline on purpose: the command may be asking a person for a PIN. */
    int status = 0;
    mwi_proc_wait(&pr, MW_NO_DEADLINE, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (secret) wipe(secret, strlen(secret));
        free(secret);
        if (WIFEXITED(status))
            return mwi_err_set(err, MW_EIO, "the command failed (exit status %d)",
                               WEXITSTATUS(status));
        return mwi_err_set(err, MW_EIO, "the command was killed by signal %d", WTERMSIG(status));
    }
    if (rc) {
        if (err) *err = mine;
        return rc;
    }
    *out = secret;
    return 0;
}
