/* The connection half of a loop job (lconn.h). */
#include "loop/lcache.h"
#include "loop/lconn.h"
#include "loop/leyes.h"
#include "loop/lproxy.h"
#include "loop/ltoken.h"
#include "net/stream.h"
#include "net/tls.h"
#include "resolve/resolve.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Rounds of write/read/process in one step before the job yields. */
#define MW_LCONN_MAX_ROUNDS 64

int mwi_lconn_init(mwi_lconn *c, mw_loop_job *job, const mwi_lconn_ops *ops, void *impl,
                   size_t in_cap, size_t out_max, size_t read_budget)
{
    mw_buf ob = MW_BUF_INIT(out_max);
    c->job = job;
    c->ops = ops;
    c->impl = impl;
    c->out = ob;
    c->in_cap = in_cap;
    c->read_budget = read_budget;
    c->in = malloc(in_cap);
    return c->in ? 0 : MW_ENOMEM;
}

/* This job's lookup of its name ended (code 0, n 0: abandoned): the
 * loop's cache learns it, the jobs waiting for it are woken. */
static void lookup_end(mwi_lconn *c, const mwi_raddr *a, size_t n, uint32_t ttl, int code,
                       const char *msg)
{
    if (!c->dns_owner) return;
    c->dns_owner = 0;
    mw_loop *l = c->job->loop;
    mwi_lcache_end(*mwi_loop_dns_cache(l), c->host, c->job->family, a, n, ttl, code, msg,
                   mw_now_ms());
    mwi_loop_wake_dns(l);
}

void mwi_lconn_close(mwi_lconn *c)
{
    mwi_leyes_free(c);
    lookup_end(c, NULL, 0, 0, 0, NULL);
    c->job->dns_wait = 0;
    if (c->rslv) { /* its descriptor is its own to close */
        mwi_loop_set_fd(c->job, -1);
        mwi_rslv_free(c->rslv);
        c->rslv = NULL;
    }
    mwi_ltls_free(c->tls);
    c->tls = NULL;
    if (c->job->fd >= 0) {
        int fd = c->job->fd;
        mwi_loop_set_fd(c->job, -1);
        close(fd);
    }
    c->job->want = 0;
}

int mwi_lconn_reconnect(mwi_lconn *c, int connect_timeout_ms)
{
    mwi_lconn_close(c);
    c->in_len = c->out_off = 0;
    mwi_buf_reset(&c->out);
    c->eof = c->wblock = c->rwant = c->handshaking = c->tls_pending = 0;
    free(c->addrs);
    c->addrs = NULL;
    c->naddrs = 0;
    c->connecting = 1;
    c->ext_tls_up = 0;
    c->connect_timeout_ms = connect_timeout_ms;
    if (c->external) return 0; /* the driver connects */
    c->step_deadline = mw_now_ms() + connect_timeout_ms;
    int fd = -1, cr = 0, ce = 0;
    int rc = mwi_loop_tcp_socket(c->host, c->port, &fd, &cr, &ce, &c->job->err);
    if (!rc && fd >= 0 && (rc = mwi_loop_set_fd(c->job, fd)) != 0) close(fd);
    if (!rc && fd >= 0 && cr != 0 && ce != EINPROGRESS)
        rc = mwi_err_set(&c->job->err, MW_ENET, "connect to %s port %u: %s", c->host, c->port,
                         MW_ERRNO_TEXT(ce));
    c->resolving = !rc && fd < 0;
    return rc;
}

void mwi_lconn_free(mwi_lconn *c)
{
    if (!c->job) return;
    mwi_lconn_close(c);
    mwi_lproxy_free(c);
    free(c->in);
    free(c->host);
    free(c->addrs);
    c->addrs = NULL;
    mwi_buf_free(&c->out);
    mwi_ltls_cfg_free(&c->tlscfg);
    c->in = c->host = NULL;
}

void mwi_lconn_trace(mwi_lconn *c, int dir, const char *line, size_t len)
{
    if (c->trace) c->trace(dir, line, len, c->trace_ud);
}

void mwi_lconn_info(mwi_lconn *c, const char *fmt, ...)
{
    if (!c->trace) return;
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n >= 0)
        c->trace(MW_TRACE_INFO, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1,
                 c->trace_ud);
}

void mwi_lconn_end(mwi_lconn *c, int code, const char *msg)
{
    mw_loop_job *j = c->job;
    if (j->done) return;
    char words[sizeof j->err.message]; /* a proxy's phase: src/net's words */
    if (code && c->proxy) msg = mwi_lproxy_words(c, code, msg, words, sizeof words);
    if (code) {
        mwi_err_set(&j->err, code, "%s", msg);
        mwi_lconn_info(c, "job ends: %s", msg);
    } else {
        j->err.code = 0;
    }
    mwi_lconn_close(c);
    j->done = 1;
}

static void fail(mwi_lconn *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(mwi_lconn *c, int code, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->ops->fail(c->impl, code, msg);
}

void mwi_lconn_progress(mwi_lconn *c)
{
    c->step_deadline =
        c->io_timeout_ms > 0 ? mw_now_ms() + c->io_timeout_ms : (int64_t)MW_NO_DEADLINE;
}

size_t mwi_lconn_pending(const mwi_lconn *c)
{
    return c->out.len - c->out_off;
}

int mwi_lconn_queue_line(mwi_lconn *c, const char *line)
{
    if (strpbrk(line, "\r\n")) return MW_EINVAL;
    if (c->out_off) { /* written already: make room */
        mwi_buf_consume(&c->out, c->out_off);
        c->out_off = 0;
    }
    size_t len = strlen(line), before = c->out.len;
    int rc = mwi_buf_append(&c->out, line, len);
    if (!rc)
        rc = c->lf_only ? mwi_buf_append(&c->out, "\n", 1) : mwi_buf_append(&c->out, "\r\n", 2);
    if (rc) c->out.len = before; /* all of the line or nothing */
    return rc;
}

int mwi_lconn_queue_buf(mwi_lconn *c, mw_buf *b)
{
    if (c->out.len != c->out_off || (c->out.max && b->len > c->out.max)) {
        if (c->out_off) {
            mwi_buf_consume(&c->out, c->out_off);
            c->out_off = 0;
        }
        int rc = mwi_buf_append(&c->out, b->data, b->len);
        if (!rc) mwi_buf_reset(b);
        return rc;
    }
    char *data = c->out.data;
    size_t cap = c->out.cap;
    c->out.data = b->data;
    c->out.cap = b->cap;
    c->out.len = b->len;
    c->out_off = 0;
    b->data = data;
    b->cap = cap;
    mwi_buf_reset(b);
    return 0;
}

void mwi_lconn_ext_fail(mwi_lconn *c, int rc, const mw_error *e)
{
    char m[sizeof e->message];
    snprintf(m, sizeof m, "%s", e->message[0] ? e->message : mw_strerror(rc));
    c->ops->fail(c->impl, rc, m);
}

int mwi_lconn_ext_write(mwi_lconn *c, mw_stream *s, int64_t deadline, mw_error *e)
{
    size_t n = mwi_lconn_pending(c);
    int rc = mw_stream_write(s, c->out.data + c->out_off, n, deadline, e);
    if (rc) return rc;
    c->moved += n;
    mwi_buf_reset(&c->out);
    c->out_off = 0;
    return 0;
}

int mwi_lconn_ext_read(mwi_lconn *c, mw_stream *s, int64_t deadline, size_t *got, mw_error *e)
{
    *got = 0;
    if (c->in_len == c->in_cap)
        return mwi_err_set(e, MW_ETOOBIG, "input buffer full (in state %s)",
                           c->ops->state(c->impl));
    int rc = mw_stream_read(s, c->in + c->in_len, c->in_cap - c->in_len, got, deadline, e);
    if (!rc) c->in_len += *got;
    return rc;
}

int mwi_lconn_ext_tls(mwi_lconn *c, mw_stream **s, const mw_tls_opts *t, int64_t deadline, int cert,
                      mw_error *e)
{
    mw_stream *ts = NULL;
    int rc = mwi_tls_wrap(&ts, *s, t, deadline, e); /* owns *s, also on failure */
    *s = ts;
    if (rc) return rc;
    c->handshaking = 0;
    c->ext_tls_up = 1;
    c->ext_stream = ts;
    c->ext_cert = cert;
    c->ops->tls_up(c->impl);
    return 0;
}

void mwi_lconn_start_tls(mwi_lconn *c)
{
    if (c->external) { /* the driver's stream gets TLS (pop3_drive.c) */
        c->handshaking = 1;
        return;
    }
    int rc = mwi_ltls_new(&c->tls, &c->tlscfg, mwi_loop_tls_cache(c->job->loop), c->job->fd,
                          c->host, &c->job->err);
    if (rc) {
        c->ops->fail(c->impl, rc, c->job->err.message);
        return;
    }
    c->handshaking = 1;
    c->wblock = 0;
    c->step_deadline = mw_now_ms() + c->tlscfg.handshake_timeout_ms;
}

int mwi_lconn_after_line(mwi_lconn *c, size_t pos)
{
    if (!c->tls_pending) return 0;
    c->tls_pending = 0;
    if (pos != c->in_len) {
        if (c->tls_reply)
            fail(c, MW_EPROTO,
                 "server sent %zu bytes after its %s, before the TLS handshake (possible "
                 "injection); refusing",
                 c->in_len - pos, c->tls_reply);
        else
            fail(c, MW_EPROTO, "the server sent data after its reply to STLS / STARTTLS");
        return 1;
    }
    mwi_lconn_start_tls(c);
    return 1;
}

static int do_write(mwi_lconn *c)
{
    for (;;) {
        if (c->out_off == c->out.len) {
            mwi_buf_reset(&c->out);
            c->out_off = 0;
            if (c->ops->feed) c->ops->feed(c->impl);
            if (c->job->done || c->out.len == 0) break;
        }
        size_t n = 0;
        int rc = c->tls ? mwi_ltls_write(c->tls, c->out.data + c->out_off, mwi_lconn_pending(c), &n,
                                         &c->wblock, &c->job->err)
                        : mwi_lplain_write(c->job->fd, c->out.data + c->out_off,
                                           mwi_lconn_pending(c), &n, &c->wblock, &c->job->err);
        if (rc) return rc;
        if (!n) return 0;
        c->out_off += n;
        c->moved += n;
        mwi_lconn_progress(c);
    }
    c->wblock = 0;
    return 0;
}

/* A plain read shorter than asked emptied the socket: no more reads in
 * this step (each would be an EAGAIN); what comes later wakes the job
 * again, the loop's readiness being level-triggered (loop.c).  TLS reads
 * go on until the record layer says so: OpenSSL may hold bytes the socket
 * no longer has. */
static int do_read(mwi_lconn *c, size_t *total)
{
    c->rwant = 0;
    while (c->in_len < c->in_cap && !c->eof && !(c->drained && !c->tls)) {
        size_t n = 0, ask = c->in_cap - c->in_len;
        int rc =
            c->tls ? mwi_ltls_read(c->tls, c->in + c->in_len, ask, &n, &c->rwant, &c->eof,
                                   &c->job->err)
                   : mwi_lplain_read(c->job->fd, c->in + c->in_len, ask, &n, &c->eof, &c->job->err);
        if (rc) return rc;
        if (!n) break;
        c->in_len += n;
        c->moved += n;
        *total += n;
        mwi_lconn_progress(c);
        if (!c->tls && n < ask) c->drained = 1;
    }
    return 0;
}

static void addr_text(const mwi_raddr *a, char *buf, size_t cap)
{
    if (!inet_ntop(a->family, a->addr, buf, (socklen_t)cap)) snprintf(buf, cap, "?");
}

/* The name is looked up (by this job, or the loop's cache): its
 * addresses, then the race. */
static void resolved(mwi_lconn *c, const mwi_raddr *a, size_t n, int say)
{
    c->addrs = malloc(n * sizeof *a);
    if (c->addrs) memcpy(c->addrs, a, n * sizeof *a);
    c->naddrs = c->addrs ? n : 0;
    c->resolving = 0;
    if (!c->addrs) {
        fail(c, MW_ENOMEM, "out of memory");
        return;
    }
    char first[INET6_ADDRSTRLEN];
    addr_text(&c->addrs[0], first, sizeof first);
    if (say) mwi_lconn_info(c, "%s is %s%s", c->host, first, n > 1 ? " (and more addresses)" : "");
    if (c->proxy && mwi_lproxy_resolved(c)) return;
    mwi_leyes_start(c);
}

/* Before a lookup: what the loop's cache knows.  Returns 1 when that
 * settled it (addresses, a failure, or waiting for another job's lookup),
 * 0 to look the name up (claimed, when there is room). */
static int from_cache(mwi_lconn *c, int64_t dl)
{
    mw_loop_job *j = c->job;
    mwi_lcache **cache = mwi_loop_dns_cache(j->loop);
    mwi_raddr a[MWI_RSLV_ADDRS_MAX];
    size_t n = 0;
    int code = 0;
    char msg[256];
    int64_t now = mw_now_ms();
    switch (mwi_lcache_get(*cache, c->host, j->family, now, &c->dns_gen, a, &n, &code, msg,
                           sizeof msg)) {
    case MWI_LCACHE_HIT:
        mwi_lconn_info(c, "%s: from the loop's cache of lookups", c->host);
        resolved(c, a, n, 1);
        return 1;
    case MWI_LCACHE_FAILED:
        fail(c, code, "%s", msg);
        return 1;
    case MWI_LCACHE_PENDING:
        if (now >= dl) {
            fail(c, MW_ETIMEOUT, "%s: no answer before the deadline (another job's lookup)",
                 c->host);
            return 1;
        }
        if (!j->dns_wait) mwi_lconn_info(c, "%s: waiting for another job's lookup", c->host);
        j->dns_wait = 1;
        return 1;
    default:
        c->dns_owner = mwi_lcache_claim(cache, c->host, j->family) == 0;
        return 0;
    }
}

/* A step of the name lookup (src/resolve): started at the first step
 * unless the loop's cache has the name, its descriptor the job's while it
 * runs, within the connect deadline. */
static void resolve_step(mwi_lconn *c, int events)
{
    mw_loop_job *j = c->job;
    int rc;
    if (!c->rslv) {
        int64_t dl = c->step_deadline < c->total_deadline ? c->step_deadline : c->total_deadline;
        mwi_raddr lit = {0};
        if (inet_pton(AF_INET, c->host, lit.addr) == 1 ||
            inet_pton(AF_INET6, c->host, lit.addr) == 1) { /* its own one address */
            lit.family = strchr(c->host, ':') ? AF_INET6 : AF_INET;
            resolved(c, &lit, 1, 0);
            return;
        }
        if (from_cache(c, dl)) return;
        mwi_lconn_info(c, "looking up %s", c->host);
        rc = mwi_rslv_start(&c->rslv, c->host, j->family, mwi_loop_resolv_paths(j->loop), dl,
                            &j->err);
        if (!rc) rc = mwi_rslv_done(c->rslv);
    } else {
        rc = mwi_rslv_step(c->rslv, events, &j->err);
    }
    if (rc < 0) {
        lookup_end(c, NULL, 0, 0, rc, j->err.message);
        fail(c, rc, "%s", j->err.message);
        return;
    }
    if (rc == 1) {
        size_t n = 0;
        const mwi_raddr *a = mwi_rslv_addrs(c->rslv, &n);
        mwi_raddr got[MWI_RSLV_ADDRS_MAX];
        memcpy(got, a, n * sizeof *a);
        lookup_end(c, got, n, mwi_rslv_ttl(c->rslv), 0, NULL);
        mwi_loop_set_fd(j, -1);
        mwi_rslv_free(c->rslv);
        c->rslv = NULL;
        resolved(c, got, n, 1);
        return;
    }
    /* The resolver may have closed its socket and opened another under
     * the same number (the next server, TCP): forget the old one first,
     * so that mw_loop_run's epoll set takes the new one. */
    mwi_loop_set_fd(j, -1);
    if ((rc = mwi_loop_set_fd(j, mwi_rslv_fd(c->rslv))) != 0)
        fail(c, rc, "descriptor %d cannot be watched", mwi_rslv_fd(c->rslv));
}

static void update_wait(mwi_lconn *c)
{
    mw_loop_job *j = c->job;
    int w;
    if (c->resolving) {
        if (c->rslv) {
            j->want = mwi_rslv_want(c->rslv);
            j->deadline = mwi_rslv_deadline(c->rslv);
        } else if (j->dns_wait) { /* woken by the other job's lookup, or the deadline */
            j->want = 0;
            j->deadline =
                c->step_deadline < c->total_deadline ? c->step_deadline : c->total_deadline;
        } else {
            j->want = 0;
            j->again = 1; /* the lookup starts at the first step */
        }
        return;
    }
    if (c->connecting)
        w = MW_LOOP_OUT;
    else if (c->proxying)
        w = mwi_lproxy_want(c);
    else if (c->handshaking)
        w = c->wblock ? c->wblock : MW_LOOP_IN;
    else {
        w = MW_LOOP_IN | c->rwant;
        if (mwi_lconn_pending(c)) w |= c->wblock ? c->wblock : MW_LOOP_OUT;
    }
    j->want = w;
    j->deadline = c->step_deadline < c->total_deadline ? c->step_deadline : c->total_deadline;
    if (c->race && mwi_leyes_deadline(c) < j->deadline) j->deadline = mwi_leyes_deadline(c);
}

void mwi_lconn_arm(mwi_lconn *c)
{
    if (c->connecting && c->job->fd < 0 && !c->rslv && !c->addrs) c->resolving = 1;
    if (!c->job->done) update_wait(c);
}

/* After a step: an idle job's timer, the max-time, the step deadline. */
static void deadlines(mwi_lconn *c)
{
    mw_loop_job *j = c->job;
    if (j->done) return;
    if (c->ops->deadline && mw_now_ms() >= c->step_deadline && mw_now_ms() < c->total_deadline &&
        c->ops->deadline(c->impl)) {
        if (!j->done) update_wait(c);
        return;
    }
    if (mw_now_ms() >= c->total_deadline && c->max_time_ms > 0) {
        /* src/net's words for it (stream.c, max_time_exceeded). */
        int ms = c->max_time_ms;
        char t[32];
        snprintf(t, sizeof t, ms % 1000 ? "%d ms" : "%d s", ms % 1000 ? ms : ms / 1000);
        if (c->connecting || c->proxying)
            fail(c, MW_ETIMEOUT,
                 "session exceeded its max-time of %s while connecting to %s port %u", t, c->host,
                 c->port);
        else
            fail(c, MW_ETIMEOUT, "session exceeded its max-time of %s while %s", t,
                 c->handshaking  ? "in the TLS handshake"
                 : j->tok_ticket ? "waiting for the token provider"
                                 : "reading a line");
        return;
    }
    if (j->tok_ticket && mw_now_ms() >= c->step_deadline) { /* an answer never came */
        char t[32];
        mwi_ms_text(t, sizeof t, c->io_timeout_ms);
        fail(c, MW_ETIMEOUT, "timeout: the token provider gave no answer within %s", t);
        return;
    }
    if (mw_now_ms() >=
        (c->step_deadline < c->total_deadline ? c->step_deadline : c->total_deadline)) {
        fail(c, MW_ETIMEOUT, "%s: no progress before the deadline (in state %s)",
             c->step_deadline < c->total_deadline ? "timeout" : "max_time_ms",
             c->ops->state(c->impl));
        return;
    }
    update_wait(c);
}

/* The connect's outcome: a name's race (leyes.h), or the one socket of
 * an address.  Returns 1 when connected, 0 to wait on, -1 when the job
 * ended. */
static int connect_done(mwi_lconn *c, int events)
{
    mw_loop_job *j = c->job;
    if (c->race) {
        int r = mwi_leyes_step(c);
        if (r <= 0) return r;
    } else {
        int e = -1; /* -1: still connecting */
        if (events & MW_LOOP_OUT) {
            socklen_t el = sizeof e;
            e = 0;
            if (getsockopt(j->fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0) e = errno;
            if (e == EINPROGRESS || e == EALREADY) e = -1;
        }
        if (e == -1) return 0;
        if (e) {
            fail(c, MW_ENET, "connect to %s port %u: %s", c->host, c->port, MW_ERRNO_TEXT(e));
            return -1;
        }
    }
    c->connecting = 0;
    mwi_lconn_info(c, "connected to %s port %u", c->host, c->port);
    mwi_lconn_progress(c);
    if (c->proxy)
        mwi_lproxy_begin(c); /* the handshake first, then connected */
    else
        c->ops->connected(c->impl);
    return j->done ? -1 : 1;
}

static void step(mwi_lconn *c, int events)
{
    mw_loop_job *j = c->job;
    if (j->cancel_rc) {
        if (j->tok_ticket)
            fail(c, j->cancel_rc, "cancelled by the caller while waiting for the token provider");
        else
            fail(c, j->cancel_rc, "cancelled by the caller (in state %s)", c->ops->state(c->impl));
        return;
    }
    if (c->resolving) {
        resolve_step(c, events);
        if (!j->done) update_wait(c);
        return;
    }
    if (c->connecting) {
        int r = connect_done(c, events);
        if (r < 0) return;
        if (r == 0) goto deadline;
    }
    if (c->proxying && mwi_lproxy_step(c) <= 0) goto deadline;
    size_t step_total = 0; /* bytes read in this step, for fairness */
    c->drained = 0;
    for (int round = 0; !j->done; round++) {
        if (c->handshaking) {
            int rc = mwi_ltls_handshake(c->tls, &c->wblock, &j->err);
            if (rc < 0) {
                c->ops->fail(c->impl, rc, j->err.message);
                return;
            }
            if (rc == 0) break; /* waiting for c->wblock */
            c->handshaking = 0;
            c->wblock = 0;
            mwi_lconn_info(c, "TLS established (%s)", mwi_ltls_version(c->tls));
            mwi_lconn_progress(c);
            c->ops->tls_up(c->impl);
            continue;
        }
        size_t got = 0, before = mwi_lconn_pending(c);
        int rc = do_write(c);
        if (!rc && !j->done) rc = do_read(c, &got);
        if (j->done) return;
        if (rc) {
            fail(c, rc, "%s (in state %s)", j->err.message, c->ops->state(c->impl));
            return;
        }
        size_t had = c->in_len;
        c->ops->process(c->impl);
        if (j->done) return;
        if (c->handshaking) continue;
        if (c->connecting) break; /* a new session (mwi_lconn_reconnect) */
        if (c->eof && c->in_len == had) {
            fail(c, MW_ENET, "the server closed the connection (in state %s)",
                 c->ops->state(c->impl));
            return;
        }
        int wrote = before != mwi_lconn_pending(c);
        if (!got && !wrote && !mwi_lconn_pending(c)) {
            if (c->ops->ahead) c->ops->ahead(c->impl);
            if (j->done || !mwi_lconn_pending(c)) break;
            continue;
        }
        if (!got && mwi_lconn_pending(c) && c->wblock) break;
        step_total += got;
        if (round > MW_LCONN_MAX_ROUNDS || step_total >= c->read_budget) {
            j->again = 1; /* let the other jobs run; come back without an event */
            break;
        }
    }
deadline:
    deadlines(c);
}

/* The connection is up and the job waits for the server: the time counts
 * for the rate floor (not the connect, the lookup, a proxy or TLS
 * handshake, each under its own timeout). */
static int rate_live(const mwi_lconn *c)
{
    return c->rate_set && !c->external && !c->resolving && !c->connecting && !c->proxying &&
           !c->handshaking && c->job->fd >= 0 && !c->job->tok_ticket;
}

/* src/net/stream.c's words for a transfer under the floor. */
static void too_slow(mwi_lconn *c)
{
    char t[32];
    mwi_ms_text(t, sizeof t, c->job->speed_time_ms);
    unsigned lim = c->job->speed_limit;
    unsigned long long got = (unsigned long long)c->rate.failed_bytes;
    fail(c, MW_ETIMEOUT, "transfer slower than %u byte%s/s over %s (%llu byte%s moved) while %s",
         lim, lim == 1 ? "" : "s", t, got, got == 1 ? "" : "s",
         mwi_lconn_pending(c) ? "sending" : "reading a line");
}

/* A step, and the rate floor around it: the octets it moved against the
 * wait before it, as src/net/stream.c counts each read and write against
 * its wait; the job wakes when the window would end. */
void mwi_lconn_step(mwi_lconn *c, int events)
{
    mw_loop_job *j = c->job;
    if (!c->rate_set && j->speed_limit) {
        mwi_rate_init(&c->rate, j->speed_limit, j->speed_time_ms);
        c->rate_set = 1;
    }
    int live = rate_live(c) && c->rate_mark;
    int64_t t0 = mw_now_ms();
    uint64_t before = c->moved;
    step(c, events);
    /* A job waiting for a token sends nothing; one that did (on its way
     * out) no longer takes the answer (ltoken.h). */
    if (j->tok_ticket && !j->done && mwi_lconn_pending(c)) mwi_ltok_forget(j->loop, j);
    if (j->done || !c->rate_set) return;
    if (live && mwi_rate_account(&c->rate, t0 - c->rate_mark, c->moved - before) != 0) {
        too_slow(c);
        return;
    }
    if (!rate_live(c)) {
        c->rate_mark = 0;
        return;
    }
    c->rate_mark = mw_now_ms();
    int64_t end = c->rate_mark + mwi_rate_budget(&c->rate);
    if (end < j->deadline) j->deadline = end;
}
