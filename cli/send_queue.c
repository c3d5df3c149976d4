/* `mailwire send --enqueue` (send_int.h). */
#include "send_int.h"
#include "commands.h"
#include "connopts.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- --enqueue: through the durable queue (queue_cli.h) ---- */

/* -t's recipients for the queue, which needs them at once: the To, Cc
 * and Bcc fields' addresses, after the argument ones, without repeats. */
static int add_unique(const char ***list, size_t *n, size_t *cap, const char *a)
{
    for (size_t i = 0; i < *n; i++)
        if (!strcasecmp((*list)[i], a)) return 0;
    if (*n == *cap) {
        size_t nc = *cap ? *cap * 2 : 16;
        const char **nl = realloc(*list, nc * sizeof *nl);
        if (!nl) return -1;
        *list = nl;
        *cap = nc;
    }
    (*list)[(*n)++] = a;
    return 0;
}

typedef struct enq_src {
    const char *pre;
    size_t prelen, prepos;
    stdin_src *sin;
} enq_src;

static long enq_read(void *buf, size_t len, void *ud)
{
    enq_src *E = ud;
    if (E->prepos < E->prelen) {
        size_t k = E->prelen - E->prepos < len ? E->prelen - E->prepos : len;
        memcpy(buf, E->pre + E->prepos, k);
        E->prepos += k;
        return (long)k;
    }
    long r = send_source_read(buf, len, E->sin);
    return r < 0 ? MW_EIO : r;
}
int enq_connect(const mw_queue_entry *e, mw_smtp **out, mw_error *err, void *ud)
{
    (void)e;
    enq_ctx *x = ud;
    mw_error_clear(err);
    int rc = smtp_open_err(x->c, out, 1, err);
    if (rc == 0) return 0;
    if (!err->code) {
        err->code = MW_EAUTH;
        snprintf(err->message, sizeof err->message, "cannot log in (see above)");
    }
    return err->code;
}

void enq_event(const mw_queue_event *ev, void *ud)
{
    enq_ctx *x = ud;
    x->kind = ev->kind;
    x->nsent = 0;
    for (size_t i = 0; i < ev->entry->nrcpt; i++) {
        const mw_queue_rcpt *r = &ev->entry->rcpt[i];
        x->nsent += r->state == MW_QUEUE_SENT;
        if (r->state == MW_QUEUE_FAILED && !x->failed[0])
            snprintf(x->failed, sizeof x->failed, "%d %s <%s>: %s", r->code >= 500 ? r->code : 554,
                     r->enhanced[0] ? r->enhanced : "5.0.0", r->address, r->text ? r->text : "");
    }
    if (ev->kind == MW_QUEUE_EV_DEFERRED) {
        /* the reason: the session's error, else the first pending refusal */
        const char *w = ev->err && ev->err->message[0] ? ev->err->message : NULL;
        snprintf(x->why, sizeof x->why, "%s", w ? w : "");
        for (size_t i = 0; !w && i < ev->entry->nrcpt; i++) {
            const mw_queue_rcpt *r = &ev->entry->rcpt[i];
            if (r->state != MW_QUEUE_PENDING) continue;
            snprintf(x->why, sizeof x->why, "<%s>: %d %s%s%s", r->address, r->code, r->enhanced,
                     r->enhanced[0] ? " " : "", r->text ? r->text : "");
            break;
        }
    }
    if (x->json || ev->kind == MW_QUEUE_EV_FAILED || x->verbose)
        queue_print_event(ev, x->json, "send");
}

static void date_now(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* Stores the message with its envelope, then tries it once at once.
 * Exit 0 when it went or is queued, 67 when recipients failed for good,
 * 75 when it could not be stored (nothing of it is left then). */
/* The recipients for the queue: the arguments, then with -t the To, Cc
 * and Bcc fields' addresses (the address lists kept: rl points into
 * them). */
typedef struct enq_rcpts {
    const char **rl;
    size_t nr, cap;
    mw_mime_headers *h;
    mw_mime_addrlist **lists;
    size_t nlists;
} enq_rcpts;

static void enq_rcpts_free(enq_rcpts *R)
{
    for (size_t i = 0; i < R->nlists; i++)
        mw_mime_addrlist_free(R->lists[i]);
    free(R->lists);
    mw_mime_headers_free(R->h);
    free(R->rl);
}

/* One header field's addresses into R; -1 out of memory. */
static int enq_field(enq_rcpts *R, const char *v)
{
    mw_mime_addrlist *l = NULL;
    if (!v || mw_mime_addrlist_parse(&l, v, strlen(v), NULL) != 0) return 0;
    mw_mime_addrlist **nl = realloc(R->lists, (R->nlists + 1) * sizeof *nl);
    if (!nl) {
        mw_mime_addrlist_free(l);
        return -1;
    }
    R->lists = nl;
    R->lists[R->nlists++] = l;
    for (size_t m = 0; m < mw_mime_addrlist_count(l); m++) {
        const mw_mime_address *ad = mw_mime_addrlist_at(l, m);
        if (ad && ad->address && ad->address[0] && add_unique(&R->rl, &R->nr, &R->cap, ad->address))
            return -1;
    }
    return 0;
}

static int enq_recipients(enq_rcpts *R, const send_args *A, const char *data, size_t len)
{
    for (size_t i = 0; i < A->nrcpt; i++)
        if (add_unique(&R->rl, &R->nr, &R->cap, A->rcpt[i])) return -1;
    size_t hb = header_block_end(data, len);
    if (!A->extract || mw_mime_headers_parse(&R->h, data, hb ? hb : len, NULL, NULL, NULL) != 0)
        return 0;
    const char *names[] = {"To", "Cc", "Bcc"};
    for (size_t k = 0; k < 3; k++)
        for (size_t j = 0; j < mw_mime_headers_count_name(R->h, names[k]); j++)
            if (enq_field(R, mw_mime_headers_get(R->h, names[k], j))) return -1;
    return 0;
}

/* What sendmail mode adds, added now: every attempt then sends the same
 * bytes (one Message-ID however many attempts).  -1 out of memory. */
static int enq_added_header(const smtp_cli *c, const send_args *A, const char *data, size_t len,
                            const char *sender, char **pre, size_t *prelen)
{
    FILE *f = open_memstream(pre, prelen);
    if (!f) return -1;
    for (size_t i = 0; i < c->nheaders; i++)
        fprintf(f, "%s\r\n", c->headers[i]);
    if (!has_header(data, len, "From")) {
        if (A->fullname)
            fprintf(f, "From: %s <%s>\r\n", A->fullname, sender);
        else
            fprintf(f, "From: <%s>\r\n", sender);
    }
    if (!has_header(data, len, "Date")) {
        char d[64];
        date_now(d, sizeof d);
        fprintf(f, "Date: %s\r\n", d);
    }
    if (!has_header(data, len, "Message-ID")) {
        char host[256] = "localhost";
        if (gethostname(host, sizeof host - 1) != 0 || !host[0])
            snprintf(host, sizeof host, "localhost");
        host[sizeof host - 1] = '\0';
        uint32_t r = 0;
        int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (ufd >= 0) {
            if (read(ufd, &r, sizeof r) != (ssize_t)sizeof r) r = 0;
            close(ufd);
        }
        fprintf(f, "Message-ID: <%lld.%ld.%08x@%s>\r\n", (long long)time(NULL), (long)getpid(),
                (unsigned)r, host);
    }
    return fclose(f) != 0 ? -1 : 0;
}

/* Into the queue and one attempt at once; the exit code. */
static int enq_send(smtp_cli *c, send_args *A, queue_cli *qc, enq_src *E, const enq_rcpts *R,
                    const char *sender)
{
    mw_queue *q = NULL;
    int rc = queue_cli_open(qc, &q, "send");
    if (rc) return rc;
    mw_queue_env env = {MW_QUEUE_ENV_VERSION,
                        sender,
                        R->rl,
                        R->nr,
                        c->conn.account,
                        A->notify,
                        A->ret,
                        A->envid,
                        A->body,
                        0};
    char id[MW_QUEUE_ID_MAX];
    mw_error err;
    mw_error_clear(&err);
    /* One attempt at once; into the queue (durably) only what must wait. */
    enq_ctx x = {c, 0, c->conn.json, A->verbose, "", 0, ""};
    mw_queue_run_opts ro = MW_QUEUE_RUN_INIT;
    ro.connect = enq_connect;
    ro.connect_userdata = &x;
    ro.event = enq_event;
    ro.event_userdata = &x;
    ro.maxtime_ms = c->maxsecs * 1000;
    int queued = 0;
    int qrc = mw_queue_send(q, &env, enq_read, E, &ro, id, &queued, &err);
    mw_queue_close(q);
    if (qrc) {
        fprintf(stderr, "mailwire send: not queued, nothing kept: %s\n", err.message);
        if (c->conn.json) {
            printf("{\"queued\":false,\"error\":");
            mw_cli_json_string(stdout, err.message, strlen(err.message));
            printf("}\n");
        }
        return qrc == MW_EINVAL                  ? EX_DATAERR_
               : qrc == MW_EIO && E->sin->failed ? EX_IOERR_
                                                 : EX_TEMPFAIL_;
    }
    if (x.kind == MW_QUEUE_EV_SENT) {
        queue_kick(qc); /* the server is reachable: wake a daemon for the rest */
    } else if (x.kind == MW_QUEUE_EV_FAILED) {
        return EX_NOUSER_;
    } else if (!c->conn.json) {
        fprintf(stderr, "mailwire send: queued as %s%s%s\n", id, x.why[0] ? ": " : "", x.why);
    }
    return 0;
}

int send_enqueue(smtp_cli *c, send_args *A, queue_cli *qc, stdin_src *sin, const char *sender)
{
    enq_rcpts R;
    memset(&R, 0, sizeof R);
    char *pre = NULL;
    size_t prelen = 0;
    int rc = 0;
    if (enq_recipients(&R, A, sin->head, sin->hlen) ||
        (R.nr && enq_added_header(c, A, sin->head, sin->hlen, sender, &pre, &prelen))) {
        fprintf(stderr, "mailwire send: out of memory\n");
        rc = EX_SOFTWARE_;
    } else if (R.nr == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments, or To/Cc/Bcc "
                        "fields with -t\n");
        rc = EX_USAGE_;
    } else {
        enq_src E = {pre, prelen, 0, sin};
        rc = enq_send(c, A, qc, &E, &R, sender);
    }
    enq_rcpts_free(&R);
    free(pre);
    return rc;
}
