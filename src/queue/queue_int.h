/* Internal: what the queue's files share.  queue.c: the directory, paths,
 * listing, the lock, drop; envfile.c: the envelope file's text (apart from
 * the files, for the fuzz target) and env/ID on disk; enqueue.c: add and
 * send; run.c: a run and one attempt. */
#ifndef MW_QUEUE_QUEUE_INT_H
#define MW_QUEUE_QUEUE_INT_H

#include "mailwire/queue.h"

#include <stddef.h>

#define Q_MAX_ENV      (4u * 1024 * 1024) /* an envelope file (10,000 recipients fit) */
#define Q_MAX_RCPT     10000
#define Q_MAX_TEXT     400  /* a reply text kept per recipient */
#define Q_ORPHAN_AGE_S 3600 /* tmp/ and msg/ files without env/ older than this go */
#define Q_PATH         4096

struct mw_queue {
    char dir[Q_PATH];
    long lifetime_s, backoff_min_s, backoff_max_s;
};

/* Parses text[0..len) (up to its first NUL) into *e (zeroed first; its
 * strings freed with mwi_queue_entry_clear).
 * Returns 0, or -1 when malformed (e then cleared). */
int mwi_queue_env_parse(mw_queue_entry *e, const char *text, size_t len);
/* The envelope file's text for e, malloc'd (*len its length); NULL when out
 * of memory. */
char *mwi_queue_env_text(const mw_queue_entry *e, size_t *len);
void mwi_queue_entry_clear(mw_queue_entry *e);
/* A reply text made safe for one line of the envelope file (malloc'd,
 * at most Q_MAX_TEXT bytes); NULL when out of memory. */
char *mwi_queue_one_line(const char *s);
/* env/ID and the size of msg/ID into *e; 0, or -1 when unreadable,
 * malformed or without its message file. */
int mwi_queue_load_entry(const mw_queue *q, const char *id, mw_queue_entry *e);
/* Writes e to tmp/, fsync, renames it over env/ID, fsyncs env/. */
int mwi_queue_save_entry(const mw_queue *q, const mw_queue_entry *e, mw_error *err);

/* MW_EIO in err: "queue: cannot WHAT PATH: errno text". */
int mwi_queue_sys_err(mw_error *err, const char *what, const char *path, int e);
/* fsync of a directory; 0 or an errno value. */
int mwi_queue_fsync_dir(const char *dir);
/* All n bytes to fd; 0 or an errno value. */
int mwi_queue_write_all(int fd, const char *p, size_t n);
/* DIR/A[/B] into out[Q_PATH]; -1 when too long. */
int mwi_queue_path(const mw_queue *q, char *out, const char *a, const char *b);
/* An ID as new IDs are made (hex digits and dots, not starting with one). */
int mwi_queue_valid_id(const char *id);
/* The runner's lock (DIR/lock, flock), waiting for it or not: MW_ESTATE
 * when held and not waiting.  *fd_out is closed to release it. */
int mwi_queue_lock(const mw_queue *q, int wait, int *fd_out, mw_error *err);
/* Removes an entry: env/ID first (it leaves the queue), then msg/ID. */
int mwi_queue_remove(const mw_queue *q, const char *id, mw_error *err);
/* Removes what an enqueue killed half-way left behind. */
void mwi_queue_clean_orphans(const mw_queue *q);

/* One attempt at e's pending recipients over *s with the message on fd
 * (or, when trc is set, the failure to get that far: terr), recorded in
 * e's recipients, attempts and next attempt.  A session left unusable is
 * freed (*s = NULL).  Returns how many recipients are still pending. */
size_t mwi_queue_attempt(const mw_queue *q, mw_queue_entry *e, mw_smtp **s, int fd, int trc,
                         mw_error *terr, int maxtime_ms);

#endif
