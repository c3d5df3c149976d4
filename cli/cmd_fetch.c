/* mailwire fetch [ACCOUNT...] [--all]: POP3 accounts into Maildir, mbox or
 * an MDA, in the order that never loses mail (mw_fetch_account; with
 * --jobs N above 1, mw_loop_add_fetch on one loop in this thread).  Uses
 * only the public API. */
#include "commands.h"
#include "connopts.h"
#include "engine.h"
#include "oauth_cli.h"

#include "mailwire/config.h"
#include "mailwire/fetch.h"
#include "mailwire/loop.h"
#include "mailwire/netrc.h"
#include "mailwire/sasl.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static void usage(FILE *f)
{
    fputs(
        "usage: mailwire fetch [ACCOUNT...] [--all] [OPTIONS]\n"
        "       mailwire fetch --host HOST --user NAME [--maildir DIR | --mbox FILE | --mda CMD]\n"
        "fetch options:\n"
        "  --config FILE         accounts file (default $XDG_CONFIG_HOME/mailwire/config)\n"
        "  --all                 every account in the file (no ACCOUNT: the one called\n"
        "                        \"default\", else the first)\n"
        "  --jobs N              fetch N accounts at once, in one thread (default 1,\n"
        "                        at most 100000)\n"
        "  --quiet               no summary lines (errors still go to stderr)\n"
        "  --json                one JSON array with a record per account on stdout\n"
        "  --state FILE          UIDL state file (one-shot; default\n"
        "                        $XDG_STATE_HOME/mailwire/uidl/USER@HOST:PORT)\n"
        "  --maildir DIR | --mbox FILE | --mda CMD   delivery (default ~/Maildir)\n"
        "  --keep                leave messages on the server\n"
        "  --only-new            only messages not fetched before (default)\n"
        "  --all-messages        every message on the server\n"
        "  --size-limit N        skip messages larger than N bytes\n"
        "  --filter CMD          headers on stdin; exit 0 fetch, 1 delete, 2 skip\n"
        "  --keep-crlf           store CRLF line ends as received (default: LF)\n",
        f);
    mw_cli_conn_usage(f);
}

typedef struct job {
    char name[300];
    char host[256];
    mw_pop3_opts po;
    mw_tls_opts tls;
    mw_net_opts net;
    mw_store_options so;
    mw_fetch_opts fo;
    char *password;       /* owned, wiped */
    char netrc_user[256]; /* the ~/.netrc login, when the account names none */
    char state_path[4096];
    char target[4096];
    /* results */
    int rc;
    mw_fetch_result res;
    mw_error err;
    double seconds;
    /* progress display */
    int64_t start_ms;
    mw_fetch_progress prog; /* the latest, under runner.mu */
    int active;
    const mw_account *oauth; /* tokens from the OAuth store (cli/cmd_oauth.c) */
    int token_failed;        /* the store or the provider failed (not the server) */
    mw_loop_job *lj;         /* running on the loop (--jobs above 1) */
    int blocking;            /* the loop cannot take it: fetched after, one at a time */
} job;

typedef struct runner {
    job *jobs;
    size_t n, next;
    int tty;
    int64_t last_print_ms;
    pthread_mutex_t mu;
} runner;

static runner *g_run; /* only for the progress callback's lock and tty flag */

/* SIGINT/SIGTERM: stop cleanly (the message in flight is dropped, what was
 * stored is recorded in the state, nothing more is deleted); a second
 * signal kills at once (SA_RESETHAND), which is safe too. */
static mw_cancel *g_cancel;

static void on_signal(int sig)
{
    (void)sig;
    if (g_cancel) mw_cancel_request(g_cancel);
}

/* One status line on stderr for all accounts being fetched: messages and
 * bytes done of the total, and the rate, redrawn at most 5 times a second. */
static void on_progress(const mw_fetch_progress *p, void *ud)
{
    job *j = ud;
    int64_t now = mw_now_ms();
    pthread_mutex_lock(&g_run->mu);
    j->prog = *p;
    j->active = p->phase != 4;
    if (p->phase == 4 || now - g_run->last_print_ms >= 200) {
        g_run->last_print_ms = now;
        struct winsize ws;
        size_t width = ioctl(2, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 10 ? ws.ws_col - 1 : 79;
        char line[1024];
        size_t len = 0;
        for (size_t k = 0; k < g_run->n && len < sizeof line; k++) {
            const job *o = &g_run->jobs[k];
            if (!o->active) continue;
            double secs = (double)(now - o->start_ms) / 1000.0;
            double rate = secs > 0 ? (double)o->prog.bytes_done / secs / 1e6 : 0;
            int w = snprintf(
                line + len, sizeof line - len, "%s%s: %llu/%llu msgs %.1f/%.1f MB %.1f MB/s",
                len ? " | " : "", o->name, (unsigned long long)o->prog.msgs_done,
                (unsigned long long)o->prog.msgs_total, (double)o->prog.bytes_done / 1e6,
                (double)o->prog.bytes_total / 1e6, rate);
            if (w < 0) break;
            len += (size_t)w;
        }
        if (len > width) len = width;
        if (len > sizeof line - 1) len = sizeof line - 1;
        fprintf(stderr, "\r\033[K%.*s", (int)len, line);
        fflush(stderr);
    }
    pthread_mutex_unlock(&g_run->mu);
}

/* A current OAuth token for job j (refused: after the server refused the
 * last one).  0, or an mw code with j->err set. */
static int job_token(job *j, int refused)
{
    char *tok = NULL;
    int rc =
        mw_cli_oauth_token_err(j->oauth, j->po.trace, j->po.trace_userdata, refused, &tok, &j->err);
    if (rc) {
        j->token_failed = 1;
        return rc;
    }
    if (j->password) explicit_bzero(j->password, strlen(j->password));
    free(j->password);
    j->password = tok;
    j->po.token = tok;
    j->po.password = NULL;
    return 0;
}

/* One account through the blocking fetch. */
static void run_blocking(runner *r, job *j)
{
    j->start_ms = mw_now_ms(); /* read by on_progress */
    if (r->tty) {
        j->fo.progress = on_progress;
        j->fo.progress_userdata = j;
    }
    /* OAuth: the token is taken (refreshed when due) when the job
     * starts, not when it was set up: earlier jobs may outlast it. */
    j->rc = j->oauth ? job_token(j, 0) : 0;
    if (!j->rc) j->rc = mw_fetch_account(&j->res, &j->fo, &j->err);
    if (j->rc == MW_EAUTH && j->oauth && !j->token_failed) {
        /* The server refused the token: refresh once and log in again
         * (nothing was fetched or deleted before the login). */
        mw_error_clear(&j->err);
        j->rc = job_token(j, 1);
        if (!j->rc) j->rc = mw_fetch_account(&j->res, &j->fo, &j->err);
    }
    j->seconds = (double)(mw_now_ms() - j->start_ms) / 1000.0;
}

/* --jobs N above 1: the accounts on one mw_loop in this thread, at most N
 * at once, a new one started as one ends.  An account the loop cannot take
 * yet (OAuth, SASL or APOP asked for, a filter, a proxy: MW_EUNSUPPORTED)
 * is fetched afterwards through the blocking fetch. */
typedef struct loop_run {
    runner *r;
    mw_loop *loop;
    size_t width, running;
} loop_run;

static loop_run *g_lrun;
static int g_engine_loop; /* MAILWIRE_ENGINE=loop (cli/engine.h): no blocking fallback */

/* An account the loop cannot take: fetched afterwards through the blocking
 * fetch, or under MAILWIRE_ENGINE=loop an error naming why. */
static void not_on_loop(job *j, const char *why)
{
    if (!g_engine_loop) {
        j->blocking = 1;
        return;
    }
    j->rc = MW_EUNSUPPORTED;
    snprintf(j->err.message, sizeof j->err.message, "not on the loop engine yet: %.250s", why);
}

static void top_up(loop_run *lr);

static void loop_done(mw_loop_job *lj, const mw_fetch_result *res, const mw_error *err, void *ud)
{
    (void)lj;
    job *j = ud;
    j->lj = NULL;
    j->res = *res;
    j->err = *err;
    j->rc = err->code;
    j->seconds = (double)(mw_now_ms() - j->start_ms) / 1000.0;
    g_lrun->running--;
    top_up(g_lrun);
}

static void top_up(loop_run *lr)
{
    runner *r = lr->r;
    while (lr->running < lr->width && r->next < r->n) {
        job *j = &r->jobs[r->next++];
        if (j->oauth) {
            not_on_loop(j, "an OAuth account");
            continue;
        }
        if (r->tty) {
            j->fo.progress = on_progress;
            j->fo.progress_userdata = j;
        }
        j->start_ms = mw_now_ms();
        mw_error e;
        int rc = mw_loop_add_fetch(lr->loop, &j->lj, &j->fo, loop_done, j, &e);
        if (rc == MW_EUNSUPPORTED) {
            not_on_loop(j, e.message);
        } else if (rc) {
            j->rc = rc;
            j->err = e;
        } else {
            lr->running++;
        }
    }
}

/* Room for a descriptor per session: the soft limit raised to the hard one. */
static void raise_fd_limit(size_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want + 64 &&
        rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static void run_on_loop(runner *r, size_t width)
{
    loop_run lr = {r, NULL, width, 0};
    mw_loop_opts lo = MW_LOOP_OPTS_INIT;
    mw_error e;
    memset(&e, 0, sizeof e);
    raise_fd_limit(width);
    int rc = mw_loop_new(&lr.loop, &lo, &e);
    if (rc) { /* no loop: every account through the blocking fetch */
        for (size_t k = 0; k < r->n; k++)
            r->jobs[k].blocking = 1;
        r->next = r->n;
    } else {
        g_lrun = &lr;
        top_up(&lr);
        int cancelled = 0;
        while (mw_loop_running(lr.loop)) {
            /* A signal (on_signal) ends every running fetch cleanly: no
             * QUIT, so the server deletes nothing of those sessions. */
            if (!cancelled && mw_cancel_requested(g_cancel)) {
                cancelled = 1;
                r->next = r->n;
                for (size_t k = 0; k < r->n; k++)
                    if (r->jobs[k].lj) mw_loop_cancel(lr.loop, r->jobs[k].lj);
            }
            rc = mw_loop_run(lr.loop, mw_now_ms() + 200, &e);
            if (rc && rc != MW_ETIMEOUT) break;
            rc = 0;
        }
        mw_loop_free(lr.loop); /* closes what is left without QUIT, no callbacks */
        g_lrun = NULL;
    }
    for (size_t k = 0; k < r->n; k++) {
        job *j = &r->jobs[k];
        if (j->lj) { /* the loop itself failed under it */
            j->rc = rc;
            j->err = e;
        } else if (!j->start_ms && !j->blocking && !j->rc) {
            j->rc = MW_ECANCELED;
            snprintf(j->err.message, sizeof j->err.message, "cancelled before it started");
        }
    }
    for (size_t k = 0; k < r->n; k++) {
        job *j = &r->jobs[k];
        if (!j->blocking) continue;
        if (!mw_cancel_requested(g_cancel)) {
            run_blocking(r, j);
        } else {
            j->rc = MW_ECANCELED;
            snprintf(j->err.message, sizeof j->err.message, "cancelled before it started");
        }
    }
}

/* Creates the parent directories of path (0700), as mkdir -p. */
static int mkparents(const char *path)
{
    char buf[4096];
    if (strlen(path) >= sizeof buf) return -1;
    strcpy(buf, path);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(buf, 0700) && errno != EEXIST) return -1;
        *s = '/';
    }
    return 0;
}

static int default_state(char *out, size_t size, const char *leaf)
{
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (x && *x)
        n = snprintf(out, size, "%s/mailwire/uidl/%s", x, leaf);
    else if (home && *home)
        n = snprintf(out, size, "%s/.local/state/mailwire/uidl/%s", home, leaf);
    else
        return -1;
    return n > 0 && (size_t)n < size ? 0 : -1;
}

/* A UID state file name from an account name: '/' cannot be in it. */
static void safe_leaf(char *out, size_t size, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < size; s++)
        out[k++] = (*s == '/' || (unsigned char)*s < 0x20) ? '_' : *s;
    out[k] = '\0';
}

static int auth_from(mw_pop3_opts *po, const char *auth)
{
    if (!auth || !strcmp(auth, "auto") || !strcmp(auth, "on"))
        po->auth = MW_POP3_AUTH_AUTO;
    else if (!strcmp(auth, "off"))
        po->auth = MW_POP3_AUTH_NONE;
    else if (!strcmp(auth, "user"))
        po->auth = MW_POP3_AUTH_USER;
    else if (!strcmp(auth, "apop"))
        po->auth = MW_POP3_AUTH_APOP;
    else if (mw_sasl_mechanism_supported(auth)) {
        po->auth = MW_POP3_AUTH_SASL;
        po->sasl_mechs = auth;
    } else {
        fprintf(stderr, "mailwire fetch: auth '%s' is not auto, user, apop or a SASL mechanism\n",
                auth);
        return EX_USAGE_;
    }
    return 0;
}

static int job_from_account(job *j, const mw_account *a, const char *home)
{
    snprintf(j->name, sizeof j->name, "%s", a->name);
    if (!a->host) {
        fprintf(stderr, "mailwire fetch: %s:%d: account %s has no host\n", a->file, a->line,
                a->name);
        return EX_USAGE_;
    }
    snprintf(j->host, sizeof j->host, "%s", a->host);
    mw_pop3_opts po = MW_POP3_OPTS_INIT;
    j->po = po;
    mw_tls_opts t = MW_TLS_OPTS_INIT;
    j->tls = t;
    mw_net_opts n = MW_NET_OPTS_INIT;
    j->net = n;
    j->tls.ca_file = a->cafile;
    j->tls.crl_file = a->crlfile;
    j->tls.pin = a->pin;
    j->tls.cert_file = a->cert;
    j->tls.key_file = a->key;
    if (a->timeout_s > 0) j->net.io_timeout_ms = j->net.connect_timeout_ms = a->timeout_s * 1000;
    j->net.proxy = a->proxy;
    j->po.port = a->port > 0 ? (unsigned)a->port : 0;
    j->po.tls = a->tls == MW_CONFIG_TLS_OFF        ? MW_TLS_NONE
                : a->tls == MW_CONFIG_TLS_IMPLICIT ? MW_TLS_IMPLICIT
                                                   : MW_TLS_STARTTLS;
    j->po.tls_opts = &j->tls;
    j->po.net = &j->net;
    j->po.user = a->user;
    const char *auth = a->auth;
    if (mw_cli_oauth_enabled(a) && (!auth || !strcmp(auth, "on"))) auth = mw_cli_oauth_mechanism(a);
    int ex = auth_from(&j->po, auth);
    if (ex) return ex;
    if (j->po.auth != MW_POP3_AUTH_NONE) {
        mw_error e;
        if (mw_cli_oauth_enabled(a) && mw_cli_auth_is_token(auth)) {
            j->oauth = a;
            if (mw_cli_oauth_pop3_two_step(a)) j->po.sasl_ir = 0;
            /* The token itself comes when the trace is known (mw_cmd_fetch). */
        } else if (a->password) {
            j->password = strdup(a->password);
        } else if (a->password_file) {
            int rc = mw_config_read_password_file(&j->password, a->password_file, &e);
            if (rc) {
                fprintf(stderr, "mailwire fetch: %s: %s\n", a->name, e.message);
                return mw_cli_exit_code(rc);
            }
        } else if (a->passwordeval) {
            const char *why = "unknown error";
            j->password = mw_cli_password_from_command(a->passwordeval, &why);
            if (!j->password) {
                fprintf(stderr, "mailwire fetch: %s: passwordeval gave no password: %s\n", a->name,
                        why);
                return EX_NOPERM_;
            }
        } else {
            /* No password in the account: ~/.netrc, as for one-shot fetches
             * (its mode is checked; the machine matched without regard to case). */
            char path[4096];
            mw_netrc_entry ne;
            mw_error_clear(&e);
            if (mw_netrc_default_path(path, sizeof path) == 0) {
                int rc = mw_netrc_lookup(&ne, path, a->host, a->user, &e);
                if (rc < 0) {
                    fprintf(stderr, "mailwire fetch: %s: %s\n", a->name, e.message);
                    return mw_cli_exit_code(rc);
                }
                if (rc == 1 && ne.password[0]) {
                    j->password = strdup(ne.password);
                    if (!j->po.user && ne.login[0]) {
                        snprintf(j->netrc_user, sizeof j->netrc_user, "%s", ne.login);
                        j->po.user = j->netrc_user;
                    }
                }
                mw_netrc_entry_clear(&ne);
            }
        }
        j->po.password = j->password;
        if (mw_cli_auth_is_token(auth)) {
            j->po.token = j->password; /* the password sources hold the token */
            j->po.password = NULL;
        }
    }
    mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
    j->fo = fo;
    int kind = a->delivery ? a->delivery : MW_STORE_MAILDIR;
    if (a->delivery_target)
        snprintf(j->target, sizeof j->target, "%s", a->delivery_target);
    else if (kind == MW_STORE_MAILDIR && home)
        snprintf(j->target, sizeof j->target, "%s/Maildir", home);
    j->fo.store_kind = kind;
    j->fo.keep = a->keep;
    j->fo.only_new = a->only_new;
    j->fo.size_limit = a->size_limit;
    j->fo.filter = a->filter;
    j->fo.delete_after_days = a->delete_after_days;
    char leaf[300];
    safe_leaf(leaf, sizeof leaf, a->name);
    if (default_state(j->state_path, sizeof j->state_path, leaf)) {
        fprintf(stderr, "mailwire fetch: no $HOME or $XDG_STATE_HOME for the state file\n");
        return EX_USAGE_;
    }
    return 0;
}

static void json_result(FILE *f, const job *j, int first)
{
    fprintf(f, "%s{\"account\":", first ? "" : ",");
    mw_cli_json_string(f, j->name, strlen(j->name));
    fprintf(f,
            ",\"ok\":%s,\"messages\":%llu,\"fetched\":%llu,\"skipped\":%llu,\"deleted\":%llu,"
            "\"bytes\":%llu,\"errors\":%llu,\"quit_confirmed\":%s,\"seconds\":%.3f",
            j->rc ? "false" : "true", (unsigned long long)j->res.messages,
            (unsigned long long)j->res.fetched, (unsigned long long)j->res.skipped,
            (unsigned long long)j->res.deleted, (unsigned long long)j->res.bytes,
            (unsigned long long)j->res.errors, j->res.quit_confirmed ? "true" : "false",
            j->seconds);
    if (j->rc) {
        fprintf(f, ",\"error\":");
        mw_cli_json_string(f, j->err.message, strlen(j->err.message));
        fprintf(f, ",\"category\":\"%s\",\"exit\":%d", mw_error_category(j->rc),
                mw_cli_exit_code(j->rc));
        mw_cli_json_error_fields(f, &j->err); /* command, reply, code, ... */
    }
    fputc('}', f);
}

int mw_cmd_fetch(int argc, char **argv)
{
    mw_cli_conn conn;
    mw_cli_conn_init(&conn, "fetch", 110, 995);
    const char *config = NULL, *state = NULL, *filter = NULL;
    const char *maildir = NULL, *mbox = NULL, *mda = NULL;
    int all = 0, jobs = 1, quiet = 0, keep = 0, only_new = 1, keep_crlf = 0, host_given = 0;
    uint64_t size_limit = 0;
    char **names = calloc((size_t)argc + 1, sizeof *names);
    size_t nnames = 0;
    job *js = NULL;
    size_t nj = 0;
    mw_config *cfg = NULL;
    int ex = 0;
    int engine = mw_cli_engine("fetch");
    if (!names) return EX_SOFTWARE_;
    if (engine < 0) {
        free(names);
        return EX_USAGE_;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--host") || !strncmp(a, "--host=", 7)) host_given = 1;
        int r = a[0] == '-' ? mw_cli_conn_option(&conn, argc, argv, &i) : 0;
        if (r < 0) {
            ex = EX_USAGE_;
            goto done;
        }
        if (r > 0) continue;
        const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define VAL(opt, var)                                                                              \
    if (!strcmp(a, opt)) {                                                                         \
        if (!next) {                                                                               \
            fprintf(stderr, "mailwire fetch: %s needs a value\n", opt);                            \
            ex = EX_USAGE_;                                                                        \
            goto done;                                                                             \
        }                                                                                          \
        var = next;                                                                                \
        i++;                                                                                       \
        continue;                                                                                  \
    }
        const char *jobs_s = NULL, *size_s = NULL;
        VAL("--state", state)
        VAL("--filter", filter)
        VAL("--maildir", maildir)
        VAL("--mbox", mbox)
        VAL("--mda", mda)
        if (!strcmp(a, "--jobs") || !strcmp(a, "--size-limit")) {
            if (!next) {
                fprintf(stderr, "mailwire fetch: %s needs a value\n", a);
                ex = EX_USAGE_;
                goto done;
            }
            char *end;
            errno = 0;
            unsigned long long v = strtoull(next, &end, 10);
            if (errno || *end || !*next || next[0] == '-' ||
                (!strcmp(a, "--jobs") && (v < 1 || v > 100000))) {
                fprintf(stderr, "mailwire fetch: bad value '%s' for %s\n", next, a);
                ex = EX_USAGE_;
                goto done;
            }
            if (!strcmp(a, "--jobs"))
                jobs = (int)v, jobs_s = next;
            else
                size_limit = v, size_s = next;
            (void)jobs_s;
            (void)size_s;
            i++;
            continue;
        }
        if (!strcmp(a, "--all"))
            all = 1;
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            quiet = 1;
        else if (!strcmp(a, "--keep"))
            keep = 1;
        else if (!strcmp(a, "--only-new"))
            only_new = 1;
        else if (!strcmp(a, "--all-messages"))
            only_new = 0;
        else if (!strcmp(a, "--keep-crlf"))
            keep_crlf = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            goto done;
        } else if (a[0] == '-') {
            fprintf(stderr, "mailwire fetch: unknown option '%s'\n", a);
            usage(stderr);
            ex = EX_USAGE_;
            goto done;
        } else
            names[nnames++] = argv[i];
    }
    /* connopts takes --config and --account (shared with pop3 and send). */
    if (conn.config_path) config = conn.config_path;
    if (conn.account) names[nnames++] = (char *)conn.account;
    if (!!maildir + !!mbox + !!mda > 1) {
        fprintf(stderr, "mailwire fetch: give one of --maildir, --mbox, --mda\n");
        ex = EX_USAGE_;
        goto done;
    }
    const char *home = getenv("HOME");
    if (host_given) {
        /* One-shot: the account is the command line. */
        if (nnames || all || config) {
            fprintf(stderr, "mailwire fetch: --host does not go with accounts or --config\n");
            ex = EX_USAGE_;
            goto done;
        }
        if ((ex = mw_cli_conn_finish(&conn))) goto done;
        js = calloc(1, sizeof *js);
        if (!js) {
            ex = EX_SOFTWARE_;
            goto done;
        }
        nj = 1;
        job *j = js;
        snprintf(j->name, sizeof j->name, "%s@%s", conn.user ? conn.user : "", conn.host);
        snprintf(j->host, sizeof j->host, "%s", conn.host);
        mw_pop3_opts po = MW_POP3_OPTS_INIT;
        j->po = po;
        if ((ex = auth_from(&j->po, conn.auth))) goto done;
        if (!conn.user && j->po.auth != MW_POP3_AUTH_NONE) {
            fprintf(stderr, "mailwire fetch: no user: give --user or a ~/.netrc login for %s\n",
                    conn.host);
            ex = EX_USAGE_;
            goto done;
        }
        if (j->po.auth != MW_POP3_AUTH_NONE && (!conn.auth || strcasecmp(conn.auth, "EXTERNAL")) &&
            (ex = mw_cli_conn_password(&conn)))
            goto done;
        mw_cli_conn_tls_opts(&conn, &j->tls);
        mw_cli_conn_net_opts(&conn, &j->net);
        j->po.port = conn.port;
        j->po.tls = conn.tls == MW_CLI_TLS_IMPLICIT ? MW_TLS_IMPLICIT
                    : conn.tls == MW_CLI_TLS_NONE   ? MW_TLS_NONE
                                                    : MW_TLS_STARTTLS;
        j->po.tls_opts = &j->tls;
        j->po.net = &j->net;
        j->po.user = conn.user;
        j->po.password = conn.password;
        if (mw_cli_auth_is_token(conn.auth)) {
            j->po.token = conn.password; /* the password sources hold the token */
            j->po.password = NULL;
        }
        j->oauth = mw_cli_oauth_account(&conn);
        if (j->oauth && mw_cli_oauth_pop3_two_step(j->oauth)) j->po.sasl_ir = 0;
        j->po.allow_plaintext = conn.allow_plaintext;
        j->po.trace = conn.trace_fn;
        j->po.trace_userdata = conn.trace_ud;
        mw_fetch_opts fo = MW_FETCH_OPTS_INIT;
        j->fo = fo;
        j->fo.store_kind = mbox ? MW_STORE_MBOX : mda ? MW_STORE_MDA : MW_STORE_MAILDIR;
        const char *t = maildir ? maildir : mbox ? mbox : mda;
        if (t)
            snprintf(j->target, sizeof j->target, "%s", t);
        else if (home)
            snprintf(j->target, sizeof j->target, "%s/Maildir", home);
        if (state) {
            snprintf(j->state_path, sizeof j->state_path, "%s", state);
        } else {
            char leaf[600];
            snprintf(leaf, sizeof leaf, "%s@%s:%u", conn.user ? conn.user : "", conn.host,
                     conn.port);
            char safe[600];
            safe_leaf(safe, sizeof safe, leaf);
            if (default_state(j->state_path, sizeof j->state_path, safe)) {
                fprintf(stderr, "mailwire fetch: give --state FILE (no $HOME)\n");
                ex = EX_USAGE_;
                goto done;
            }
        }
        j->fo.keep = keep;
        j->fo.only_new = only_new;
        j->fo.size_limit = size_limit;
        j->fo.filter = filter;
    } else {
        char path[4096];
        if (!config) {
            const char *x = getenv("XDG_CONFIG_HOME");
            if (x && *x)
                snprintf(path, sizeof path, "%s/mailwire/config", x);
            else if (home && *home)
                snprintf(path, sizeof path, "%s/.config/mailwire/config", home);
            else {
                fprintf(stderr, "mailwire fetch: no --config, $XDG_CONFIG_HOME or $HOME\n");
                ex = EX_USAGE_;
                goto done;
            }
            config = path;
        }
        mw_config_options co = MW_CONFIG_OPTIONS_INIT;
        co.home = home;
        mw_error e;
        int rc = mw_config_load(&cfg, config, &co, &e);
        if (rc) {
            fprintf(stderr, "mailwire fetch: %s\n", e.message);
            ex = rc == MW_EIO || rc == MW_EFORMAT ? 78 /* EX_CONFIG */ : mw_cli_exit_code(rc);
            goto done;
        }
        size_t want = all ? mw_config_count(cfg) : nnames;
        if (!want && !all) want = mw_config_count(cfg) ? 1 : 0;
        if (!want) {
            fprintf(stderr, "mailwire fetch: %s has no accounts\n", config);
            ex = EX_USAGE_;
            goto done;
        }
        js = calloc(want, sizeof *js);
        if (!js) {
            ex = EX_SOFTWARE_;
            goto done;
        }
        for (size_t k = 0; k < want; k++) {
            const mw_account *a;
            if (all)
                a = mw_config_account_at(cfg, k);
            else if (!nnames) /* as mpop: the account called "default", else the first */
                a = mw_config_find(cfg, "default") ? mw_config_find(cfg, "default")
                                                   : mw_config_account_at(cfg, 0);
            else if (!(a = mw_config_find(cfg, names[k]))) {
                fprintf(stderr, "mailwire fetch: no account '%s' in %s\n", names[k], config);
                ex = EX_USAGE_;
                goto done;
            }
            nj++;
            if ((ex = job_from_account(&js[k], a, home))) goto done;
            mw_cli_conn_limits(&conn, a, &js[k].net); /* max_time, speed_limit, speed_time */
            if (conn.trace_path) {
                /* --trace in account mode: every job's conversation (lines of
                 * parallel jobs interleave, each line whole). */
                if ((ex = mw_cli_conn_open_trace(&conn))) goto done;
                js[k].po.trace = conn.trace_fn;
                js[k].po.trace_userdata = conn.trace_ud;
            }
            if (!js[k].target[0]) {
                fprintf(stderr, "mailwire fetch: %s: no delivery target\n", a->name);
                ex = EX_USAGE_;
                goto done;
            }
            if (keep) js[k].fo.keep = 1;
            if (!only_new) js[k].fo.only_new = 0;
            if (size_limit) js[k].fo.size_limit = size_limit; /* the flag over the file */
            if (conn.allow_plaintext) js[k].po.allow_plaintext = 1;
            if (filter) js[k].fo.filter = filter;
        }
    }
    if (mw_cancel_new(&g_cancel, NULL)) {
        ex = EX_SOFTWARE_;
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    for (size_t k = 0; k < nj; k++) {
        job *j = &js[k];
        j->net.cancel = g_cancel;
        j->so = (mw_store_options)MW_STORE_OPTIONS_INIT;
        j->so.keep_crlf = keep_crlf;
        j->fo.host = j->host;
        j->fo.pop3 = &j->po;
        j->fo.store_target = j->target;
        j->fo.store_opts = &j->so;
        j->fo.state_path = j->state_path;
        if (mkparents(j->state_path)) {
            fprintf(stderr, "mailwire fetch: cannot create the directory of %s: %s\n",
                    j->state_path, strerror(errno));
            ex = EX_IOERR_;
            goto done;
        }
    }

    runner r;
    memset(&r, 0, sizeof r);
    r.jobs = js;
    r.n = nj;
    r.tty = !quiet && !conn.json && isatty(2);
    pthread_mutex_init(&r.mu, NULL);
    g_run = &r;
    size_t nt = (size_t)jobs < nj ? (size_t)jobs : nj;
    g_engine_loop = engine == MW_CLI_ENGINE_LOOP;
    if (jobs <= 1 && !g_engine_loop) {
        for (size_t k = 0; k < nj; k++)
            run_blocking(&r, &js[k]);
    } else {
        run_on_loop(&r, nt);
    }
    pthread_mutex_destroy(&r.mu);

    if (conn.json) fputc('[', stdout);
    for (size_t k = 0; k < nj; k++) {
        job *j = &js[k];
        if (j->rc) {
            fprintf(stderr, "mailwire fetch: %s: %s\n", j->name, j->err.message);
            if (!ex) ex = mw_cli_exit_code(j->rc);
        }
        if (conn.json)
            json_result(stdout, j, k == 0);
        else if (!quiet)
            printf("%s: %llu fetched, %llu skipped, %llu deleted, %llu bytes, %llu errors, "
                   "%.2f s%s\n",
                   j->name, (unsigned long long)j->res.fetched, (unsigned long long)j->res.skipped,
                   (unsigned long long)j->res.deleted, (unsigned long long)j->res.bytes,
                   (unsigned long long)j->res.errors, j->seconds, j->rc ? " (failed)" : "");
    }
    if (conn.json) fputs("]\n", stdout);
    if (conn.json) mw_cli_json_handled(); /* the records hold the errors */
    if (fflush(stdout) && !ex) ex = EX_IOERR_;
done:
    if (g_cancel) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        mw_cancel_free(g_cancel);
        g_cancel = NULL;
    }
    for (size_t k = 0; k < nj; k++)
        if (js[k].password) {
            explicit_bzero(js[k].password, strlen(js[k].password));
            free(js[k].password);
        }
    free(js);
    free(names);
    mw_config_free(cfg);
    mw_cli_conn_free(&conn);
    return ex;
}
