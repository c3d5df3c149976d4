/* libFuzzer target: a DNS reply (src/resolve/dns.c) from arbitrary bytes,
 * checked as the answer to "ok.test" A (first byte even) or AAAA (odd);
 * the ID is the message's own, so the parser goes past it.  A first byte
 * of 2 or 3 modulo 4 feeds the same bytes to the resolv.conf parser or,
 * as one line, to the hosts file parser.  It must end, without a crash, a
 * read out of bounds, a loop or undefined behaviour, and what it takes
 * must hold. */
#include "resolve/dns.h"
#include "resolve/resolve.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] & 3;
    data++;
    size--;
    if (mode < 2) {
        uint8_t w[MWI_DNS_NAME_MAX];
        size_t wl = mwi_dns_name_wire("ok.test", w);
        mwi_dns_reply r;
        uint16_t type = mode ? MWI_DNS_T_AAAA : MWI_DNS_T_A;
        int o = mwi_dns_parse(data, size, mwi_dns_id(data, size), w, wl, type, &r);
        if (o < MWI_DNS_OK || o > MWI_DNS_BAD) abort();
        if (o == MWI_DNS_BAD && !r.why) abort();
        if (r.naddrs > MWI_DNS_ADDRS_MAX || (o != MWI_DNS_OK && r.naddrs)) abort();
    } else if (mode == 2) {
        mwi_rslv_conf c;
        mwi_rslv_conf_parse(&c, (const char *)data, size);
        if (c.nns < 1 || c.nns > MWI_RSLV_NS_MAX || c.nsearch > MWI_RSLV_SEARCH_MAX) abort();
        if (c.ndots > 15 || c.timeout_ms < 1000 || c.timeout_ms > 30000 || c.attempts < 1 ||
            c.attempts > 5)
            abort();
    } else {
        char *line = malloc(size + 1);
        if (!line) return 0;
        memcpy(line, data, size);
        line[size] = 0;
        mwi_raddr a[4];
        size_t n = mwi_hosts_line(line, "mail.test", 0, a, 0, 4);
        if (n > 1) abort();
        free(line);
    }
    return 0;
}
