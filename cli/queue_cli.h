/* The outgoing queue from the command line, shared by `mailwire queue`
 * (cmd_queue.c, where these live) and `mailwire send` (--enqueue, -q, -bp). */
#ifndef MW_CLI_QUEUE_CLI_H
#define MW_CLI_QUEUE_CLI_H

#include "smtp_cli.h"

#include "mailwire/queue.h"

typedef struct queue_cli {
    const char *dir; /* --queue-dir, else $MAILWIRE_QUEUE_DIR, else XDG data dir */
    long lifetime_s, backoff_min_s, backoff_max_s;
    char dirbuf[4096];
} queue_cli;

/* --queue-dir DIR, --lifetime SECONDS, --backoff MIN[,MAX]: 1 consumed, 0
 * not ours, -1 usage error (printed). */
int queue_option(queue_cli *qc, int argc, char **argv, int *i, const char *prog);
/* Opens the queue; 0 or a sysexits code (printed). */
int queue_cli_open(queue_cli *qc, mw_queue **q, const char *prog);
/* One line per event: stderr in words (the failure report names each
 * failed recipient with its codes), or a JSON line on stdout. */
void queue_print_event(const mw_queue_event *ev, int json, const char *prog);
/* `queue list` / `send -bp`: 0 or a sysexits code. */
int queue_list(mw_queue *q, int json, const char *prog);
/* Wakes a `queue run --daemon` on this queue (its FIFO), if one listens. */
void queue_kick(const queue_cli *qc);

#endif
