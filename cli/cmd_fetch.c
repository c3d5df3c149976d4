/* mailwire fetch [ACCOUNT...] [--all]: POP3 accounts into Maildir, mbox or
 * an MDA, in the order that never loses mail (mw_fetch_account; with
 * --jobs N above 1, mw_loop_add_fetch on one loop in this thread).  Uses
 * only the public API. */
#include "commands.h"
#include "connopts.h"
#include "engine.h"
#include "fetch_cli.h"
#include "oauth_cli.h"
#include "token_async.h"

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
 * yet (a token provider asked for on no login, a caller's stream: MW_EUNSUPPORTED)
 * is fetched afterwards through the blocking fetch. */
typedef struct loop_run {
    runner *r;
    mw_loop *loop;
    size_t width, running;
    /* OAuth accounts: the token taken in a worker thread (token_async.h),
     * the loop's other sessions going on meanwhile; one source per job. */
    mw_cli_token_pool pool;
    mw_cli_token_src *src;
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

/* An OAuth account's token provider on the loop (token.h): the store's
 * token, refreshed when due, or after the server refused it (refused 1);
 * the fallback should the asynchronous one (mw_cli_token_async, set on
 * every OAuth job) not be taken: it would run in the loop's thread. */
static int loop_token(int refused, char **token, mw_error *err, void *ud)
{
    job *j = ud;
    return mw_cli_oauth_token_err(j->oauth, j->po.trace, j->po.trace_userdata, refused, token, err);
}

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
        if (j->oauth) { /* the token taken as the job logs in, not before */
            j->po.token = NULL;
            j->po.password = NULL;
            j->po.token_fn = loop_token;
            j->po.token_userdata = j;
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
            mw_cli_engine_note("fetch");
            if (j->oauth && lr->src) {
                mw_cli_token_src *s = &lr->src[j - r->jobs];
                s->pool = &lr->pool;
                s->loop = lr->loop;
                s->oauth = j->oauth;
                s->trace = j->po.trace;
                s->trace_ud = j->po.trace_userdata;
                mw_loop_set_token_provider(lr->loop, j->lj, mw_cli_token_async, s);
            }
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
    loop_run lr;
    memset(&lr, 0, sizeof lr);
    lr.r = r;
    lr.width = width;
    mw_cli_token_pool_init(&lr.pool);
    lr.src = calloc(r->n ? r->n : 1, sizeof *lr.src); /* NULL: tokens in this thread */
    mw_loop_opts lo = MW_LOOP_OPTS_INIT;
    mw_error e;
    memset(&e, 0, sizeof e);
    raise_fd_limit(width);
    int rc = mw_loop_new(&lr.loop, &lo, &e);
    if (rc) { /* no loop: every account through the blocking fetch */
        for (size_t k = 0; k < r->n; k++)
            r->jobs[k].blocking = 1;
        r->next = r->n;
    }
    if (!rc) {
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
        /* Every token worker ends (within its HTTPS timeout) before the
         * loop it answers to is freed. */
        mw_cli_token_pool_join(&lr.pool);
        mw_loop_free(lr.loop); /* closes what is left without QUIT, no callbacks */
        g_lrun = NULL;
    } else {
        mw_cli_token_pool_join(&lr.pool);
    }
    free(lr.src);
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
    size_t n = strlen(path);
    if (n >= sizeof buf) return -1;
    memcpy(buf, path, n + 1);
    for (char *s = buf + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(buf, 0700) && errno != EEXIST) return -1;
        *s = '/';
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

/* --jobs N (1..100000) or --size-limit N: 0, or -1 when bad (printed). */
static int num_option(fetch_args *fa, const char *a, const char *next)
{
    if (!next) {
        fprintf(stderr, "mailwire fetch: %s needs a value\n", a);
        return -1;
    }
    char *end;
    errno = 0;
    unsigned long long v = strtoull(next, &end, 10);
    if (errno || *end || !*next || next[0] == '-' ||
        (!strcmp(a, "--jobs") && (v < 1 || v > 100000))) {
        fprintf(stderr, "mailwire fetch: bad value '%s' for %s\n", next, a);
        return -1;
    }
    if (!strcmp(a, "--jobs"))
        fa->jobs = (int)v;
    else
        fa->size_limit = v;
    return 0;
}

/* A fetch option that is not a connection option: 1 taken (and *i moved
 * past its value), 0 an account name, -1 usage error (printed), 2 --help
 * (printed). */
static int fetch_option(fetch_args *fa, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char *next = *i + 1 < argc ? argv[*i + 1] : NULL;
    static const char *const valued[] = {"--state", "--filter", "--maildir", "--mbox", "--mda"};
    const char **dst[] = {&fa->state, &fa->filter, &fa->maildir, &fa->mbox, &fa->mda};
    for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++) {
        if (strcmp(a, valued[k])) continue;
        if (!next) {
            fprintf(stderr, "mailwire fetch: %s needs a value\n", valued[k]);
            return -1;
        }
        *dst[k] = next;
        ++*i;
        return 1;
    }
    if (!strcmp(a, "--jobs") || !strcmp(a, "--size-limit")) {
        if (num_option(fa, a, next)) return -1;
        ++*i;
        return 1;
    }
    if (!strcmp(a, "--all"))
        fa->all = 1;
    else if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
        fa->quiet = 1;
    else if (!strcmp(a, "--keep"))
        fa->keep = 1;
    else if (!strcmp(a, "--only-new"))
        fa->only_new = 1;
    else if (!strcmp(a, "--all-messages"))
        fa->only_new = 0;
    else if (!strcmp(a, "--keep-crlf"))
        fa->keep_crlf = 1;
    else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
        usage(stdout);
        return 2;
    } else if (a[0] == '-') {
        fprintf(stderr, "mailwire fetch: unknown option '%s'\n", a);
        usage(stderr);
        return -1;
    } else
        return 0;
    return 1;
}

/* The command line into fa: 0, an exit code, or -1 after --help. */
static int parse_args(fetch_args *fa, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--host") || !strncmp(a, "--host=", 7)) fa->host_given = 1;
        int r = a[0] == '-' ? mw_cli_conn_option(&fa->conn, argc, argv, &i) : 0;
        if (r == 0) r = fetch_option(fa, argc, argv, &i);
        if (r < 0) return EX_USAGE_;
        if (r == 2) return -1;
        if (r == 0) fa->names[fa->nnames++] = argv[i];
    }
    /* connopts takes --config and --account (shared with pop3 and send). */
    if (fa->conn.config_path) fa->config = fa->conn.config_path;
    if (fa->conn.account) fa->names[fa->nnames++] = (char *)fa->conn.account;
    if (!!fa->maildir + !!fa->mbox + !!fa->mda > 1) {
        fprintf(stderr, "mailwire fetch: give one of --maildir, --mbox, --mda\n");
        return EX_USAGE_;
    }
    return 0;
}

/* The cancel token and the signals that set it; each job's last options
 * and its state file's directory. */
static int prepare_jobs(job *js, size_t nj, int keep_crlf)
{
    if (mw_cancel_new(&g_cancel, NULL)) return EX_SOFTWARE_;
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
                    j->state_path, mw_cli_errno_text(errno));
            return EX_IOERR_;
        }
    }
    return 0;
}

/* Runs the jobs (blocking one after another, or --jobs N on the loop) and
 * prints a line or a JSON record per account.  Returns the exit code. */
static int run_and_report(fetch_args *fa, job *js, size_t nj)
{
    int ex = 0, jobs = fa->jobs, quiet = fa->quiet;
    runner r;
    memset(&r, 0, sizeof r);
    r.jobs = js;
    r.n = nj;
    r.tty = !quiet && !fa->conn.json && isatty(2);
    pthread_mutex_init(&r.mu, NULL);
    g_run = &r;
    size_t nt = (size_t)jobs < nj ? (size_t)jobs : nj;
    g_engine_loop = fa->engine == MW_CLI_ENGINE_LOOP;
    if (jobs <= 1 && !g_engine_loop) {
        for (size_t k = 0; k < nj; k++)
            run_blocking(&r, &js[k]);
    } else {
        run_on_loop(&r, nt);
    }
    pthread_mutex_destroy(&r.mu);

    if (fa->conn.json) fputc('[', stdout);
    for (size_t k = 0; k < nj; k++) {
        job *j = &js[k];
        if (j->rc) {
            fprintf(stderr, "mailwire fetch: %s: %s\n", j->name, j->err.message);
            if (!ex) ex = mw_cli_exit_code(j->rc);
        }
        if (fa->conn.json)
            json_result(stdout, j, k == 0);
        else if (!quiet)
            printf("%s: %llu fetched, %llu skipped, %llu deleted, %llu bytes, %llu errors, "
                   "%.2f s%s\n",
                   j->name, (unsigned long long)j->res.fetched, (unsigned long long)j->res.skipped,
                   (unsigned long long)j->res.deleted, (unsigned long long)j->res.bytes,
                   (unsigned long long)j->res.errors, j->seconds, j->rc ? " (failed)" : "");
    }
    if (fa->conn.json) fputs("]\n", stdout);
    if (fa->conn.json) mw_cli_json_handled(); /* the records hold the errors */
    if (fflush(stdout) && !ex) ex = EX_IOERR_;
    return ex;
}

int mw_cmd_fetch(int argc, char **argv)
{
    fetch_args fa;
    memset(&fa, 0, sizeof fa);
    mw_cli_conn_init(&fa.conn, "fetch", 110, 995);
    fa.jobs = 1;
    fa.only_new = 1;
    fa.names = calloc((size_t)argc + 1, sizeof *fa.names);
    job *js = NULL;
    size_t nj = 0;
    mw_config *cfg = NULL;
    fa.engine = mw_cli_engine("fetch");
    if (!fa.names) return EX_SOFTWARE_;
    if (fa.engine < 0) {
        free(fa.names);
        return EX_USAGE_;
    }
    int ex = parse_args(&fa, argc, argv);
    if (ex) {
        if (ex < 0) ex = 0; /* --help */
        goto done;
    }
    const char *home = getenv("HOME");
    if (fa.host_given)
        ex = mw_cli_fetch_job_oneshot(&fa, home, &js, &nj);
    else
        ex = mw_cli_fetch_jobs_config(&fa, home, &cfg, &js, &nj);
    if (!ex) ex = prepare_jobs(js, nj, fa.keep_crlf);
    if (!ex) ex = run_and_report(&fa, js, nj);
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
    free(fa.names);
    mw_config_free(cfg);
    mw_cli_conn_free(&fa.conn);
    return ex;
}
