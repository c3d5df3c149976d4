/* A loop job's connection through a proxy (lproxy.h). */
#include "loop/lproxy.h"
#include "net/proxy_hs.h"
#include "resolve/resolve.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { LP_TARGET = 1, LP_DIAL, LP_SHAKE, LP_UP };

typedef struct mwi_lproxy {
    mw_proxy px;
    mwi_pxhs *hs; /* during the handshake only */
    char *other;  /* the host c->host is not: the proxy's, or the mail server's */
    unsigned other_port;
    char ask[256]; /* what the proxy is asked to connect to */
    int phase;
    int connect_timeout_ms;
    int want;
} mwi_lproxy;

static int numeric(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* c->host/c->port and the other pair change places. */
static void swap_host(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    char *h = c->host;
    unsigned p = c->port;
    c->host = lp->other;
    c->port = lp->other_port;
    lp->other = h;
    lp->other_port = p;
}

int mwi_lproxy_setup(mwi_lconn *c, const char *url, int connect_timeout_ms, mw_error *err)
{
    if (!c->host || !*c->host) return mwi_err_set(err, MW_EINVAL, "a proxy needs a host");
    mwi_lproxy *lp = calloc(1, sizeof *lp);
    if (!lp) return mwi_err_set(err, MW_ENOMEM, "out of memory");
    int rc = mwi_proxy_parse(&lp->px, url, err);
    if (!rc && strlen(c->host) >= sizeof lp->ask)
        rc = mwi_err_set(err, MW_EINVAL, "host name too long for a proxy");
    if (!rc && !(lp->other = strdup(lp->px.host)))
        rc = mwi_err_set(err, MW_ENOMEM, "out of memory");
    if (rc) {
        explicit_bzero(lp, sizeof *lp);
        free(lp);
        return rc;
    }
    lp->other_port = lp->px.port;
    lp->connect_timeout_ms = connect_timeout_ms;
    snprintf(lp->ask, sizeof lp->ask, "%s", c->host);
    c->proxy = lp;
    if (lp->px.kind == MW_PROXY_SOCKS5 && !numeric(c->host)) {
        /* socks5:// (not socks5h://): the name is looked up here first. */
        lp->phase = LP_TARGET;
        return 0;
    }
    lp->phase = LP_DIAL;
    swap_host(c);
    return 0;
}

/* The target's address is known: the proxy is dialled, by address or
 * after lconn looked its name up. */
int mwi_lproxy_resolved(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    if (lp->phase != LP_TARGET) return 0;
    const mwi_raddr *a = &c->addrs[0];
    inet_ntop(a->family, a->addr, lp->ask, sizeof lp->ask);
    free(c->addrs);
    c->addrs = NULL;
    c->naddrs = 0;
    lp->phase = LP_DIAL;
    swap_host(c);
    mwi_lconn_info(c, "through the proxy %s port %u, asking for %s", c->host, c->port, lp->ask);
    c->resolving = 1; /* the proxy's name or address, at the next step */
    return 1;
}

void mwi_lproxy_begin(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    mw_loop_job *j = c->job;
    swap_host(c);
    lp->phase = LP_SHAKE;
    lp->want = MW_LOOP_OUT;
    int rc = (lp->hs = malloc(sizeof *lp->hs)) ? 0 : MW_ENOMEM;
    if (rc)
        mwi_err_set(&j->err, rc, "out of memory");
    else
        rc = mwi_pxhs_start(lp->hs, &lp->px, lp->ask, c->port, &j->err);
    if (rc) {
        c->ops->fail(c->impl, rc, j->err.message);
        return;
    }
    c->proxying = 1;
    /* As src/net/dial.c: the connect timeout again for the handshake. */
    c->step_deadline =
        lp->connect_timeout_ms > 0 ? mw_now_ms() + lp->connect_timeout_ms : MW_NO_DEADLINE;
    mwi_lconn_info(c, "asking the proxy %s port %u for %s port %u", lp->other, lp->other_port,
                   lp->ask, c->port);
}

/* The tunnel is open: the protocol takes over, as after a direct connect. */
static int tunnel_up(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    mwi_pxhs_wipe(lp->hs);
    free(lp->hs);
    lp->hs = NULL;
    lp->phase = LP_UP;
    c->proxying = 0;
    mwi_lconn_info(c, "the proxy connected us to %s port %u", c->host, c->port);
    mwi_lconn_progress(c);
    c->ops->connected(c->impl);
    return c->job->done ? -1 : 1;
}

/* One write or read of the handshake.  Returns MWI_PXHS_MORE to go on,
 * 2 to wait, MWI_PXHS_DONE, or an MW_E* code (j->err set). */
static int shake_once(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    mw_loop_job *j = c->job;
    size_t n = 0, got = 0;
    const unsigned char *out = mwi_pxhs_output(lp->hs, &n);
    if (n) {
        int w = 0, rc = mwi_lplain_write(j->fd, out, n, &got, &w, &j->err);
        if (rc) return rc;
        if (!got) {
            lp->want = MW_LOOP_OUT;
            return 2;
        }
        mwi_pxhs_sent(lp->hs, got);
        return MWI_PXHS_MORE;
    }
    unsigned char b[260];
    size_t need = mwi_pxhs_need(lp->hs);
    int eof = 0,
        rc = mwi_lplain_read(j->fd, b, need < sizeof b ? need : sizeof b, &got, &eof, &j->err);
    if (rc) return rc;
    if (eof) return mwi_pxhs_closed(lp->hs, &j->err);
    if (!got) {
        lp->want = MW_LOOP_IN;
        return 2;
    }
    return mwi_pxhs_feed(lp->hs, b, got, &j->err);
}

int mwi_lproxy_step(mwi_lconn *c)
{
    mw_loop_job *j = c->job;
    for (;;) {
        int rc = shake_once(c);
        if (rc == 2) return 0;
        if (rc == MWI_PXHS_DONE) return tunnel_up(c);
        if (rc < 0) {
            c->ops->fail(c->impl, rc, j->err.message);
            return -1;
        }
    }
}

int mwi_lproxy_want(const mwi_lconn *c)
{
    return c->proxy->want;
}

const char *mwi_lproxy_words(const mwi_lconn *c, int code, const char *msg, char *buf, size_t cap)
{
    const mwi_lproxy *lp = c->proxy;
    if (code == MW_ECANCELED || !strncmp(msg, "session exceeded", 16)) return msg;
    if (lp->phase == LP_DIAL) {
        snprintf(buf, cap, "proxy: %s%s",
                 strncmp(msg, "connect to ", 11) || code == MW_ETIMEOUT ? "" : "cannot ", msg);
        return buf;
    }
    if (lp->phase == LP_SHAKE && code == MW_ETIMEOUT) {
        snprintf(buf, cap, "the proxy %s port %u did not answer within %d ms", lp->other,
                 lp->other_port, lp->connect_timeout_ms);
        return buf;
    }
    return msg;
}

void mwi_lproxy_free(mwi_lconn *c)
{
    mwi_lproxy *lp = c->proxy;
    if (!lp) return;
    if (lp->hs) mwi_pxhs_wipe(lp->hs);
    free(lp->hs);
    free(lp->other);
    explicit_bzero(lp, sizeof *lp);
    free(lp);
    c->proxy = NULL;
}
