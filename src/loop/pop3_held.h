/* Internal: a POP3 job of the loop held between commands and driven over
 * a blocking stream (pop3_held.c): what the blocking API of pop3.h
 * (src/pop3) stands on. */
#ifndef MW_LOOP_POP3_HELD_H
#define MW_LOOP_POP3_HELD_H

#include "mailwire/pop3.h"

#include <stddef.h>
#include <stdint.h>

typedef struct mwi_p3h mwi_p3h;

/* Connects (or takes po->stream, also on failure), reads the greeting,
 * asks CAPA, does STLS as po->tls says (CAPA again after it), logs in as
 * po says and asks STAT unless skip_stat or MW_POP3_AUTH_NONE, all on
 * the machine (src/loop/pop3_job.c, pop3_login.c); the job then waits
 * for its next command.  The options are src/pop3's, checked there.
 * Returns 0 with *out set, or the code with *err the session's error and
 * *out NULL. */
int mwi_p3h_open(mwi_p3h **out, const char *host, const mw_pop3_opts *po, mw_error *err);
void mwi_p3h_free(mwi_p3h *h);

/* What the session learned while opening; strings live as long as h. */
typedef struct mwi_p3h_info {
    const char *greeting;  /* printable */
    const char *auth_used; /* "USER", "APOP", "SASL PLAIN", "" */
    char *const *capa;     /* CAPA's lines (printable, at most 128, none empty) */
    size_t ncapa;
    int capa_known; /* CAPA said +OK */
    uint64_t count; /* STAT's */
    int have_count;
    int secure; /* over TLS */
} mwi_p3h_info;
void mwi_p3h_info_get(const mwi_p3h *h, mwi_p3h_info *out);

/* Ends the job and hands its stream over, with the bytes that came past
 * the last reply (*left, valid until mwi_p3h_free). */
mw_stream *mwi_p3h_release(mwi_p3h *h, const char **left, size_t *nleft);

#endif
