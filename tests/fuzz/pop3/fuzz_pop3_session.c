/* libFuzzer target: a fetch-like POP3 client session against arbitrary
 * server output.  The input is what the "server" says, handed out in
 * pieces whose sizes come from its first byte; the client logs in
 * (USER/PASS, as allowed without TLS), lists with LIST+UIDL (pipelined when
 * CAPA says PIPELINING), RETRs what the listing names in a byte window,
 * TOPs a range, DELEs what it listed and QUITs.  Whatever the server says,
 * the session ends without a crash, a leak or undefined behaviour, every
 * message handed to the callback ends at most once, and in order. */
#include "../fake_server.h"
#include "mailwire/net.h"
#include "mailwire/pop3.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct seen {
    uint64_t last_end; /* the last message that ended; ends must ascend */
    uint64_t octets;
} seen;

static int on_msg(uint64_t msg, const char *d, size_t len, const mw_pop3_retr_info *info, void *ud)
{
    seen *s = ud;
    if (d) {
        s->octets += len;
        return 0;
    }
    if (!info || msg <= s->last_end) abort();
    s->last_end = msg;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fake_server srv;
    mw_stream *st = NULL;
    if (fake_server_stream(&st, &srv, data, size) != 0) return 0;
    mw_pop3_opts o = MW_POP3_OPTS_INIT;
    o.stream = st;
    o.tls = MW_TLS_NONE;
    o.user = "u";
    o.password = "p";
    o.auth = MW_POP3_AUTH_USER;
    o.allow_plaintext = 1;
    o.skip_stat = (data[0] & 0x80) != 0;
    o.pipelining = (data[0] & 0x40) == 0;
    mw_pop3 *p = NULL;
    if (mw_pop3_open(&p, "127.0.0.1", &o, NULL) != 0) {
        mw_pop3_free(p);
        return 0;
    }
    mw_pop3_listing *items = NULL;
    mw_pop3_uid *uids = NULL;
    size_t n = 0, nu = 0;
    int uidl_rc = 0;
    if (mw_pop3_list_uidl(p, &items, &n, &uids, &nu, &uidl_rc) == 0 && n > 0) {
        seen s = {0, 0};
        (void)mw_pop3_retr_msgs(p, items, n < 64 ? n : 64, 4096, on_msg, &s);
        seen t = {0, 0};
        uint64_t last = items[n - 1].msg < items[0].msg + 8 ? items[n - 1].msg : items[0].msg + 8;
        (void)mw_pop3_retr_range(p, items[0].msg, last, 0, on_msg, &t);
        uint64_t dels[64];
        size_t nd = 0;
        for (size_t i = 0; i < n && nd < 64; i++)
            dels[nd++] = items[i].msg;
        size_t deleted = 0;
        (void)mw_pop3_dele_msgs(p, dels, nd, &deleted);
        if (deleted > nd) abort();
    }
    mw_pop3_list_free(items);
    mw_pop3_uidl_free(uids);
    int confirmed = 0;
    (void)mw_pop3_quit(p, &confirmed);
    mw_pop3_free(p);
    return 0;
}
