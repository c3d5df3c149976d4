/* Internal: Happy Eyeballs on the loop (RFC 8305 §5), for lconn.c.  The
 * addresses of a name (c->addrs, in util/addrorder.h's order, the blocking
 * side's) are raced: a connect is started, the next one an attempt delay
 * later (mwi_loop_attempt_delay, src/net/s_tcp.c's) while the earlier ones
 * keep going, or at once when one fails; the connects in flight are the
 * job's other descriptors (mwi_loop_set_xfds), so they are watched under
 * mw_loop_run and through mw_loop_fds alike; the first to connect becomes
 * the job's descriptor and the others are closed.  One deadline for the
 * whole race: the connect timeout, from the race's start, as
 * src/net/s_tcp.c has it; failures in its words ("cannot connect to H
 * port P: REASON (N addresses tried, last A)", "connect to H port P timed
 * out after T ms (...)"). */
#ifndef MW_LOOP_LEYES_H
#define MW_LOOP_LEYES_H

#include "loop/lconn.h"

#include <stdint.h>

/* Starts the race over c->addrs (c->naddrs of them).  Returns 0 to wait
 * (a connect that succeeded at once is the job's descriptor already, the
 * race over), -1 when the job ended (every address failed at once). */
int mwi_leyes_start(mwi_lconn *c);
/* Settles the connects that finished and starts those due.  Returns 1
 * when one connected (the job's descriptor now, the race over), 0 to
 * wait, -1 when the job ended.  At the session's max-time it returns 0:
 * lconn.c says those words. */
int mwi_leyes_step(mwi_lconn *c);
/* When the race needs a step without an event (the next attempt due, or
 * its deadline); MW_NO_DEADLINE without a race. */
int64_t mwi_leyes_deadline(const mwi_lconn *c);
/* Closes the connects still in flight and frees the race (none: nothing). */
void mwi_leyes_free(mwi_lconn *c);

#endif
