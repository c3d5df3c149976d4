/* The command stream kind: a child process run with /bin/sh -c whose
 * stdin and stdout are the connection (a tunnel such as "ssh host nc
 * localhost 110").  Its I/O is the descriptor kind's (s_fd.c) over one end
 * of a socketpair; what is its own is the child, ended on close. */
#include "net/s_fd.h"
#include "util/err.h"
#include "util/proc.h"

/* The command gets EOF on stdin (the descriptors closed first) and a
 * bounded time to finish, then TERM, then KILL, so freeing a stream never
 * leaves a zombie nor hangs for long. */
static void cmd_close(mw_stream *s)
{
    mwi_fd_close(s);
    if (s->pid > 0) {
        mwi_proc pr = {s->pid, -1, -1};
        mwi_proc_end(&pr, 1000, NULL);
    }
}

static const mwi_stream_vt cmd_vt = {"command", mwi_fd_read, mwi_fd_write, mwi_fd_pollfd,
                                     cmd_close};

int mw_stream_command(mw_stream **out, const char *command, const mw_net_opts *opts, mw_error *err)
{
    if (!out) return mwi_err_set(err, MW_EINVAL, "no output stream pointer");
    *out = NULL;
    if (!command || !*command) return mwi_err_set(err, MW_EINVAL, "empty command");
    mw_net_opts o;
    int rc = mwi_net_opts_load(&o, opts, err);
    if (rc) return rc;
    mw_stream *s = mwi_stream_new(&cmd_vt, sizeof(struct mwi_fd));
    if (!s) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    /* One socketpair end is the child's stdin and stdout: a socket lets us
     * send with MSG_NOSIGNAL, and shutdown gives the child its EOF. */
    mwi_proc pr;
    rc = mwi_proc_start(&pr, command, MWI_PROC_SOCKET, err);
    if (rc) {
        mw_stream_free(s); /* no child, own 0: nothing to close */
        return rc;
    }
    struct mwi_fd *f = s->impl;
    f->rfd = f->wfd = pr.in;
    f->own = 1;
    f->wfd_socket = 1;
    s->pid = pr.pid;
    if (opts) mwi_stream_apply_opts(s, &o, mw_now_ms()); /* NULL: no timeout, no limits (as ever) */
    *out = s;
    return 0;
}
