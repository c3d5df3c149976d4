/* Internal: the loop's SMTP batch job held between messages and driven
 * over a blocking stream (smtp_held.c): what mw_smtp_open, mw_smtp_send
 * and mw_smtp_quit (smtp.h) are to stand on, one server and port at a
 * time (mw_smtp_open's failover goes around it). */
#ifndef MW_LOOP_SMTP_HELD_H
#define MW_LOOP_SMTP_HELD_H

#include "mailwire/smtp.h"

#include <stdint.h>

typedef struct mwi_smh mwi_smh;

/* Connects to host port (or takes given, also on failure), then the
 * greeting, EHLO, STARTTLS as so->tls says, QUED, AUTH, all on the
 * machine (smtp_job.c, smtp_auth.c); deadline bounds it as a whole
 * (MW_NO_DEADLINE: none).  The options are src/smtp's, checked there.
 * Returns 0 with *out set, or the code with *err the session's error
 * ("HOST port N: why", as mw_smtp_open's failover says it) and *out
 * NULL; *stop 1 when the failure came in AUTH (no other server would
 * do better). */
int mwi_smh_open(mwi_smh **out, const char *host, unsigned port, const mw_smtp_opts *so,
                 mw_stream *given, int64_t deadline, int *stop, mw_error *err);
/* One message, as mw_smtp_send says it: the code, *result (may be NULL)
 * the result, *err the error.  The session stays held unless it died. */
int mwi_smh_send(mwi_smh *h, const mw_smtp_msg *m, int tx_max_time_ms, mw_smtp_result **result,
                 mw_error *err);
/* A batch, as mw_smtp_send_batch says it (smtp.h): next's messages one
 * after the other on the held session, each envelope behind the previous
 * data when pipelining allows it and pipelining is 1; each outcome to
 * done; next's 0 ends the batch with the session held, its negative code
 * too (returned). */
int mwi_smh_batch(mwi_smh *h, mw_smtp_next_fn next, mw_smtp_done_fn done, void *ud,
                  int tx_max_time_ms, int pipelining, mw_error *err);
/* QUIT: 0 when it said 221, else the code with *err set.  The session
 * is over after it. */
int mwi_smh_quit(mwi_smh *h, mw_error *err);
/* 1 while another message can go (mw_smtp_alive). */
int mwi_smh_alive(const mwi_smh *h);
/* mw_smtp_tls_info of the driver's TLS stream; MW_EUNSUPPORTED without. */
int mwi_smh_tls_info(const mwi_smh *h, mw_tls_info *out);
/* The session as the accessors read it (greeting, EHLO texts, caps,
 * server, TLS, AUTH mechanism); lives as long as h. */
const mw_smtp *mwi_smh_session(const mwi_smh *h);
void mwi_smh_free(mwi_smh *h);

#endif
