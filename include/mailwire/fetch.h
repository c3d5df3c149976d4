/* mailwire — fetch one POP3 account into a mail store, never losing mail.
 *
 *     mw_pop3_opts po = MW_POP3_OPTS_INIT;  po.tls = ...; po.user = ...;
 *     mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
 *     fo.host = "pop.example.org"; fo.pop3 = &po;
 *     fo.store_kind = MW_STORE_MAILDIR; fo.store_target = "/home/me/Maildir";
 *     fo.state_path = "/home/me/.local/state/mailwire/uidl/work";
 *     mw_fetch_result r; mw_error e;
 *     int rc = mw_fetch_account(&r, &fo, &e);
 *
 * The order (docs/CONVENTIONS.md "Never lose mail"):
 *   1. each message is streamed (RETR, pipelined) straight into the store,
 *      never held whole in memory, and committed; a Maildir commit only
 *      writes the file in tmp/ and starts its write-back: the file's
 *      fsync, its move into new/ and one fsync of new/ come at the store's
 *      sync (mw_store_sync), which runs before every state save;
 *   2. its UID is recorded in the state journal, saved atomically after
 *      every batch (opts.batch messages) and at the end, each save after
 *      that sync returned 0 (a failed sync: no save, nothing deleted);
 *   3. only messages whose UID is in a state that was saved successfully
 *      are DELEted (pipelined), and only then QUIT is sent.
 * A message that did not arrive whole (connection dropped mid-RETR, size
 * different from the one the server announced) is aborted in the store
 * and never deleted.  The state is saved on every way out, also when DELE
 * or QUIT fails.  The state file's lock (mw_state_open) stops two fetches
 * of one account at once (MW_ETEMP).  A crash at any moment can at worst
 * deliver a message twice.
 *
 * Messages already recorded in the state (fetched by an earlier run) are
 * deleted on the server when keep is 0: an earlier run may have stored
 * them and been stopped before its DELE/QUIT.
 *
 * The library keeps no global state: fetches of different accounts may
 * run in threads at once. */
#ifndef MAILWIRE_FETCH_H
#define MAILWIRE_FETCH_H

#include "common.h"
#include "error.h"
#include "pop3.h"
#include "store.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What the filter command (and the size limit) may decide for a message. */
enum mw_fetch_decision {
    MW_FETCH_GET = 0,    /* retrieve and store it */
    MW_FETCH_DELETE = 1, /* delete it on the server without storing it */
    MW_FETCH_SKIP = 2,   /* leave it on the server, do not store it */
};

typedef struct mw_fetch_progress {
    uint64_t msgs_done;   /* messages stored so far in this run */
    uint64_t msgs_total;  /* messages this run means to store */
    uint64_t bytes_done;  /* octets received (as the server sent them, CRLF) */
    uint64_t bytes_total; /* sum of their LIST sizes */
    int phase;            /* 0 connecting, 1 listing, 2 retrieving, 3 deleting, 4 done */
} mw_fetch_progress;
typedef void (*mw_fetch_progress_fn)(const mw_fetch_progress *p, void *userdata);

typedef struct mw_fetch_result {
    uint64_t messages;  /* on the server at login */
    uint64_t fetched;   /* committed to the store in this run (durable unless the
                           run failed in the store: MW_EIO; then none of those
                           not made durable is recorded or deleted) */
    uint64_t skipped;   /* left on the server unstored (old, size limit, filter) */
    uint64_t deleted;   /* DELE answered +OK (applied only if quit_confirmed) */
    uint64_t bytes;     /* octets of the stored messages, as received */
    uint64_t errors;    /* messages that could not be retrieved or stored */
    int quit_confirmed; /* 1 when QUIT was answered +OK */
    int uid_mode;       /* 2 UIDL, 1 LAST (no UIDL), 0 neither: all messages */
} mw_fetch_result;

#define MW_FETCH_OPTS_VERSION 1
typedef struct mw_fetch_opts {
    unsigned version;
    const char *host; /* POP3 server */
    /* Connection, TLS, login (port, user, password...).  A pop3->stream is
     * owned by the fetch from the call on, even when it fails early. */
    const mw_pop3_opts *pop3;
    int store_kind;                     /* enum mw_store_kind */
    const char *store_target;           /* Maildir directory, mbox file or MDA command */
    const mw_store_options *store_opts; /* may be NULL */
    const char *state_path;             /* UIDL state file (required) */
    const mw_state_options *state_opts; /* may be NULL */

    int keep;              /* 1: never delete (except by delete_after_days / filter) */
    int only_new;          /* 1 (default): skip UIDs already in the state */
    int delete_after_days; /* >= 0 with keep: delete messages first seen that long ago */
    uint64_t size_limit;   /* > 0: messages larger (LIST size) are not fetched... */
    int size_delete;       /* ...but deleted when 1, left alone (skipped) when 0 */
    /* A command run with /bin/sh -c for each candidate message, the
     * headers (TOP n 0) on its stdin; as mpop's filter its exit status
     * decides: 0 fetch, 1 delete without fetching, 2 skip; anything else
     * (or a crash, or running longer than filter_timeout_ms) is an error
     * for that message, which is then skipped. */
    const char *filter;
    int filter_timeout_ms; /* default 30000 */
    unsigned batch;        /* save the state after this many messages (default 100) */
    int64_t now;           /* seconds since the epoch for first_seen; 0: time() */

    mw_fetch_progress_fn progress; /* may be NULL; called from the fetching thread */
    void *progress_userdata;
} mw_fetch_opts;
#define MW_FETCH_OPTS_INIT                                                                         \
    {                                                                                              \
        MW_FETCH_OPTS_VERSION, NULL, NULL, MW_STORE_MAILDIR, NULL, NULL, NULL, NULL, 0, 1, -1, 0,  \
            0, NULL, 30000, 100, 0, NULL, NULL                                                     \
    }

/* Fetches one account (see the top of this file).  *res is always filled
 * (zeros when nothing happened).  err (may be NULL) gets the first error,
 * its message saying which step failed ("store: ...", "state: ...",
 * "pop3: ...").  Returns 0 when every wanted message was stored (and
 * deleted when asked), else the first error's code: MW_EINVAL (bad
 * options), MW_ETEMP (the account is being fetched by another process, or
 * the server said [IN-USE]), the codes of mw_pop3_open/retr (MW_ENET,
 * MW_ETIMEOUT, MW_ETLS, MW_ECERT, MW_EAUTH, MW_EPROTO, MW_ESERVER, ...),
 * MW_EIO (store or state: disk full, fsync failed, MDA failed),
 * MW_EFORMAT (damaged state file), MW_ENOMEM.  It runs the same POP3
 * machine as mw_loop_add_fetch (loop.h), driven over a blocking stream;
 * a filter or a token provider is called in the caller's thread. */
MW_EXTERN int mw_fetch_account(mw_fetch_result *res, const mw_fetch_opts *opts, mw_error *err);

#ifdef __cplusplus
}
#endif
#endif
