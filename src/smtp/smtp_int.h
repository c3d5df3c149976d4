/* Internals shared by the SMTP session's files (docs/ARCHITECTURE.md).
 * The I/O (greeting, EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA or BDAT, RSET,
 * QUIT) is the loop's machine's (src/loop/smtp_*.c), held between messages
 * for the blocking API (src/loop/smtp_held.c); here is what it prepares
 * and reports with:
 *   smtp.c        the options, failover over servers and ports, the
 *                 state setter, the accessors
 *   transaction.c one transaction prepared (envelope, MAIL and RCPT lines,
 *                 the result, the refusal texts); mw_smtp_send
 *   bcc.c         Tcllib's Bcc digest, a second transaction
 *   message.c     the message source (data, fd, read), the header read
 *                 ahead, encoding (dot-stuffing) and BDAT chunks
 *   batch.c       mw_smtp_send_batch */
#ifndef MW_SMTP_INT_H
#define MW_SMTP_INT_H

#include "mailwire/smtp.h"

#include "proto/smtp_data.h"
#include "proto/smtp_reply.h"
#include "smtp/envelope.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

/* One state variable, changed only in mwi_smtp_set_state (docs/ARCHITECTURE.md). */
enum mwi_smtp_st {
    ST_INIT,   /* connecting, greeting, EHLO, TLS, AUTH */
    ST_READY,  /* between transactions */
    ST_DEAD,   /* the connection failed or the server closed it */
    ST_CLOSED, /* QUIT sent */
};

/* Body chunks are read and encoded this many octets at a time; BDAT
 * chunks are about this large. */
#define MWI_SMTP_CHUNK (64 * 1024)

struct mwi_smh;
struct mw_smtp {
    struct mwi_smh *held;        /* the loop's machine held (src/loop/smtp_held.h), or NULL */
    const mw_smtp_opts *opening; /* during mw_smtp_open only */
    enum mwi_smtp_st state;
    mw_error err;
    mw_smtp_reply *rep;
    mw_smtp_caps caps;
    int tls_active;
    char *client;
    mw_trace_fn trace;
    void *trace_ud;
    char *server;
    unsigned port;
    char *ehlo_text[2];
    char *greeting; /* the 220 text (mw_smtp_greeting) */
    int helo_only;  /* EHLO refused, HELO used (mw_smtp_esmtp) */
    char auth_mech[32];
    char hostname[256];
    int maxtime_ms;
    int no_message_pipelining; /* mw_smtp_set_message_pipelining(s, 0) */
    int stop;                  /* an error not worth trying the next server for */
    /* Kept across the messages of a batch instead of allocated for each:
     * the encoded output. */
    mw_buf xout;
    /* The loop's session shell (src/loop/smtp_job.h) has no connection:
     * the TLS details copied for mw_smtp_tls_info (mw_loop_smtp_session). */
    mw_tls_info *tls_info;
};

/* ---- the session (smtp.c) ---- */

void mwi_smtp_set_state(mw_smtp *s, enum mwi_smtp_st st);
/* Makes an error of the reply in s->rep: 4xx temporary, 5xx permanent. */
int mwi_smtp_reply_error(mw_smtp *s, const char *what);
/* A control octet (or, unless allowed, a space) in v. */
int mwi_smtp_bad_arg(const char *v, int allow_space);

/* ---- the message source (message.c) ---- */

typedef struct mwi_smtp_src {
    const mw_smtp_msg *m;
    size_t pos; /* memory: next octet */
    char *pre;  /* fd/callback: octets read ahead (the header block) */
    size_t prelen, prepos;
    int eof;
} mwi_smtp_src;

/* Reads the header block ahead: into r->pre (streams) or just measures it
 * (memory).  Points *hdr and *hlen at the block. */
int mwi_smtp_src_header(mwi_smtp_src *r, const char **hdr, size_t *hlen, mw_error *err);
/* Whether the rest of the message is in memory (header read-ahead, data). */
int mwi_smtp_src_in_memory(const mwi_smtp_src *r);

/* The start of a transfer: the encoder, its output, and a local failure
 * met while encoding ahead (reported by transfer as if met there). */
typedef struct mwi_smtp_xfer {
    mw_smtp_data_enc enc;
    mw_buf out;
    mw_error local;
    int rc;
    int started; /* header encoded and the original header skipped */
    int pending;
    int wrc;         /* the write's outcome */
    int outstanding; /* BDAT replies owed */
    int chunking;
    int hold; /* set by the caller: queue the end of the data, do not mwi_smtp_flush */
    int held; /* it was: the caller flushes (with the next envelope) */
} mwi_smtp_xfer;

/* Encodes ahead, while the replies to the envelope are on their way. */
void mwi_smtp_xfer_ahead(mwi_smtp_xfer *x, mwi_smtp_src *r, const mw_smtp_env *env, size_t skip,
                         int forbid8, char *buf, int chunking);
/* Encodes the next piece of the source into x->out (after
 * mwi_smtp_xfer_ahead), reading into buf (MWI_SMTP_CHUNK octets): 0 more
 * to come, 1 the end is encoded too, or a negative code (x->local says).
 * No I/O but the source's: the loop's SMTP job streams with it. */
int mwi_smtp_xfer_more(mwi_smtp_xfer *x, mwi_smtp_src *r, int forbid8, char *buf);
/* Hands the output buffer back to the session for the next message. */
void mwi_smtp_xout_release(mw_smtp *s, mw_buf *b);

/* ---- the transaction (transaction.c) ---- */

/* One transaction, in three steps so that a batch can prepare the next
 * message while the server is still answering this one:
 *   mwi_smtp_tx_prepare  checks the message, reads its header ahead, builds the
 *               envelope, the result and the MAIL line (no network);
 *   tx_begin    RSET, MAIL, RCPT, DATA/BDAT and the data, up to the mwi_smtp_flush
 *               of its end, leaving the final reply unread (xf.pending);
 *   mwi_smtp_tx_end      reads what is owed, resets after a failure, sends the Bcc
 *               digest, frees.
 * mw_smtp_send runs the three in a row. */
enum mwi_smtp_tx_after { AFTER_OUT = 0, AFTER_RESET, AFTER_421 };
typedef struct mwi_smtp_tx {
    mw_smtp_msg m; /* the caller's message (version 1 upgraded) */
    mwi_smtp_src r;
    mwi_smtp_xfer xf;
    mw_smtp_env env;
    int built; /* env and res exist: mwi_smtp_tx_end must run */
    mw_smtp_result *res;
    size_t skip;
    int chunking, forbid8, pipelining, dsn;
    char mail[700];
    size_t ml;
    enum mwi_smtp_tx_after after;
    int pipe_data; /* DATA went with the envelope (PIPELINING) */
    int pipe_bdat; /* the whole message went with it as BDAT LAST (RFC 3030 §4.2) */
    int had_rset;  /* an RSET reply is owed before MAIL's */
    int env_sent;  /* mwi_smtp_tx_envelope is done */
    int prep_rc;   /* batch: mwi_smtp_tx_prepare's outcome, kept until its turn */
    mw_error prep_err;
} mwi_smtp_tx;

/* Every recipient's reply counted (accepted: 250 or 251; permanent: 5xx)
 * into *nacc, *nperm and res->nrejected; 1 at the first 421 (the server
 * is closing), the rest then uncounted. */
int mwi_smtp_tally_rcpts(mw_smtp_result *res, size_t *nacc, size_t *nperm);

/* The reply's text, printable, for a result; NULL when out of memory. */
char *mwi_smtp_reply_text_dup(const mw_smtp_reply *rep);
int mwi_smtp_tx_prepare(mw_smtp *s, mwi_smtp_tx *t, const mw_smtp_msg *m);
void mwi_smtp_tx_discard(mw_smtp *s, mwi_smtp_tx *t);
/* The RCPT line for one address (ORCPT may triple a 256-octet address):
 * its length, 0 when over cap.  No I/O (the loop's job uses it too). */
#define MWI_SMTP_RCPT_LINE 1200
size_t mwi_smtp_rcpt_line(char *line, size_t cap, const mw_smtp_msg *m, int dsn,
                          const char *address);
/* Keeps the reply in s->rep to one RCPT in its result. */
void mwi_smtp_rcpt_reply(mw_smtp *s, mw_smtp_rcpt *rr);
/* The error (in s->err) and the result when recipients were refused and
 * the message is not sent: the first refusal names the reason.  nperm:
 * how many were refused permanently. */
int mwi_smtp_rcpt_refusal(mw_smtp *s, mw_smtp_result *res, size_t nperm);
/* Sets the "not ready to send" error; returns MW_ESTATE. */
int mwi_smtp_not_ready(mw_smtp *s);

/* ---- the Bcc digest (bcc.c) ---- */

/* The Bcc copy to env's Bcc recipients; their results are appended to res. */
/* Its two halves without I/O (the loop's SMTP job runs the transaction
 * between them): the Bcc copy's message into *b (*built holds its bytes,
 * to free), and the second transaction's recipients appended to res (r2
 * freed; rc kept, or MW_ENOMEM). */
int mwi_smtp_bcc_msg(mw_smtp *s, const mw_smtp_msg *m, const mw_smtp_env *env, size_t skip,
                     const mw_smtp_result *res, mw_smtp_msg *b, char **built);
int mwi_smtp_bcc_merge(mw_smtp *s, mw_smtp_result *res, mw_smtp_result *r2, int rc);

#endif
