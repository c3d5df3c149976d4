/* The OAuth token store: a 0600 JSON file replaced atomically, the refresh
 * token optionally kept by a secret-store command, and the lock that lets
 * one process refresh at a time. */
#include "mailwire/config.h"
#include "mailwire/oauth.h"
#include "oauth/client.h"
#include "oauth/oauth_int.h"
#include "util/err.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void mwi_oauth_store_clear(mwi_oauth_store *s)
{
    mwi_oauth_wipe_free(s->refresh_token);
    mwi_oauth_wipe_free(s->access_token);
    free(s->scope);
    memset(s, 0, sizeof *s);
}

/* ---- the token store ---------------------------------------------------------- */

int mwi_oauth_store_load(const mw_oauth *oa, mwi_oauth_store *s, mw_error *err)
{
    memset(s, 0, sizeof *s);
    const char *path = oa->o.store_path;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return mwi_err_set(err, MW_ESTATE,
                               "no OAuth tokens stored (%.200s): run `mailwire oauth login` first",
                               path);
        return mwi_err_set(err, MW_EIO, "token store %.200s: cannot open (errno %d)", path, errno);
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mwi_err_set(err, MW_EIO, "token store %.200s: not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return mwi_err_set(err, MW_EPOLICY,
                           "token store %.200s: readable by others (mode %03o); chmod 600 it", path,
                           (unsigned)(st.st_mode & 0777));
    }
    if (st.st_size > MW_OAUTH_MAX_BODY) {
        close(fd);
        return mwi_err_set(err, MW_ETOOBIG, "token store %.200s: over %d bytes", path,
                           MW_OAUTH_MAX_BODY);
    }
    char buf[MW_OAUTH_MAX_BODY + 1];
    ssize_t n = 0, r;
    while ((r = read(fd, buf + n, sizeof buf - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    if (r < 0) return mwi_err_set(err, MW_EIO, "token store %.200s: read error", path);
    buf[n] = '\0';
    json_object *o = json_tokener_parse(buf);
    OPENSSL_cleanse(buf, (size_t)n);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return mwi_err_set(err, MW_EFORMAT,
                           "token store %.200s: not valid JSON; run `mailwire oauth login` again",
                           path);
    }
    json_object *v;
    if (json_object_object_get_ex(o, "refresh_token", &v) &&
        json_object_is_type(v, json_type_string))
        s->refresh_token = strdup(json_object_get_string(v));
    if (json_object_object_get_ex(o, "access_token", &v) &&
        json_object_is_type(v, json_type_string))
        s->access_token = strdup(json_object_get_string(v));
    if (json_object_object_get_ex(o, "scope", &v) && json_object_is_type(v, json_type_string))
        s->scope = strdup(json_object_get_string(v));
    if (json_object_object_get_ex(o, "expires_at", &v)) s->expires_at = json_object_get_int64(v);
    if (json_object_object_get_ex(o, "obtained_at", &v)) s->obtained_at = json_object_get_int64(v);
    if (json_object_object_get_ex(o, "refreshes", &v)) s->refreshes = json_object_get_int64(v);
    if (json_object_object_get_ex(o, "refresh_token_in", &v) &&
        json_object_is_type(v, json_type_string) && !strcmp(json_object_get_string(v), "command"))
        s->rt_external = 1;
    /* json-c keeps copies of the strings in the object: wipe them too. */
    if (json_object_object_get_ex(o, "refresh_token", &v) &&
        json_object_is_type(v, json_type_string))
        OPENSSL_cleanse((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
    if (json_object_object_get_ex(o, "access_token", &v) &&
        json_object_is_type(v, json_type_string))
        OPENSSL_cleanse((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
    json_object_put(o);
    return 0;
}

/* mkdir -p of path's directory, new levels 0700. */
static int make_parent(const char *path, mw_error *err)
{
    char d[4096];
    if (snprintf(d, sizeof d, "%s", path) >= (int)sizeof d)
        return mwi_err_set(err, MW_EINVAL, "token store path too long");
    char *slash = strrchr(d, '/');
    if (!slash || slash == d) return 0;
    *slash = '\0';
    for (char *p = d + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(d, 0700) != 0 && errno != EEXIST)
            return mwi_err_set(err, MW_EIO, "cannot make %.200s (errno %d)", d, errno);
        *p = '/';
    }
    if (mkdir(d, 0700) != 0 && errno != EEXIST)
        return mwi_err_set(err, MW_EIO, "cannot make %.200s (errno %d)", d, errno);
    return 0;
}

/* ---- the secret-store commands ------------------------------------------------- */

/* The store command gets the refresh token on its stdin (src/util/proc.c
 * starts it: nothing else inherited, reaped whatever happens).  It may ask
 * a person to unlock a keyring: five minutes, then it is ended. */
static int secret_put(const mw_oauth *oa, const char *token, mw_error *err)
{
    mwi_proc pr;
    int rc = mwi_proc_start(&pr, oa->o.secret_store_cmd, MWI_PROC_IN_PIPE | MWI_PROC_OUT_NULL, err);
    if (rc) return rc;
    size_t n = strlen(token), off = 0;
    int64_t deadline = mw_now_ms() + 300000;
    int wrote = 1;
    while (off < n + 1 && wrote) {
        const char *b = off < n ? token + off : "\n";
        size_t len = off < n ? n - off : 1;
        ssize_t w = write(pr.in, b, len);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {pr.in, POLLOUT, 0};
            int64_t left = deadline - mw_now_ms();
            if (left <= 0 || poll(&pf, 1, (int)(left > 1000 ? 1000 : left)) < 0) wrote = 0;
        } else {
            wrote = 0; /* the command did not read it: its exit status tells */
        }
    }
    int status = 0;
    int64_t left = deadline - mw_now_ms();
    mwi_proc_end(&pr, left > 0 ? (int)left : 0, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return mwi_err_set(err, MW_EIO, "oauth_secret_store command failed (%s %d): %.160s",
                           WIFEXITED(status) ? "exit status" : "signal",
                           WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                           oa->o.secret_store_cmd);
    return 0;
}

/* Loads the refresh token from the secret store when it lives there
 * (mw_secret_from_command: the first line; no deadline, as a PIN may be
 * asked for). */
int mwi_oauth_secret_get(const mw_oauth *oa, mwi_oauth_store *s, mw_error *err)
{
    if (s->refresh_token || !s->rt_external) return 0;
    if (!oa->o.secret_lookup_cmd)
        return mwi_err_set(err, MW_EINVAL,
                           "the refresh token is in a secret store, but no oauth_secret_lookup "
                           "command is set");
    char *tok = NULL;
    int rc = mw_secret_from_command(&tok, oa->o.secret_lookup_cmd, err);
    if (rc == MW_EFORMAT)
        return mwi_err_set(err, MW_EAUTH,
                           "the oauth_secret_lookup command printed no refresh token (%.160s); "
                           "run `mailwire oauth login` again",
                           oa->o.secret_lookup_cmd);
    if (rc) {
        char why[200];
        mwi_copy_printable(why, sizeof why, err ? err->message : "",
                           err ? strnlen(err->message, sizeof why - 1) : 0);
        return mwi_err_set(err, rc, "oauth_secret_lookup command: %s: %.120s", why,
                           oa->o.secret_lookup_cmd);
    }
    s->refresh_token = tok;
    return 0;
}

/* Writes the store to a new 0600 file beside it, fsyncs and renames it over
 * the old one: a crash leaves the old or the new store, never half. */
int mwi_oauth_store_save(const mw_oauth *oa, const mwi_oauth_store *s, mw_error *err)
{
    const char *path = oa->o.store_path;
    int rc = make_parent(path, err);
    if (rc) return rc;
    json_object *o = json_object_new_object();
    if (!o) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (oa->o.secret_store_cmd && (s->refresh_token || s->rt_external)) {
        if (s->refresh_token) {
            rc = secret_put(oa, s->refresh_token, err);
            if (rc) {
                json_object_put(o);
                return rc;
            }
        }
        json_object_object_add(o, "refresh_token_in", json_object_new_string("command"));
    } else if (s->refresh_token) {
        json_object_object_add(o, "refresh_token", json_object_new_string(s->refresh_token));
    }
    if (s->access_token)
        json_object_object_add(o, "access_token", json_object_new_string(s->access_token));
    if (s->scope) json_object_object_add(o, "scope", json_object_new_string(s->scope));
    json_object_object_add(o, "expires_at", json_object_new_int64(s->expires_at));
    json_object_object_add(o, "obtained_at", json_object_new_int64(s->obtained_at));
    json_object_object_add(o, "refreshes", json_object_new_int64(s->refreshes));
    size_t len = 0;
    const char *text = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        json_object_put(o);
        return mwi_err_set(err, MW_EIO, "token store %.200s: cannot write (errno %d)", tmp, errno);
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        off += (size_t)w;
    }
    int ok = off == len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    OPENSSL_cleanse((char *)text, len);
    json_object_put(o);
    if (close(fd) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return mwi_err_set(err, MW_EIO, "token store %.200s: write failed (errno %d)", path, errno);
    }
    return 0;
}

/* Exclusive lock on PATH.lock for a refresh; waits at most twice the HTTP
 * timeout (a refresh elsewhere ends by then).  Returns the fd or < 0. */
int mwi_oauth_store_lock(const mw_oauth *oa, mw_error *err)
{
    char lp[4200];
    snprintf(lp, sizeof lp, "%s.lock", oa->o.store_path);
    int rc = make_parent(lp, err);
    if (rc) return rc;
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return mwi_err_set(err, MW_EIO, "token store lock %.200s: cannot open (errno %d)", lp,
                           errno);
    long waited = 0, limit = 2L * oa->o.timeout_ms + 5000;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) break;
        if (waited >= limit) {
            close(fd);
            return mwi_err_set(err, MW_ETIMEOUT,
                               "token store %.200s: locked by another process for %ld ms", lp,
                               waited);
        }
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
        waited += 50;
    }
    return fd;
}

void mwi_oauth_store_unlock(int fd)
{
    if (fd >= 0) close(fd); /* releases the flock */
}

/* A login's tokens written to a new store, under the lock. */
int mwi_oauth_save_login(mw_oauth *oa, mw_oauth_resp *r, long long t0, mw_error *err)
{
    mwi_oauth_store s;
    memset(&s, 0, sizeof s);
    mwi_oauth_absorb(&s, r, t0);
    int lk = mwi_oauth_store_lock(oa, err);
    if (lk < 0) {
        mwi_oauth_store_clear(&s);
        return lk;
    }
    int rc = mwi_oauth_store_save(oa, &s, err);
    mwi_oauth_store_unlock(lk);
    mwi_oauth_store_clear(&s);
    return rc;
}
