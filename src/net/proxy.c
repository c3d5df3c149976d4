/* Connecting through a proxy over a blocking stream: a thin loop over the
 * handshake machine of proxy_hs.c, with the connect deadline.  The stream
 * is already connected to the proxy; afterwards it carries the tunnel and
 * TLS (if any) is verified against the target host, never the proxy. */
#include "net/proxy.h"

#include "util/err.h"

#include <string.h>

/* One exchange: send what the machine has, else read what it may take
 * (never past the proxy's answer: the server's first octets stay in the
 * stream).  Returns MWI_PXHS_MORE, MWI_PXHS_DONE or an MW_E* code. */
static int exchange(mw_stream *s, mwi_pxhs *h, int64_t deadline, mw_error *err)
{
    size_t n = 0;
    const unsigned char *out = mwi_pxhs_output(h, &n);
    if (n) {
        int rc = mw_stream_write(s, out, n, deadline, err);
        if (!rc) mwi_pxhs_sent(h, n);
        return rc;
    }
    unsigned char b[260];
    size_t want = mwi_pxhs_need(h), got = 0;
    if (want == 0 || want > sizeof b)
        return mwi_err_set(err, MW_EINVAL, "proxy handshake: nothing to send or read");
    int rc = mw_stream_read(s, b, want, &got, deadline, err);
    if (rc) return rc;
    return got ? mwi_pxhs_feed(h, b, got, err) : mwi_pxhs_closed(h, err);
}

int mwi_proxy_handshake(mw_stream *s, const mw_proxy *px, const char *host, unsigned port,
                        int64_t deadline, mw_error *err)
{
    mwi_pxhs h;
    int rc = mwi_pxhs_start(&h, px, host, port, err);
    while (rc == MWI_PXHS_MORE)
        rc = exchange(s, &h, deadline, err);
    mwi_pxhs_wipe(&h);
    return rc == MWI_PXHS_DONE ? 0 : rc;
}
