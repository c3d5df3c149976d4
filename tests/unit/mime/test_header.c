/* Unit tests of the RFC 5322 header block parser and setters. */
#include "mwtest.h"

#include "mailwire/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    char *p;
    size_t n;
};

static int sink_write(const char *d, size_t n, void *ud)
{
    struct sink *s = ud;
    char *np = realloc(s->p, s->n + n + 1);
    if (!np) return -1;
    memcpy(np + s->n, d, n);
    s->p = np;
    s->n += n;
    s->p[s->n] = '\0';
    return 0;
}

static const char BLOCK[] = "Return-Path: <a@b.example>\r\n"
                            "Received: from x\r\n"
                            "\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
                            "Received: from z\r\n"
                            "Subject : obsolete space before colon\r\n"
                            "X-8bit: caf\xc3\xa9 \xe9\r\n"
                            "From foo@bar Mon Jan  1\r\n"
                            "To: a@b,\r\n"
                            "   c@d\n"
                            "Empty:\r\n"
                            "\r\n"
                            "body starts here\r\n";

/* Checks the fields of BLOCK and the byte-exact write back. */
static void check_block(mw_mime_headers *h, size_t consumed)
{
    size_t hdr_len = strstr(BLOCK, "body starts") - BLOCK;
    assert_int_equal(consumed, hdr_len);
    assert_true(mw_mime_headers_complete(h));
    assert_int_equal(mw_mime_headers_count(h), 8);
    assert_int_equal(mw_mime_headers_count_name(h, "received"), 2);
    assert_string_equal(mw_mime_headers_get(h, "RECEIVED", 0),
                        "from x\tby y; Mon, 1 Jan 2024 00:00:00 +0000");
    assert_string_equal(mw_mime_headers_get(h, "received", 1), "from z");
    assert_null(mw_mime_headers_get(h, "received", 2));
    assert_string_equal(mw_mime_headers_get(h, "subject", 0), "obsolete space before colon");
    assert_string_equal(mw_mime_headers_get(h, "x-8bit", 0), "caf\xc3\xa9 \xe9");
    assert_string_equal(mw_mime_headers_get(h, "to", 0), "a@b,   c@d");
    assert_string_equal(mw_mime_headers_get(h, "empty", 0), "");
    mw_mime_field f;
    assert_int_equal(mw_mime_headers_at(h, 5, &f), 0);
    assert_int_equal(f.name_len, 0); /* "From foo@bar" is not a field */
    assert_string_equal(f.value, "From foo@bar Mon Jan  1");
    assert_int_equal(mw_mime_headers_find(h, "to", 0, &f), 0);
    assert_int_equal(f.raw_len, strlen("To: a@b,\r\n   c@d\n"));
    assert_memory_equal(f.raw, "To: a@b,\r\n   c@d\n", f.raw_len);
    struct sink s = {0};
    assert_int_equal(mw_mime_headers_write(h, sink_write, &s), 0);
    assert_int_equal(s.n, hdr_len);
    assert_memory_equal(s.p, BLOCK, hdr_len);
    free(s.p);
}

static void test_parse_whole(void **state)
{
    (void)state;
    mw_mime_headers *h;
    size_t used;
    assert_int_equal(mw_mime_headers_parse(&h, BLOCK, strlen(BLOCK), &used, NULL, NULL), 0);
    check_block(h, used);
    mw_mime_headers_free(h);
}

/* Every split point, and also byte by byte. */
static void test_every_split(void **state)
{
    (void)state;
    size_t len = strlen(BLOCK);
    for (size_t cut = 0; cut <= len; cut++) {
        mw_mime_headers *h;
        assert_int_equal(mw_mime_headers_new(&h, NULL, NULL), 0);
        size_t u1 = 0, u2 = 0;
        int rc = mw_mime_headers_feed(h, BLOCK, cut, &u1);
        if (rc == 0) {
            assert_int_equal(u1, cut);
            rc = mw_mime_headers_feed(h, BLOCK + cut, len - cut, &u2);
        }
        assert_int_equal(rc, 1);
        check_block(h, u1 + u2);
        mw_mime_headers_free(h);
    }
    mw_mime_headers *h;
    assert_int_equal(mw_mime_headers_new(&h, NULL, NULL), 0);
    size_t total = 0, u;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0; i++) {
        rc = mw_mime_headers_feed(h, BLOCK + i, 1, &u);
        total += u;
    }
    assert_int_equal(rc, 1);
    check_block(h, total);
    mw_mime_headers_free(h);
}

static void test_no_blank_line(void **state)
{
    (void)state;
    static const char in[] = "A: 1\r\nB: 2\r\n  cont";
    mw_mime_headers *h;
    size_t used;
    assert_int_equal(mw_mime_headers_parse(&h, in, strlen(in), &used, NULL, NULL), 0);
    assert_false(mw_mime_headers_complete(h));
    assert_int_equal(mw_mime_headers_count(h), 2);
    assert_string_equal(mw_mime_headers_get(h, "b", 0), "2  cont");
    struct sink s = {0};
    assert_int_equal(mw_mime_headers_write(h, sink_write, &s), 0);
    assert_string_equal(s.p, in);
    free(s.p);
    assert_int_equal(mw_mime_headers_feed(h, "x", 1, NULL), MW_ESTATE);
    mw_mime_headers_free(h);
}

static void test_leading_continuation_and_bare_cr(void **state)
{
    (void)state;
    static const char in[] = " leading\r\n\rodd: x\r\nA:b\r\n\r\n";
    mw_mime_headers *h;
    size_t used;
    assert_int_equal(mw_mime_headers_parse(&h, in, strlen(in), &used, NULL, NULL), 0);
    assert_int_equal(used, strlen(in));
    assert_int_equal(mw_mime_headers_count(h), 3);
    mw_mime_field f;
    assert_int_equal(mw_mime_headers_at(h, 0, &f), 0);
    assert_int_equal(f.name_len, 0);
    assert_int_equal(mw_mime_headers_at(h, 1, &f), 0);
    assert_int_equal(f.name_len, 0);
    assert_string_equal(mw_mime_headers_get(h, "a", 0), "b");
    struct sink s = {0};
    assert_int_equal(mw_mime_headers_write(h, sink_write, &s), 0);
    assert_string_equal(s.p, in);
    free(s.p);
    mw_mime_headers_free(h);
}

static void test_limits(void **state)
{
    (void)state;
    mw_mime_header_opts o = MW_MIME_HEADER_OPTS_INIT;
    o.max_field_len = 32;
    mw_mime_headers *h;
    mw_error err = {0};
    static const char longf[] = "Subject: 0123456789012345678901234567890123456789\r\n\r\n";
    assert_int_equal(mw_mime_headers_parse(&h, longf, strlen(longf), NULL, &o, &err), MW_ETOOBIG);
    assert_null(h);
    assert_non_null(strstr(err.message, "longer than 32"));

    o.max_field_len = 0;
    o.max_fields = 3;
    static const char many[] = "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    assert_int_equal(mw_mime_headers_parse(&h, many, strlen(many), NULL, &o, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "more than 3 fields"));

    o.max_fields = 0;
    o.max_total = 20;
    assert_int_equal(mw_mime_headers_parse(&h, many, strlen(many), NULL, &o, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "longer than 20 bytes"));

    o.version = 99;
    assert_int_equal(mw_mime_headers_new(&h, &o, NULL), MW_EINVAL);
}

static void test_set_append_delete(void **state)
{
    (void)state;
    static const char in[] = "A: 1\nX: old\nB: 2\nx: older\n\n";
    mw_mime_headers *h;
    assert_int_equal(mw_mime_headers_parse(&h, in, strlen(in), NULL, NULL, NULL), 0);
    assert_int_equal(mw_mime_headers_set(h, "X", "new"), 0);
    assert_int_equal(mw_mime_headers_count_name(h, "x"), 1);
    assert_int_equal(mw_mime_headers_append(h, "Y", "y1"), 0);
    assert_int_equal(mw_mime_headers_append(h, "Y", "y2"), 0);
    struct sink s = {0};
    assert_int_equal(mw_mime_headers_write(h, sink_write, &s), 0);
    assert_string_equal(s.p, "A: 1\nX: new\r\nB: 2\nY: y1\r\nY: y2\r\n\n");
    free(s.p);
    assert_int_equal(mw_mime_headers_delete(h, "y"), 2);
    assert_int_equal(mw_mime_headers_delete(h, "nope"), 0);
    assert_int_equal(mw_mime_headers_count(h), 3);

    /* Header injection and bad names are refused, and nothing changes. */
    assert_int_equal(mw_mime_headers_set(h, "Subject", "hi\r\nBcc: evil@x"), MW_EINVAL);
    assert_non_null(strstr(mw_mime_headers_error(h)->message, "header injection"));
    assert_int_equal(mw_mime_headers_append(h, "Subject", "hi\nBcc: evil@x"), MW_EINVAL);
    assert_int_equal(mw_mime_headers_append(h, "Subject", "a\rb"), MW_EINVAL);
    assert_int_equal(mw_mime_headers_append(h, "Bad Name", "v"), MW_EINVAL);
    assert_int_equal(mw_mime_headers_append(h, "Bad:Name", "v"), MW_EINVAL);
    assert_int_equal(mw_mime_headers_append(h, "", "v"), MW_EINVAL);
    assert_int_equal(mw_mime_headers_count(h), 3);
    mw_mime_headers_free(h);
}

static void test_fold_long_value(void **state)
{
    (void)state;
    mw_mime_headers *h;
    assert_int_equal(mw_mime_headers_new(&h, NULL, NULL), 0);
    char v[400];
    size_t n = 0;
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(v + n, sizeof v - n, "w%d ", i);
    v[n - 1] = '\0';
    assert_int_equal(mw_mime_headers_append(h, "Subject", v), 0);
    mw_mime_field f;
    assert_int_equal(mw_mime_headers_at(h, 0, &f), 0);
    /* Every line at most 78 + CRLF, and unfolding gives the value back. */
    const char *p = f.raw;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 78);
        p = e + 2;
    }
    assert_string_equal(mw_mime_headers_get(h, "subject", 0), v);
    /* reparse the written block: same value */
    struct sink s = {0};
    assert_int_equal(mw_mime_headers_write(h, sink_write, &s), 0);
    mw_mime_headers *h2;
    assert_int_equal(mw_mime_headers_parse(&h2, s.p, s.n, NULL, NULL, NULL), 0);
    assert_string_equal(mw_mime_headers_get(h2, "subject", 0), v);
    assert_true(mw_mime_headers_complete(h2));
    free(s.p);
    mw_mime_headers_free(h2);
    mw_mime_headers_free(h);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_parse_whole),     cmocka_unit_test(test_every_split),
    cmocka_unit_test(test_no_blank_line),   cmocka_unit_test(test_leading_continuation_and_bare_cr),
    cmocka_unit_test(test_limits),          cmocka_unit_test(test_set_append_delete),
    cmocka_unit_test(test_fold_long_value),
};
MW_TEST_MAIN(tests)
