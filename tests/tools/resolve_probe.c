/* resolve_probe — one lookup through the stub resolver (src/resolve), for
 * tests/unit/resolve/test_resolve_server.py.
 *
 *   resolve_probe RESOLV_CONF HOSTS NAME [FAMILY]
 *
 * Waits with poll(2) on the resolver's descriptor, as the loop does, and
 * prints "addrs A B ..." (in Happy Eyeballs order), or "error CODE MESSAGE".
 * The whole lookup is bounded by 120 s, a generous bound. */
#include "mailwire/common.h"
#include "mailwire/loop.h"
#include "resolve/resolve.h"

#include <arpa/inet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: resolve_probe RESOLV_CONF HOSTS NAME [FAMILY]\n");
        return 2;
    }
    mwi_rslv_paths paths = {argv[1], argv[2]};
    mw_error err = {0};
    mwi_rslv *r = NULL;
    int rc = mwi_rslv_start(&r, argv[3], argc > 4 ? atoi(argv[4]) : 0, &paths, mw_now_ms() + 120000,
                            &err);
    while (!rc && !mwi_rslv_done(r)) {
        struct pollfd p = {mwi_rslv_fd(r), 0, 0};
        int w = mwi_rslv_want(r);
        p.events = (short)(((w & MW_LOOP_IN) ? POLLIN : 0) | ((w & MW_LOOP_OUT) ? POLLOUT : 0));
        int64_t t = mwi_rslv_deadline(r) - mw_now_ms();
        int n = poll(&p, p.fd >= 0 ? 1 : 0, t < 0 ? 0 : (int)t);
        int ev = n > 0 ? (((p.revents & (POLLIN | POLLERR | POLLHUP)) ? MW_LOOP_IN : 0) |
                          ((p.revents & POLLOUT) ? MW_LOOP_OUT : 0))
                       : 0;
        rc = mwi_rslv_step(r, ev, &err);
        if (rc == 1) rc = 0;
    }
    if (rc) {
        printf("error %d %s\n", rc, err.message);
        mwi_rslv_free(r);
        return 1;
    }
    size_t n = 0;
    const mwi_raddr *a = mwi_rslv_addrs(r, &n);
    printf("addrs");
    for (size_t i = 0; i < n; i++) {
        char buf[INET6_ADDRSTRLEN];
        inet_ntop(a[i].family, a[i].addr, buf, sizeof buf);
        printf(" %s", buf);
    }
    printf("\n");
    mwi_rslv_free(r);
    return 0;
}
