/* Unit tests of the proxy handshake machine (net/proxy_hs.h): the octets
 * it sends, every proxy answer fed whole and split octet by octet, the
 * machine never asking for more than the answer holds, and hostile
 * answers (wrong versions, a bad address type, an endless HTTP head)
 * ending it with the blocking handshake's words. */
#include "mwtest.h"

#include "net/proxy_hs.h"

#include <stdlib.h>
#include <string.h>

/* What a run sent, how it ended, how much of the answer it took. */
typedef struct run {
    unsigned char sent[4096];
    size_t sent_len, used;
    int rc;
    mw_error err;
} run;

/* Drives h against `answer` in pieces of at most `split` octets (0: as
 * many as the machine asks for).  The machine must never ask for nothing
 * while it is not over. */
static void drive(mwi_pxhs *h, const void *answer, size_t alen, size_t split, run *r)
{
    const unsigned char *a = answer;
    r->rc = MWI_PXHS_MORE;
    while (r->rc == MWI_PXHS_MORE) {
        size_t n = 0;
        const unsigned char *o = mwi_pxhs_output(h, &n);
        if (n) {
            assert_true(r->sent_len + n <= sizeof r->sent);
            memcpy(r->sent + r->sent_len, o, n);
            r->sent_len += n;
            mwi_pxhs_sent(h, n);
            continue;
        }
        size_t need = mwi_pxhs_need(h);
        assert_true(need > 0 && need <= 257);
        if (r->used == alen) {
            r->rc = mwi_pxhs_closed(h, &r->err);
            break;
        }
        if (split && need > split) need = split;
        if (need > alen - r->used) need = alen - r->used;
        r->rc = mwi_pxhs_feed(h, a + r->used, need, &r->err);
        r->used += need;
    }
    assert_true(mwi_pxhs_over(h));
    assert_int_equal(mwi_pxhs_need(h), 0);
}

static mw_proxy px_of(const char *url)
{
    mw_proxy px;
    mw_error err;
    assert_int_equal(mwi_proxy_parse(&px, url, &err), 0);
    return px;
}

/* Runs url's handshake for host:port against answer, whole and octet by
 * octet: both runs must agree. */
static void both(const char *url, const char *host, unsigned port, const void *answer, size_t alen,
                 run *r)
{
    mw_proxy px = px_of(url);
    mwi_pxhs h;
    run one;
    memset(&one, 0, sizeof one);
    memset(r, 0, sizeof *r);
    assert_int_equal(mwi_pxhs_start(&h, &px, host, port, &r->err), 0);
    drive(&h, answer, alen, 0, r);
    assert_int_equal(mwi_pxhs_start(&h, &px, host, port, &one.err), 0);
    drive(&h, answer, alen, 1, &one);
    assert_int_equal(one.rc, r->rc);
    assert_true(one.used == r->used && one.sent_len == r->sent_len);
    assert_memory_equal(one.sent, r->sent, r->sent_len);
    if (r->rc < 0) assert_string_equal(one.err.message, r->err.message);
    mwi_pxhs_wipe(&h);
}

static void socks5h_name(void **st)
{
    (void)st;
    /* Method 0; success with an IPv4 bound address; then the server's
     * first octets, which the machine must leave alone. */
    static const unsigned char ans[] = {5, 0, 5, 0, 0, 1, 10, 0, 0, 1, 0x03, 0xE3, '+', 'O', 'K'};
    run r;
    both("socks5h://127.0.0.1:1080", "mail.example", 995, ans, sizeof ans, &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, sizeof ans - 3);
    static const unsigned char want[] = {5,   1,   0,   5,   1,   0,   3,   12,  'm', 'a',  'i',
                                         'l', '.', 'e', 'x', 'a', 'm', 'p', 'l', 'e', 0x03, 0xE3};
    assert_int_equal(r.sent_len, sizeof want);
    assert_memory_equal(r.sent, want, sizeof want);
}

static void socks5_auth_v6_and_domain_bound(void **st)
{
    (void)st;
    /* User/password, then a reply whose bound address is a name. */
    static const unsigned char ans[] = {5, 2, 1, 0, 5, 0, 0, 3, 4, 'p', 'r', 'o', 'x', 0, 25, 'x'};
    run r;
    both("socks5://al%20ice:pw@[::1]:1", "::1", 25, ans, sizeof ans, &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, sizeof ans - 1);
    static const unsigned char want[] = {5,   2,   0, 2, 1, 6, 'a', 'l', ' ', 'i', 'c', 'e', 2,
                                         'p', 'w', 5, 1, 0, 4, 0,   0,   0,   0,   0,   0,   0,
                                         0,   0,   0, 0, 0, 0, 0,   0,   1,   0,   25};
    assert_int_equal(r.sent_len, sizeof want);
    assert_memory_equal(r.sent, want, sizeof want);
    /* An IPv6 bound address: 16 octets and the port. */
    static const unsigned char a6[] = {5, 0, 5,  0,  0,  4,  1,  2,  3,  4, 5, 6,  7,
                                       8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 1, '+'};
    both("socks5://127.0.0.1", "10.1.2.3", 110, a6, sizeof a6, &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, sizeof a6 - 1);
    assert_memory_equal(r.sent + 3, "\x05\x01\x00\x01\x0a\x01\x02\x03\x00\x6e", 10);
}

static void http_connect_basic(void **st)
{
    (void)st;
    const char *ans = "HTTP/1.1 200 Connection established\r\nVia: p\r\n\r\n+OK hello\r\n";
    run r;
    both("http://bob:pw2@127.0.0.1:3128", "mail.example", 110, ans, strlen(ans), &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, strlen(ans) - strlen("+OK hello\r\n"));
    const char *want = "CONNECT mail.example:110 HTTP/1.1\r\nHost: mail.example:110\r\n"
                       "Proxy-Authorization: Basic Ym9iOnB3Mg==\r\n\r\n";
    assert_int_equal(r.sent_len, strlen(want));
    assert_memory_equal(r.sent, want, r.sent_len);
    /* An IPv6 target in brackets; bare LF line ends. */
    const char *lf = "HTTP/1.0 204 ok\nX: y\n\nZ";
    both("http://127.0.0.1", "::1", 995, lf, strlen(lf), &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, strlen(lf) - 1);
    assert_memory_equal(r.sent, "CONNECT [::1]:995 HTTP/1.1\r\nHost: [::1]:995\r\n\r\n",
                        r.sent_len);
}

/* The answer ends the handshake with code and a message holding `words`. */
static void refused(const char *url, const char *host, const void *ans, size_t alen, int code,
                    const char *words)
{
    run r;
    both(url, host, 995, ans, alen, &r);
    if (r.rc != code || !strstr(r.err.message, words))
        fail_msg("%s: got %d \"%s\", want %d \"%s\"", url, r.rc, r.err.message, code, words);
    assert_int_equal(r.err.code, code);
}

static void socks5_hostile(void **st)
{
    (void)st;
    const char *u = "socks5h://127.0.0.1", *ua = "socks5h://u:secret@127.0.0.1";
    refused(u, "h", "\x04\x5a garbage", 10, MW_EPROTO, "not a SOCKS5 proxy (version 4)");
    refused(u, "h", "\x05\xff", 2, MW_EAUTH, "it may want a user name and password");
    refused(ua, "h", "\x05\xff", 2, MW_EAUTH, "accepts none of our methods");
    refused(u, "h", "\x05\x02", 2, MW_EPROTO, "chose method 2, not offered");
    refused(ua, "h", "\x05\x02\x01\x01", 4, MW_EAUTH, "refused the user name or password");
    refused(u, "h", "\x05\x00\x04\x00\x00\x01", 6, MW_EPROTO, "not a SOCKS5 reply (version 4)");
    refused(u, "127.0.0.1", "\x05\x00\x05\x05\x00\x01", 6, MW_ENET,
            "could not connect to 127.0.0.1 port 995: connection refused");
    refused(u, "h", "\x05\x00\x05\x63\x00\x01", 6, MW_ENET, "unknown failure code");
    refused(u, "h", "\x05\x00\x05\x00\x00\x07\x00", 7, MW_EPROTO,
            "SOCKS5 reply with address type 7");
    refused(u, "h", "\x05\x00\x05\x00\x00\x00", 6, MW_EPROTO, "SOCKS5 reply with address type 0");
    /* Cut short anywhere: the proxy closed the connection. */
    static const unsigned char ok[] = {5,   0,   5,   0,   0,   3,   9,   'a', 'b',
                                       'c', 'd', 'e', 'f', 'g', 'h', 'i', 0,   1};
    for (size_t n = 0; n < sizeof ok; n++)
        refused(u, "h", ok, n, MW_EPROTO, "the proxy closed the connection");
    /* A domain bound address of 255 octets is read whole. */
    unsigned char big[4 + 2 + 1 + 255 + 2];
    memcpy(big, "\x05\x00\x05\x00\x00\x03\xff", 7);
    memset(big + 7, 'x', 257);
    run r;
    both(u, "h", 1, big, sizeof big, &r);
    assert_int_equal(r.rc, MWI_PXHS_DONE);
    assert_int_equal(r.used, sizeof big);
}

static void http_hostile(void **st)
{
    (void)st;
    const char *u = "http://127.0.0.1", *ua = "http://a:b@127.0.0.1";
    const char *g = "SSH-2.0-not a proxy\r\n\r\n";
    refused(u, "h", g, strlen(g), MW_EPROTO, "not an HTTP proxy's answer to CONNECT");
    const char *s = "HTTP/1.1 2000 x\r\n\r\n";
    refused(u, "h", s, strlen(s), MW_EPROTO, "not an HTTP proxy's answer");
    const char *a = "HTTP/1.1 407 Proxy Authentication Required\r\n\r\n";
    refused(u, "h", a, strlen(a), MW_EAUTH, "wants credentials: HTTP/1.1 407");
    refused(ua, "h", a, strlen(a), MW_EAUTH, "wants other credentials");
    const char *b = "HTTP/1.1 502 Bad Gateway\r\n\r\n";
    refused(u, "10.0.0.1", b, strlen(b), MW_ENET,
            "could not connect to 10.0.0.1 port 995: HTTP/1.1 502 Bad Gateway");
    const char *c = "HTTP/1.1 200 OK\r\nVia: x\r\n";
    refused(u, "h", c, strlen(c), MW_EPROTO, "the proxy closed the connection");
    /* An endless head: refused once 8 KiB are in, never more read. */
    size_t n = 100000;
    char *endless = malloc(n);
    assert_non_null(endless);
    memcpy(endless, "HTTP/1.1 200 OK\r\n", 17);
    for (size_t i = 17; i < n; i++)
        endless[i] = (i % 40 == 39) ? '\n' : (i % 40 == 38 ? '\r' : 'X');
    run r;
    both(u, "h", 1, endless, n, &r);
    assert_int_equal(r.rc, MW_EPROTO);
    assert_non_null(strstr(r.err.message, "over 8 KiB"));
    assert_true(r.used == MWI_PXHS_HEAD_MAX - 1);
    /* Bare CRs only: no line end ever, the same bound. */
    memset(endless, '\r', n);
    both(u, "h", 1, endless, n, &r);
    assert_int_equal(r.rc, MW_EPROTO);
    assert_true(r.used == MWI_PXHS_HEAD_MAX - 1);
    free(endless);
}

static void bad_targets_and_misuse(void **st)
{
    (void)st;
    mwi_pxhs h;
    mw_error err;
    mw_proxy s5 = px_of("socks5://127.0.0.1"), s5h = px_of("socks5h://127.0.0.1"),
             ht = px_of("http://127.0.0.1");
    assert_int_equal(mwi_pxhs_start(&h, &s5, "mail.example", 1, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "needs an address"));
    assert_int_equal(mwi_pxhs_start(&h, &ht, "a\r\nX-Evil: 1", 1, &err), MW_EINVAL);
    assert_int_equal(mwi_pxhs_start(&h, &s5h, "a b", 1, &err), MW_EINVAL);
    assert_int_equal(mwi_pxhs_start(&h, &s5h, "", 1, &err), MW_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(mwi_pxhs_start(&h, &s5h, longname, 1, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "too long for SOCKS5"));
    size_t n = 0;
    mwi_pxhs_output(&h, &n);
    assert_int_equal(n, 0); /* nothing to send after a refused start */
    /* Fed more than asked for: refused, the machine over. */
    assert_int_equal(mwi_pxhs_start(&h, &s5h, "h", 1, &err), 0);
    mwi_pxhs_output(&h, &n);
    mwi_pxhs_sent(&h, n);
    assert_int_equal(mwi_pxhs_need(&h), 2);
    assert_int_equal(mwi_pxhs_feed(&h, (const unsigned char *)"\x05\x00\x05", 3, &err), MW_EINVAL);
    assert_true(mwi_pxhs_over(&h));
}

static void credentials_wiped_once_sent(void **st)
{
    (void)st;
    mwi_pxhs h;
    mw_error err;
    mw_proxy px = px_of("socks5h://user:Pa55word@127.0.0.1");
    assert_int_equal(mwi_pxhs_start(&h, &px, "h", 1, &err), 0);
    size_t n = 0;
    mwi_pxhs_output(&h, &n);
    mwi_pxhs_sent(&h, n);
    assert_int_equal(mwi_pxhs_feed(&h, (const unsigned char *)"\x05\x02", 2, &err), MWI_PXHS_MORE);
    const unsigned char *o = mwi_pxhs_output(&h, &n);
    assert_non_null(memmem(o, n, "Pa55word", 8));
    mwi_pxhs_sent(&h, 3); /* in two writes */
    mwi_pxhs_output(&h, &n);
    mwi_pxhs_sent(&h, n);
    assert_null(memmem(h.out, sizeof h.out, "Pa55word", 8));
    mwi_pxhs_wipe(&h);
    assert_null(memmem(&h, sizeof h, "Pa55word", 8));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(socks5h_name),
        cmocka_unit_test(socks5_auth_v6_and_domain_bound),
        cmocka_unit_test(http_connect_basic),
        cmocka_unit_test(socks5_hostile),
        cmocka_unit_test(http_hostile),
        cmocka_unit_test(bad_targets_and_misuse),
        cmocka_unit_test(credentials_wiped_once_sent),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
