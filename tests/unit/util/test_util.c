#include "mwtest.h"

#include "mailwire/error.h"
#include "util/base64.h"
#include "util/buf.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>

static void buf_appends_and_stays_terminated(void **state)
{
    (void)state;
    mw_buf b = MW_BUF_INIT(0);
    assert_int_equal(mwi_buf_append_str(&b, "hello"), 0);
    assert_int_equal(mwi_buf_printf(&b, " %d %s", 42, "x"), 0);
    assert_string_equal(b.data, "hello 42 x");
    assert_int_equal(b.len, 10);
    mwi_buf_consume(&b, 6);
    assert_string_equal(b.data, "42 x");
    size_t n;
    char *p = mwi_buf_take(&b, &n);
    assert_int_equal(n, 4);
    assert_string_equal(p, "42 x");
    assert_null(b.data);
    free(p);
}

static void buf_refuses_past_its_bound(void **state)
{
    (void)state;
    mw_buf b = MW_BUF_INIT(8);
    assert_int_equal(mwi_buf_append_str(&b, "12345678"), 0);
    assert_int_equal(mwi_buf_append_char(&b, '9'), MW_ETOOBIG);
    assert_int_equal(b.len, 8);
    assert_string_equal(b.data, "12345678");
    assert_int_equal(mwi_buf_reserve(&b, SIZE_MAX), MW_ETOOBIG);
    mwi_buf_free(&b);
}

static void base64_round_trips_every_length(void **state)
{
    (void)state;
    unsigned char in[64], out[64];
    char enc[100];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        mwi_base64_encode(enc, in, n);
        assert_int_equal(strlen(enc), mwi_base64_encoded_len(n));
        long d = mwi_base64_decode_strict(out, enc, strlen(enc));
        assert_int_equal(d, (long)n);
        assert_memory_equal(in, out, n);
    }
}

static void base64_known_vectors(void **state)
{
    (void)state;
    char enc[32];
    mwi_base64_encode(enc, (const unsigned char *)"foobar", 6);
    assert_string_equal(enc, "Zm9vYmFy");
    mwi_base64_encode(enc, (const unsigned char *)"fo", 2);
    assert_string_equal(enc, "Zm8=");
    unsigned char out[16];
    assert_int_equal(mwi_base64_decode_strict(out, "Zm9vYg==", 8), 4);
    assert_memory_equal(out, "foob", 4);
}

static void base64_rejects_garbage(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(mwi_base64_decode_strict(out, "Zm9", 3), -1);
    assert_int_equal(mwi_base64_decode_strict(out, "Zm9v YmFy", 9), -1);
    assert_int_equal(mwi_base64_decode_strict(out, "Zm=v", 4), -1);
    assert_int_equal(mwi_base64_decode_strict(out, "Zg==Zg==", 8), -1);
    assert_int_equal(mwi_base64_decode_strict(out, "Z!==", 4), -1);
}

static void error_records_are_bounded_and_printable(void **state)
{
    (void)state;
    mw_error e;
    mw_error_clear(&e);
    char big[2000];
    memset(big, 'a', sizeof big);
    big[5] = '\r';
    big[6] = '\n';
    assert_int_equal(mwi_err_set(&e, MW_EPROTO, "bad %s", "reply"), MW_EPROTO);
    mwi_err_set_reply(&e, big, sizeof big);
    assert_int_equal(e.code, MW_EPROTO);
    assert_string_equal(e.message, "bad reply");
    assert_int_equal(strlen(e.reply), sizeof e.reply - 1);
    assert_int_equal(e.reply[5], '?');
    assert_int_equal(e.reply[6], '?');
    assert_int_equal(mwi_err_set(NULL, MW_EIO, "x"), MW_EIO);
    for (int c = 0; c >= MW_ERROR_LAST; c--) {
        assert_string_not_equal(mw_strerror(c), "unknown error");
        assert_string_not_equal(mw_error_category(c), "unknown");
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(buf_appends_and_stays_terminated),
    cmocka_unit_test(buf_refuses_past_its_bound),
    cmocka_unit_test(base64_round_trips_every_length),
    cmocka_unit_test(base64_known_vectors),
    cmocka_unit_test(base64_rejects_garbage),
    cmocka_unit_test(error_records_are_bounded_and_printable),
};

MW_TEST_MAIN(tests)
