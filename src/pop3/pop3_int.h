/* Internal: the POP3 session shared by the files of src/pop3. */
#ifndef MW_POP3_INT_H
#define MW_POP3_INT_H

#include "mailwire/pop3.h"
#include "net/conn.h"
#include "proto/pop3_codec.h"

/* One state variable, changed only in mwi_pop3_set_state() (docs/ARCHITECTURE.md). */
enum pop3_state {
    P3_NEW = 0, /* nothing sent yet */
    P3_AUTH,    /* RFC 1939 §4 AUTHORIZATION */
    P3_TRANS,   /* TRANSACTION */
    P3_CLOSED,  /* QUIT done or connection closed on purpose */
    P3_BROKEN,  /* a network/TLS/protocol error: no more commands */
};

#define P3_MAX_CAPA 128
/* A listing has at most this many entries, whatever the count says: a
 * reply that never ends stops here, and memory stays bounded (16 MB of LIST
 * entries, 80 MB of UIDL ones); a larger mailbox cannot be listed. */
#define P3_MAX_LIST_ITEMS (1000u * 1000)
/* RFC 1939 §5 sizes are exact, but servers that store bare LF may count
 * their own line ends: a message may run past its announced size by
 * max(size, 64 KiB), not more (so at most twice the size, or size + 64 KiB
 * for small ones).  Past that the server is not sending that message. */
#define P3_SIZE_SLACK_MIN ((uint64_t)64 * 1024)
#define P3_MAX_CMD        255 /* RFC 2449 §4: a command line is at most 255 octets */

struct mw_pop3 {
    mw_error err;
    int state;
    mw_conn *conn;
    char *host;
    unsigned port;
    int tls;
    int msex;
    int retr_mode;
    int want_pipelining;
    int pipelining; /* in use */
    unsigned window;
    size_t max_line;
    int command_timeout_ms;
    int trace_secrets;
    mw_trace_fn trace;
    void *trace_ud;
    int in_auth; /* mask server continuation lines in traces */

    char greeting[512];
    char timestamp[256]; /* APOP, brackets included; "" when none */
    char *capa[P3_MAX_CAPA];
    size_t ncapa;
    int capa_known; /* CAPA answered +OK */

    uint64_t count;
    int have_count;
    char auth_used[48];

    uint64_t max_message;  /* RETR: never more octets than this (0: no cap) */
    uint64_t overflow_msg; /* the message whose RETR ran past its bound (0: none) */
};

/* The most octets a RETR of a message announced as `size` may bring:
 * size + max(size, 64 KiB), capped at `cap` when it is > 0. */
uint64_t mwi_pop3_message_bound(uint64_t size, uint64_t cap);
/* Sets the cap on every message's octets (fetch's --size-limit); 0: none. */
void mwi_pop3_set_message_cap(mw_pop3 *p, uint64_t cap);
/* The message whose RETR was stopped past its bound (the session is then
 * broken), or 0. */
uint64_t mwi_pop3_overflow_msg(const mw_pop3 *p);

void mwi_pop3_set_state(mw_pop3 *p, int state);
/* Marks the session unusable after error rc and returns rc. */
int mwi_pop3_fatal(mw_pop3 *p, int rc);
/* Refuses a command in the wrong state (MW_ESTATE). */
int mwi_pop3_require(mw_pop3 *p, int state, const char *what);

/* Sends one command line (adds CRLF, or LF under -msex).  `masked` is what
 * the trace and errors show (NULL: the line itself).  With flush = 0 the
 * line is only queued (pipelining). */
int mwi_pop3_send(mw_pop3 *p, const char *line, size_t len, const char *masked, int flush);
int mwi_pop3_sendf(mw_pop3 *p, int flush, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reads one status line.  A line that is not +OK/-ERR/+ is a protocol error. */
int mwi_pop3_read_status(mw_pop3 *p, mw_pop3_status *st);
/* Records a -ERR (or unexpected status) reply as the error: maps RFC 2449 /
 * 3206 codes; `dflt` is the code for an -ERR without one. */
int mwi_pop3_server_error(mw_pop3 *p, const mw_pop3_status *st, int dflt, const char *what);
/* Sends a command and expects +OK (single line).  *st is the reply. */
int mwi_pop3_simple(mw_pop3 *p, mw_pop3_status *st, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads a multi-line reply's lines (after its +OK), un-stuffed, each handed
 * to fn; stops at ".".  fn returns 0 or a code (the rest is still read). */
typedef int (*pop3_line_fn)(mw_pop3 *p, const char *line, size_t len, void *ud);
int mwi_pop3_read_lines(mw_pop3 *p, pop3_line_fn fn, void *ud);
/* Reads a multi-line body to its terminator, streaming to sink.  More
 * than `bound` octets (UINT64_MAX: none) ends the session with MW_ETOOBIG:
 * the rest of that reply is never read.  `announced` is the size the bound
 * came from (UINT64_MAX: none, the bound is the cap), for the error. */
int mwi_pop3_read_body(mw_pop3 *p, mw_pop3_sink_fn sink, void *ud, mw_pop3_retr_info *info,
                       const char *what, uint64_t announced, uint64_t bound);
/* TOP msgs[i].msg lines for each (ascending, within the count), pipelined
 * as mw_pop3_retr_range; each reply is bounded by msgs[i].size as a RETR
 * is (see mwi_pop3_message_bound), without the session's cap. */
int mwi_pop3_top_msgs(mw_pop3 *p, const mw_pop3_listing *msgs, size_t n, long lines,
                      mw_pop3_msg_fn fn, void *userdata);
/* Checks a message number against the count. */
int mwi_pop3_check_msg(mw_pop3 *p, uint64_t msg);
int mwi_pop3_do_capa(mw_pop3 *p);
/* Bounds the command that follows as a whole (on), or lifts it (off),
 * when the session has a command_timeout_ms. */
void mwi_pop3_command_deadline(mw_pop3 *p, int on);

#endif
