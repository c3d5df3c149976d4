/* mailwire — a durable outgoing mail queue on top of the SMTP client.
 *
 * A message that cannot go now (no connection, a timeout, a 4xx) is kept in
 * a queue directory and tried again later, each recipient until the server
 * accepts it (2xx), refuses it for good (5xx), or the message's lifetime is
 * over.  Nothing is lost on a crash: a message is in the queue once
 * mw_queue_add returned 0 (message and envelope written, fsync'd and renamed
 * into place, the directories fsync'd), and leaves it only after every
 * recipient was accepted or failed; a SIGKILL at any moment leaves at worst
 * a recipient sent twice (when the server accepted and the record of it
 * was not yet on disk).
 *
 *     mw_queue *q;
 *     mw_queue_opts o = MW_QUEUE_OPTS_INIT; o.dir = "/var/spool/me";
 *     mw_queue_open(&q, &o, &err);
 *     mw_queue_add(q, &env, read_fn, ud, id, &err);      // enqueue
 *     mw_queue_run(q, &run_opts, &stats, &err);          // send what is due
 *     mw_queue_close(q);
 *
 * Layout of the directory: tmp/ (files being written), msg/ID (the message
 * as given), env/ID (the envelope and each recipient's state, a text file
 * replaced atomically), lock (held by the one runner at a time).  An entry
 * is in the queue exactly when env/ID exists. */
#ifndef MAILWIRE_QUEUE_H
#define MAILWIRE_QUEUE_H

#include "common.h"
#include "error.h"
#include "smtp.h"

#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_queue mw_queue;

#define MW_QUEUE_ID_MAX 40 /* an ID and its NUL fit in this many bytes */

#define MW_QUEUE_OPTS_VERSION 1
typedef struct mw_queue_opts {
    unsigned version;
    const char *dir; /* created (0700) when missing, with tmp/ msg/ env/ */
    /* After this many seconds in the queue a recipient still not accepted
     * fails (reported with 4.4.7); default 5 days. */
    long lifetime_s;
    /* Wait before attempt n+1: backoff_min_s * 2^(n-1), at most
     * backoff_max_s; defaults 60 and 3600. */
    long backoff_min_s, backoff_max_s;
} mw_queue_opts;
#define MW_QUEUE_OPTS_INIT                                                                         \
    {                                                                                              \
        MW_QUEUE_OPTS_VERSION, NULL, 0, 0, 0                                                       \
    }

/* Opens (creating) the queue directory.  Returns 0, MW_EINVAL, MW_EIO,
 * MW_ENOMEM. */
MW_EXTERN int mw_queue_open(mw_queue **out, const mw_queue_opts *opts, mw_error *err);
MW_EXTERN void mw_queue_close(mw_queue *q);

/* The envelope of a message to enqueue.  Addresses must hold no control
 * octet (checked: MW_EINVAL). */
#define MW_QUEUE_ENV_VERSION 1
typedef struct mw_queue_env {
    unsigned version;   /* MW_QUEUE_ENV_VERSION */
    const char *sender; /* "" for the null reverse-path */
    const char *const *recipients;
    size_t nrecipients;
    const char *account;    /* an opaque name kept for the runner (NULL: none) */
    const char *dsn_notify; /* as mw_smtp_msg; NULL = none */
    const char *dsn_ret;
    const char *dsn_envid;
    int body; /* enum mw_smtp_body */
    /* 0: each attempt applies sendmail's header rule (Bcc removed; From,
     * Date, Message-ID added when missing: MW_SMTP_REWRITE_SENDMAIL).
     * 1: the message goes exactly as given (an SMTP relay's data). */
    int raw;
} mw_queue_env;
#define MW_QUEUE_ENV_INIT                                                                          \
    {                                                                                              \
        MW_QUEUE_ENV_VERSION, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, 0                          \
    }

/* Stores the message read from `read` (until it returns 0) with its
 * envelope; *id gets the new entry's ID.  Only when this returns 0 is the
 * message in the queue; on any failure nothing of it is left (a disk full
 * is MW_EIO with "No space left on device" in err).  Returns 0, MW_EINVAL,
 * MW_EIO, MW_ENOMEM, or the read function's negative code. */
MW_EXTERN int mw_queue_add(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                           char id[MW_QUEUE_ID_MAX], mw_error *err);

enum mw_queue_rcpt_state {
    MW_QUEUE_PENDING = 0, /* not accepted yet: tried again */
    MW_QUEUE_SENT = 1,    /* the server accepted the message for it */
    MW_QUEUE_FAILED = 2,  /* refused for good (5xx), or the lifetime ran out */
};

typedef struct mw_queue_rcpt {
    char *address;
    int state;         /* enum mw_queue_rcpt_state */
    int code;          /* the last reply for it (0: none yet) */
    char enhanced[16]; /* "4.2.1" or "" */
    char *text;        /* the last reply's text or what failed, "" when none */
} mw_queue_rcpt;

typedef struct mw_queue_entry {
    char id[MW_QUEUE_ID_MAX];
    char *sender;
    char *account; /* NULL when none */
    char *dsn_notify, *dsn_ret, *dsn_envid;
    int body;
    time_t created, next_attempt;
    unsigned attempts;
    uint64_t size; /* octets of the message file */
    int raw;       /* as mw_queue_env */
    size_t nrcpt;
    mw_queue_rcpt *rcpt;
} mw_queue_entry;

/* Every entry, oldest first.  Free with mw_queue_entries_free.  Returns 0,
 * MW_EIO, MW_ENOMEM; an envelope file that cannot be read is skipped. */
MW_EXTERN int mw_queue_list(mw_queue *q, mw_queue_entry **out, size_t *n, mw_error *err);
MW_EXTERN void mw_queue_entries_free(mw_queue_entry *e, size_t n);

/* Removes entry `id` (takes the runner lock: MW_ESTATE while a run holds
 * it).  Returns 0, MW_EINVAL (no such entry or a bad ID), MW_ESTATE, MW_EIO. */
MW_EXTERN int mw_queue_drop(mw_queue *q, const char *id, mw_error *err);

/* What a run reports, one call per entry tried. */
enum mw_queue_event_kind {
    MW_QUEUE_EV_SENT = 1,     /* every recipient is now accepted: the entry is gone */
    MW_QUEUE_EV_DEFERRED = 2, /* some recipients are left for a later attempt */
    MW_QUEUE_EV_FAILED = 3,   /* done, and some recipients failed: the failure report */
};
typedef struct mw_queue_event {
    int kind;                    /* enum mw_queue_event_kind */
    const mw_queue_entry *entry; /* with every recipient's state after this attempt */
    int rc;                      /* the attempt's mw code (0 when the transaction went through) */
    const mw_error *err;         /* why, when rc != 0 */
} mw_queue_event;
typedef void (*mw_queue_event_fn)(const mw_queue_event *ev, void *userdata);

/* Makes the session an entry is sent over: called when an entry needs one
 * and there is none, or its (account, sender) differs from the previous
 * entry's (the session is then closed first).  Return 0 with *out set, or
 * a negative mw code with err filled (the entry is deferred). */
typedef int (*mw_queue_connect_fn)(const mw_queue_entry *entry, mw_smtp **out, mw_error *err,
                                   void *userdata);

#define MW_QUEUE_RUN_VERSION 1
typedef struct mw_queue_run_opts {
    unsigned version;
    mw_queue_connect_fn connect; /* required */
    void *connect_userdata;
    mw_queue_event_fn event; /* may be NULL */
    void *event_userdata;
    int flush;        /* 1: every entry now, whatever its backoff */
    const char *only; /* only this ID (and whatever its backoff) */
    int wait_lock;    /* 1: wait for a running runner to finish; 0: MW_ESTATE */
    int maxtime_ms;   /* deadline of each transaction (0 = none) */
} mw_queue_run_opts;
#define MW_QUEUE_RUN_INIT                                                                          \
    {                                                                                              \
        MW_QUEUE_RUN_VERSION, NULL, NULL, NULL, NULL, 0, NULL, 0, 0                                \
    }

typedef struct mw_queue_stats {
    size_t tried, sent, deferred, failed, left; /* entries; left: in the queue after the run */
} mw_queue_stats;

/* One run: takes the runner lock (one runner per queue), then tries each
 * entry that is due, oldest first, only to its recipients not accepted
 * yet, and records each outcome durably before going on.  Returns 0 (see
 * stats and the events for each entry's fate), MW_ESTATE (another runner
 * holds the lock), MW_EIO, MW_ENOMEM. */
MW_EXTERN int mw_queue_run(mw_queue *q, const mw_queue_run_opts *ro, mw_queue_stats *stats,
                           mw_error *err);

/* Sends a message now, and queues it only when some recipients must wait:
 * the message is spooled (not fsync'd) into tmp/, one session is made
 * with ro->connect and the message sent; when every recipient was
 * accepted or refused for good it is gone (ro->event gets SENT or FAILED,
 * *queued = 0), else it is committed into the queue as mw_queue_add does,
 * with its recipients' states (DEFERRED, *queued = 1).  A crash before the
 * commit leaves only a tmp/ file (removed by a later run), and the caller,
 * not told, still holds the message.  Costs no fsync when the message
 * goes at once.  *id gets its ID either way.  Returns 0, or as
 * mw_queue_add (a commit that failed: nothing queued, and the recipients
 * the server accepted did get it). */
MW_EXTERN int mw_queue_send(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                            const mw_queue_run_opts *ro, char id[MW_QUEUE_ID_MAX], int *queued,
                            mw_error *err);

#ifdef __cplusplus
}
#endif
#endif
