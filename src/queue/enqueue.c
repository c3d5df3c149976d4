/* Taking a message in: mw_queue_add (spooled, fsync'd, committed by
 * env/ID) and mw_queue_send (one attempt first, committed to the queue
 * only when some recipient must wait). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "mailwire/queue.h"

#include "queue/queue_int.h"
#include "util/err.h"
#include "util/random.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

/* An ID: fixed-width hex time (so names sort by age), then pid and random
 * (MW_EIO when the kernel has no random bytes: no weaker fallback). */
static int new_id(char id[MW_QUEUE_ID_MAX], mw_error *err)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    uint32_t r = 0;
    if (mwi_random_bytes(&r, sizeof r, err)) return MW_EIO;
    snprintf(id, MW_QUEUE_ID_MAX, "%010llX%05lX.%lX.%08" PRIX32, (unsigned long long)tv.tv_sec,
             (unsigned long)tv.tv_usec, (unsigned long)getpid(), r);
    return 0;
}

static int clean_value(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7F) return 0;
    return 1;
}

static int check_env(const mw_queue_env *env, mw_error *err)
{
    if (env->version < 1 || env->version > MW_QUEUE_ENV_VERSION)
        return mwi_err_set(err, MW_EINVAL, "queue: mw_queue_env version %u unknown", env->version);
    if (!env->sender || !clean_value(env->sender) || strchr(env->sender, '\t'))
        return mwi_err_set(err, MW_EINVAL, "queue: bad sender address");
    if (env->nrecipients == 0 || env->nrecipients > Q_MAX_RCPT)
        return mwi_err_set(err, MW_EINVAL, "queue: %s recipients",
                           env->nrecipients ? "too many" : "no");
    for (size_t i = 0; i < env->nrecipients; i++)
        if (!env->recipients[i] || !env->recipients[i][0] || !clean_value(env->recipients[i]) ||
            strchr(env->recipients[i], ' ') || strchr(env->recipients[i], '\t'))
            return mwi_err_set(err, MW_EINVAL, "queue: bad recipient address %zu", i + 1);
    if (!clean_value(env->account) || !clean_value(env->dsn_notify) || !clean_value(env->dsn_ret) ||
        !clean_value(env->dsn_envid))
        return mwi_err_set(err, MW_EINVAL, "queue: control character in an envelope option");
    return 0;
}

/* A new entry pointing at env's strings (only rcpt[] and the recipients'
 * texts are its own: entry_shallow_free). */
static int entry_from_env(mw_queue_entry *e, const mw_queue_env *env, mw_error *err)
{
    memset(e, 0, sizeof *e);
    if (new_id(e->id, err)) return MW_EIO;
    e->created = e->next_attempt = time(NULL);
    e->body = env->body;
    e->raw = env->raw != 0;
    e->sender = (char *)env->sender;
    e->account = (char *)env->account;
    e->dsn_notify = (char *)env->dsn_notify;
    e->dsn_ret = (char *)env->dsn_ret;
    e->dsn_envid = (char *)env->dsn_envid;
    e->nrcpt = env->nrecipients;
    e->rcpt = calloc(e->nrcpt, sizeof *e->rcpt);
    if (!e->rcpt) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    for (size_t i = 0; i < e->nrcpt; i++)
        e->rcpt[i].address = (char *)env->recipients[i];
    return 0;
}

static void entry_shallow_free(mw_queue_entry *e)
{
    for (size_t i = 0; e->rcpt && i < e->nrcpt; i++)
        free(e->rcpt[i].text);
    free(e->rcpt);
    e->rcpt = NULL;
}

static void tmp_names(const mw_queue *q, const char *id, char *tmsg, char *tenv)
{
    char name[MW_QUEUE_ID_MAX + 8];
    snprintf(name, sizeof name, "%s.msg", id);
    mwi_queue_path(q, tmsg, "tmp", name);
    snprintf(name, sizeof name, "%s.env", id);
    mwi_queue_path(q, tenv, "tmp", name);
}

/* The message from `read` into tmp/ID.msg (fsync'd when `sync`); on
 * failure nothing is left.  Returns 0 with *fd_out open for reading. */
static int spool(const mw_queue *q, const char *id, mw_smtp_read_fn read, void *ud, int sync,
                 int *fd_out, mw_error *err)
{
    char tmsg[Q_PATH], tenv[Q_PATH];
    tmp_names(q, id, tmsg, tenv);
    int rc = 0;
    char *buf = malloc(65536);
    int fd = buf ? open(tmsg, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600) : -1;
    if (!buf) {
        rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
        goto fail;
    }
    if (fd < 0) {
        rc = mwi_queue_sys_err(err, "create", tmsg, errno);
        goto fail;
    }
    for (;;) {
        long n = read(buf, 65536, ud);
        if (n < 0) {
            rc = mwi_err_set(err, (int)n, "queue: reading the message failed");
            goto fail;
        }
        if (n == 0) break;
        int e2 = mwi_queue_write_all(fd, buf, (size_t)n);
        if (e2) {
            rc = mwi_queue_sys_err(err, "write", tmsg, e2);
            goto fail;
        }
    }
    if (sync && fsync(fd) != 0) {
        rc = mwi_queue_sys_err(err, "fsync", tmsg, errno);
        goto fail;
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        rc = mwi_queue_sys_err(err, "seek", tmsg, errno);
        goto fail;
    }
    free(buf);
    *fd_out = fd;
    return 0;
fail:
    if (fd >= 0) close(fd);
    unlink(tmsg);
    free(buf);
    return rc;
}

/* Moves a spooled message into the queue: (fsync of the message unless
 * done,) the envelope written beside it in tmp/ and fsync'd, the message
 * renamed into msg/, msg/ fsync'd, the envelope renamed into env/ (the
 * commit), env/ fsync'd.  On failure nothing of it is left. */
static int commit(const mw_queue *q, const mw_queue_entry *e, int msgfd, int msg_synced,
                  mw_error *err)
{
    char tmsg[Q_PATH], tenv[Q_PATH], dmsg[Q_PATH], denv[Q_PATH], d[Q_PATH];
    tmp_names(q, e->id, tmsg, tenv);
    mwi_queue_path(q, dmsg, "msg", e->id);
    mwi_queue_path(q, denv, "env", e->id);
    int rc = 0, moved = 0, e2;
    if (!msg_synced && fsync(msgfd) != 0) {
        rc = mwi_queue_sys_err(err, "fsync", tmsg, errno);
        goto fail;
    }
    {
        size_t len = 0;
        char *text = mwi_queue_env_text(e, &len);
        if (!text) {
            rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
            goto fail;
        }
        int efd = open(tenv, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        e2 = efd < 0 ? errno : mwi_queue_write_all(efd, text, len);
        free(text);
        if (!e2 && fsync(efd) != 0) e2 = errno;
        if (efd >= 0 && close(efd) != 0 && !e2) e2 = errno;
        if (e2) {
            rc = mwi_queue_sys_err(err, "write", tenv, e2);
            goto fail;
        }
    }
    if (rename(tmsg, dmsg) != 0) {
        rc = mwi_queue_sys_err(err, "rename", dmsg, errno);
        goto fail;
    }
    moved = 1;
    mwi_queue_path(q, d, "msg", NULL);
    if ((e2 = mwi_queue_fsync_dir(d)) != 0) {
        rc = mwi_queue_sys_err(err, "fsync", d, e2);
        goto fail;
    }
    if (rename(tenv, denv) != 0) {
        rc = mwi_queue_sys_err(err, "rename", denv, errno);
        goto fail;
    }
    mwi_queue_path(q, d, "env", NULL);
    if ((e2 = mwi_queue_fsync_dir(d)) != 0) {
        /* In place but perhaps not on disk: take it back out. */
        unlink(denv);
        rc = mwi_queue_sys_err(err, "fsync", d, e2);
        goto fail;
    }
    return 0;
fail:
    unlink(tmsg);
    unlink(tenv);
    if (moved) unlink(dmsg);
    return rc;
}

int mw_queue_add(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                 char id[MW_QUEUE_ID_MAX], mw_error *err)
{
    if (!q || !env || !read || !id)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_add: bad arguments");
    id[0] = '\0';
    int rc = check_env(env, err);
    if (rc) return rc;
    mw_queue_entry e;
    if ((rc = entry_from_env(&e, env, err)) != 0) return rc;
    int fd = -1;
    rc = spool(q, e.id, read, ud, 1, &fd, err);
    if (!rc) rc = commit(q, &e, fd, 1, err);
    if (fd >= 0) close(fd);
    if (!rc) snprintf(id, MW_QUEUE_ID_MAX, "%s", e.id);
    entry_shallow_free(&e);
    return rc;
}

/* ---- send now, queue what cannot go ---- */

int mw_queue_send(mw_queue *q, const mw_queue_env *env, mw_smtp_read_fn read, void *ud,
                  const mw_queue_run_opts *ro, char id[MW_QUEUE_ID_MAX], int *queued, mw_error *err)
{
    if (!q || !env || !read || !id || !ro || !ro->connect || !queued)
        return mwi_err_set(err, MW_EINVAL, "mw_queue_send: bad arguments");
    id[0] = '\0';
    *queued = 0;
    int rc = check_env(env, err);
    if (rc) return rc;
    mw_queue_entry e;
    if ((rc = entry_from_env(&e, env, err)) != 0) return rc;
    /* Not fsync'd yet: while the attempt runs the message is not in the
     * queue, and the caller has not been told it was taken. */
    int fd = -1;
    if ((rc = spool(q, e.id, read, ud, 0, &fd, err)) != 0) {
        entry_shallow_free(&e);
        return rc;
    }
    snprintf(id, MW_QUEUE_ID_MAX, "%s", e.id);
    mw_smtp *s = NULL;
    mw_error terr;
    mw_error_clear(&terr);
    int trc = ro->connect(&e, &s, &terr, ro->connect_userdata);
    if (trc || !s) {
        if (!trc) trc = mwi_err_set(&terr, MW_ENET, "no session");
        s = NULL;
    }
    size_t npend = mwi_queue_attempt(q, &e, &s, fd, trc, &terr, ro->maxtime_ms);
    if (s) {
        mw_smtp_quit(s);
        mw_smtp_free(s);
    }
    size_t nfail = 0;
    for (size_t k = 0; k < e.nrcpt; k++)
        nfail += e.rcpt[k].state == MW_QUEUE_FAILED;
    mw_queue_event ev = {0, &e, terr.code, terr.code ? &terr : NULL};
    if (npend > 0) {
        /* Some recipients must wait: now the message enters the queue. */
        if ((rc = commit(q, &e, fd, 0, err)) == 0) {
            *queued = 1;
            ev.kind = MW_QUEUE_EV_DEFERRED;
            if (ro->event) ro->event(&ev, ro->event_userdata);
        }
    } else {
        char tmsg[Q_PATH], tenv[Q_PATH];
        tmp_names(q, e.id, tmsg, tenv);
        unlink(tmsg);
        ev.kind = nfail ? MW_QUEUE_EV_FAILED : MW_QUEUE_EV_SENT;
        if (ro->event) ro->event(&ev, ro->event_userdata);
    }
    close(fd);
    entry_shallow_free(&e);
    return rc;
}
