/* OAuth 2.0 client: flows, token store, token provider (include/mailwire/
 * oauth.h). */
#include "mailwire/config.h"
#include "mailwire/oauth.h"
#include "oauth/oauth_int.h"
#include "util/err.h"
#include "util/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct mw_oauth {
    mw_oauth_opts o;
    char *strs[12];   /* owned copies of the option strings */
    char *last_token; /* the last access token handed out (to tell a refusal of it) */
    int last_from_refresh;
};

/* The store's contents. */
typedef struct store {
    char *refresh_token, *access_token, *scope;
    long long expires_at, obtained_at, refreshes;
    int rt_external; /* the refresh token is in the secret store (not loaded yet) */
} store;

static void wipe_free(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

static void store_clear(store *s)
{
    wipe_free(s->refresh_token);
    wipe_free(s->access_token);
    free(s->scope);
    memset(s, 0, sizeof *s);
}

void mw_oauth_token_free(char *token)
{
    wipe_free(token);
}

static void trace(const mw_oauth *oa, int dir, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void trace(const mw_oauth *oa, int dir, const char *fmt, ...)
{
    if (!oa->o.trace) return;
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = (int)sizeof line - 1;
    oa->o.trace(dir, line, (size_t)n, oa->o.trace_userdata);
}

int mw_oauth_new(mw_oauth **out, const mw_oauth_opts *opts, mw_error *err)
{
    *out = NULL;
    if (!opts || opts->version != MW_OAUTH_OPTS_VERSION)
        return mwi_err_set(err, MW_EINVAL, "mw_oauth_new: unknown options version");
    if (!opts->client_id || !opts->client_id[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no client id (oauth_client_id)");
    if (!opts->token_url || !opts->token_url[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no token endpoint (oauth_token_url)");
    if (!opts->store_path || !opts->store_path[0])
        return mwi_err_set(err, MW_EINVAL, "OAuth: no token store path");
    if (!opts->secret_store_cmd != !opts->secret_lookup_cmd)
        return mwi_err_set(err, MW_EINVAL,
                           "OAuth: a secret store needs both commands (oauth_secret_store and "
                           "oauth_secret_lookup)");
    mw_oauth *oa = calloc(1, sizeof *oa);
    if (!oa) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    oa->o = *opts;
    const char **f[] = {&oa->o.client_id, &oa->o.client_secret, &oa->o.device_url,
                        &oa->o.auth_url,  &oa->o.token_url,     &oa->o.revoke_url,
                        &oa->o.scope,     &oa->o.auth_params,   &oa->o.store_path,
                        &oa->o.proxy};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        if (!*f[i]) continue;
        if (!(oa->strs[i] = strdup(*f[i]))) {
            mw_oauth_free(oa);
            return mwi_err_set(err, MW_ENOMEM, "out of memory");
        }
        *f[i] = oa->strs[i];
    }
    if (oa->o.timeout_ms <= 0) oa->o.timeout_ms = 30000;
    if (oa->o.refresh_margin_s < 0) oa->o.refresh_margin_s = 0;
    *out = oa;
    return 0;
}

void mw_oauth_free(mw_oauth *oa)
{
    if (!oa) return;
    for (size_t i = 0; i < sizeof oa->strs / sizeof oa->strs[0]; i++)
        free(oa->strs[i]);
    wipe_free(oa->last_token);
    free(oa);
}

/* ---- the token store ---------------------------------------------------------- */

static int store_load(const mw_oauth *oa, store *s, mw_error *err)
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
static int secret_get(const mw_oauth *oa, store *s, mw_error *err)
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
static int store_save(const mw_oauth *oa, const store *s, mw_error *err)
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
static int store_lock(const mw_oauth *oa, mw_error *err)
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

static void store_unlock(int fd)
{
    if (fd >= 0) close(fd); /* releases the flock */
}

/* ---- token requests ----------------------------------------------------------- */

static int add_client(const mw_oauth *oa, char **form)
{
    int rc = mwi_oauth_form_add(form, "client_id", oa->o.client_id);
    if (!rc && oa->o.client_secret)
        rc = mwi_oauth_form_add(form, "client_secret", oa->o.client_secret);
    return rc;
}

/* POSTs form to url and parses the answer; traces without secrets. */
static int request(const mw_oauth *oa, const char *url, const char *what, const char *form,
                   int kind, long *status, mw_oauth_resp *r, mw_error *err)
{
    char *body = NULL;
    size_t len = 0;
    memset(r, 0, sizeof *r);
    r->expires_in = r->interval = -1;
    trace(oa, MW_TRACE_SEND, "oauth: POST %.200s (%s)", url, what);
    int rc = mwi_oauth_http_post(&oa->o, url, form, status, &body, &len, err);
    if (rc) {
        trace(oa, MW_TRACE_INFO, "oauth: %s", err ? err->message : "HTTP failed");
        return rc;
    }
    rc = mwi_oauth_parse_resp(body, len, *status, kind, r, err);
    OPENSSL_cleanse(body, len);
    free(body);
    if (rc == 0 && r->error)
        trace(oa, MW_TRACE_RECV, "oauth: HTTP %ld error=%.60s", *status, r->error);
    else if (rc == 0 && kind == MW_OAUTH_RESP_TOKEN)
        trace(oa, MW_TRACE_RECV, "oauth: HTTP %ld access_token=<hidden> expires_in=%lld%s", *status,
              r->expires_in, r->refresh_token ? " refresh_token=<hidden>" : "");
    else if (rc == 0)
        trace(oa, MW_TRACE_RECV,
              "oauth: HTTP %ld device_code=<hidden> expires_in=%lld interval=%lld", *status,
              r->expires_in, r->interval);
    else
        trace(oa, MW_TRACE_INFO, "oauth: HTTP %ld: %s", *status, err ? err->message : "bad answer");
    return rc;
}

/* Folds a successful token response into the store (keeps the old refresh
 * token when none came, RFC 6749 section 6). */
static int absorb(store *s, mw_oauth_resp *r, long long t0)
{
    wipe_free(s->access_token);
    s->access_token = r->access_token;
    r->access_token = NULL;
    if (r->refresh_token) {
        wipe_free(s->refresh_token);
        s->refresh_token = r->refresh_token;
        r->refresh_token = NULL;
    }
    if (r->scope) {
        free(s->scope);
        s->scope = r->scope;
        r->scope = NULL;
    }
    /* The lifetime counts from when the request was sent (RFC 6749 section
     * 5.1 gives it relative): never later than the server's clock. */
    s->obtained_at = t0;
    s->expires_at = r->expires_in >= 0 ? t0 + r->expires_in : 0;
    return 0;
}

static long long now_s(void)
{
    return (long long)time(NULL);
}

static int hand_out(mw_oauth *oa, const store *s, int from_refresh, char **token, mw_error *err)
{
    *token = strdup(s->access_token);
    wipe_free(oa->last_token);
    oa->last_token = strdup(s->access_token);
    if (!*token || !oa->last_token) {
        wipe_free(*token);
        *token = NULL;
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    oa->last_from_refresh = from_refresh;
    return 0;
}

/* The refresh grant on s (already loaded, store locked). */
static int do_refresh(mw_oauth *oa, store *s, mw_error *err)
{
    int src = secret_get(oa, s, err);
    if (src) return src;
    if (!s->refresh_token || !s->refresh_token[0])
        return mwi_err_set(err, MW_EAUTH,
                           "no refresh token stored (the provider gave none): run `mailwire oauth "
                           "login` again");
    char *form = NULL;
    int rc = mwi_oauth_form_add(&form, "grant_type", "refresh_token");
    if (!rc) rc = mwi_oauth_form_add(&form, "refresh_token", s->refresh_token);
    if (!rc) rc = add_client(oa, &form);
    if (rc) {
        wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status;
    mw_oauth_resp r;
    long long t0 = now_s();
    rc = request(oa, oa->o.token_url, "grant_type=refresh_token", form, MW_OAUTH_RESP_TOKEN,
                 &status, &r, err);
    wipe_free(form);
    if (rc == 0 && r.error) rc = mwi_oauth_error_for(&r, "token", err);
    if (rc == 0) {
        absorb(s, &r, t0);
        s->refreshes++;
        /* A rotated refresh token is saved before the access token is used:
         * the old one may already be dead. */
        rc = store_save(oa, s, err);
    }
    mwi_oauth_resp_clear(&r);
    return rc;
}

static int fresh_enough(const mw_oauth *oa, const store *s, long long now)
{
    if (!s->access_token || !s->access_token[0]) return 0;
    if (s->expires_at == 0) return 1; /* lifetime unknown: use until refused */
    /* A clock that went back past the time the token came: do not trust
     * the cached expiry. */
    if (s->obtained_at > now + 60) return 0;
    long long life = s->expires_at - s->obtained_at;
    long long margin = oa->o.refresh_margin_s;
    if (life > 0 && margin > life / 2) margin = life / 2;
    return now < s->expires_at - margin;
}

int mw_oauth_refresh(mw_oauth *oa, mw_error *err)
{
    int lk = store_lock(oa, err);
    if (lk < 0) return lk;
    store s;
    int rc = store_load(oa, &s, err);
    if (!rc) rc = do_refresh(oa, &s, err);
    store_clear(&s);
    store_unlock(lk);
    return rc;
}

int mw_oauth_token(mw_oauth *oa, int refused, char **token, mw_error *err)
{
    *token = NULL;
    if (refused && oa->last_from_refresh)
        return mwi_err_set(err, MW_EAUTH,
                           "the server refused a token just issued by the provider: check the "
                           "account's user name and oauth_scope, and the system clock");
    store s;
    int rc = store_load(oa, &s, err);
    if (rc) return rc;
    if (!refused && fresh_enough(oa, &s, now_s())) {
        rc = hand_out(oa, &s, 0, token, err);
        store_clear(&s);
        return rc;
    }
    store_clear(&s);
    int lk = store_lock(oa, err);
    if (lk < 0) return lk;
    rc = store_load(oa, &s, err); /* another process may have refreshed meanwhile */
    if (!rc) {
        int other = refused && s.access_token && oa->last_token &&
                    strcmp(s.access_token, oa->last_token) != 0;
        if ((!refused || other) && fresh_enough(oa, &s, now_s())) {
            rc = hand_out(oa, &s, 0, token, err);
        } else {
            if (refused)
                trace(oa, MW_TRACE_INFO, "oauth: the server refused the access token; refreshing");
            rc = do_refresh(oa, &s, err);
            if (!rc) rc = hand_out(oa, &s, 1, token, err);
        }
    }
    store_clear(&s);
    store_unlock(lk);
    return rc;
}

int mw_oauth_token_cb(int refused, char **token, mw_error *err, void *userdata)
{
    return mw_oauth_token(userdata, refused, token, err);
}

int mw_oauth_get_status(mw_oauth *oa, mw_oauth_status *st, mw_error *err)
{
    memset(st, 0, sizeof *st);
    store s;
    int rc = store_load(oa, &s, err);
    if (rc == MW_ESTATE) {
        mw_error_clear(err);
        return 0;
    }
    if (rc) return rc;
    st->logged_in = (s.refresh_token && s.refresh_token[0]) || s.rt_external;
    st->have_access = s.access_token && s.access_token[0];
    st->expires_at = s.expires_at;
    st->obtained_at = s.obtained_at;
    st->refreshes = s.refreshes;
    if (s.scope) snprintf(st->scope, sizeof st->scope, "%s", s.scope);
    store_clear(&s);
    return 0;
}

/* ---- device authorization grant (RFC 8628) ------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static int save_login(mw_oauth *oa, mw_oauth_resp *r, long long t0, mw_error *err)
{
    store s;
    memset(&s, 0, sizeof s);
    absorb(&s, r, t0);
    int lk = store_lock(oa, err);
    if (lk < 0) {
        store_clear(&s);
        return lk;
    }
    int rc = store_save(oa, &s, err);
    store_unlock(lk);
    store_clear(&s);
    return rc;
}

int mw_oauth_login_device(mw_oauth *oa, mw_oauth_device_fn show, void *userdata, mw_error *err)
{
    if (!oa->o.device_url)
        return mwi_err_set(err, MW_EINVAL,
                           "OAuth: no device authorization endpoint (oauth_device_url)");
    char *form = NULL;
    int rc = add_client(oa, &form);
    if (!rc && oa->o.scope) rc = mwi_oauth_form_add(&form, "scope", oa->o.scope);
    if (rc) {
        free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status;
    mw_oauth_resp d;
    rc = request(oa, oa->o.device_url, "device authorization", form, MW_OAUTH_RESP_DEVICE, &status,
                 &d, err);
    free(form);
    form = NULL;
    if (rc == 0 && d.error) rc = mwi_oauth_error_for(&d, "device authorization", err);
    if (rc) {
        mwi_oauth_resp_clear(&d);
        return rc;
    }
    /* RFC 8628 section 3.2: interval defaults to 5 s; the code's lifetime
     * bounds the polling (a server that says nothing: 30 minutes). */
    long long interval = d.interval > 0 ? d.interval : 5;
    long long life = d.expires_in > 0 ? d.expires_in : 1800;
    mw_oauth_device_prompt p = {d.verification_uri, d.verification_uri_complete, d.user_code,
                                (int)life, (int)interval};
    int stop = show ? show(&p, 0, userdata) : 0;
    if (stop) {
        /* The callback's value comes back unchanged (docs/CONVENTIONS.md). */
        mwi_oauth_resp_clear(&d);
        mwi_err_set(err, stop < 0 ? stop : MW_ECANCELED,
                    "device login stopped by the callback (%d)", stop);
        return stop;
    }
    rc = mwi_oauth_form_add(&form, "grant_type", "urn:ietf:params:oauth:grant-type:device_code");
    if (!rc) rc = mwi_oauth_form_add(&form, "device_code", d.device_code);
    if (!rc) rc = add_client(oa, &form);
    mwi_oauth_resp_clear(&d);
    if (rc) {
        wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long long deadline = now_s() + life;
    unsigned polls = 0;
    for (;;) {
        if (now_s() + interval > deadline + 1) {
            rc = mwi_err_set(err, MW_ETIMEOUT,
                             "device login: the code expired (%lld s) before it was approved; "
                             "run `mailwire oauth login` again",
                             life);
            break;
        }
        sleep_ms((long)interval * 1000);
        polls++;
        mw_oauth_resp r;
        long long t0 = now_s();
        rc = request(oa, oa->o.token_url, "grant_type=device_code", form, MW_OAUTH_RESP_TOKEN,
                     &status, &r, err);
        if (rc == 0 && r.error && !strcmp(r.error, "authorization_pending")) {
            mwi_oauth_resp_clear(&r);
        } else if (rc == 0 && r.error && !strcmp(r.error, "slow_down")) {
            interval += 5; /* RFC 8628 section 3.5 */
            trace(oa, MW_TRACE_INFO, "oauth: slow_down: polling every %lld s now", interval);
            mwi_oauth_resp_clear(&r);
        } else if (rc == 0 && r.error) {
            rc = mwi_oauth_error_for(&r, "token", err);
            mwi_oauth_resp_clear(&r);
            break;
        } else if (rc == 0) {
            rc = save_login(oa, &r, t0, err);
            mwi_oauth_resp_clear(&r);
            break;
        } else {
            mwi_oauth_resp_clear(&r);
            break;
        }
        int st = show ? show(NULL, polls, userdata) : 0;
        if (st) {
            mwi_err_set(err, st < 0 ? st : MW_ECANCELED,
                        "device login stopped by the callback (%d)", st);
            rc = st;
            break;
        }
    }
    wipe_free(form);
    return rc;
}

/* ---- authorization code + PKCE, loopback redirect (RFC 7636, RFC 8252) -------- */

static void b64url(char *out, const unsigned char *in, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n) v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n) v |= in[i + 2];
        out[o++] = a[(v >> 18) & 63];
        out[o++] = a[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = a[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = a[v & 63];
    }
    out[o] = '\0';
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The value of name in the query q (up to a space or the end), decoded
 * into out; 1 when found. */
static int query_get(const char *q, const char *name, char *out, size_t outsz)
{
    size_t nl = strlen(name);
    for (const char *p = q; p && *p && *p != ' ';) {
        const char *amp = strpbrk(p, "& ");
        size_t seglen = amp ? (size_t)(amp - p) : strlen(p);
        if (seglen > nl && !strncmp(p, name, nl) && p[nl] == '=') {
            size_t o = 0;
            for (const char *v = p + nl + 1; v < p + seglen && o + 1 < outsz; v++) {
                if (*v == '%' && v + 2 < p + seglen && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    out[o++] = (char)(hexval(v[1]) * 16 + hexval(v[2]));
                    v += 2;
                } else {
                    out[o++] = *v == '+' ? ' ' : *v;
                }
            }
            out[o] = '\0';
            return 1;
        }
        if (!amp || *amp == ' ') break;
        p = amp + 1;
    }
    return 0;
}

static void reply_page(int fd, const char *status, const char *text)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Connection: close\r\nContent-Length: %zu\r\n\r\n%s",
                     status, strlen(text), text);
    if (n > 0 && write(fd, buf, (size_t)n) < 0) {
        /* the browser went away: nothing to tell it */
    }
}

int mw_oauth_login_pkce(mw_oauth *oa, mw_oauth_browser_fn open_url, void *userdata, int timeout_s,
                        mw_error *err)
{
    if (!oa->o.auth_url)
        return mwi_err_set(err, MW_EINVAL, "OAuth: no authorization endpoint (oauth_auth_url)");
    unsigned char rnd[32 + 16];
    if (RAND_bytes(rnd, sizeof rnd) != 1)
        return mwi_err_set(err, MW_EIO, "no random bytes for PKCE");
    char verifier[64], state[32], challenge[64];
    b64url(verifier, rnd, 32); /* 43 characters, RFC 7636 section 4.1 */
    b64url(state, rnd + 32, 16);
    unsigned char dg[32];
    unsigned dl = 0;
    EVP_Digest(verifier, strlen(verifier), dg, &dl, EVP_sha256(), NULL);
    b64url(challenge, dg, 32);
    OPENSSL_cleanse(rnd, sizeof rnd);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (ls < 0) return mwi_err_set(err, MW_EIO, "loopback listener: socket (errno %d)", errno);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(ls, 8) != 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &sl) != 0) {
        close(ls);
        return mwi_err_set(err, MW_EIO, "loopback listener on 127.0.0.1 (errno %d)", errno);
    }
    char redirect[64];
    snprintf(redirect, sizeof redirect, "http://127.0.0.1:%u/callback", ntohs(sa.sin_port));
    char *q = NULL;
    int rc = mwi_oauth_form_add(&q, "response_type", "code");
    if (!rc) rc = mwi_oauth_form_add(&q, "client_id", oa->o.client_id);
    if (!rc) rc = mwi_oauth_form_add(&q, "redirect_uri", redirect);
    if (!rc && oa->o.scope) rc = mwi_oauth_form_add(&q, "scope", oa->o.scope);
    if (!rc) rc = mwi_oauth_form_add(&q, "state", state);
    if (!rc) rc = mwi_oauth_form_add(&q, "code_challenge", challenge);
    if (!rc) rc = mwi_oauth_form_add(&q, "code_challenge_method", "S256");
    /* A refresh token needs consent on several providers (offline_access). */
    if (!rc) rc = mwi_oauth_form_add(&q, "prompt", "consent");
    char *url = NULL;
    if (!rc) {
        size_t n = strlen(oa->o.auth_url) + strlen(q) + 4 +
                   (oa->o.auth_params ? strlen(oa->o.auth_params) : 0);
        url = malloc(n);
        if (url)
            snprintf(url, n, "%s%c%s%s%s", oa->o.auth_url, strchr(oa->o.auth_url, '?') ? '&' : '?',
                     q, oa->o.auth_params ? "&" : "", oa->o.auth_params ? oa->o.auth_params : "");
    }
    free(q);
    if (rc || !url) {
        close(ls);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    trace(oa, MW_TRACE_INFO, "oauth: waiting for the redirect to %s", redirect);
    int stop = open_url ? open_url(url, userdata) : 0;
    if (stop) {
        free(url);
        close(ls);
        mwi_err_set(err, stop < 0 ? stop : MW_ECANCELED, "login stopped by the callback (%d)",
                    stop);
        return stop;
    }
    free(url);
    long long deadline = now_s() + (timeout_s > 0 ? timeout_s : 300);
    char code[2048] = "";
    rc = 1;
    while (rc == 1) {
        long long left = deadline - now_s();
        if (left <= 0) {
            rc = mwi_err_set(err, MW_ETIMEOUT,
                             "no redirect to %s within %d s: the browser step was not finished; "
                             "run `mailwire oauth login` again",
                             redirect, timeout_s);
            break;
        }
        struct pollfd pf = {ls, POLLIN, 0};
        int pr = poll(&pf, 1, (int)(left > 1 ? 1000 : left * 1000));
        if (pr <= 0) continue;
        int c = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) continue;
        /* One request line (and headers) of at most 8 KiB, within 10 s. */
        char req[8192];
        size_t n = 0;
        long long rdl = now_s() + 10;
        while (n < sizeof req - 1 && !memmem(req, n, "\r\n\r\n", 4) && now_s() < rdl) {
            struct pollfd cp = {c, POLLIN, 0};
            if (poll(&cp, 1, 1000) <= 0) continue;
            ssize_t r = read(c, req + n, sizeof req - 1 - n);
            if (r <= 0) break;
            n += (size_t)r;
        }
        req[n] = '\0';
        char st[64] = "", er[64] = "";
        if (strncmp(req, "GET /callback?", 14) != 0) {
            reply_page(c, "404 Not Found", "not here\n");
            close(c);
            continue;
        }
        const char *qs = req + 14;
        int have_state = query_get(qs, "state", st, sizeof st);
        if (!have_state || CRYPTO_memcmp(st, state, strlen(state) + 1) != 0) {
            /* Not our request (RFC 6749 section 10.12): ignore it. */
            reply_page(c, "400 Bad Request", "state does not match\n");
            close(c);
            continue;
        }
        if (query_get(qs, "error", er, sizeof er)) {
            reply_page(c, "200 OK", "Login refused. You can close this page.\n");
            mw_oauth_resp r = {0};
            r.error = er;
            rc = mwi_oauth_error_for(&r, "authorization", err);
        } else if (!query_get(qs, "code", code, sizeof code) || !code[0]) {
            reply_page(c, "400 Bad Request", "no code\n");
            rc = mwi_err_set(err, MW_EPROTO, "authorization redirect without a code");
        } else {
            reply_page(c, "200 OK", "mailwire: login complete. You can close this page.\n");
            rc = 0;
        }
        OPENSSL_cleanse(req, n);
        close(c);
    }
    close(ls);
    if (rc) {
        OPENSSL_cleanse(code, sizeof code);
        return rc;
    }
    char *form = NULL;
    rc = mwi_oauth_form_add(&form, "grant_type", "authorization_code");
    if (!rc) rc = mwi_oauth_form_add(&form, "code", code);
    if (!rc) rc = mwi_oauth_form_add(&form, "redirect_uri", redirect);
    if (!rc) rc = mwi_oauth_form_add(&form, "code_verifier", verifier);
    if (!rc) rc = add_client(oa, &form);
    OPENSSL_cleanse(code, sizeof code);
    OPENSSL_cleanse(verifier, sizeof verifier);
    if (rc) {
        wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status;
    mw_oauth_resp r;
    long long t0 = now_s();
    rc = request(oa, oa->o.token_url, "grant_type=authorization_code", form, MW_OAUTH_RESP_TOKEN,
                 &status, &r, err);
    wipe_free(form);
    if (rc == 0 && r.error) rc = mwi_oauth_error_for(&r, "token", err);
    if (rc == 0) rc = save_login(oa, &r, t0, err);
    mwi_oauth_resp_clear(&r);
    return rc;
}

/* ---- revocation (RFC 7009) ------------------------------------------------------ */

static int revoke_one(mw_oauth *oa, const char *tok, const char *hint, mw_error *err)
{
    char *form = NULL;
    int rc = mwi_oauth_form_add(&form, "token", tok);
    if (!rc) rc = mwi_oauth_form_add(&form, "token_type_hint", hint);
    if (!rc) rc = add_client(oa, &form);
    if (rc) {
        wipe_free(form);
        return mwi_err_set(err, MW_ENOMEM, "out of memory");
    }
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    trace(oa, MW_TRACE_SEND, "oauth: POST %.200s (revoke %s)", oa->o.revoke_url, hint);
    rc = mwi_oauth_http_post(&oa->o, oa->o.revoke_url, form, &status, &body, &len, err);
    wipe_free(form);
    if (rc) return rc;
    trace(oa, MW_TRACE_RECV, "oauth: HTTP %ld", status);
    /* RFC 7009 section 2.2: 200 also for a token already invalid. */
    if (status != 200) {
        mw_oauth_resp r;
        if (mwi_oauth_parse_resp(body, len, status, MW_OAUTH_RESP_TOKEN, &r, err) == 0 && r.error)
            rc = mwi_oauth_error_for(&r, "revocation", err);
        else
            rc = mwi_err_set(err, status >= 500 ? MW_ETEMP : MW_ESERVER,
                             "revocation endpoint: HTTP %ld", status);
        mwi_oauth_resp_clear(&r);
    }
    free(body);
    return rc;
}

int mw_oauth_logout(mw_oauth *oa, mw_error *err)
{
    int lk = store_lock(oa, err);
    if (lk < 0) return lk;
    store s;
    int rc = store_load(oa, &s, err);
    if (rc == MW_ESTATE) {
        store_unlock(lk);
        return rc;
    }
    int rrc = 0;
    if (rc == 0 && oa->o.revoke_url && s.rt_external) rrc = secret_get(oa, &s, err);
    if (rc == 0 && !rrc && oa->o.revoke_url) {
        if (s.refresh_token) rrc = revoke_one(oa, s.refresh_token, "refresh_token", err);
        if (!rrc && s.access_token) rrc = revoke_one(oa, s.access_token, "access_token", err);
    }
    store_clear(&s);
    if (unlink(oa->o.store_path) != 0 && errno != ENOENT) {
        store_unlock(lk);
        return mwi_err_set(err, MW_EIO, "token store %.200s: cannot delete (errno %d)",
                           oa->o.store_path, errno);
    }
    store_unlock(lk);
    return rrc ? rrc : (rc == MW_EFORMAT ? 0 : rc);
}
