/* Unit tests of the POP3 codecs: status lines, listings, APOP timestamps and
 * the multi-line body decoder fed at every split point. */
#include "mwtest.h"

#include "mailwire/error.h"
#include "proto/pop3_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S(lit) lit, sizeof(lit) - 1

static void test_status_ok_err(void **state)
{
    (void)state;
    mw_pop3_status st;
    assert_int_equal(mwi_pop3_parse_status(&st, S("+OK 2 320")), 0);
    assert_int_equal(st.kind, MW_POP3_OK);
    assert_int_equal(st.text_len, 5);
    assert_memory_equal(st.text, "2 320", 5);
    assert_string_equal(st.code, "");

    assert_int_equal(mwi_pop3_parse_status(&st, S("+OK")), 0);
    assert_int_equal(st.kind, MW_POP3_OK);
    assert_int_equal(st.text_len, 0);

    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR no such message")), 0);
    assert_int_equal(st.kind, MW_POP3_ERR);
    assert_memory_equal(st.text, "no such message", st.text_len);

    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR")), 0);
    assert_int_equal(st.kind, MW_POP3_ERR);

    assert_int_equal(mwi_pop3_parse_status(&st, S("+ ZGF0YQ==")), 0);
    assert_int_equal(st.kind, MW_POP3_CONT);
    assert_memory_equal(st.text, "ZGF0YQ==", 8);
    assert_int_equal(mwi_pop3_parse_status(&st, S("+")), 0);
    assert_int_equal(st.kind, MW_POP3_CONT);
    assert_int_equal(st.text_len, 0);
}

static void test_status_bad(void **state)
{
    (void)state;
    mw_pop3_status st;
    const char *bad[] = {"", "OK", "+ok", "+OKAY", "-ERROR x", "-err x", "* OK", "+OK\tx", "ERR"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mwi_pop3_parse_status(&st, bad[i], strlen(bad[i])), MW_EPROTO);
}

static void test_resp_codes(void **state)
{
    (void)state;
    mw_pop3_status st;
    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR [IN-USE] mailbox locked")), 0);
    assert_string_equal(st.code, "IN-USE");
    assert_memory_equal(st.rest, "mailbox locked", st.rest_len);
    assert_int_equal(st.rest_len, 14);

    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR [SYS/TEMP] try later")), 0);
    assert_string_equal(st.code, "SYS/TEMP");
    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR [SYS/PERM]")), 0);
    assert_string_equal(st.code, "SYS/PERM");
    assert_int_equal(st.rest_len, 0);
    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR [AUTH] Authentication failed.")), 0);
    assert_string_equal(st.code, "AUTH");
    assert_int_equal(mwi_pop3_parse_status(&st, S("-ERR [LOGIN-DELAY] wait")), 0);
    assert_string_equal(st.code, "LOGIN-DELAY");

    /* Malformed codes stay text: empty, unclosed, empty level, spaces. */
    const char *notcode[] = {"-ERR [] x",    "-ERR [IN-USE x", "-ERR [SYS/] x",  "-ERR [/X] x",
                             "-ERR [A B] x", "-ERR [A[B] x",   "-ERR x [IN-USE]"};
    for (size_t i = 0; i < sizeof notcode / sizeof notcode[0]; i++) {
        assert_int_equal(mwi_pop3_parse_status(&st, notcode[i], strlen(notcode[i])), 0);
        assert_string_equal(st.code, "");
        assert_int_equal(st.rest_len, st.text_len);
    }
    /* Too long for the field: kept as text, never truncated into a code. */
    char longc[120] = "-ERR [";
    memset(longc + 6, 'A', 80);
    strcpy(longc + 86, "] x");
    assert_int_equal(mwi_pop3_parse_status(&st, longc, strlen(longc)), 0);
    assert_string_equal(st.code, "");
}

static void test_stat_listing(void **state)
{
    (void)state;
    uint64_t a, b;
    assert_int_equal(mwi_pop3_parse_stat(S("2 320"), &a, &b), 0);
    assert_true(a == 2 && b == 320);
    assert_int_equal(mwi_pop3_parse_stat(S("0 0"), &a, &b), 0);
    assert_true(a == 0 && b == 0);
    assert_int_equal(mwi_pop3_parse_stat(S("3 100 extra info"), &a, &b), 0);
    assert_true(a == 3 && b == 100);
    const char *bad[] = {"",     "2",    "2 ",  " 2 3", "2  3",
                         "-1 3", "2 3x", "a b", "2\t3", "1234567890123456789 1",
                         "2 +3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mwi_pop3_parse_stat(bad[i], strlen(bad[i]), &a, &b), MW_EPROTO);

    assert_int_equal(mwi_pop3_parse_listing(S("1 120"), &a, &b), 0);
    assert_true(a == 1 && b == 120);
    assert_int_equal(mwi_pop3_parse_listing(S("0 120"), &a, &b), MW_EPROTO);
    assert_int_equal(mwi_pop3_parse_listing(S("1 x"), &a, &b), MW_EPROTO);
    assert_int_equal(mwi_pop3_parse_listing(S("999999999999999999 1"), &a, &b), 0);
    assert_true(a == MW_POP3_MAX_NUMBER);
}

static void test_uidl(void **state)
{
    (void)state;
    uint64_t m;
    const char *uid;
    size_t ul;
    assert_int_equal(mwi_pop3_parse_uidl(S("1 whqtswO00WBw418f9t5JxYwZ"), &m, &uid, &ul), 0);
    assert_int_equal(m, 1);
    assert_int_equal(ul, 24);
    assert_memory_equal(uid, "whqtswO00WBw418f9t5JxYwZ", 24);

    char max[80] = "7 ";
    memset(max + 2, '~', 70);
    assert_int_equal(mwi_pop3_parse_uidl(max, 72, &m, &uid, &ul), 0);
    assert_int_equal(ul, 70);
    max[72] = 'x';
    assert_int_equal(mwi_pop3_parse_uidl(max, 73, &m, &uid, &ul), MW_EPROTO); /* 71 octets */

    const char *bad[] = {"1", "1 ", "0 abc", "x abc", "1 ab\x7f", "1 ab\x01", "1 a b", "1  a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mwi_pop3_parse_uidl(bad[i], strlen(bad[i]), &m, &uid, &ul), MW_EPROTO);
    assert_int_equal(mwi_pop3_parse_uidl(S("2 abc "), &m, &uid, &ul), 0);
    assert_int_equal(ul, 3);

    /* The number of a line whose unique-id is bad (fetch skips only it). */
    assert_int_equal(mwi_pop3_parse_uidl_msg(S("12 a b"), &m), 0);
    assert_int_equal(m, 12);
    assert_int_equal(mwi_pop3_parse_uidl_msg(S("3 caf\xc3\xa9"), &m), 0);
    assert_int_equal(m, 3);
    const char *nomsg[] = {"", "1", "1 ", "0 a", "x a", " 1 a", "1234567890123456789 a"};
    for (size_t i = 0; i < sizeof nomsg / sizeof nomsg[0]; i++)
        assert_int_equal(mwi_pop3_parse_uidl_msg(nomsg[i], strlen(nomsg[i]), &m), MW_EPROTO);
    assert_true(mwi_pop3_uid_valid(S("!")));
    assert_false(mwi_pop3_uid_valid(S("")));
    assert_false(mwi_pop3_uid_valid(S("a\xc3\xa9")));
}

static void test_retr_size(void **state)
{
    (void)state;
    uint64_t n = 0;
    assert_int_equal(mwi_pop3_parse_retr_size(S("120 octets"), &n), 1);
    assert_int_equal(n, 120);
    assert_int_equal(mwi_pop3_parse_retr_size(S("7"), &n), 1);
    assert_int_equal(n, 7);
    assert_int_equal(mwi_pop3_parse_retr_size(S("message follows"), &n), 0);
    assert_int_equal(mwi_pop3_parse_retr_size(S(""), &n), 0);
    assert_int_equal(mwi_pop3_parse_retr_size(S("12octets"), &n), 0);
}

static void test_timestamp(void **state)
{
    (void)state;
    const char *ts;
    size_t n;
    const char g[] = "POP3 server ready <1896.697170952@dbc.mtview.ca.us>";
    assert_int_equal(mwi_pop3_find_timestamp(g, strlen(g), &ts, &n), 1);
    assert_int_equal(n, strlen("<1896.697170952@dbc.mtview.ca.us>"));
    assert_memory_equal(ts, "<1896.697170952@dbc.mtview.ca.us>", n);

    const char *bad[] = {
        "Dovecot ready.",    "ready <abc>", /* no @ */
        "ready <@host>",                    /* empty local part */
        "ready <a@>",                       /* empty domain */
        "ready <a@b@c>",                    /* two @ */
        "ready <a b@c>",                    /* space inside */
        "ready <a@b> <c@d>",                /* two timestamps */
        "ready <a@b",                       /* unclosed */
        "ready a@b>",                       /* unopened */
        "ready <a@b>>",                     /* stray > */
        "ready <a\x01@b>",                  /* control byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mwi_pop3_find_timestamp(bad[i], strlen(bad[i]), &ts, &n), 0);
    char big[300] = "<";
    memset(big + 1, 'a', 260);
    big[100] = '@';
    strcpy(big + 261, ">");
    assert_int_equal(mwi_pop3_find_timestamp(big, strlen(big), &ts, &n), 0);
}

/* ---- Body decoder ---------------------------------------------------------- */

/* A plain, line-by-line reference of RFC 1939 §3 un-stuffing. */
static int reference_decode(const char *in, size_t len, char *out, size_t *out_len,
                            size_t *term_end)
{
    size_t i = 0, o = 0;
    while (i < len) {
        const char *nl = memchr(in + i, '\n', len - i);
        if (!nl) break;
        size_t end = (size_t)(nl - in) + 1;
        size_t ll = end - i;
        if (in[i] == '.' && (ll == 2 || (ll == 3 && in[i + 1] == '\r'))) {
            *out_len = o;
            *term_end = end;
            return 1;
        }
        size_t s = in[i] == '.' ? 1 : 0;
        memcpy(out + o, in + i + s, ll - s);
        o += ll - s;
        i = end;
    }
    return 0;
}

/* Feeds `in` to the decoder cut at the given points (sorted offsets), the
 * way a session does: unconsumed bytes are carried to the front.  Returns
 * 1 if the terminator was found; out gets the produced data. */
static int chunked_decode(const char *in, size_t len, const size_t *cuts, size_t ncuts, char *out,
                          size_t *out_len, size_t *term_end)
{
    mw_pop3_body b;
    mwi_pop3_body_init(&b);
    char *work = malloc(len + 1);
    assert_non_null(work);
    size_t carry = 0, fed = 0, o = 0;
    int done = 0;
    for (size_t k = 0; k <= ncuts && !done; k++) {
        size_t stop = k < ncuts ? cuts[k] : len;
        memcpy(work + carry, in + fed, stop - fed);
        size_t have = carry + (stop - fed);
        fed = stop;
        size_t c, p;
        done = mwi_pop3_body_decode(&b, work, have, &c, &p);
        assert_true(p <= c);
        assert_true(c <= have);
        if (have >= 2 && !done) assert_true(c > 0);
        memcpy(out + o, work, p);
        o += p;
        carry = have - c;
        assert_true(carry <= 1 || done);
        memmove(work, work + c, carry);
        if (done) *term_end = fed - carry;
    }
    free(work);
    *out_len = o;
    assert_int_equal(b.produced, o);
    assert_int_equal(done, mwi_pop3_body_done(&b));
    return done;
}

static void check_all_splits(const char *in, size_t len)
{
    char *want = malloc(len + 1), *got = malloc(len + 1);
    assert_non_null(want);
    assert_non_null(got);
    size_t want_len = 0, want_end = 0, got_len, got_end = 0;
    int want_done = reference_decode(in, len, want, &want_len, &want_end);
    /* Whole, then every single split point, then every pair of them. */
    size_t cuts[2];
    int done = chunked_decode(in, len, cuts, 0, got, &got_len, &got_end);
    assert_int_equal(done, want_done);
    if (done) {
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
        assert_int_equal(got_end, want_end);
    }
    for (size_t a = 0; a <= len; a++) {
        for (size_t bcut = a; bcut <= len; bcut++) {
            cuts[0] = a;
            cuts[1] = bcut;
            done = chunked_decode(in, len, cuts, a == bcut ? 1 : 2, got, &got_len, &got_end);
            assert_int_equal(done, want_done);
            if (done) {
                assert_int_equal(got_len, want_len);
                assert_memory_equal(got, want, want_len);
                assert_int_equal(got_end, want_end);
            }
        }
    }
    free(want);
    free(got);
}

static void test_body_splits(void **state)
{
    (void)state;
    static const char *cases[] = {
        ".\r\n",
        ".\n",
        "a\r\n.\r\n",
        "..\r\n.\r\n",
        "...\r\n.\r\n",
        ".x\r\n.\r\n",
        "line\r\n..dot\r\n.\r\nNEXT",
        "bare\nlf\n..\n.\nrest",
        ".\rX\r\n.\r\n",
        ".\r.\r\n.\r\n",
        "a\rb\r\n.\r\n",
        "\r\n\r\n.\r\n+OK next",
        "Subject: x\r\n\r\nbody .\r\n. \r\n.\r\n",
        "no terminator yet\r\n..",
        "x\r\n.",
        "x\r\n.\r",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_all_splits(cases[i], strlen(cases[i]));
}

static void test_body_exact(void **state)
{
    (void)state;
    const char in[] = "From: a\r\n\r\n..leading\r\n.\r\n+OK";
    char buf[sizeof in];
    memcpy(buf, in, sizeof in);
    mw_pop3_body b;
    mwi_pop3_body_init(&b);
    size_t c, p;
    assert_int_equal(mwi_pop3_body_decode(&b, buf, sizeof in - 1, &c, &p), 1);
    assert_int_equal(c, sizeof in - 1 - 3);
    assert_int_equal(p, strlen("From: a\r\n\r\n.leading\r\n"));
    assert_memory_equal(buf, "From: a\r\n\r\n.leading\r\n", p);

    /* A lone CR after a line-start dot waits for the next byte. */
    mwi_pop3_body_init(&b);
    char two[] = ".\r";
    assert_int_equal(mwi_pop3_body_decode(&b, two, 2, &c, &p), 0);
    assert_int_equal(c, 1);
    assert_int_equal(p, 0);
    assert_int_equal(mwi_pop3_body_decode(&b, two + 1, 1, &c, &p), 0);
    assert_int_equal(c, 0);
}

static void test_body_random(void **state)
{
    (void)state;
    /* Random messages made of line pieces that stress dots and line ends,
     * cut at random points; compared to the reference decoder. */
    static const char *pieces[] = {".", "..", "a", "\r\n", "\n", "\r", "x.y", " "};
    unsigned seed = 12345;
    char msg[600];
    for (int round = 0; round < 3000; round++) {
        size_t len = 0;
        int n = (int)(rand_r(&seed) % 40);
        for (int k = 0; k < n; k++) {
            const char *p = pieces[rand_r(&seed) % 8];
            size_t pl = strlen(p);
            memcpy(msg + len, p, pl);
            len += pl;
        }
        memcpy(msg + len, "\r\n.\r\n", 5);
        len += 5;
        char want[600], got[600];
        size_t wl = 0, we = 0, gl, ge = 0;
        int wd = reference_decode(msg, len, want, &wl, &we);
        assert_int_equal(wd, 1);
        size_t cuts[6];
        size_t nc = rand_r(&seed) % 6;
        for (size_t k = 0; k < nc; k++)
            cuts[k] = rand_r(&seed) % (len + 1);
        for (size_t x = 1; x < nc; x++) /* sort */
            for (size_t y = x; y > 0 && cuts[y - 1] > cuts[y]; y--) {
                size_t t = cuts[y];
                cuts[y] = cuts[y - 1];
                cuts[y - 1] = t;
            }
        assert_int_equal(chunked_decode(msg, len, cuts, nc, got, &gl, &ge), 1);
        assert_int_equal(gl, wl);
        assert_memory_equal(got, want, wl);
        assert_int_equal(ge, we);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_status_ok_err), cmocka_unit_test(test_status_bad),
    cmocka_unit_test(test_resp_codes),    cmocka_unit_test(test_stat_listing),
    cmocka_unit_test(test_uidl),          cmocka_unit_test(test_retr_size),
    cmocka_unit_test(test_timestamp),     cmocka_unit_test(test_body_splits),
    cmocka_unit_test(test_body_exact),    cmocka_unit_test(test_body_random),
};

MW_TEST_MAIN(tests)
