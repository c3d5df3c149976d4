/* Cancellation tokens: an atomic flag for cheap checks plus a self-pipe so a
 * thread blocked in poll() wakes up.  mw_cancel_request() only does an atomic
 * store and a write(2), both async-signal-safe (POSIX.1-2017 §2.4.3). */
#include "net/cancel.h"
#include "util/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct mw_cancel {
    atomic_int flag;
    int pipe[2]; /* [0] polled by waiters, [1] written by mw_cancel_request */
};

int mw_cancel_new(mw_cancel **out, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "mw_cancel_new: no place for the token");
    *out = NULL;
    mw_cancel *c = calloc(1, sizeof *c);
    if (!c) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (pipe2(c->pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        int e = errno;
        free(c);
        char b[96];
        return mwi_err_set(err, MW_EIO, "cancel token: pipe: %s", mwi_errno_text(e, b, sizeof b));
    }
    atomic_init(&c->flag, 0);
    *out = c;
    return 0;
}

void mw_cancel_request(mw_cancel *c)
{
    if (!c) return;
    int saved = errno; /* a signal handler must leave errno as it found it */
    atomic_store(&c->flag, 1);
    /* A full pipe already wakes every poller, so EAGAIN is fine to ignore. */
    ssize_t r = write(c->pipe[1], "!", 1);
    (void)r;
    errno = saved;
}

int mw_cancel_requested(const mw_cancel *c)
{
    return c ? atomic_load(&((mw_cancel *)c)->flag) : 0;
}

void mw_cancel_reset(mw_cancel *c)
{
    if (!c) return;
    atomic_store(&c->flag, 0);
    char tmp[64];
    while (read(c->pipe[0], tmp, sizeof tmp) > 0) {}
}

void mw_cancel_free(mw_cancel *c)
{
    if (!c) return;
    close(c->pipe[0]);
    close(c->pipe[1]);
    free(c);
}

int mwi_cancel_fd(const mw_cancel *c)
{
    return c ? c->pipe[0] : -1;
}
