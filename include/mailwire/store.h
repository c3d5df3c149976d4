/* mailwire — mail stores (Maildir, mbox, MDA) and the UIDL state journal.
 *
 * A store takes one message at a time, streamed in chunks:
 *
 *     mw_store_begin(s, NULL);
 *     mw_store_write(s, chunk, len);   ... as often as needed
 *     mw_store_commit(s);              durable on 0, never before
 *     (or mw_store_abort(s) to throw the message away)
 *
 * mw_store_commit() returns 0 only when the message is on disk for good
 * (Maildir: file fsync'd, linked into new/, new/ fsync'd; mbox: appended and
 * fsync'd under lock; MDA: the command read everything and exited 0).  Any
 * other result means the message was NOT delivered, and nothing of it is
 * left behind (tmp file removed, mbox truncated back), so a caller may only
 * delete a message on the server after a 0 from commit.
 *
 * Maildir with defer_dir_sync (options version 2): commit fsyncs the file
 * and links it into new/, but leaves new/ itself unsynced, so a 0 from
 * commit means "complete and fsync'd, entry not yet durable"; the caller
 * must call mw_store_sync() (one fsync of new/ for any number of messages)
 * and get 0 before it deletes those messages anywhere or records them as
 * delivered.  mw_fetch_account does exactly that before each state save.
 *
 * mw_fetch_account and mw_loop_add_fetch defer more with a Maildir: a
 * commit there writes the file in tmp/ and starts its write-back, and the
 * same mw_store_sync() fsyncs each file, moves it into new/ and fsyncs new/
 * (src/store/store_defer.h); those stores are their own, not the caller's. */
#ifndef MAILWIRE_STORE_H
#define MAILWIRE_STORE_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mw_store_kind {
    MW_STORE_MAILDIR = 1, /* target: a Maildir directory (tmp/ new/ cur/ created 0700) */
    MW_STORE_MBOX = 2,    /* target: an mbox file (mboxrd, created 0600); locks: fcntl and
                             TARGET.lock (holding the pid); TARGET.mwpending exists while a
                             message is written, so the next delivery can cut off a half
                             message left by a crash */
    MW_STORE_MDA = 3,     /* target: a command run with /bin/sh -c, message on stdin */
} mw_store_kind;

/* The operations a fault hook is asked about, just before they happen. */
typedef enum mw_store_op {
    MW_STORE_OP_OPEN = 1, /* creating/opening a file */
    MW_STORE_OP_WRITE,    /* write(2) to a file or the MDA's pipe */
    MW_STORE_OP_FSYNC,    /* fsync(2) of a file or directory */
    MW_STORE_OP_RENAME,   /* link(2)/rename(2) into place */
    MW_STORE_OP_TRUNCATE, /* ftruncate(2) of an mbox back to its old size */
} mw_store_op;

/* A test hook: return 0 to let the operation run, or an errno value (ENOSPC,
 * EIO, …) to make it fail as if the system had said so. path names the file
 * or directory concerned. */
typedef int (*mw_store_fault_fn)(mw_store_op op, const char *path, void *userdata);

/* Version 2 added defer_dir_sync; version 1 structs are still accepted. */
#define MW_STORE_OPTIONS_VERSION 2
typedef struct mw_store_options {
    unsigned version;
    /* 0 (default): line ends CRLF are stored as LF, the Unix convention for
     * Maildir and mbox files (as mpop does).  1: bytes are stored exactly
     * as written (CRLF kept). */
    int keep_crlf;
    /* mbox: sender on the "From " separator line when mw_store_begin() gets
     * none; default "MAILER-DAEMON". */
    const char *envelope_from;
    /* mbox: how long to wait for the dotlock and the fcntl lock; default 10000. */
    int lock_timeout_ms;
    /* MDA: how long the command may take, from begin to its exit; default 300000. */
    int mda_timeout_ms;
    /* Maildir: host part of unique names; default gethostname(). */
    const char *hostname;
    mw_store_fault_fn fault;
    void *fault_userdata;
    /* Maildir, version >= 2: 1 = commit does not fsync new/; mw_store_sync()
     * does, once for all messages committed since (see the top of this
     * file).  0 (default): every commit fsyncs new/. */
    int defer_dir_sync;
} mw_store_options;
#define MW_STORE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        MW_STORE_OPTIONS_VERSION, 0, NULL, 10000, 300000, NULL, NULL, NULL, 0                      \
    }

typedef struct mw_store mw_store;

/* Opens a store.  Maildir: creates the directory and tmp/ new/ cur/ (0700)
 * when missing.  mbox: checks the file can be created/opened for append.
 * MDA: stores the command (run once per message).  opt may be NULL.
 * Returns 0, MW_EINVAL (bad kind/target/options), MW_ENOMEM, MW_EIO (the
 * message names the path and the system's reason); on failure *out is NULL
 * and the detail is in err (may be NULL). */
MW_EXTERN int mw_store_open(mw_store **out, mw_store_kind kind, const char *target,
                            const mw_store_options *opt, mw_error *err);
/* Aborts a delivery in progress and frees the store. */
MW_EXTERN void mw_store_free(mw_store *s);
/* The detail of the last error on this store. */
MW_EXTERN const mw_error *mw_store_error(const mw_store *s);

/* Starts one message.  envelope_from (mbox only, may be NULL) is the sender
 * on the "From " line; CR, LF, NUL and spaces are refused (MW_EINVAL).
 * Maildir: creates tmp/<unique>; mbox: takes the locks; MDA: starts the
 * command.  Returns 0, MW_ESTATE (a delivery is already open), MW_EINVAL,
 * MW_EIO, MW_ETIMEOUT (mbox lock not obtained in time), MW_ENOMEM. */
MW_EXTERN int mw_store_begin(mw_store *s, const char *envelope_from);
/* Appends bytes of the message (any chunking; a CRLF may be split across
 * chunks).  Returns 0, MW_ESTATE, MW_EIO (the delivery is then aborted),
 * MW_ETIMEOUT (MDA). */
MW_EXTERN int mw_store_write(mw_store *s, const void *data, size_t len);
/* Makes the message durable (see the top of this file).  Returns 0, or
 * MW_EIO / MW_ETIMEOUT with the delivery undone.  Either way the delivery
 * is finished. */
MW_EXTERN int mw_store_commit(mw_store *s);
/* Throws the message away: removes the tmp file, truncates the mbox back,
 * or kills the MDA.  Returns 0 or MW_EIO when cleaning up failed. */
MW_EXTERN int mw_store_abort(mw_store *s);
/* begin + write + commit in one call. */
MW_EXTERN int mw_store_deliver(mw_store *s, const void *data, size_t len,
                               const char *envelope_from);
/* After a successful commit: the file the message went to (Maildir: the
 * path in new/; mbox: the mbox path; MDA: "").  Otherwise "". */
MW_EXTERN const char *mw_store_last_path(const mw_store *s);
/* Bytes the last committed message occupies in the store. */
MW_EXTERN uint64_t mw_store_last_size(const mw_store *s);
/* Makes every message committed so far durable: Maildir with
 * defer_dir_sync fsyncs new/ when a commit left it unsynced; otherwise (and
 * for mbox and MDA, whose commits are already durable) does nothing.
 * Returns 0, or MW_EIO: then the messages committed since the last
 * successful sync may not survive a crash (their files stay in new/, so at
 * worst they are fetched again later) and must not be deleted on the server;
 * the next call tries again. */
MW_EXTERN int mw_store_sync(mw_store *s);

/* ---- UIDL state journal --------------------------------------------------
 * One file per account listing the UIDs (RFC 1939 §7) already delivered,
 * each with the time (seconds since the epoch) it was first seen:
 *
 *     mailwire-uidl 1
 *     1763827030 AAAB-4711
 *
 * Opening takes an exclusive lock (flock on PATH.lock) held until
 * mw_state_free(), so two fetches of one account cannot run at once.
 * Saving is atomic: PATH.tmp written, fsync'd, renamed over PATH, directory
 * fsync'd; a crash leaves either the old or the new file.  A damaged file
 * is an error naming the file and line; it is never silently reset. */
typedef struct mw_state mw_state;

#define MW_STATE_UID_MAX  200 /* RFC 1939 allows 70; some servers send more */
#define MW_STATE_LINE_MAX 256

#define MW_STATE_OPTIONS_VERSION 1
typedef struct mw_state_options {
    unsigned version;
    int lock_timeout_ms; /* how long to wait for the lock; default 0 = fail at once */
    mw_store_fault_fn fault;
    void *fault_userdata;
} mw_state_options;
#define MW_STATE_OPTIONS_INIT                                                                      \
    {                                                                                              \
        MW_STATE_OPTIONS_VERSION, 0, NULL, NULL                                                    \
    }

/* Locks and loads the state at path (a missing file is an empty state).
 * Returns 0, MW_ETEMP (locked by another process), MW_EFORMAT (damaged
 * file: "PATH:LINE: what"), MW_ETOOBIG (line or file over its limit),
 * MW_EIO, MW_ENOMEM, MW_EINVAL.  On failure *out is NULL, detail in err. */
MW_EXTERN int mw_state_open(mw_state **out, const char *path, const mw_state_options *opt,
                            mw_error *err);
/* Releases the lock and frees; unsaved changes are dropped. */
MW_EXTERN void mw_state_free(mw_state *st);
MW_EXTERN const mw_error *mw_state_error(const mw_state *st);
/* 1 when uid is recorded, else 0. */
MW_EXTERN int mw_state_contains(const mw_state *st, const char *uid);
/* When uid was first seen (seconds since the epoch), or -1 when unknown. */
MW_EXTERN int64_t mw_state_first_seen(const mw_state *st, const char *uid);
/* Records uid (keeping an earlier first-seen time if it is known).
 * Returns 0, MW_EINVAL (empty, too long, or a byte outside 0x21..0x7E),
 * MW_ENOMEM. */
MW_EXTERN int mw_state_add(mw_state *st, const char *uid, int64_t first_seen);
/* Forgets uid (no error when unknown). */
MW_EXTERN void mw_state_remove(mw_state *st, const char *uid);
/* Number of UIDs recorded. */
MW_EXTERN size_t mw_state_count(const mw_state *st);
/* Calls fn for each recorded UID in the order added; fn returns 0 to keep
 * the UID, 1 to forget it (to prune UIDs the server no longer has). */
typedef int (*mw_state_visit_fn)(const char *uid, int64_t first_seen, void *userdata);
MW_EXTERN void mw_state_filter(mw_state *st, mw_state_visit_fn fn, void *userdata);
/* Writes the state atomically.  Returns 0, MW_EIO (the old file is intact). */
MW_EXTERN int mw_state_save(mw_state *st);

#ifdef __cplusplus
}
#endif
#endif
