/* libFuzzer target: the proxy handshake machine (net/proxy_hs.h) fed a
 * proxy's answer from arbitrary bytes in arbitrary splits.  Byte 0 picks
 * the proxy URL and the target, byte 1 seeds the sizes of the pieces; the
 * rest is the answer.  The machine must end (tunnel or named error) or
 * run out of answer, never ask for more than 257 octets nor for nothing
 * while it goes on, never take more than it asked for, and never let a
 * head grow past its bound. */
#include "net/proxy_hs.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const urls[] = {"socks5h://127.0.0.1:1", "socks5h://u:p@127.0.0.1:1",
                                   "socks5://127.0.0.1:1", "http://127.0.0.1:1",
                                   "http://user:pw@127.0.0.1:1"};
static const char *const targets[] = {"mail.example.org", "127.0.0.1", "::1"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    mw_proxy px;
    mw_error err;
    if (mwi_proxy_parse(&px, urls[data[0] % 5], &err) != 0) abort();
    const char *host = targets[(data[0] / 5) % 3];
    if (px.kind == MW_PROXY_SOCKS5 && host[0] == 'm') host = "127.0.0.1";
    mwi_pxhs *h = malloc(sizeof *h);
    if (!h || mwi_pxhs_start(h, &px, host, 995, &err) != 0) abort();
    unsigned seed = data[1];
    const uint8_t *a = data + 2;
    size_t alen = size - 2, used = 0;
    int rc = MWI_PXHS_MORE;
    while (rc == MWI_PXHS_MORE) {
        size_t n = 0;
        mwi_pxhs_output(h, &n);
        if (n) {
            /* Written in two pieces when it can be. */
            size_t first = n > 1 ? 1 + seed % (n - 1) : n;
            mwi_pxhs_sent(h, first);
            mwi_pxhs_output(h, &n);
            mwi_pxhs_sent(h, n);
            continue;
        }
        size_t need = mwi_pxhs_need(h);
        if (need == 0 || need > 257 || mwi_pxhs_over(h)) abort();
        if (used == alen) {
            rc = mwi_pxhs_closed(h, &err);
            break;
        }
        seed = seed * 1103515245u + 12345u;
        size_t piece = 1 + (seed >> 16) % need;
        if (piece > alen - used) piece = alen - used;
        rc = mwi_pxhs_feed(h, a + used, piece, &err);
        used += piece;
        if (h->in_len >= sizeof h->in) abort();
    }
    if (!mwi_pxhs_over(h) || mwi_pxhs_need(h) != 0) abort();
    if (rc < 0 && (err.code != rc || !err.message[0])) abort();
    if (rc != MWI_PXHS_DONE && rc >= 0) abort();
    mwi_pxhs_wipe(h);
    free(h);
    return 0;
}
