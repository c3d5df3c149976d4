/* Internals shared by the store module's files: the store object, the ops
 * table each backend (maildir.c, mbox.c, mda.c) fills in, and the byte
 * pipeline and error helpers of store.c the backends use. */
#ifndef MW_STORE_INT_H
#define MW_STORE_INT_H

#include "mailwire/error.h"
#include "mailwire/store.h"
#include "store/store_defer.h"
#include "util/proc.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MWI_STORE_OUTBUF  65536
#define MWI_STORE_PATHMAX 4096

/* One backend.  Chosen once by mw_store_open; store.c calls through it. */
struct mwi_store_ops {
    int mboxrd;  /* the byte pipeline quotes ^>*From lines (mboxrd) */
    int to_pipe; /* the fd is a non-blocking pipe to a child: SIGPIPE held
                    back, EAGAIN waited for until s->deadline */
    /* Prepares the target at mw_store_open; NULL: nothing to prepare. */
    int (*open)(mw_store *s);
    /* Starts a delivery: sets s->fd (from: the checked envelope sender). */
    int (*begin)(mw_store *s, const char *from);
    /* Makes the message durable; the pipeline is finished and, unless
     * mboxrd, flushed.  On failure store.c calls undo. */
    int (*commit)(mw_store *s);
    /* Takes a failed or aborted delivery back. */
    int (*undo)(mw_store *s);
    /* mw_store_sync; NULL: nothing deferred. */
    int (*sync)(mw_store *s);
    /* The name of s->fd in error messages. */
    const char *(*fd_name)(const mw_store *s);
};

extern const struct mwi_store_ops mwi_store_maildir_ops;
extern const struct mwi_store_ops mwi_store_mbox_ops;
extern const struct mwi_store_ops mwi_store_mda_ops;

/* maildir.c: fsyncs the deferred files and moves them into new/ (new/
 * left unsynced); 0, or MW_EIO when one failed (the store is then lost). */
int mwi_store_maildir_flush_deferred(mw_store *s);

struct mw_store {
    const struct mwi_store_ops *ops;
    char *target;
    char *hostname; /* Maildir: already made safe for a file name */
    char *envelope_from;
    int keep_crlf;
    int lock_timeout_ms;
    int mda_timeout_ms;
    mw_store_fault_fn fault;
    void *fault_ud;
    mw_error err;
    int defer_dir_sync; /* Maildir: commit leaves the fsync of new/ to mw_store_sync() */
    int dir_unsynced;   /* a link into new/ happened since new/ was last fsync'd */
    /* Deferred files (store_defer.h): committed, written back, still in
     * tmp/ with their descriptors open, for mw_store_sync() to fsync and
     * move into new/. */
    int defer_files;
    mwi_store_budget *budget; /* shared, or &own_budget */
    mwi_store_budget own_budget;
    struct mwi_store_deferred *deferred;
    size_t ndeferred, deferred_cap;
    int lost;          /* a deferred file was not made durable: every sync fails */
    mw_error lost_err; /* why */

    /* the delivery in progress */
    int active;
    int fd;                           /* tmp file, mbox, or the MDA's stdin pipe */
    char tmp_path[MWI_STORE_PATHMAX]; /* Maildir tmp file; mbox dotlock path */
    char unique[256];                 /* Maildir unique name */
    int dotlocked, fcntl_locked;
    off_t mbox_old_size;
    char pending_path[MWI_STORE_PATHMAX]; /* mbox: "<mbox>.mwpending" while a message is written */
    int pending_written;
    mwi_proc mda;          /* the MDA's process; its stdin is fd */
    int mda_epipe;         /* the MDA closed its input early */
    int64_t deadline;      /* MDA */
    uint64_t written;      /* bytes handed to the file/pipe */
    int pending_cr;        /* CRLF→LF: a CR seen, its LF not yet */
    int at_bol, in_prefix; /* mboxrd quoting state */
    size_t gt, fm;
    int last_byte; /* last byte emitted into the message (-1: none) */
    char out[MWI_STORE_OUTBUF];
    size_t outlen;

    char last_path[MWI_STORE_PATHMAX];
    uint64_t last_size;
};

/* A message committed with its file sync deferred. */
struct mwi_store_deferred {
    int fd;
    uint64_t size;
    char *unique; /* its name in tmp/; in new/ with ",S=<size>" */
};

/* ---- store.c, for the backends ---- */

/* Sets s->err to "cannot <what> <path>: <errno text>"; returns MW_EIO. */
int mwi_store_sys_fail(mw_store *s, const char *what, const char *path, int e);
/* The fault hook of s asked about op on path (errno set to its answer). */
int mwi_store_fault(mw_store *s, mw_store_op op, const char *path);
/* The process-wide delivery counter, atomic: a fresh number per call. */
unsigned long mwi_store_next_counter(void);
/* Bytes into the output buffer, written out when it is full. */
int mwi_store_put_bytes(mw_store *s, const char *p, size_t n);
/* Writes what the output buffer holds. */
int mwi_store_flush(mw_store *s);

/* Asks the fault hook (if any) about op on path; returns the errno it
 * injects (and sets errno to it), or 0. */
int mwi_store_fault_check(mw_store_fault_fn fn, void *ud, mw_store_op op, const char *path);
/* fsync of a directory, asking the fault hook first; returns 0 or an errno. */
int mwi_store_fsync_dir(mw_store_fault_fn fn, void *ud, const char *dir);
/* The directory part of path into dir ("." when none); 0 or -1 when too long. */
int mwi_store_dirname(char *dir, size_t size, const char *path);

/* Parses a state file image (the UIDL journal format) into st; used by
 * mw_state_open and the fuzz target.  name is used in error messages. */
int mwi_state_parse(mw_state *st, const char *data, size_t len, const char *name);
/* An unlocked, empty state for parsing (fuzzing, tests). */
mw_state *mwi_state_new_detached(void);

#endif
