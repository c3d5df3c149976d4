/* The steps of a fetch that do not talk to the server, shared by the
 * blocking fetch (fetch.c) and the fetch on the loop (src/loop/fetch_job.c):
 * errors, progress, the state save, pruning, deciding. */
#include "fetch/fetch_int.h"
#include "store/store_defer.h"

#include "util/err.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keeps the first error (with the prefix naming the step) and its code. */
int mwi_fetch_fail(fctx *c, int code, const char *step, const mw_error *src, const char *fallback)
{
    if (!c->first_rc) {
        c->first_rc = code;
        if (c->err) {
            if (src)
                *c->err = *src;
            else
                mw_error_clear(c->err);
            /* src is never c->err, so its message survives the copy. */
            const char *what = src && src->message[0] ? src->message : fallback;
            mwi_err_set(c->err, code, "%s: %s", step, what ? what : mw_strerror(code));
        }
    }
    return code;
}

void mwi_fetch_progress(fctx *c, int phase)
{
    c->prog.phase = phase;
    c->last_progress_bytes = c->prog.bytes_done;
    if (c->o->progress) c->o->progress(&c->prog, c->o->progress_userdata);
}

/* ---- state ------------------------------------------------------------------ */

/* Makes the stored messages durable, then writes the state; on success
 * every stored message with a UID counts as saved, and only those may be
 * deleted on the server.
 *
 * The store runs with defer_dir_sync: a commit fsyncs the message file and
 * links it into new/, and mw_store_sync() fsyncs new/ once for the batch (one
 * directory fsync per batch instead of per message).  A message is durable
 * once its file AND its directory entry are fsync'd, so the sync comes
 * first, the state naming its UID second, DELE (delete_marked, after the
 * final save) last.  A crash anywhere before leaves the message on the
 * server and out of the state: fetched again, never lost.  Messages without
 * a UID are deleted on "stored" alone, which is safe because the final
 * mwi_fetch_save_state() — and so this sync — always runs before delete_marked(). */
int mwi_fetch_save_state(fctx *c)
{
    int rc = c->s ? mw_store_sync(c->s) : 0;
    if (rc) {
        c->stop = 1;
        return mwi_fetch_fail(c, rc, "store", mw_store_error(c->s), NULL);
    }
    if (!c->state_dirty) return 0;
    rc = mw_state_save(c->st);
    if (rc) {
        c->stop = 1;
        return mwi_fetch_fail(c, rc, "state", mw_state_error(c->st), NULL);
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->pl[i].stored && c->pl[i].uid) c->pl[i].saved = 1;
    c->state_dirty = 0;
    c->unsaved = 0;
    return 0;
}

typedef struct prune_ctx {
    const char **uids; /* sorted */
    size_t n;
} prune_ctx;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Forget UIDs the server no longer lists (deleted by an earlier run), so
 * the state does not grow for ever. */
static int prune_visit(const char *uid, int64_t first_seen, void *ud)
{
    prune_ctx *pc = ud;
    (void)first_seen;
    const char *key = uid;
    return bsearch(&key, pc->uids, pc->n, sizeof *pc->uids, cmp_str) ? 0 : 1;
}

int mwi_fetch_prune(fctx *c, const char *const *uids, size_t n)
{
    prune_ctx pc = {calloc(n ? n : 1, sizeof(const char *)), n};
    if (!pc.uids) return mwi_fetch_fail(c, MW_ENOMEM, "fetch", NULL, "out of memory");
    for (size_t i = 0; i < n; i++)
        pc.uids[i] = uids[i];
    qsort(pc.uids, pc.n, sizeof *pc.uids, cmp_str);
    size_t before = mw_state_count(c->st);
    mw_state_filter(c->st, prune_visit, &pc);
    if (mw_state_count(c->st) != before) c->state_dirty = 1;
    free(pc.uids);
    return 0;
}

void mwi_fetch_decide(fctx *c, uint64_t last)
{
    const mw_fetch_opts *o = c->o;
    for (size_t i = 0; i < c->n; i++) {
        plan *p = &c->pl[i];
        int seen = 0;
        int64_t first = -1;
        if (p->bad_uid) {
            /* Its unique-id cannot be kept in the state (nor told apart
             * from others'): left on the server, the rest goes on. */
            char m[200];
            snprintf(m, sizeof m,
                     "message %llu: UIDL gave it a unique-id that breaks RFC 1939 §7 (a space, "
                     "over 70 octets or an octet outside 0x21-0x7E); not fetched, left on the "
                     "server",
                     (unsigned long long)p->num);
            mwi_fetch_fail(c, MW_EPROTO, "pop3", NULL, m);
            c->res->errors++;
            p->action = A_SKIP;
            continue;
        }
        if (p->uid) {
            seen = mw_state_contains(c->st, p->uid);
            first = mw_state_first_seen(c->st, p->uid);
        } else if (c->res->uid_mode == 1 && p->num <= last) {
            seen = 1;
        }
        if (seen && o->only_new) {
            /* Stored by an earlier run (the state on disk says so), which
             * may have stopped before DELE/QUIT: delete it now unless kept.
             * With LAST only, "seen" is the server's word, not ours. */
            if (p->uid && !o->keep)
                p->action = A_DELE;
            else if (p->uid && o->keep && o->delete_after_days >= 0 && first >= 0 &&
                     c->now - first >= (int64_t)o->delete_after_days * 86400)
                p->action = A_DELE;
            else
                p->action = A_SKIP;
            continue;
        }
        if (o->size_limit && p->size > o->size_limit) {
            p->action = o->size_delete ? A_DELE : A_SKIP;
            continue;
        }
        p->action = A_GET;
    }
}

int mwi_fetch_check_opts(const mw_fetch_opts *o, mw_error *err)
{
    if (!o || o->version != MW_FETCH_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "fetch: options missing or of another version");
    if (!o->host || !*o->host) return mwi_err_set(err, MW_EINVAL, "fetch: no host given");
    if (!o->store_target || !*o->store_target)
        return mwi_err_set(err, MW_EINVAL, "fetch: no delivery target given");
    if (!o->state_path || !*o->state_path)
        return mwi_err_set(err, MW_EINVAL, "fetch: no state file given");
    return 0;
}

/* The caller's store options, with the directory fsync deferred to
 * mwi_fetch_save_state() (see there).  A version-1 struct ends before
 * defer_dir_sync. */
int mwi_fetch_open_store(fctx *c)
{
    const mw_fetch_opts *o = c->o;
    mw_store_options so = MW_STORE_OPTIONS_INIT;
    const mw_store_options *sop = &so;
    if (o->store_opts && o->store_opts->version == 1)
        memcpy(&so, o->store_opts, offsetof(mw_store_options, defer_dir_sync));
    else if (o->store_opts && o->store_opts->version == MW_STORE_OPTIONS_VERSION)
        so = *o->store_opts;
    else if (o->store_opts)
        sop = o->store_opts; /* unknown version: mw_store_open names it */
    so.version = MW_STORE_OPTIONS_VERSION;
    so.defer_dir_sync = 1;
    mw_error tmp;
    memset(&tmp, 0, sizeof tmp);
    int rc = mw_store_open(&c->s, (mw_store_kind)o->store_kind, o->store_target, sop, &tmp);
    if (rc) return mwi_fetch_fail(c, rc, "store", &tmp, NULL);
    /* Maildir: each file's fsync and move into new/ wait for that same
     * sync too (src/store/store_defer.h), the store's own budget of
     * descriptors; a loop's fetch shares its loop's (fetch_job.c). */
    return mwi_store_defer_files(c->s, NULL);
}
