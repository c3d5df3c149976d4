/* Unit tests: encoded words (RFC 2047), parameters (RFC 2045/2231),
 * addresses, dates, unique IDs, quoted-printable helpers. */
#include "mwtest.h"

#include "mailwire/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void dec_eq(const char *in, const char *want)
{
    char *out;
    size_t n;
    assert_int_equal(mw_mime_decode_field(&out, &n, in, strlen(in), NULL), 0);
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
    free(out);
}

static void test_2047_decode(void **state)
{
    (void)state;
    dec_eq("plain text", "plain text");
    dec_eq("=?utf-8?q?J=C3=B6rg_M=C3=BCller?=", "J\xc3\xb6rg M\xc3\xbcller");
    dec_eq("=?ISO-8859-1?Q?Andr=E9?= Pirard", "Andr\xc3\xa9 Pirard");
    /* RFC 2047 §8 examples: white space between adjacent words vanishes. */
    dec_eq("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)");
    dec_eq("(=?ISO-8859-1?Q?a?=  \r\n  =?ISO-8859-1?Q?b?=)", "(ab)");
    dec_eq("(=?ISO-8859-1?Q?a_b?=)", "(a b)");
    dec_eq("(=?ISO-8859-1?Q?a?= b)", "(a b)");
    /* A character split across two words comes out whole. */
    dec_eq("=?utf-8?B?SGVsbMO2?= =?utf-8?B?IFfDtnJsZA==?=", "Hell\xc3\xb6 W\xc3\xb6rld");
    dec_eq("=?utf-8?q?=C3?= =?utf-8?q?=A9?=", "\xc3\xa9");
    /* RFC 2231 §5 language in the charset. */
    dec_eq("=?US-ASCII*EN?Q?Keith_Moore?=", "Keith Moore");
    /* Broken words are left as they are. */
    dec_eq("=?utf-8?q?unterminated", "=?utf-8?q?unterminated");
    dec_eq("=?utf-8?x?bad-encoding?=", "=?utf-8?x?bad-encoding?=");
    dec_eq("=??q?empty-charset?=", "=??q?empty-charset?=");
    /* Unknown charset: the decoded bytes as they are. */
    dec_eq("=?x-unknown?q?abc?=", "abc");
    /* Invalid bytes for the charset become U+FFFD. */
    dec_eq("=?utf-8?q?a=FFb?=", "a\xef\xbf\xbd"
                                "b");
    /* Lenient base64 inside a word. */
    dec_eq("=?utf-8?b?aGk?=", "hi");
    dec_eq("", "");
}

static void test_2047_encode(void **state)
{
    (void)state;
    char *w, *back;
    const char *text = "Gr\xc3\xbc\xc3\x9f"
                       "e aus K\xc3\xb6ln, \xe2\x82\xac 100";
    assert_int_equal(mw_mime_word_encode(&w, text, strlen(text), NULL, 'Q', NULL), 0);
    assert_non_null(strstr(w, "=?UTF-8?Q?"));
    assert_int_equal(mw_mime_decode_field(&back, NULL, w, strlen(w), NULL), 0);
    assert_string_equal(back, text);
    free(w);
    free(back);
    /* A long text: several words, each at most 75 characters, none splits a
     * UTF-8 character, and decoding joins them back. */
    char longt[1200] = "";
    for (int i = 0; i < 100; i++)
        strcat(longt, "\xc3\xa9t\xc3\xa9 ");
    for (char m = 'B'; m; m = m == 'B' ? 'Q' : 0) {
        assert_int_equal(mw_mime_word_encode(&w, longt, strlen(longt), "UTF-8", m, NULL), 0);
        char *save, *tok = strtok_r(w, " ", &save);
        int words = 0;
        while (tok) {
            assert_true(strlen(tok) <= 75);
            words++;
            tok = strtok_r(NULL, " ", &save);
        }
        assert_true(words > 5);
        free(w);
        assert_int_equal(mw_mime_word_encode(&w, longt, strlen(longt), "UTF-8", m, NULL), 0);
        assert_int_equal(mw_mime_decode_field(&back, NULL, w, strlen(w), NULL), 0);
        assert_string_equal(back, longt);
        free(w);
        free(back);
    }
    assert_int_equal(mw_mime_word_encode(&w, "x", 1, "UTF-8", 'z', NULL), MW_EINVAL);
    assert_int_equal(mw_mime_word_encode(&w, "x", 1, "bad?cs", 'q', NULL), MW_EINVAL);
    /* Unstructured text: ASCII stays, non-ASCII is encoded. */
    assert_int_equal(mw_mime_encode_text(&w, "plain subject", NULL), 0);
    assert_string_equal(w, "plain subject");
    free(w);
    assert_int_equal(mw_mime_encode_text(&w, "caf\xc3\xa9 au lait", NULL), 0);
    assert_string_equal(w, "=?UTF-8?Q?caf=C3=A9_au_lait?=");
    free(w);
    /* mostly non-ASCII: base64 is shorter */
    assert_int_equal(mw_mime_encode_text(&w, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9", NULL), 0);
    assert_string_equal(w, "=?UTF-8?B?w6nDqcOpw6k=?=");
    free(w);
}

static void test_params(void **state)
{
    (void)state;
    mw_mime_ctype *ct;
    const char *v =
        "Text/HTML ; charset = \"utf-8\" (comment); Name=\"a \\\"q\\\" b\"; junk; x=y z";
    assert_int_equal(mw_mime_ctype_parse(&ct, v, strlen(v), NULL), 0);
    assert_string_equal(mw_mime_ctype_value(ct), "text/html");
    assert_string_equal(mw_mime_ctype_param(ct, "CHARSET"), "utf-8");
    assert_string_equal(mw_mime_ctype_param(ct, "name"), "a \"q\" b");
    assert_string_equal(mw_mime_ctype_param(ct, "x"), "y z");
    assert_null(mw_mime_ctype_param(ct, "junk"));
    mw_mime_ctype_free(ct);

    /* RFC 2231 §3, §4: continuations, charset, language, %-encoding, in
     * any order. */
    v = "attachment; filename*1*=%20for%202024; filename*0*=utf-8'en'%E2%82%AC%20rates;"
        " filename*2=\".txt\"; size=12";
    assert_int_equal(mw_mime_ctype_parse(&ct, v, strlen(v), NULL), 0);
    assert_string_equal(mw_mime_ctype_value(ct), "attachment");
    assert_string_equal(mw_mime_ctype_param(ct, "filename"), "\xe2\x82\xac rates for 2024.txt");
    mw_mime_param p;
    assert_int_equal(mw_mime_ctype_param_at(ct, 0, &p), 0);
    assert_string_equal(p.name, "filename");
    assert_string_equal(p.charset, "utf-8");
    assert_string_equal(p.language, "en");
    assert_int_equal(mw_mime_ctype_param_count(ct), 2);
    mw_mime_ctype_free(ct);

    v = "application/x-stuff; title*=iso-8859-1''caf%E9%ZZ";
    assert_int_equal(mw_mime_ctype_parse(&ct, v, strlen(v), NULL), 0);
    assert_string_equal(mw_mime_ctype_param(ct, "title"), "caf\xc3\xa9%ZZ");
    mw_mime_ctype_free(ct);

    /* 2047 words inside a quoted filename (common, not standard). */
    v = "attachment; filename=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"";
    assert_int_equal(mw_mime_ctype_parse(&ct, v, strlen(v), NULL), 0);
    assert_string_equal(mw_mime_ctype_param(ct, "filename"), "r\xc3\xa9sum\xc3\xa9.pdf");
    mw_mime_ctype_free(ct);

    mw_error err = {0};
    assert_int_equal(mw_mime_ctype_parse(&ct, "/plain", 6, &err), MW_EFORMAT);
    assert_int_equal(mw_mime_ctype_parse(&ct, "text/", 5, &err), MW_EFORMAT);
    assert_non_null(strstr(err.message, "type"));
    /* Unterminated quotes and comments do not run past the end. */
    assert_int_equal(mw_mime_ctype_parse(&ct, "a/b; x=\"open", 12, NULL), 0);
    assert_string_equal(mw_mime_ctype_param(ct, "x"), "open");
    mw_mime_ctype_free(ct);
    assert_int_equal(mw_mime_ctype_parse(&ct, "a/b (open; x=1", 14, NULL), 0);
    mw_mime_ctype_free(ct);
}

static void test_addresses(void **state)
{
    (void)state;
    mw_mime_addrlist *l;
    const char *v = "Alice <alice@example.org>, \"Smith, Bob\" <bob@example.net>,"
                    " carol@example.com (Carol C.), undisclosed: ; friends: dave@x.org,"
                    " \"e v\"@y.org; =?utf-8?q?J=C3=B6rg?= <j@z.de>,"
                    " <@route1,@route2:r@w.org>, broken, ,";
    assert_int_equal(mw_mime_addrlist_parse(&l, v, strlen(v), NULL), 0);
    assert_int_equal(mw_mime_addrlist_count(l), 8);
    const mw_mime_address *a = mw_mime_addrlist_at(l, 0);
    assert_string_equal(a->display, "Alice");
    assert_string_equal(a->address, "alice@example.org");
    assert_string_equal(a->local, "alice");
    assert_string_equal(a->domain, "example.org");
    assert_null(a->error);
    a = mw_mime_addrlist_at(l, 1);
    assert_string_equal(a->display, "Smith, Bob");
    assert_string_equal(a->address, "bob@example.net");
    a = mw_mime_addrlist_at(l, 2);
    assert_null(a->display);
    assert_string_equal(a->comment, "Carol C.");
    assert_string_equal(a->address, "carol@example.com");
    a = mw_mime_addrlist_at(l, 3);
    assert_string_equal(a->group, "friends");
    assert_string_equal(a->address, "dave@x.org");
    a = mw_mime_addrlist_at(l, 4);
    assert_string_equal(a->group, "friends");
    assert_string_equal(a->local, "\"e v\"");
    assert_string_equal(a->address, "\"e v\"@y.org");
    a = mw_mime_addrlist_at(l, 5);
    assert_null(a->group);
    assert_string_equal(a->display, "J\xc3\xb6rg");
    a = mw_mime_addrlist_at(l, 6);
    assert_string_equal(a->address, "r@w.org");
    a = mw_mime_addrlist_at(l, 7);
    assert_string_equal(a->address, "broken");
    assert_non_null(a->error);
    assert_null(mw_mime_addrlist_at(l, 8));
    mw_mime_addrlist_free(l);

    char *s;
    assert_int_equal(mw_mime_address_format(&s, "Smith, Bob", "bob@x.org"), 0);
    assert_string_equal(s, "\"Smith, Bob\" <bob@x.org>");
    free(s);
    assert_int_equal(mw_mime_address_format(&s, "J\xc3\xb6rg", "j@x.org"), 0);
    assert_string_equal(s, "=?UTF-8?Q?J=C3=B6rg?= <j@x.org>");
    /* and it parses back */
    assert_int_equal(mw_mime_addrlist_parse(&l, s, strlen(s), NULL), 0);
    assert_string_equal(mw_mime_addrlist_at(l, 0)->display, "J\xc3\xb6rg");
    mw_mime_addrlist_free(l);
    free(s);
    assert_int_equal(mw_mime_address_format(&s, NULL, "a@b"), 0);
    assert_string_equal(s, "a@b");
    free(s);
    assert_int_equal(mw_mime_address_format(&s, "x", "a@b>\r\nBcc: c@d"), MW_EINVAL);
    assert_int_equal(mw_mime_address_format(&s, "x\r\nBcc: c@d", "a@b"), MW_EINVAL);
}

static void test_dates(void **state)
{
    (void)state;
    mw_mime_date d;
    const char *v = "Mon, 2 Jan 2023 10:00:00 +0100";
    assert_int_equal(mw_mime_date_parse(&d, v, strlen(v)), 0);
    assert_int_equal(d.year, 2023);
    assert_int_equal(d.month, 1);
    assert_int_equal(d.day, 2);
    assert_int_equal(d.weekday, 1);
    assert_int_equal(d.zone_minutes, 60);
    assert_int_equal(d.utc, 1672650000); /* 2023-01-02 09:00:00 UTC */
    /* Obsolete forms (RFC 5322 §4.3): two-digit year, named zone,
     * comments, no seconds, no weekday. */
    v = "2 Jan 23 (comment) 04:00 EST";
    assert_int_equal(mw_mime_date_parse(&d, v, strlen(v)), 0);
    assert_int_equal(d.year, 2023);
    assert_int_equal(d.utc, 1672650000);
    v = "Thu, 01 Jan 70 00:00:00 GMT";
    assert_int_equal(mw_mime_date_parse(&d, v, strlen(v)), 0);
    assert_int_equal(d.year, 1970);
    assert_int_equal(d.utc, 0);
    v = "1 Jan 099 00:00 -0000";
    assert_int_equal(mw_mime_date_parse(&d, v, strlen(v)), 0);
    assert_int_equal(d.year, 1999);
    assert_int_equal(d.zone_known, 0);
    const char *bad[] = {"",
                         "Foo, 1 Jan 2020 00:00 +0000",
                         "32 Jan 2020 00:00 +0000",
                         "1 Foo 2020 00:00 +0000",
                         "1 Jan 2020 24:00 +0000",
                         "1 Jan 2020 00:00 +01",
                         "30 Feb 2020 00:00 +0000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(mw_mime_date_parse(&d, bad[i], strlen(bad[i])), MW_EFORMAT);

    char buf[MW_MIME_DATE_SIZE];
    assert_int_equal(mw_mime_date_format(buf, sizeof buf, 1672650000, 60), 0);
    assert_string_equal(buf, "Mon, 2 Jan 2023 10:00:00 +0100");
    assert_int_equal(mw_mime_date_format(buf, sizeof buf, 0, -330), 0);
    assert_string_equal(buf, "Wed, 31 Dec 1969 18:30:00 -0530");
    assert_int_equal(mw_mime_date_format(buf, 10, 0, 0), MW_EINVAL);
    assert_int_equal(mw_mime_date_now(buf, sizeof buf), 0);
    assert_int_equal(mw_mime_date_parse(&d, buf, strlen(buf)), 0);
}

static void test_unique_id(void **state)
{
    (void)state;
    char a[256], b[256];
    assert_int_equal(mw_mime_unique_id(a, sizeof a, "example.org"), 0);
    assert_int_equal(mw_mime_unique_id(b, sizeof b, "example.org"), 0);
    assert_string_not_equal(a, b);
    assert_true(a[0] == '<' && a[strlen(a) - 1] == '>');
    assert_non_null(strstr(a, "@example.org>"));
    assert_int_equal(mw_mime_unique_id(a, sizeof a, "bad domain"), MW_EINVAL);
    assert_int_equal(mw_mime_unique_id(a, 10, "example.org"), MW_ETOOBIG);
    assert_int_equal(mw_mime_unique_id(a, sizeof a, NULL), 0);
}

static void test_qp_helpers(void **state)
{
    (void)state;
    char *e, *d;
    size_t en, dn;
    const char *t = "From the start\n.dot\ntrailing \nlong " /* then 100 x */
                    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                    "xxxxxxxxxxxxxxxxxxxxxxxx\n=\xff";
    assert_int_equal(mw_mime_qp_encode(&e, &en, t, strlen(t)), 0);
    assert_non_null(strstr(e, "=46rom the start\r\n=2Edot\r\ntrailing=20\r\n"));
    assert_non_null(strstr(e, "=3D=FF"));
    for (char *line = e; *line;) {
        char *nl = strstr(line, "\r\n");
        size_t ll = nl ? (size_t)(nl - line) : strlen(line);
        assert_true(ll <= 76);
        line += ll + (nl ? 2 : 0);
    }
    assert_int_equal(mw_mime_qp_decode(&d, &dn, e, en), 0);
    /* LF became CRLF on the way: compare with that. */
    const char *want = "From the start\r\n.dot\r\ntrailing \r\nlong ";
    assert_memory_equal(d, want, strlen(want));
    assert_int_equal(dn, strlen(t) + 4);
    free(e);
    free(d);
    assert_int_equal(mw_mime_qp_decode(&d, &dn, "a=\r\nb=3Dc  \r\nd=\ne=4", 20), 0);
    assert_string_equal(d, "ab=c\r\nde=4");
    free(d);
    /* RFC 2045 §6.7 rule 3: padding after a soft break's '=' is dropped;
     * '=' followed by anything else stays as it is. */
    const char *pad = "a= \t\r\nb=  \nc= x=\t=4g";
    assert_int_equal(mw_mime_qp_decode(&d, &dn, pad, strlen(pad)), 0);
    assert_string_equal(d, "abc= x=\t=4g");
    free(d);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_2047_decode), cmocka_unit_test(test_2047_encode),
    cmocka_unit_test(test_params),      cmocka_unit_test(test_addresses),
    cmocka_unit_test(test_dates),       cmocka_unit_test(test_unique_id),
    cmocka_unit_test(test_qp_helpers),
};
MW_TEST_MAIN(tests)
