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
int send_enqueue(smtp_cli *c, send_args *A, queue_cli *qc, stdin_src *sin, const char *sender)
{
    const char *data = sin->head;
    size_t len = sin->hlen;
    const char **rl = NULL;
    size_t nr = 0, cap = 0;
    int rc = 0;
    char *pre = NULL;
    size_t prelen = 0;
    mw_mime_headers *h = NULL;
    mw_mime_addrlist **lists = NULL;
    size_t nlists = 0;
    mw_queue *q = NULL;
    for (size_t i = 0; i < A->nrcpt; i++)
        if (add_unique(&rl, &nr, &cap, A->rcpt[i])) goto nomem;
    size_t hb = header_block_end(data, len);
    if (A->extract && mw_mime_headers_parse(&h, data, hb ? hb : len, NULL, NULL, NULL) == 0) {
        const char *names[] = {"To", "Cc", "Bcc"};
        for (size_t k = 0; k < 3; k++)
            for (size_t j = 0; j < mw_mime_headers_count_name(h, names[k]); j++) {
                const char *v = mw_mime_headers_get(h, names[k], j);
                mw_mime_addrlist *l = NULL;
                if (!v || mw_mime_addrlist_parse(&l, v, strlen(v), NULL) != 0) continue;
                mw_mime_addrlist **nl = realloc(lists, (nlists + 1) * sizeof *nl);
                if (!nl) {
                    mw_mime_addrlist_free(l);
                    goto nomem;
                }
                lists = nl;
                lists[nlists++] = l;
                for (size_t m = 0; m < mw_mime_addrlist_count(l); m++) {
                    const mw_mime_address *ad = mw_mime_addrlist_at(l, m);
                    if (ad && ad->address && ad->address[0] &&
                        add_unique(&rl, &nr, &cap, ad->address))
                        goto nomem;
                }
            }
    }
    if (nr == 0) {
        fprintf(stderr, "mailwire send: no recipients: give them as arguments, or To/Cc/Bcc "
                        "fields with -t\n");
        rc = EX_USAGE_;
        goto out;
    }
    /* What sendmail mode adds, added now: every attempt then sends the
     * same bytes (one Message-ID however many attempts). */
    {
        FILE *f = open_memstream(&pre, &prelen);
        if (!f) goto nomem;
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
        if (fclose(f) != 0) goto nomem;
    }
    if ((rc = queue_cli_open(qc, &q, "send")) != 0) goto out;
    enq_src E = {pre, prelen, 0, sin};
    mw_queue_env env = {MW_QUEUE_ENV_VERSION,
                        sender,
                        rl,
                        nr,
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
    int qrc = mw_queue_send(q, &env, enq_read, &E, &ro, id, &queued, &err);
    if (qrc) {
        fprintf(stderr, "mailwire send: not queued, nothing kept: %s\n", err.message);
        if (c->conn.json) {
            printf("{\"queued\":false,\"error\":");
            mw_cli_json_string(stdout, err.message, strlen(err.message));
            printf("}\n");
        }
        rc = qrc == MW_EINVAL               ? EX_DATAERR_
             : qrc == MW_EIO && sin->failed ? EX_IOERR_
                                            : EX_TEMPFAIL_;
        goto out;
    }
    if (x.kind == MW_QUEUE_EV_SENT) {
        queue_kick(qc); /* the server is reachable: wake a daemon for the rest */
    } else if (x.kind == MW_QUEUE_EV_FAILED) {
        rc = EX_NOUSER_;
    } else if (!c->conn.json) {
        fprintf(stderr, "mailwire send: queued as %s%s%s\n", id, x.why[0] ? ": " : "", x.why);
    }
    goto out;
nomem:
    fprintf(stderr, "mailwire send: out of memory\n");
    rc = EX_SOFTWARE_;
out:
    mw_queue_close(q);
    for (size_t i = 0; i < nlists; i++)
        mw_mime_addrlist_free(lists[i]);
    free(lists);
    mw_mime_headers_free(h);
    free(pre);
    free(rl);
    return rc;
}
