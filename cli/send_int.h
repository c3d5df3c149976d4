/* Internal to `mailwire send` (cmd_send.c and its parts):
 *   cmd_send.c     the command: arguments, the message, the blocking send
 *   send_opts.c    usage, sendmail's single-letter options, the default sender
 *   send_source.c  stdin as the message source (streamed; the header read ahead)
 *   send_queue.c   --enqueue: through the durable queue
 *   send_bs.c      -bs: an SMTP dialogue on stdin/stdout, relayed
 *   send_loop.c    MAILWIRE_ENGINE=loop: the send on the event loop */
#ifndef MW_CLI_SEND_INT_H
#define MW_CLI_SEND_INT_H

#include "queue_cli.h"
#include "smtp_cli.h"

#include "mailwire/smtp.h"

#include <stdio.h>

/* `mailwire send` streams the message from stdin; only --bcc-digest (whose
 * digest copy is built in memory) holds it all, up to this much. */
#define SEND_MAX_MESSAGE (256u * 1024 * 1024)
/* The header block read ahead of the connection (account by From, -F). */
#define SEND_MAX_HEADER (1024u * 1024)

/* stdin as a message source for `mailwire send`, streamed: without -i a
 * line holding only "." ends it (and the rest is not part of the message),
 * as sendmail does, across reads.  The header block is read ahead into
 * `head` (to pick the account by From and to see whether -F must add one);
 * the library gets head, then the rest. */
typedef struct stdin_src {
    char buf[65536];
    size_t start, end;
    int eof, done, bol, ignore_dots, failed;
    char *head;
    size_t hlen, hpos;
} stdin_src;

/* What the command line asked for. */
typedef struct send_args {
    const char *from, *fullname, *notify, *ret, *envid;
    int extract, ignore_dots, all_or_nothing, bcc_digest, verbose, body;
    char mode; /* 'm' deliver (default), 's' SMTP on stdin, 'i' aliases (nothing to do),
                * 'q' run the queue, 'p' list it */
    int enqueue, downgrade;
    queue_cli qc;
    int qargc; /* the long options, handed to `queue` for -q and -bp */
    char **qargv;
    char *config_buf;
    const char **rcpt;
    size_t nrcpt;
} send_args;

/* The immediate attempt of a queued message, as the queue reports it
 * (send_queue.c; -bs uses it too). */
typedef struct enq_ctx {
    smtp_cli *c;
    int kind; /* the immediate attempt's event, 0 when none */
    int json;
    int verbose;
    char why[320];    /* why the immediate attempt was deferred */
    size_t nsent;     /* recipients that took it */
    char failed[400]; /* the first recipient refused for good, with its reply */
} enq_ctx;

/* ---- cmd_send.c ---- */
/* -v: the outcome in one line on stderr. */
void send_verbose_result(const mw_smtp_result *r);

/* ---- send_opts.c ---- */
void send_usage(FILE *f);
/* Single-letter options, bundled as getopt(3) allows ("-ti", "-oi",
 * "-fADDR", "-f ADDR").  Returns 1 consumed, -1 usage error (printed). */
int short_options(send_args *A, smtp_cli *c, int argc, char **argv, int *i);
/* The sender when neither -f nor From: gives one (malloc'd). */
char *default_sender(const mw_cli_conn *cc);

/* ---- send_source.c ---- */
/* Reads ahead into head: the header block, or with `whole` all of it.
 * EFBIG past SEND_MAX_HEADER / SEND_MAX_MESSAGE. */
int sin_read_ahead(stdin_src *S, int whole);
/* The message source for the library: head, then the rest of stdin. */
long send_source_read(void *buf, size_t len, void *ud);
/* Length of the header block in d (through its empty line), 0 if none yet. */
size_t header_block_end(const char *d, size_t n);
/* Whether the header block in d has a field `name`. */
int has_header(const char *d, size_t n, const char *name);
/* The first address of the message's From field, malloc'd, or NULL. */
char *from_field_address(const char *d, size_t n);

/* ---- send_queue.c ---- */
int enq_connect(const mw_queue_entry *e, mw_smtp **out, mw_error *err, void *ud);
void enq_event(const mw_queue_event *ev, void *ud);
/* Stores the message with its envelope, then tries it once at once. */
int send_enqueue(smtp_cli *c, send_args *A, queue_cli *qc, stdin_src *sin, const char *sender);

/* ---- send_bs.c ---- */
/* -bs: the SMTP dialogue on stdin/stdout; the exit code. */
int bs_session(smtp_cli *c, send_args *A);

/* ---- send_loop.c ---- */
/* Sends m on the event loop as the blocking path sends it (one server,
 * one message, one job on a private loop), printing the same output;
 * what the loop cannot do yet is an error ("not on the loop engine yet:
 * ..."), never a fallback.  Returns the exit code. */
int send_on_loop(smtp_cli *c, const send_args *A, const mw_smtp_msg *m);
/* What the loop cannot run: "not on the loop engine yet: why"; the exit code. */
int send_loop_refuse(const smtp_cli *c, const char *why);

#endif
