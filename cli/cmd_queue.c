/* mailwire queue [OPTIONS] run [--daemon [--interval S]] | flush | list | drop ID...
 * The durable outgoing queue (include/mailwire/queue.h) from the command
 * line; `mailwire send --enqueue` puts messages in it. */
#include "commands.h"
#include "connopts.h"
#include "queue_cli.h"
#include "smtp_cli.h"

#include "mailwire/error.h"
#include "mailwire/queue.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int num_opt(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) return -1;
    *out = n;
    return 0;
}

int queue_option(queue_cli *qc, int argc, char **argv, int *i, const char *prog)
{
    const char *a = argv[*i];
    const char *names[] = {"--queue-dir", "--lifetime", "--backoff"};
    for (size_t k = 0; k < 3; k++) {
        size_t nl = strlen(names[k]);
        if (strncmp(a, names[k], nl) != 0 || (a[nl] != '\0' && a[nl] != '=')) continue;
        const char *v = a[nl] == '=' ? a + nl + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
        if (!v) {
            fprintf(stderr, "mailwire %s: %s needs a value\n", prog, names[k]);
            return -1;
        }
        if (k == 0) {
            qc->dir = v;
        } else if (k == 1) {
            if (num_opt(v, 1, 10L * 365 * 86400, &qc->lifetime_s)) {
                fprintf(stderr, "mailwire %s: --lifetime wants seconds, not '%s'\n", prog, v);
                return -1;
            }
        } else {
            char tmp[64];
            snprintf(tmp, sizeof tmp, "%s", v);
            char *comma = strchr(tmp, ',');
            if (comma) *comma = '\0';
            if (num_opt(tmp, 1, 86400, &qc->backoff_min_s) ||
                (comma && num_opt(comma + 1, 1, 7L * 86400, &qc->backoff_max_s))) {
                fprintf(stderr, "mailwire %s: --backoff wants MIN[,MAX] seconds, not '%s'\n", prog,
                        v);
                return -1;
            }
        }
        return 1;
    }
    return 0;
}

int queue_cli_open(queue_cli *qc, mw_queue **q, const char *prog)
{
    if (!qc->dir) qc->dir = getenv("MAILWIRE_QUEUE_DIR");
    if (!qc->dir || !*qc->dir) {
        const char *x = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
        if (x && *x)
            snprintf(qc->dirbuf, sizeof qc->dirbuf, "%s/mailwire/queue", x);
        else if (home && *home)
            snprintf(qc->dirbuf, sizeof qc->dirbuf, "%s/.local/share/mailwire/queue", home);
        else {
            fprintf(stderr, "mailwire %s: no queue directory: give --queue-dir or set HOME\n",
                    prog);
            return EX_USAGE_;
        }
        /* the parents of the default place, as XDG asks */
        char p[4096];
        snprintf(p, sizeof p, "%s", qc->dirbuf);
        for (char *s = p + 1; *s; s++)
            if (*s == '/') {
                *s = '\0';
                mkdir(p, 0700);
                *s = '/';
            }
        qc->dir = qc->dirbuf;
    }
    mw_queue_opts o = MW_QUEUE_OPTS_INIT;
    o.dir = qc->dir;
    o.lifetime_s = qc->lifetime_s;
    o.backoff_min_s = qc->backoff_min_s;
    o.backoff_max_s = qc->backoff_max_s;
    mw_error err;
    mw_error_clear(&err);
    if (mw_queue_open(q, &o, &err) != 0) {
        fprintf(stderr, "mailwire %s: %s\n", prog, err.message);
        return EX_TEMPFAIL_;
    }
    return 0;
}

static void jstr(const char *s)
{
    mw_cli_json_string(stdout, s ? s : "", s ? strlen(s) : 0);
}

static const char *state_name(int st)
{
    return st == MW_QUEUE_SENT ? "sent" : st == MW_QUEUE_FAILED ? "failed" : "pending";
}

static void json_entry(const mw_queue_entry *e, const char *event)
{
    printf("{");
    if (event) {
        printf("\"event\":");
        jstr(event);
        printf(",");
    }
    printf("\"id\":");
    jstr(e->id);
    printf(",\"sender\":");
    jstr(e->sender);
    printf(",\"account\":");
    if (e->account)
        jstr(e->account);
    else
        printf("null");
    printf(",\"size\":%llu,\"created\":%lld,\"next_attempt\":%lld,\"attempts\":%u,"
           "\"recipients\":[",
           (unsigned long long)e->size, (long long)e->created, (long long)e->next_attempt,
           e->attempts);
    for (size_t i = 0; i < e->nrcpt; i++) {
        const mw_queue_rcpt *r = &e->rcpt[i];
        printf("%s{\"address\":", i ? "," : "");
        jstr(r->address);
        printf(",\"state\":\"%s\",\"code\":%d,\"enhanced\":", state_name(r->state), r->code);
        jstr(r->enhanced);
        printf(",\"text\":");
        jstr(r->text);
        printf("}");
    }
    printf("]}\n");
}

void queue_print_event(const mw_queue_event *ev, int json, const char *prog)
{
    const mw_queue_entry *e = ev->entry;
    const char *kind = ev->kind == MW_QUEUE_EV_SENT       ? "sent"
                       : ev->kind == MW_QUEUE_EV_DEFERRED ? "deferred"
                                                          : "failed";
    if (json) {
        json_entry(e, kind);
        fflush(stdout);
        return;
    }
    size_t ns = 0, np = 0;
    for (size_t i = 0; i < e->nrcpt; i++) {
        ns += e->rcpt[i].state == MW_QUEUE_SENT;
        np += e->rcpt[i].state == MW_QUEUE_PENDING;
    }
    if (ev->kind == MW_QUEUE_EV_SENT) {
        fprintf(stderr, "mailwire %s: %s: sent to %zu recipient%s\n", prog, e->id, ns,
                ns == 1 ? "" : "s");
    } else if (ev->kind == MW_QUEUE_EV_DEFERRED) {
        fprintf(stderr, "mailwire %s: %s: deferred for %zu recipient%s (attempt %u): %s\n", prog,
                e->id, np, np == 1 ? "" : "s", e->attempts,
                ev->err && ev->err->message[0] ? ev->err->message
                                               : "some recipients refused for now");
    } else {
        /* The delivery-failure report: every failed recipient with its codes. */
        fprintf(stderr, "mailwire %s: %s: delivery failed: message from <%s>, %zu sent\n", prog,
                e->id, e->sender, ns);
        for (size_t i = 0; i < e->nrcpt; i++) {
            const mw_queue_rcpt *r = &e->rcpt[i];
            if (r->state != MW_QUEUE_FAILED) continue;
            fprintf(stderr, "mailwire %s: %s: <%s>: failed: %d %s%s%s\n", prog, e->id, r->address,
                    r->code, r->enhanced, r->enhanced[0] ? " " : "", r->text ? r->text : "");
        }
    }
    fflush(stderr);
}

int queue_list(mw_queue *q, int json, const char *prog)
{
    mw_queue_entry *v = NULL;
    size_t n = 0;
    mw_error err;
    mw_error_clear(&err);
    if (mw_queue_list(q, &v, &n, &err) != 0) {
        fprintf(stderr, "mailwire %s: %s\n", prog, err.message);
        return EX_IOERR_;
    }
    if (!json && n == 0) printf("Mail queue is empty\n");
    for (size_t i = 0; i < n; i++) {
        const mw_queue_entry *e = &v[i];
        if (json) {
            json_entry(e, NULL);
            continue;
        }
        char when[32] = "?";
        struct tm tm;
        if (localtime_r(&e->created, &tm)) strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
        printf("%-30s %8llu %s  <%s>  attempts %u\n", e->id, (unsigned long long)e->size, when,
               e->sender, e->attempts);
        for (size_t k = 0; k < e->nrcpt; k++) {
            const mw_queue_rcpt *r = &e->rcpt[k];
            if (r->state == MW_QUEUE_PENDING && r->code)
                printf("    (%d %s%s%s)\n", r->code, r->enhanced, r->enhanced[0] ? " " : "",
                       r->text ? r->text : "");
            else if (r->state == MW_QUEUE_PENDING && r->text && r->text[0])
                printf("    (%s)\n", r->text);
            printf("    %-8s %s\n", state_name(r->state), r->address);
        }
    }
    if (!json && n > 0) printf("-- %zu message%s in the queue\n", n, n == 1 ? "" : "s");
    mw_queue_entries_free(v, n);
    return 0;
}

static void kick_path(const queue_cli *qc, char *p, size_t n)
{
    snprintf(p, n, "%s/kick", qc->dir);
}

void queue_kick(const queue_cli *qc)
{
    char p[4200];
    kick_path(qc, p, sizeof p);
    int fd = open(p, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return; /* no daemon listening: nothing to do */
    ssize_t w = write(fd, "k", 1);
    (void)w;
    close(fd);
}

/* ---- the runner ---- */

static int cli_err(mw_error *e, int code, const char *msg)
{
    mw_error_clear(e);
    e->code = code;
    snprintf(e->message, sizeof e->message, "%s", msg);
    return code;
}

typedef struct run_ctx {
    int sargc; /* the SMTP options of the command line, re-read per session */
    char **sargv;
    smtp_cli *cur;
    int json;
    int failed; /* a failure report was given */
} run_ctx;

static void ctx_drop_session_opts(run_ctx *x)
{
    if (x->cur) {
        smtp_cli_free(x->cur);
        free(x->cur);
        x->cur = NULL;
    }
}

/* One session for an entry: the command line's SMTP options; without
 * --host or --account, the entry's account, else the account its sender
 * picks (as `send` does). */
static int run_connect(const mw_queue_entry *e, mw_smtp **out, mw_error *err, void *ud)
{
    run_ctx *x = ud;
    ctx_drop_session_opts(x);
    smtp_cli *c = calloc(1, sizeof *c);
    if (!c) return cli_err(err, MW_ENOMEM, "out of memory");
    x->cur = c;
    c->prog = "queue";
    mw_cli_conn_init(&c->conn, "queue", 587, 465);
    for (int i = 1; i < x->sargc; i++)
        if (smtp_option(c, x->sargc, x->sargv, &i) <= 0)
            return cli_err(err, MW_EINVAL, "bad SMTP option");
    if (!c->conn.account && !c->conn.host && !c->nservers && e->account)
        c->conn.account = e->account;
    c->conn.from_address = e->sender;
    if (smtp_finish(c) != 0) return cli_err(err, MW_EINVAL, "no server for this message");
    mw_error_clear(err);
    int rc = smtp_open_err(c, out, 1, err);
    if (rc == 0) return 0;
    if (!err->code) return cli_err(err, MW_EAUTH, "cannot log in (see above)");
    return err->code;
}

static void run_event(const mw_queue_event *ev, void *ud)
{
    run_ctx *x = ud;
    if (ev->kind == MW_QUEUE_EV_FAILED) x->failed = 1;
    queue_print_event(ev, x->json, "queue");
}

static void queue_usage(FILE *f)
{
    fprintf(f, "usage: mailwire queue [OPTIONS] run [--daemon [--interval SECONDS]] [--no-wait]\n"
               "       mailwire queue [OPTIONS] flush [--no-wait]\n"
               "       mailwire queue [OPTIONS] list\n"
               "       mailwire queue [OPTIONS] drop ID...\n"
               "run: what is due (per-entry backoff); flush: every entry now; --daemon: a run\n"
               "every --interval seconds (default 300), and at once when a send succeeds.\n"
               "Queue options: --queue-dir DIR (default $MAILWIRE_QUEUE_DIR, else\n"
               "  $XDG_DATA_HOME/mailwire/queue)  --lifetime SECONDS (default 432000: 5 days)\n"
               "  --backoff MIN[,MAX] (seconds between attempts, doubling; default 60,3600)\n"
               "  --json (one JSON line per entry or event)\n"
               "Sessions use the SMTP and connection options of `mailwire send` (--servers,\n"
               "--ports, --host, --account ...); without --host or --account, each message's\n"
               "account, else the account its sender picks.\n");
    mw_cli_conn_usage(f);
}

/* One run; returns 0, 75 (lock held with --no-wait), 74. */
static int one_run(mw_queue *q, run_ctx *x, int flush, int wait, const char *only)
{
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = run_connect;
    ro.connect_userdata = x;
    ro.event = run_event;
    ro.event_userdata = x;
    ro.flush = flush;
    ro.only = only;
    ro.wait_lock = wait;
    mw_queue_stats st;
    mw_error err;
    mw_error_clear(&err);
    int rc = mw_queue_run(q, &ro, &st, &err);
    ctx_drop_session_opts(x);
    if (rc) {
        fprintf(stderr, "mailwire queue: %s\n", err.message);
        return rc == MW_ESTATE ? EX_TEMPFAIL_ : EX_IOERR_;
    }
    if (!x->json && st.tried)
        fprintf(stderr, "mailwire queue: tried %zu, sent %zu, deferred %zu, failed %zu; %zu left\n",
                st.tried, st.sent, st.deferred, st.failed, st.left);
    return 0;
}

static int daemon_loop(mw_queue *q, run_ctx *x, const queue_cli *qc, long interval)
{
    char p[4200];
    kick_path(qc, p, sizeof p);
    if (mkfifo(p, 0600) != 0 && errno != EEXIST) {
        fprintf(stderr, "mailwire queue: cannot make %s: %s\n", p, mw_cli_errno_text(errno));
        return EX_IOERR_;
    }
    /* O_RDWR: the FIFO never reports end of file while we hold it. */
    int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "mailwire queue: cannot open %s: %s\n", p, mw_cli_errno_text(errno));
        return EX_IOERR_;
    }
    int flush = 0;
    for (;;) {
        int rc = one_run(q, x, flush, 1, NULL);
        if (rc == EX_IOERR_) {
            close(fd);
            return rc;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, interval > 2000000 ? 2000000000 : (int)(interval * 1000));
        flush = 0;
        if (pr > 0) {
            char b[256];
            while (read(fd, b, sizeof b) > 0) {}
            flush = 1; /* a send got through: the network is back, try everything */
        }
    }
}

/* --daemon, --no-wait, --interval SECONDS: 1 taken, 0 not one, -1 bad. */
static int run_option(int argc, char **argv, int *i, int *daemon, int *nowait, long *interval)
{
    const char *a = argv[*i];
    if (!strcmp(a, "--daemon")) {
        *daemon = 1;
        return 1;
    }
    if (!strcmp(a, "--no-wait")) {
        *nowait = 1;
        return 1;
    }
    if (strcmp(a, "--interval")) return 0;
    if (*i + 1 >= argc || num_opt(argv[*i + 1], 1, 7L * 86400, interval)) {
        fprintf(stderr, "mailwire queue: --interval wants seconds\n");
        return -1;
    }
    ++*i;
    return 1;
}

/* The subcommand, and IDs only for drop: 0 or EX_USAGE_ (printed). */
static int check_sub(const char *sub, size_t nids)
{
    if (!sub || (strcmp(sub, "run") && strcmp(sub, "flush") && strcmp(sub, "list") &&
                 strcmp(sub, "drop"))) {
        fprintf(stderr, "mailwire queue: say run, flush, list or drop\n");
        queue_usage(stderr);
        return EX_USAGE_;
    }
    if ((!strcmp(sub, "drop")) != (nids > 0)) {
        fprintf(stderr, "mailwire queue: %s\n",
                nids ? "only drop takes IDs" : "drop wants the IDs to remove");
        return EX_USAGE_;
    }
    return 0;
}

/* queue drop ID...: each removed (the last failure's exit code). */
static int drop_ids(mw_queue *q, const char **ids, size_t nids, int json)
{
    int rc = 0;
    for (size_t k = 0; k < nids; k++) {
        mw_error err;
        mw_error_clear(&err);
        if (mw_queue_drop(q, ids[k], &err) != 0) {
            fprintf(stderr, "mailwire queue: %s\n", err.message);
            rc = err.code == MW_ESTATE ? EX_TEMPFAIL_ : EX_DATAERR_;
        } else if (!json) {
            fprintf(stderr, "mailwire queue: %s dropped\n", ids[k]);
        }
    }
    return rc;
}

int mw_cmd_queue(int argc, char **argv)
{
    queue_cli qc;
    memset(&qc, 0, sizeof qc);
    run_ctx x;
    memset(&x, 0, sizeof x);
    const char *sub = NULL;
    const char **ids = calloc((size_t)argc + 1, sizeof *ids);
    x.sargv = calloc((size_t)argc + 1, sizeof *x.sargv);
    size_t nids = 0;
    int daemon = 0, nowait = 0, rc = 0;
    long interval = 300;
    mw_queue *q = NULL;
    if (!ids || !x.sargv) return EX_SOFTWARE_;
    x.sargv[x.sargc++] = argv[0];
    /* A scratch parse of the SMTP options to check them (and see --json). */
    smtp_cli probe;
    memset(&probe, 0, sizeof probe);
    probe.prog = "queue";
    mw_cli_conn_init(&probe.conn, "queue", 587, 465);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            queue_usage(stdout);
            goto out;
        }
        int r = run_option(argc, argv, &i, &daemon, &nowait, &interval);
        if (r == 0) r = queue_option(&qc, argc, argv, &i, "queue");
        if (r < 0) {
            rc = EX_USAGE_;
            goto out;
        }
        if (r > 0) continue;
        int start = i;
        r = smtp_option(&probe, argc, argv, &i);
        if (r < 0) {
            rc = EX_USAGE_;
            goto out;
        }
        if (r > 0) {
            for (int k = start; k <= i; k++)
                x.sargv[x.sargc++] = argv[k];
            continue;
        }
        if (a[0] == '-') {
            fprintf(stderr, "mailwire queue: unknown option '%s'\n", a);
            queue_usage(stderr);
            rc = EX_USAGE_;
            goto out;
        }
        if (!sub)
            sub = a;
        else
            ids[nids++] = a;
    }
    x.json = probe.conn.json;
    if ((rc = check_sub(sub, nids)) != 0) goto out;
    if ((rc = queue_cli_open(&qc, &q, "queue")) != 0) goto out;
    if (!strcmp(sub, "list")) {
        rc = queue_list(q, x.json, "queue");
    } else if (!strcmp(sub, "drop")) {
        rc = drop_ids(q, ids, nids, x.json);
    } else if (daemon) {
        rc = daemon_loop(q, &x, &qc, interval);
    } else {
        rc = one_run(q, &x, !strcmp(sub, "flush"), !nowait, NULL);
        if (rc == 0 && x.failed) rc = EX_NOUSER_;
    }
out:
    mw_queue_close(q);
    smtp_cli_free(&probe);
    free(ids);
    free(x.sargv);
    return rc;
}
