/* Internal: a POP3 job of the loop held between commands and driven over
 * a blocking stream (pop3_held.c): what the blocking API of pop3.h
 * (src/pop3) stands on. */
#ifndef MW_LOOP_POP3_HELD_H
#define MW_LOOP_POP3_HELD_H

#include "mailwire/loop.h"
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
    int secure;     /* over TLS */
} mwi_p3h_info;
void mwi_p3h_info_get(const mwi_p3h *h, mwi_p3h_info *out);

/* A command's pieces, in order (mw_loop_pop3_reply, loop.h); fail is
 * set (kind MWI_P3H_FAIL) when a command failed and left the session
 * usable (a -ERR).  A value other than 0 stops: the rest of the reply is
 * read, a run sends no more and what is in flight is read. */
#define MWI_P3H_FAIL 5
typedef int (*mwi_p3h_fn)(const mw_loop_pop3_reply *r, const mw_error *fail, void *ud);

/* How a run (mw_loop_pop3_cmd.last) goes: over list[0..nlist) instead
 * of msg..last (numbers checked by the caller); on after an -ERR; a
 * window of max_cmds commands (0: the session's) and of max_bytes of
 * LIST sizes (0: none); sizes bounding each RETR and TOP; a UIDL line
 * with a bad unique-id giving uid "". */
typedef struct mwi_p3h_opts {
    const mw_pop3_listing *list;
    size_t nlist;
    int go_on;
    unsigned max_cmds;
    uint64_t max_bytes;
    int lenient_uidl;
} mwi_p3h_opts;

/* Sends cmds[0..n) (n 2: LIST and UIDL, in one write when pipelining)
 * and drives the stream until their replies are whole, each piece to fn.
 * Returns 0, or the code with *err set: of a command that failed (the
 * job is still held), or of the job's end (mwi_p3h_alive 0 then). */
int mwi_p3h_run(mwi_p3h *h, const mw_loop_pop3_cmd *cmds, size_t n, const mwi_p3h_opts *ro,
                mwi_p3h_fn fn, void *ud, mw_error *err);
/* QUIT; *confirmed 1 when it said +OK.  The job is over after it. */
int mwi_p3h_quit(mwi_p3h *h, int *confirmed, mw_error *err);
int mwi_p3h_alive(const mwi_p3h *h);
/* The message count (STAT's, or set), 0 without one. */
int mwi_p3h_count(const mwi_p3h *h, uint64_t *count);
void mwi_p3h_set_count(mwi_p3h *h, uint64_t count);
/* After a CAPA: whether the window is used (pipelining). */
void mwi_p3h_set_pipelining(mwi_p3h *h, int on);
int mwi_p3h_retr_mode(const mwi_p3h *h);
int mwi_p3h_tls_info(const mwi_p3h *h, mw_tls_info *out);
/* The loop job's options that src/pop3's give as they are (host, port,
 * TLS mode, login, trace, msex, retr_mode); the held session and the
 * fetch job set the rest (TLS options, window, net's limits). */
void mwi_loop_pop3_opts_from(mw_loop_pop3_opts *lo, const mw_pop3_opts *po, const char *host);

#endif
