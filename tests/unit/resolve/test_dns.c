/* The stub resolver's I/O-free parts (src/resolve): the query builder, the
 * reply parser on crafted messages, resolv.conf and hosts lines, and the
 * Happy Eyeballs order. */
#include "mwtest.h"

#include "resolve/dns.h"
#include "resolve/resolve.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

static void names_in_wire_form(void **state)
{
    (void)state;
    uint8_t w[MWI_DNS_NAME_MAX];
    assert_int_equal(mwi_dns_name_wire("Mail.Test", w), 11);
    assert_memory_equal(w, "\4mail\4test\0", 11);
    assert_int_equal(mwi_dns_name_wire("mail.test.", w), 11);
    assert_int_equal(mwi_dns_name_wire("", w), 0);
    assert_int_equal(mwi_dns_name_wire(".", w), 0);
    assert_int_equal(mwi_dns_name_wire("a..b", w), 0);
    assert_int_equal(mwi_dns_name_wire("a..", w), 0);
    assert_int_equal(mwi_dns_name_wire(".a", w), 0);
    assert_int_equal(mwi_dns_name_wire("a b", w), 0);
    assert_int_equal(mwi_dns_name_wire("a\\.b", w), 0);
    char l[80];
    memset(l, 'x', 64);
    l[64] = 0;
    assert_int_equal(mwi_dns_name_wire(l, w), 0); /* a label of 64 */
    l[63] = 0;
    assert_int_equal(mwi_dns_name_wire(l, w), 65);
    char big[300];
    for (int i = 0; i < 128; i++)
        memcpy(big + 2 * i, "a.", 2);
    big[253] = 0; /* 127 labels "a" = 253 characters: 255 octets */
    assert_int_equal(mwi_dns_name_wire(big, w), 255);
    big[253] = 'a';
    big[254] = 0;
    assert_int_equal(mwi_dns_name_wire(big, w), 0);
}

static void a_query(void **state)
{
    (void)state;
    uint8_t w[MWI_DNS_NAME_MAX], q[MWI_DNS_QUERY_MAX];
    size_t wl = mwi_dns_name_wire("ok.test", w);
    size_t n = mwi_dns_build_query(q, 0xbeef, w, wl, MWI_DNS_T_AAAA);
    static const uint8_t want[] = {0xbe, 0xef, 1, 0,   0,   1,   0,   0, 0, 0,  0, 0, 2,
                                   'o',  'k',  4, 't', 'e', 's', 't', 0, 0, 28, 0, 1};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(q, want, sizeof want);
    assert_int_equal(mwi_dns_id(q, n), 0xbeef);
}

/* A reply to "ok.test" type t: header (id, flags, counts), question, then
 * extra[0..elen). */
static size_t reply(uint8_t *m, unsigned id, unsigned flags, unsigned an, unsigned t,
                    const uint8_t *extra, size_t elen)
{
    uint8_t h[] = {(uint8_t)(id >> 8),
                   (uint8_t)id,
                   (uint8_t)(flags >> 8),
                   (uint8_t)flags,
                   0,
                   1,
                   0,
                   (uint8_t)an,
                   0,
                   0,
                   0,
                   0,
                   2,
                   'o',
                   'k',
                   4,
                   't',
                   'e',
                   's',
                   't',
                   0,
                   0,
                   (uint8_t)t,
                   0,
                   1};
    memcpy(m, h, sizeof h);
    if (elen) memcpy(m + sizeof h, extra, elen);
    return sizeof h + elen;
}

static int parse(const uint8_t *m, size_t n, unsigned t, mwi_dns_reply *r)
{
    uint8_t w[MWI_DNS_NAME_MAX];
    size_t wl = mwi_dns_name_wire("ok.test", w);
    return mwi_dns_parse(m, n, 0x1234, w, wl, (uint16_t)t, r);
}

static void replies_and_their_outcomes(void **state)
{
    (void)state;
    uint8_t m[600];
    mwi_dns_reply r;
    static const uint8_t a[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    size_t n = reply(m, 0x1234, 0x8180, 1, 1, a, sizeof a);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.naddrs, 1);
    assert_memory_equal(r.addrs[0], "\xc0\x00\x02\x01", 4);
    assert_int_equal(r.ttl, 60);
    /* Two records: the least TTL; one with the top bit set counts as 0
     * (RFC 2181 §8). */
    static const uint8_t two[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 1,
                                  0xc0, 12, 0, 1, 0, 1, 0, 0, 0,    30,   0, 4, 192, 0, 2, 2};
    n = reply(m, 0x1234, 0x8180, 2, 1, two, sizeof two);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.naddrs, 2);
    assert_int_equal(r.ttl, 30);
    static const uint8_t neg[] = {0xc0, 12, 0, 1, 0, 1, 0x80, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    n = reply(m, 0x1234, 0x8180, 1, 1, neg, sizeof neg);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.ttl, 0);
    n = reply(m, 0x1234, 0x8180, 1, 1, a, sizeof a);
    /* Every shorter cut is refused, none read past its end (ASan). */
    for (size_t k = 0; k < n; k++)
        assert_int_not_equal(parse(m, k, 1, &r), MWI_DNS_OK);
    assert_int_equal(parse(m, n, 28, &r), MWI_DNS_BAD); /* another question type */
    n = reply(m, 0x1235, 0x8180, 1, 1, a, sizeof a);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_NOT_OURS);
    n = reply(m, 0x1234, 0x0100, 1, 1, a, sizeof a); /* QR clear: a query */
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_NOT_OURS);
    n = reply(m, 0x1234, 0x8183, 0, 1, NULL, 0);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_NXDOMAIN);
    n = reply(m, 0x1234, 0x8182, 0, 1, NULL, 0);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_SERVFAIL);
    assert_int_equal(r.rcode, 2);
    n = reply(m, 0x1234, 0x8380, 0, 1, NULL, 0);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_TRUNCATED);
    n = reply(m, 0x1234, 0x8180, 0, 1, NULL, 0);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.naddrs, 0); /* no data */
    static const uint8_t a5[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 5, 192, 0, 2, 1, 1};
    n = reply(m, 0x1234, 0x8180, 1, 1, a5, sizeof a5);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    assert_string_equal(r.why, "an A record is not 4 octets");
    static const uint8_t longrd[] = {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 9, 192, 0, 2, 1};
    n = reply(m, 0x1234, 0x8180, 1, 1, longrd, sizeof longrd);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    assert_non_null(strstr(r.why, "past the end"));
}

static void names_compressed_and_chained(void **state)
{
    (void)state;
    uint8_t m[600];
    mwi_dns_reply r;
    /* Owner: a pointer to itself (offset 25). */
    static const uint8_t self[] = {0xc0, 25, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    size_t n = reply(m, 0x1234, 0x8180, 1, 1, self, sizeof self);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    assert_string_equal(r.why, "a compression pointer loops or points forward");
    /* A pointer forward, into the record's own data. */
    static const uint8_t fwd[] = {0xc0, 40, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    n = reply(m, 0x1234, 0x8180, 1, 1, fwd, sizeof fwd);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    /* Label type 01 (RFC 6891 §5: not defined here). */
    static const uint8_t lt[] = {0x41, 0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1};
    n = reply(m, 0x1234, 0x8180, 1, 1, lt, sizeof lt);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    /* ok.test CNAME x.ok.test (its data at 37), then x.ok.test A
     * 192.0.2.5, its owner a pointer back to that data. */
    static const uint8_t ch[] = {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 4, 1,   'x', 0xc0, 12,
                                 0xc0, 37, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0,   2,    5};
    n = reply(m, 0x1234, 0x8180, 2, 1, ch, sizeof ch);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.naddrs, 1);
    assert_memory_equal(r.addrs[0], "\xc0\x00\x02\x05", 4);
    /* The A of another name, without a CNAME to it, is not taken. */
    static const uint8_t other[] = {1, 'x', 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 6};
    n = reply(m, 0x1234, 0x8180, 1, 1, other, sizeof other);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_OK);
    assert_int_equal(r.naddrs, 0);
    /* A CNAME to itself: a loop, bounded. */
    static const uint8_t cl[] = {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12};
    n = reply(m, 0x1234, 0x8180, 1, 1, cl, sizeof cl);
    assert_int_equal(parse(m, n, 1, &r), MWI_DNS_BAD);
    assert_string_equal(r.why, "the CNAME chain is longer than 8 names");
}

static void resolv_conf_lines(void **state)
{
    (void)state;
    mwi_rslv_conf c;
    const char *t = "# comment\nnameserver 192.0.2.53\nnameserver [2001:db8::53]:5353\n"
                    "nameserver bogus\nnameserver [192.0.2.1]:0\nnameserver 192.0.2.54\n"
                    "nameserver 192.0.2.55\ndomain one.test\nsearch a.test b.test. ; c\n"
                    "options ndots:99 timeout:0 attempts:3 rotate\n";
    mwi_rslv_conf_parse(&c, t, strlen(t));
    assert_int_equal(c.nns, 3);
    assert_int_equal(c.ns[0].family, AF_INET);
    assert_int_equal(c.ns[0].port, 53);
    assert_int_equal(c.ns[1].family, AF_INET6);
    assert_int_equal(c.ns[1].port, 5353);
    assert_memory_equal(c.ns[2].addr, "\xc0\x00\x02\x36", 4);
    assert_int_equal(c.nsearch, 2);
    assert_string_equal(c.search[0], "a.test");
    assert_string_equal(c.search[1], "b.test");
    assert_int_equal(c.ndots, 15);
    assert_int_equal(c.timeout_ms, 1000);
    assert_int_equal(c.attempts, 3);
    mwi_rslv_conf_parse(&c, "", 0);
    assert_int_equal(c.nns, 1);
    assert_memory_equal(c.ns[0].addr, "\x7f\x00\x00\x01", 4);
    assert_int_equal(c.ndots, 1);
    assert_int_equal(c.timeout_ms, 5000);
    assert_int_equal(c.attempts, 2);
}

static void hosts_lines_and_order(void **state)
{
    (void)state;
    mwi_raddr a[MWI_RSLV_ADDRS_MAX];
    size_t n = 0;
    n = mwi_hosts_line("192.0.2.1 Mail.Test mail # x", "mail.test", 0, a, n, 16);
    n = mwi_hosts_line("192.0.2.1 mail.test", "mail.test", 0, a, n, 16); /* twice: once */
    n = mwi_hosts_line("# 192.0.2.9 mail.test", "mail.test", 0, a, n, 16);
    n = mwi_hosts_line("192.0.2.2 other # mail.test", "mail.test", 0, a, n, 16);
    n = mwi_hosts_line("2001:db8::1 mail.test.", "mail.test", 0, a, n, 16);
    n = mwi_hosts_line("2001:db8::2 mail.test", "mail.test", 4, a, n, 16);
    n = mwi_hosts_line("not-an-address mail.test", "mail.test", 0, a, n, 16);
    n = mwi_hosts_line("192.0.2.3\tmail.test", "mail.test", 0, a, n, 16);
    assert_int_equal(n, 3);
    mwi_rslv_interleave(a, n);
    char s[INET6_ADDRSTRLEN];
    inet_ntop(a[0].family, a[0].addr, s, sizeof s);
    assert_string_equal(s, "2001:db8::1");
    inet_ntop(a[1].family, a[1].addr, s, sizeof s);
    assert_string_equal(s, "192.0.2.1");
    inet_ntop(a[2].family, a[2].addr, s, sizeof s);
    assert_string_equal(s, "192.0.2.3");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(names_in_wire_form),         cmocka_unit_test(a_query),
    cmocka_unit_test(replies_and_their_outcomes), cmocka_unit_test(names_compressed_and_chained),
    cmocka_unit_test(resolv_conf_lines),          cmocka_unit_test(hosts_lines_and_order),
};
MW_TEST_MAIN(tests)
