/* libFuzzer target: a proxy's answers (SOCKS5 method choice, RFC 1929
 * status, CONNECT reply with its bound address; or an HTTP answer to
 * CONNECT) from arbitrary bytes, in pieces whose sizes come from the first
 * input byte.  Its second byte picks the proxy kind and the target.  The
 * handshake must end — tunnel or named error — without a crash, a leak or
 * undefined behaviour. */
#include "../fake_server.h"
#include "mailwire/net.h"
#include "net/proxy.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    static const char *const urls[] = {"socks5h://127.0.0.1:1", "socks5h://u:p@127.0.0.1:1",
                                       "socks5://127.0.0.1:1", "http://127.0.0.1:1",
                                       "http://user:pw@127.0.0.1:1"};
    static const char *const targets[] = {"mail.example.org", "127.0.0.1", "::1"};
    mw_proxy px;
    mw_error err;
    int pick = data[1];
    if (mwi_proxy_parse(&px, urls[pick % 5], &err) != 0) abort();
    const char *host = targets[(pick / 5) % 3];
    if (px.kind == MW_PROXY_SOCKS5 && host[0] == 'm') host = "127.0.0.1";
    fake_server srv;
    mw_stream *st = NULL;
    if (fake_server_stream(&st, &srv, data + 1, size - 1) != 0) return 0;
    (void)mwi_proxy_handshake(st, &px, host, 995, MW_NO_DEADLINE, &err);
    mw_stream_free(st);
    return 0;
}
