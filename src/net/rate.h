/* Internal: the transfer-rate floor of a stream (mw_net_opts speed_limit /
 * speed_time_ms), as pure bookkeeping with no clock of its own: the stream
 * reports how long each I/O call waited and how many bytes it moved, so the
 * unit tests drive it with counted time, not wall time.
 *
 * Windows: a window is satisfied as soon as it holds limit * window_ms /
 * 1000 bytes, and the next one starts then; a window whose waiting time
 * reaches window_ms with fewer bytes fails.  So a failure means "averaged
 * below the floor over the last window_ms of waiting", and a trickle that
 * starts after a fast burst is caught at most window_ms after the burst. */
#ifndef MW_NET_RATE_H
#define MW_NET_RATE_H

#include <stdint.h>

typedef struct mw_rate {
    uint64_t need;         /* bytes a window must hold; 0 = no floor */
    int64_t window_ms;     /* its length in waiting time */
    int64_t waited_ms;     /* waiting time in the current window */
    uint64_t bytes;        /* bytes moved in the current window */
    uint64_t failed_bytes; /* what the failed window held (for the message) */
} mw_rate;

/* bytes_per_s 0 or window_ms <= 0: no floor. */
void mwi_rate_init(mw_rate *r, unsigned bytes_per_s, int window_ms);
/* 1 when a floor is set. */
int mwi_rate_on(const mw_rate *r);
/* Waiting time left in the current window (ms, >= 0); INT64_MAX when off. */
int64_t mwi_rate_budget(const mw_rate *r);
/* Records one I/O call that waited `ms` and moved `n` bytes.  Returns 0, or
 * -1 when the window ended below the floor (failed_bytes says how many it
 * held; the window then starts over). */
int mwi_rate_account(mw_rate *r, int64_t ms, uint64_t n);

#endif
