/* Internal: the descriptor stream kind (s_fd.c), whose I/O the TCP and
 * command kinds reuse with vtables of their own (s_tcp.c, s_cmd.c). */
#ifndef MW_NET_S_FD_H
#define MW_NET_S_FD_H

#include "net/stream.h"

#include <stddef.h>
#include <stdint.h>

/* The state of a descriptor stream: s->impl of the fd, TCP and command
 * kinds (a kind with more state puts this first). */
struct mwi_fd {
    int rfd, wfd;
    int own;         /* close rfd/wfd on free */
    int wfd_socket;  /* wfd is a socket: send(MSG_NOSIGNAL) avoids SIGPIPE */
    int rd_short;    /* the last read returned less than asked: wait before the next */
    int sock_timed;  /* a socket left blocking (s_tcp.c): reads without a cancel token
                      * block in recv under SO_RCVTIMEO (one system call per wait, not
                      * poll + read); every other call passes MSG_DONTWAIT */
    int rcvtimeo_ms; /* the SO_RCVTIMEO now set on rfd (0 = none, block) */
};

/* The fd kind's operations, for the vtables of the kinds built on it.
 * mwi_fd_read waits in poll (or reads at once after a full read) and
 * reads with read(2), or recv(MSG_DONTWAIT) on a blocking socket. */
int mwi_fd_read(mw_stream *s, void *buf, size_t len, size_t *got, int64_t deadline, mw_error *err);
int mwi_fd_write(mw_stream *s, const void *buf, size_t len, size_t *done, int64_t deadline,
                 mw_error *err);
int mwi_fd_pollfd(const mw_stream *s);
void mwi_fd_close(mw_stream *s); /* closes owned descriptors */

#endif
