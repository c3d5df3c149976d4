/* Internal: the POP3 session shared by the files of src/pop3. */
#ifndef MW_POP3_INT_H
#define MW_POP3_INT_H

#include "mailwire/pop3.h"
#include "net/conn.h"
#include "proto/pop3_codec.h"

/* One state variable, changed only in pop3_set_state() (docs/ARCHITECTURE.md). */
enum pop3_state {
    P3_NEW = 0, /* nothing sent yet */
    P3_AUTH,    /* RFC 1939 §4 AUTHORIZATION */
    P3_TRANS,   /* TRANSACTION */
    P3_CLOSED,  /* QUIT done or connection closed on purpose */
    P3_BROKEN,  /* a network/TLS/protocol error: no more commands */
};

#define P3_MAX_CAPA       128
#define P3_MAX_LIST_ITEMS (10u * 1000 * 1000)
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
};

void pop3_set_state(mw_pop3 *p, int state);
/* Marks the session unusable after error rc and returns rc. */
int pop3_fatal(mw_pop3 *p, int rc);
/* Refuses a command in the wrong state (MW_ESTATE). */
int pop3_require(mw_pop3 *p, int state, const char *what);

/* Sends one command line (adds CRLF, or LF under -msex).  `masked` is what
 * the trace and errors show (NULL: the line itself).  With flush = 0 the
 * line is only queued (pipelining). */
int pop3_send(mw_pop3 *p, const char *line, size_t len, const char *masked, int flush);
int pop3_sendf(mw_pop3 *p, int flush, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Reads one status line.  A line that is not +OK/-ERR/+ is a protocol error. */
int pop3_read_status(mw_pop3 *p, mw_pop3_status *st);
/* Records a -ERR (or unexpected status) reply as the error: maps RFC 2449 /
 * 3206 codes; `dflt` is the code for an -ERR without one. */
int pop3_server_error(mw_pop3 *p, const mw_pop3_status *st, int dflt, const char *what);
/* Sends a command and expects +OK (single line).  *st is the reply. */
int pop3_simple(mw_pop3 *p, mw_pop3_status *st, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reads a multi-line reply's lines (after its +OK), un-stuffed, each handed
 * to fn; stops at ".".  fn returns 0 or a code (the rest is still read). */
typedef int (*pop3_line_fn)(mw_pop3 *p, const char *line, size_t len, void *ud);
int pop3_read_lines(mw_pop3 *p, pop3_line_fn fn, void *ud);
/* Reads a multi-line body to its terminator, streaming to sink. */
int pop3_read_body(mw_pop3 *p, mw_pop3_sink_fn sink, void *ud, mw_pop3_retr_info *info,
                   const char *what);
/* Checks a message number against the count. */
int pop3_check_msg(mw_pop3 *p, uint64_t msg);
int pop3_do_capa(mw_pop3 *p);
int pop3_login(mw_pop3 *p, const mw_pop3_opts *o);

#endif
