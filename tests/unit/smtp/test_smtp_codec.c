/* Unit tests of the I/O-free SMTP codecs: reply parser, EHLO capabilities,
 * DATA encoder (every input at every split point). */
#include "mwtest.h"

#include "proto/smtp_data.h"
#include "proto/smtp_reply.h"

#include <stdlib.h>
#include <string.h>

/* Feeds a reply given as '\n'-separated lines; returns the last result. */
static int feed_all(mw_smtp_reply *r, const char *s, mw_error *err)
{
    mwi_smtp_reply_init(r);
    int rc = 0;
    while (*s) {
        const char *nl = strchr(s, '\n');
        size_t len = nl ? (size_t)(nl - s) : strlen(s);
        rc = mwi_smtp_reply_feed(r, s, len, err);
        if (rc != 0) return rc;
        s += len + (nl ? 1 : 0);
    }
    return rc;
}

static void reply_single(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    assert_int_equal(feed_all(r, "250 2.1.0 Ok\n", &err), 1);
    assert_int_equal(r->code, 250);
    assert_string_equal(r->enhanced, "2.1.0");
    size_t len;
    const char *t = mwi_smtp_reply_summary(r, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(t, "Ok", 2);
    /* A bare code with no text is a complete reply (RFC 5321 §4.2). */
    assert_int_equal(feed_all(r, "354\n", &err), 1);
    assert_int_equal(r->code, 354);
    assert_string_equal(r->enhanced, "");
    free(r);
}

static void reply_multi(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    mwi_smtp_reply_init(r);
    assert_int_equal(mwi_smtp_reply_feed(r, "250-mail.example", 16, &err), 0);
    assert_int_equal(mwi_smtp_reply_feed(r, "250-PIPELINING", 14, &err), 0);
    assert_int_equal(mwi_smtp_reply_feed(r, "250 SIZE 1000", 13, &err), 1);
    assert_int_equal(r->nlines, 3);
    size_t len;
    const char *l = mwi_smtp_reply_line(r, 1, &len);
    assert_int_equal(len, 10);
    assert_memory_equal(l, "PIPELINING", 10);
    /* Nothing may follow a complete reply. */
    assert_int_equal(mwi_smtp_reply_feed(r, "250 x", 5, &err), MW_EPROTO);
    free(r);
}

static void reply_mixed_codes(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    assert_int_equal(feed_all(r, "250-first\n550 second\n", &err), MW_EPROTO);
    assert_non_null(strstr(err.message, "mixes codes 250 and 550"));
    free(r);
}

static void reply_garbage(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    const char *bad[] = {"", "25", "2x0 ok", "650 no", "190 no", "260 no", "250_x", "250x", "abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mwi_smtp_reply_init(r);
        assert_int_equal(mwi_smtp_reply_feed(r, bad[i], strlen(bad[i]), &err), MW_EPROTO);
    }
    free(r);
}

static void reply_limits(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    char *line = malloc(MW_SMTP_REPLY_MAX_LINE + 2);
    memset(line, 'a', MW_SMTP_REPLY_MAX_LINE + 1);
    memcpy(line, "250 ", 4);
    mwi_smtp_reply_init(r);
    assert_int_equal(mwi_smtp_reply_feed(r, line, MW_SMTP_REPLY_MAX_LINE + 1, &err), MW_ETOOBIG);
    /* Exactly at the cap is fine. */
    mwi_smtp_reply_init(r);
    assert_int_equal(mwi_smtp_reply_feed(r, line, MW_SMTP_REPLY_MAX_LINE, &err), 1);
    /* Too many lines. */
    mwi_smtp_reply_init(r);
    int rc = 0;
    for (int i = 0; i <= MW_SMTP_REPLY_MAX_LINES && rc == 0; i++)
        rc = mwi_smtp_reply_feed(r, "250-x", 5, &err);
    assert_int_equal(rc, MW_ETOOBIG);
    /* Too much text in total, in lines each under the line cap. */
    mwi_smtp_reply_init(r);
    memcpy(line, "250-", 4);
    rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = mwi_smtp_reply_feed(r, line, 1000, &err);
    assert_int_equal(rc, MW_ETOOBIG);
    free(line);
    free(r);
}

static void enhanced_codes(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(mwi_smtp_parse_enhanced("5.1.1 no", 8, out, sizeof out), 6);
    assert_string_equal(out, "5.1.1");
    assert_int_equal(mwi_smtp_parse_enhanced("4.123.456", 9, out, sizeof out), 9);
    assert_int_equal(mwi_smtp_parse_enhanced("3.1.1 x", 7, out, sizeof out), 0);
    assert_int_equal(mwi_smtp_parse_enhanced("5.1234.1 x", 10, out, sizeof out), 0);
    assert_int_equal(mwi_smtp_parse_enhanced("5.1.1x", 6, out, sizeof out), 0);
    assert_int_equal(mwi_smtp_parse_enhanced("5..1 x", 6, out, sizeof out), 0);
    /* The class must match the reply code's first digit (RFC 3463 §3). */
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    assert_int_equal(feed_all(r, "550 2.1.0 odd\n", &err), 1);
    assert_string_equal(r->enhanced, "");
    free(r);
}

static void ehlo_caps(void **state)
{
    (void)state;
    mw_smtp_reply *r = malloc(sizeof *r);
    mw_error err = {0};
    assert_int_equal(feed_all(r,
                              "250-mx.example greets you\n"
                              "250-pipelining\n"
                              "250-SIZE 10240000\n"
                              "250-AUTH=LOGIN\n"
                              "250-AUTH PLAIN login CRAM-MD5 bad/mech\n"
                              "250-AUTH SCRAM-SHA-256\n"
                              "250-STARTTLS\n"
                              "250-8BITMIME\n"
                              "250-SMTPUTF8\n"
                              "250-DSN\n"
                              "250-CHUNKING\n"
                              "250-XQUE\n"
                              "250-X-UNKNOWN foo\n"
                              "250 ENHANCEDSTATUSCODES\n",
                              &err),
                     1);
    mw_smtp_caps caps;
    mwi_smtp_caps_parse(&caps, r);
    unsigned want = MW_SMTP_CAP_PIPELINING | MW_SMTP_CAP_SIZE | MW_SMTP_CAP_AUTH |
                    MW_SMTP_CAP_STARTTLS | MW_SMTP_CAP_8BITMIME | MW_SMTP_CAP_SMTPUTF8 |
                    MW_SMTP_CAP_DSN | MW_SMTP_CAP_CHUNKING | MW_SMTP_CAP_XQUE |
                    MW_SMTP_CAP_ENHANCED;
    assert_int_equal(caps.flags, want);
    assert_int_equal(caps.size_max, 10240000);
    /* Every AUTH line counts, the AUTH= form too; duplicates dropped. */
    assert_string_equal(caps.auth, "LOGIN PLAIN CRAM-MD5 SCRAM-SHA-256");
    assert_true(mwi_smtp_caps_has_auth(&caps, "cram-md5"));
    assert_false(mwi_smtp_caps_has_auth(&caps, "CRAM"));

    /* The first line is the server's name, never a keyword. */
    assert_int_equal(feed_all(r, "250-STARTTLS\n250 SIZE x12\n", &err), 1);
    mwi_smtp_caps_parse(&caps, r);
    assert_int_equal(caps.flags, MW_SMTP_CAP_SIZE);
    assert_int_equal(caps.size_max, 0);
    assert_int_equal(feed_all(r, "250-x\n250 SIZE 99999999999999999999999\n", &err), 1);
    mwi_smtp_caps_parse(&caps, r);
    assert_int_equal(caps.size_max, 0);
    free(r);
}

/* ---- DATA encoder ---- */

static char *encode_split(const char *in, size_t n, size_t *splits, size_t nsplits, int bdat,
                          int *rc_out)
{
    mw_smtp_data_enc e;
    mwi_smtp_data_init(&e, bdat);
    mw_buf out = MW_BUF_INIT(0);
    mw_error err = {0};
    size_t pos = 0;
    int rc = 0;
    for (size_t k = 0; k <= nsplits && rc == 0; k++) {
        size_t end = k < nsplits ? splits[k] : n;
        rc = mwi_smtp_data_encode(&e, in + pos, end - pos, &out, &err);
        pos = end;
    }
    if (rc == 0) rc = mwi_smtp_data_finish(&e, &out, &err);
    *rc_out = rc;
    if (rc) {
        mwi_buf_free(&out);
        return NULL;
    }
    if (!out.data) mwi_buf_append(&out, "", 0);
    size_t l;
    return mwi_buf_take(&out, &l);
}

struct dcase {
    const char *in, *want, *want_bdat;
};

static const struct dcase dcases[] = {
    {"", ".\r\n", ""},
    {"a", "a\r\n.\r\n", "a\r\n"},
    {"a\r\n", "a\r\n.\r\n", "a\r\n"},
    {"a\nb\n", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
    {"a\rb\r", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
    {".\r\n", "..\r\n.\r\n", ".\r\n"},
    {"x\r\n.\r\nMAIL FROM:<e@vil>\r\n", "x\r\n..\r\nMAIL FROM:<e@vil>\r\n.\r\n",
     "x\r\n.\r\nMAIL FROM:<e@vil>\r\n"},
    /* SMTP smuggling: <LF>.<LF> and <CR>.<CR> must not end the data. */
    {"a\n.\nb", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
    {"a\r.\rb", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
    {"a\r\n.\nb", "a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n"},
    {"a\n\r.\r\r\n", "a\r\n\r\n..\r\n\r\n.\r\n", "a\r\n\r\n.\r\n\r\n"},
    {"..x\r\n.", "...x\r\n..\r\n.\r\n", "..x\r\n.\r\n"},
    {"\r\n\r\n", "\r\n\r\n.\r\n", "\r\n\r\n"},
    {"a.\r\n b.", "a.\r\n b.\r\n.\r\n", "a.\r\n b.\r\n"},
    {"\xc3\xa9t\xc3\xa9\n", "\xc3\xa9t\xc3\xa9\r\n.\r\n", "\xc3\xa9t\xc3\xa9\r\n"},
};

/* Every case, split at every single point and at every pair of points. */
static void data_every_split(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof dcases / sizeof dcases[0]; c++) {
        const struct dcase *d = &dcases[c];
        size_t n = strlen(d->in);
        for (int bdat = 0; bdat <= 1; bdat++) {
            const char *want = bdat ? d->want_bdat : d->want;
            for (size_t a = 0; a <= n; a++) {
                for (size_t b = a; b <= n; b++) {
                    size_t splits[2] = {a, b};
                    int rc;
                    char *got = encode_split(d->in, n, splits, 2, bdat, &rc);
                    assert_int_equal(rc, 0);
                    if (strcmp(got, want) != 0)
                        fail_msg("case %zu bdat=%d split %zu,%zu: got \"%s\"", c, bdat, a, b, got);
                    free(got);
                }
            }
        }
    }
}

/* Byte at a time, and the whole wire output never holds a bare CR or LF. */
static void data_no_bare_eol(void **state)
{
    (void)state;
    const char in[] = "x\ry\n\r\n.\n\r.\r..\n\n\r\rz";
    size_t n = sizeof in - 1;
    size_t splits[sizeof in];
    for (size_t i = 0; i < n; i++)
        splits[i] = i + 1;
    int rc;
    char *got = encode_split(in, n, splits, n - 1, 0, &rc);
    assert_int_equal(rc, 0);
    for (size_t i = 0; got[i]; i++) {
        if (got[i] == '\r') assert_int_equal(got[i + 1], '\n');
        if (got[i] == '\n') assert_true(i > 0 && got[i - 1] == '\r');
    }
    /* The only "CRLF.CRLF" is the final one. */
    const char *end = strstr(got, "\r\n.\r\n");
    assert_non_null(end);
    assert_int_equal(strlen(end), 5);
    free(got);
}

static void data_long_line(void **state)
{
    (void)state;
    char *in = malloc(2100);
    memset(in, 'x', 2100);
    in[998] = '\n';
    int rc;
    /* 998 octets is the largest line allowed. */
    char *got = encode_split(in, 999, NULL, 0, 0, &rc);
    assert_int_equal(rc, 0);
    free(got);
    /* 999 is refused, whatever the split. */
    for (size_t s = 0; s <= 1000; s += 97) {
        size_t sp[1] = {s};
        mw_smtp_data_enc e;
        mwi_smtp_data_init(&e, 0);
        mw_buf out = MW_BUF_INIT(0);
        mw_error err = {0};
        in[999] = '\n';
        in[998] = 'x';
        rc = mwi_smtp_data_encode(&e, "ok\n", 3, &out, &err);
        assert_int_equal(rc, 0);
        rc = mwi_smtp_data_encode(&e, in, sp[0], &out, &err);
        if (rc == 0) rc = mwi_smtp_data_encode(&e, in + sp[0], 1000 - sp[0], &out, &err);
        assert_int_equal(rc, MW_ETOOBIG);
        assert_non_null(strstr(err.message, "line 2 "));
        mwi_buf_free(&out);
    }
    free(in);
}

/* Plain lines in one call (the encoder's fast path for LF-ended text),
 * then a line of 998 octets (allowed) and one of 999: refused, naming
 * its number; a line-start dot among them still doubled. */
static void long_line_among_plain(int wide)
{
    size_t cap = 4000, n = 0;
    char *in = malloc(cap);
    const char *head = "one\ntwo\n.dot\nfour\n";
    memcpy(in, head, strlen(head));
    n = strlen(head);
    memset(in + n, 'y', 998);
    n += 998;
    in[n++] = '\n';
    memcpy(in + n, "six\n", 4);
    n += 4;
    mw_smtp_data_enc e;
    mwi_smtp_data_init(&e, 0);
    if (!wide) e.avx2 = 0;
    mw_buf out = MW_BUF_INIT(0);
    mw_error err = {0};
    assert_int_equal(mwi_smtp_data_encode(&e, in, n, &out, &err), 0);
    assert_int_equal(e.line_no, 7);
    assert_non_null(strstr(out.data, "one\r\ntwo\r\n..dot\r\nfour\r\nyyy"));
    assert_non_null(strstr(out.data, "y\r\nsix\r\n"));
    assert_int_equal(out.len, n + 6 + 1);
    memset(in + n, 'z', 999);
    in[n + 999] = '\n';
    memcpy(in + n + 1000, "eight\n", 6);
    assert_int_equal(mwi_smtp_data_encode(&e, in + n, 1006, &out, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "line 7 "));
    mwi_buf_free(&out);
    free(in);
}

static void data_long_line_among_plain(void **state)
{
    (void)state;
    long_line_among_plain(1); /* AVX2 where the CPU has it */
    long_line_among_plain(0);
}

static void data_flags(void **state)
{
    (void)state;
    mw_smtp_data_enc e;
    mwi_smtp_data_init(&e, 0);
    mw_buf out = MW_BUF_INIT(0);
    mw_error err = {0};
    assert_int_equal(mwi_smtp_data_encode(&e, "a\r\nb\r\n", 6, &out, &err), 0);
    assert_false(e.saw_8bit);
    assert_false(e.saw_bare_eol);
    assert_int_equal(mwi_smtp_data_encode(&e, "\xe9\n", 2, &out, &err), 0);
    assert_true(e.saw_8bit);
    assert_true(e.saw_bare_eol);
    assert_int_equal(mwi_smtp_data_finish(&e, &out, &err), 0);
    assert_int_equal(e.out_octets, out.len);
    mwi_buf_free(&out);
}

/* The octet-at-a-time statement of the encoding (RFC 5321 §4.5.2, every
 * line end to CRLF), against which the word/memchr-based encoder is
 * checked on random inputs: output and both flags (with SSE2, copy_run
 * in src/proto/smtp_data.c: runs cut anywhere in and after a 16-octet
 * block). */
static size_t ref_encode(const char *in, size_t n, int bdat, char *out, int *saw8, int *bare)
{
    size_t o = 0;
    int bol = 1;
    *saw8 = *bare = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if ((unsigned char)c >= 0x80) *saw8 = 1;
        if (c == '\r' || c == '\n') {
            /* A CR ending the input is not counted as bare: the encoder
             * learns what follows it only from more input. */
            if (c == '\r' && i + 1 < n && in[i + 1] == '\n')
                i++;
            else if (!(c == '\r' && i + 1 == n))
                *bare = 1;
            out[o++] = '\r';
            out[o++] = '\n';
            bol = 1;
            continue;
        }
        if (bol && c == '.' && !bdat) out[o++] = '.';
        bol = 0;
        out[o++] = c;
    }
    if (!bol) {
        out[o++] = '\r';
        out[o++] = '\n';
    }
    if (!bdat) {
        memcpy(out + o, ".\r\n", 3);
        o += 3;
    }
    return o;
}

static void data_random_vs_reference(void **state)
{
    (void)state;
    static const char alphabet[] = "ab.\r\n\r\nxyz.\xe9 ";
    unsigned seed = 12345;
    char in[600], want[1400];
    for (int round = 0; round < 3000; round++) {
        size_t n = (size_t)(rand_r(&seed) % 600);
        /* Mostly plain lines, sometimes dense in CR/LF/dots/8-bit. */
        int dense = rand_r(&seed) % 3 == 0;
        for (size_t i = 0; i < n; i++) {
            int r = rand_r(&seed);
            in[i] = dense || r % 40 == 0 ? alphabet[(r >> 8) % (sizeof alphabet - 1)]
                                         : (char)('a' + (r >> 8) % 26);
        }
        int bdat = round & 1;
        int saw8, bare;
        size_t wl = ref_encode(in, n, bdat, want, &saw8, &bare);
        size_t splits[3];
        for (int k = 0; k < 3; k++)
            splits[k] = n ? (size_t)rand_r(&seed) % (n + 1) : 0;
        /* Ascending split points. */
        for (int a = 0; a < 3; a++)
            for (int b = a + 1; b < 3; b++)
                if (splits[b] < splits[a]) {
                    size_t t = splits[a];
                    splits[a] = splits[b];
                    splits[b] = t;
                }
        /* Twice: as init chose (AVX2 where the CPU has it), then the
         * 16-octet path. */
        for (int path = 0; path < 2; path++) {
            mw_smtp_data_enc e;
            mwi_smtp_data_init(&e, bdat);
            if (path) e.avx2 = 0;
            mw_buf out = MW_BUF_INIT(0);
            mw_error err = {0};
            size_t pos = 0;
            for (int k = 0; k <= 3; k++) {
                size_t end = k < 3 ? splits[k] : n;
                assert_int_equal(mwi_smtp_data_encode(&e, in + pos, end - pos, &out, &err), 0);
                pos = end;
            }
            assert_int_equal(mwi_smtp_data_finish(&e, &out, &err), 0);
            if (out.len != wl || memcmp(out.data, want, wl) != 0)
                fail_msg("round %d: output differs from the reference (%zu vs %zu octets)", round,
                         out.len, wl);
            assert_int_equal(out.data[out.len], '\0');
            if (e.saw_8bit != saw8 || e.saw_bare_eol != bare)
                fail_msg("round %d: flags 8bit %d bare %d, reference %d %d", round, e.saw_8bit,
                         e.saw_bare_eol, saw8, bare);
            assert_int_equal(e.out_octets, out.len);
            assert_int_equal(e.in_octets, n);
            mwi_buf_free(&out);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reply_single),
        cmocka_unit_test(reply_multi),
        cmocka_unit_test(reply_mixed_codes),
        cmocka_unit_test(reply_garbage),
        cmocka_unit_test(reply_limits),
        cmocka_unit_test(enhanced_codes),
        cmocka_unit_test(ehlo_caps),
        cmocka_unit_test(data_every_split),
        cmocka_unit_test(data_no_bare_eol),
        cmocka_unit_test(data_long_line),
        cmocka_unit_test(data_flags),
        cmocka_unit_test(data_long_line_among_plain),
        cmocka_unit_test(data_random_vs_reference),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
