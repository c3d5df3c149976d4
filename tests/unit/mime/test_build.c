/* Unit tests of the builder (build -> write -> parse gives back what was
 * built), header injection, encoding choice, and parser limits. */
#include "mwtest.h"

#include "mailwire/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct bodies {
    char *path[32];
    char *data[32];
    size_t len[32];
    int n;
};

static int collect(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    struct bodies *b = ud;
    int i;
    for (i = 0; i < b->n; i++)
        if (!strcmp(b->path[i], mw_mime_part_path(p))) break;
    if (i == b->n) {
        if (b->n == 32) return 1;
        b->path[i] = strdup(mw_mime_part_path(p));
        b->data[i] = NULL;
        b->len[i] = 0;
        b->n++;
    }
    b->data[i] = realloc(b->data[i], b->len[i] + n + 1);
    memcpy(b->data[i] + b->len[i], d, n);
    b->len[i] += n;
    b->data[i][b->len[i]] = '\0';
    return 0;
}

static const char *body_of(struct bodies *b, const char *path, size_t *len)
{
    for (int i = 0; i < b->n; i++)
        if (!strcmp(b->path[i], path)) {
            *len = b->len[i];
            return b->data[i];
        }
    *len = 0;
    return NULL;
}

static void free_bodies(struct bodies *b)
{
    for (int i = 0; i < b->n; i++) {
        free(b->path[i]);
        free(b->data[i]);
    }
}

static mw_mime_part *parse_collect(const char *msg, size_t len, struct bodies *b)
{
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    o.on_body = collect;
    o.userdata = b;
    mw_mime_part *root;
    mw_error err = {0};
    assert_int_equal(mw_mime_parse(&root, msg, len, &o, &err), 0);
    return root;
}

static mw_mime_part *leaf(const char *type, const void *body, size_t len)
{
    mw_mime_part *p;
    assert_int_equal(mw_mime_part_new(&p, type, NULL), 0);
    assert_int_equal(mw_mime_part_set_body(p, body, len, NULL), 0);
    return p;
}

static void test_build_then_parse(void **state)
{
    (void)state;
    mw_error err = {0};
    mw_mime_part *root, *alt, *att, *img, *related;
    assert_int_equal(mw_mime_part_new(&root, "multipart/mixed", &err), 0);
    assert_int_equal(mw_mime_part_header(root, "From", "a@example.org", MW_MIME_HDR_SET, &err), 0);
    assert_int_equal(mw_mime_part_header(root, "To", "b@example.org", MW_MIME_HDR_SET, &err), 0);
    char *subj;
    assert_int_equal(mw_mime_encode_text(&subj,
                                         "Gr\xc3\xbc\xc3\x9f"
                                         "e",
                                         NULL),
                     0);
    assert_int_equal(mw_mime_part_header(root, "Subject", subj, MW_MIME_HDR_SET, &err), 0);
    free(subj);
    assert_int_equal(mw_mime_part_new(&alt, "multipart/alternative", &err), 0);
    const char *text = "Hello,\nF\xc3\xbcr dich.\nFrom here a line starts with From\n";
    mw_mime_part *t = leaf("text/plain", text, strlen(text));
    assert_int_equal(mw_mime_part_set_param(t, "charset", "utf-8", &err), 0);
    assert_int_equal(mw_mime_part_add(alt, t, &err), 0);
    assert_int_equal(mw_mime_part_new(&related, "multipart/related", &err), 0);
    const char *html = "<p>hi <img src=\"cid:i1@x\"></p>\n";
    assert_int_equal(mw_mime_part_add(related, leaf("text/html", html, strlen(html)), &err), 0);
    unsigned char png[3000];
    for (size_t i = 0; i < sizeof png; i++)
        png[i] = (unsigned char)(i * 7);
    img = leaf("image/png", png, sizeof png);
    assert_int_equal(mw_mime_part_set_content_id(img, "i1@x", &err), 0);
    assert_int_equal(mw_mime_part_add(related, img, &err), 0);
    assert_int_equal(mw_mime_part_add(alt, related, &err), 0);
    assert_int_equal(mw_mime_part_add(root, alt, &err), 0);
    att = leaf("application/octet-stream", "\x00\x01\x02zz", 5);
    assert_int_equal(
        mw_mime_part_set_disposition(att, "attachment", "r\xc3\xa9sum\xc3\xa9 2024.bin", &err), 0);
    assert_int_equal(mw_mime_part_add(root, att, &err), 0);
    /* a forwarded message */
    mw_mime_part *inner = leaf("text/plain", "inner\n", 6), *msg;
    assert_int_equal(mw_mime_part_header(inner, "Subject", "inner", MW_MIME_HDR_SET, &err), 0);
    assert_int_equal(mw_mime_message_new(&msg, inner, &err), 0);
    assert_int_equal(mw_mime_part_add(root, msg, &err), 0);

    char *out;
    size_t n;
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), 0);
    /* CRLF everywhere, no bare LF, no line over 998. */
    for (size_t i = 0; i < n; i++)
        if (out[i] == '\n') assert_true(i > 0 && out[i - 1] == '\r');
    assert_non_null(strstr(out, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(out, "\r\nDate: "));
    assert_non_null(strstr(out, "\r\nMessage-ID: <"));

    struct bodies b = {0};
    mw_mime_part *back = parse_collect(out, n, &b);
    assert_string_equal(mw_mime_part_type(back), "multipart/mixed");
    assert_int_equal(mw_mime_part_child_count(back), 3);
    const char *hs = mw_mime_headers_get(mw_mime_part_headers(back), "subject", 0);
    char *ds;
    assert_int_equal(mw_mime_decode_field(&ds, NULL, hs, strlen(hs), NULL), 0);
    assert_string_equal(ds, "Gr\xc3\xbc\xc3\x9f"
                            "e");
    free(ds);
    mw_mime_part *pt = mw_mime_part_child(mw_mime_part_child(back, 0), 0);
    assert_string_equal(mw_mime_part_path(pt), "1.1.1");
    assert_string_equal(mw_mime_part_charset(pt), "utf-8");
    /* utf-8 8-bit text: base64, as Tcllib does */
    assert_int_equal(mw_mime_part_encoding(pt), MW_MIME_ENC_BASE64);
    size_t bl;
    const char *bd = body_of(&b, "1.1.1", &bl);
    const char *want = "Hello,\r\nF\xc3\xbcr dich.\r\nFrom here a line starts with From\r\n";
    assert_int_equal(bl, strlen(want));
    assert_memory_equal(bd, want, bl);
    bd = body_of(&b, "1.1.2.1", &bl);
    assert_memory_equal(bd, "<p>hi <img src=\"cid:i1@x\"></p>\r\n", bl);
    mw_mime_part *pimg = mw_mime_part_child(mw_mime_part_child(mw_mime_part_child(back, 0), 1), 1);
    assert_string_equal(mw_mime_part_type(pimg), "image/png");
    assert_string_equal(mw_mime_part_content_id(pimg), "<i1@x>");
    assert_int_equal(mw_mime_part_encoding(pimg), MW_MIME_ENC_BASE64);
    bd = body_of(&b, "1.1.2.2", &bl);
    assert_int_equal(bl, sizeof png);
    assert_memory_equal(bd, png, sizeof png);
    mw_mime_part *patt = mw_mime_part_child(back, 1);
    assert_string_equal(mw_mime_part_filename(patt), "r\xc3\xa9sum\xc3\xa9 2024.bin");
    assert_string_equal(mw_mime_part_disposition(patt), "attachment");
    bd = body_of(&b, "1.2", &bl);
    assert_int_equal(bl, 5);
    assert_memory_equal(bd, "\x00\x01\x02zz", 5);
    mw_mime_part *pm = mw_mime_part_child(back, 2);
    assert_string_equal(mw_mime_part_type(pm), "message/rfc822");
    assert_string_equal(
        mw_mime_headers_get(mw_mime_part_headers(mw_mime_part_child(pm, 0)), "subject", 0),
        "inner");
    bd = body_of(&b, "1.3.1", &bl);
    assert_memory_equal(bd, "inner\r\n", bl);
    for (mw_mime_part *c = back; c; c = NULL)
        assert_int_equal(mw_mime_part_flags(c), 0);

    /* The parsed copy writes back the same bytes. */
    char *again;
    size_t an;
    assert_int_equal(mw_mime_part_to_buffer(back, &again, &an, &err), 0);
    assert_int_equal(an, n);
    assert_memory_equal(again, out, n);
    free(again);
    free_bodies(&b);
    mw_mime_part_free(back);
    free(out);
    mw_mime_part_free(root);
}

static void test_injection_and_content_fields(void **state)
{
    (void)state;
    mw_error err = {0};
    mw_mime_part *p = leaf("text/plain", "x", 1);
    assert_int_equal(
        mw_mime_part_header(p, "Subject", "hi\r\nBcc: victim@x", MW_MIME_HDR_SET, &err), MW_EINVAL);
    assert_non_null(strstr(err.message, "injection"));
    assert_int_equal(mw_mime_part_header(p, "Subject", "hi\nX: y", MW_MIME_HDR_APPEND, &err),
                     MW_EINVAL);
    assert_int_equal(mw_mime_part_header(p, "Content-Type", "text/html", MW_MIME_HDR_SET, &err),
                     MW_EINVAL);
    assert_non_null(strstr(err.message, "content setters"));
    assert_int_equal(
        mw_mime_part_header(p, "content-transfer-encoding", "8bit", MW_MIME_HDR_SET, &err),
        MW_EINVAL);
    assert_int_equal(mw_mime_part_header(p, "MIME-Version", "2.0", MW_MIME_HDR_SET, &err),
                     MW_EINVAL);
    assert_int_equal(mw_mime_part_set_param(p, "charset", "a\r\nb", &err), MW_EINVAL);
    assert_int_equal(mw_mime_part_set_param(p, "boundary", "x", &err), MW_EINVAL);
    assert_int_equal(mw_mime_part_set_disposition(p, "attachment", "a\nb", &err), MW_EINVAL);
    assert_int_equal(mw_mime_part_set_content_id(p, "a b", &err), MW_EINVAL);
    mw_mime_part_free(p);
    assert_int_equal(mw_mime_part_new(&p, "nonsense", &err), MW_EINVAL);
    assert_null(p);
    p = leaf("text/plain", "x", 1);
    assert_int_equal(mw_mime_part_header(p, "X-A", "1", MW_MIME_HDR_APPEND, &err), 0);
    assert_int_equal(mw_mime_part_header(p, "X-A", "2", MW_MIME_HDR_APPEND, &err), 0);
    assert_int_equal(mw_mime_headers_count_name(mw_mime_part_headers(p), "x-a"), 2);
    assert_int_equal(mw_mime_part_header(p, "X-A", "3", MW_MIME_HDR_SET, &err), 0);
    assert_string_equal(mw_mime_headers_get(mw_mime_part_headers(p), "x-a", 0), "3");
    assert_int_equal(mw_mime_part_header(p, "X-A", NULL, MW_MIME_HDR_DELETE, &err), 0);
    assert_null(mw_mime_headers_get(mw_mime_part_headers(p), "x-a", 0));
    /* a leaf takes no parts; a part cannot be added twice */
    mw_mime_part *q = leaf("text/plain", "y", 1), *m;
    assert_int_equal(mw_mime_part_add(p, q, &err), MW_EINVAL);
    assert_int_equal(mw_mime_part_new(&m, "multipart/mixed", &err), 0);
    assert_int_equal(mw_mime_part_add(m, q, &err), 0);
    assert_int_equal(mw_mime_part_add(m, q, &err), MW_EINVAL);
    assert_int_equal(mw_mime_part_add(q, m, &err), MW_EINVAL);
    mw_mime_part_free(m);
    mw_mime_part_free(p);
}

/* Tcllib's choice of transfer encoding (seed-semantics §3). */
static int enc_of(const char *type, const char *charset, const char *body, size_t len)
{
    mw_mime_part *p = leaf(type, body, len), *back;
    if (charset) assert_int_equal(mw_mime_part_set_param(p, "charset", charset, NULL), 0);
    char *out;
    size_t n;
    assert_int_equal(mw_mime_part_to_buffer(p, &out, &n, NULL), 0);
    assert_int_equal(mw_mime_parse(&back, out, n, NULL, NULL), 0);
    int e = mw_mime_part_encoding(back);
    mw_mime_part_free(back);
    mw_mime_part_free(p);
    free(out);
    return e;
}

static void test_encoding_choice(void **state)
{
    (void)state;
    assert_int_equal(enc_of("image/gif", NULL, "GIF89a", 6), MW_MIME_ENC_BASE64);
    assert_int_equal(enc_of("audio/x", NULL, "abc", 3), MW_MIME_ENC_BASE64);
    assert_int_equal(enc_of("text/plain", NULL, "short\nlines\n", 12), MW_MIME_ENC_NONE);
    assert_int_equal(enc_of("text/plain", "utf-8", "caf\xc3\xa9\n", 6), MW_MIME_ENC_BASE64);
    assert_int_equal(enc_of("text/plain", "iso-8859-1", "caf\xe9\n", 5), MW_MIME_ENC_QP);
    assert_int_equal(enc_of("text/plain", NULL, "caf\xe9\n", 5), MW_MIME_ENC_8BIT);
    assert_int_equal(enc_of("text/plain", NULL, ".leading dot\n", 13), MW_MIME_ENC_QP);
    assert_int_equal(enc_of("text/plain", NULL, "a\nFrom me\n", 10), MW_MIME_ENC_QP);
    assert_int_equal(enc_of("text/plain", NULL, "trailing \n", 10), MW_MIME_ENC_QP);
    char longl[100];
    memset(longl, 'a', sizeof longl);
    assert_int_equal(enc_of("text/plain", NULL, longl, sizeof longl), MW_MIME_ENC_QP);
    assert_int_equal(enc_of("application/octet-stream", NULL, "\x00\x01", 2), MW_MIME_ENC_BASE64);
    assert_int_equal(enc_of("application/json", NULL, "{}\n", 3), MW_MIME_ENC_NONE);
    /* forced by the caller */
    mw_mime_part *p = leaf("text/plain", "abc", 3), *back;
    assert_int_equal(mw_mime_part_set_encoding(p, MW_MIME_ENC_BASE64, NULL), 0);
    char *out;
    size_t n;
    assert_int_equal(mw_mime_part_to_buffer(p, &out, &n, NULL), 0);
    assert_non_null(strstr(out, "Content-Transfer-Encoding: base64\r\n\r\nYWJj\r\n"));
    assert_int_equal(mw_mime_parse(&back, out, n, NULL, NULL), 0);
    assert_int_equal(mw_mime_part_encoding(back), MW_MIME_ENC_BASE64);
    mw_mime_part_free(back);
    free(out);
    assert_int_equal(mw_mime_part_set_encoding(p, 99, NULL), MW_EINVAL);
    mw_mime_part_free(p);
}

/* A body that contains what looks like boundaries of the usual style
 * does not confuse the structure; the boundary is not in the content. */
static void test_boundary_and_file(void **state)
{
    (void)state;
    char path[] = "/tmp/mw-mime-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i % 251);
    assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    mw_mime_part *root, *f, *t;
    mw_error err = {0};
    assert_int_equal(mw_mime_part_new(&root, "multipart/mixed", &err), 0);
    const char *tricky = "--=_mw_\n--\n--=_mw_00000000000000000000000000000000--\n";
    t = leaf("text/plain", tricky, strlen(tricky));
    assert_int_equal(mw_mime_part_set_encoding(t, MW_MIME_ENC_7BIT, &err), 0);
    assert_int_equal(mw_mime_part_add(root, t, &err), 0);
    assert_int_equal(mw_mime_part_new(&f, "application/octet-stream", &err), 0);
    assert_int_equal(mw_mime_part_set_body_file(f, path, &err), 0);
    assert_int_equal(mw_mime_part_decoded_size(f), sizeof big);
    assert_int_equal(mw_mime_part_decoded_size(t), strlen(tricky));
    assert_int_equal(mw_mime_part_set_body_file(t, "/", &err), MW_EIO);
    assert_int_equal(mw_mime_part_set_disposition(f, "attachment", "big.bin", &err), 0);
    assert_int_equal(mw_mime_part_add(root, f, &err), 0);
    char *out;
    size_t n;
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), 0);
    struct bodies b = {0};
    mw_mime_part *back = parse_collect(out, n, &b);
    assert_int_equal(mw_mime_part_child_count(back), 2);
    size_t bl;
    const char *bd = body_of(&b, "1.2", &bl);
    assert_int_equal(bl, sizeof big);
    assert_memory_equal(bd, big, sizeof big);
    bd = body_of(&b, "1.1", &bl);
    assert_int_equal(bl, strlen(tricky) + 3); /* LF became CRLF */
    assert_int_equal(mw_mime_part_flags(back), 0);
    free_bodies(&b);
    mw_mime_part_free(back);
    free(out);
    /* A file that vanished is an I/O error at write time. */
    unlink(path);
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), MW_EIO);
    assert_int_equal(mw_mime_part_set_body_file(f, path, &err), MW_EIO);
    mw_mime_part_free(root);
    /* An empty multipart cannot be written. */
    assert_int_equal(mw_mime_part_new(&root, "multipart/mixed", &err), 0);
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), MW_EINVAL);
    mw_mime_part_free(root);
}

/* Reads a whole reader with reads of at most step bytes. */
static char *read_all_pull(mw_mime_reader *r, size_t step, size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    for (;;) {
        while (cap - n < step)
            out = realloc(out, cap *= 2);
        long got = mw_mime_reader_read(out + n, step, r);
        assert_true(got >= 0);
        if (!got) break;
        assert_true((size_t)got <= step);
        n += (size_t)got;
    }
    *len = n;
    return out;
}

/* The boundary a written multipart got: the writer picks a fresh one each
 * time, so outputs are compared with it replaced. */
static void unboundary(char *m, size_t n)
{
    char *b = strstr(m, "boundary=\"");
    assert_non_null(b);
    b += 10;
    size_t bl = (size_t)(strchr(b, '"') - b);
    char pat[80];
    assert_true(bl < sizeof pat);
    memcpy(pat, b, bl);
    for (char *q = m; (q = memmem(q, n - (size_t)(q - m), pat, bl)); q += bl)
        memset(q, 'B', bl);
}

/* The pull reader gives the writer's bytes, whatever the read size, and
 * encodes a file-backed body as it goes. */
static void test_reader_matches_writer(void **state)
{
    (void)state;
    char path[] = "/tmp/mw-mime-reader-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7 % 253);
    assert_int_equal(write(fd, big, sizeof big), (ssize_t)sizeof big);
    close(fd);
    mw_error err = {0};
    mw_mime_part *root, *f, *t, *inner;
    assert_int_equal(mw_mime_part_new(&root, "multipart/mixed", &err), 0);
    assert_int_equal(mw_mime_part_header(root, "Subject", "alert", MW_MIME_HDR_SET, &err), 0);
    assert_int_equal(
        mw_mime_part_header(root, "Date", "Mon, 7 Dec 2026 06:00:00 +0000", MW_MIME_HDR_SET, &err),
        0);
    assert_int_equal(mw_mime_part_header(root, "Message-ID", "<r@x.test>", MW_MIME_HDR_SET, &err),
                     0);
    static const char alert[] = "disk at 97%\nFrom here on\n";
    t = leaf("text/plain", alert, sizeof alert - 1);
    assert_int_equal(mw_mime_part_add(root, t, &err), 0);
    assert_int_equal(mw_mime_part_new(&f, "application/octet-stream", &err), 0);
    assert_int_equal(mw_mime_part_set_body_file(f, path, &err), 0);
    assert_int_equal(mw_mime_part_set_disposition(f, "attachment", "log.bin", &err), 0);
    assert_int_equal(mw_mime_part_add(root, f, &err), 0);
    inner = leaf("text/plain", "inner\n", 6);
    mw_mime_part *msg;
    assert_int_equal(mw_mime_message_new(&msg, inner, &err), 0);
    assert_int_equal(mw_mime_part_add(root, msg, &err), 0);
    char *want;
    size_t wn;
    assert_int_equal(mw_mime_part_to_buffer(root, &want, &wn, &err), 0);
    unboundary(want, wn);
    static const size_t steps[] = {1, 7, 76, 4096, 1 << 20};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        mw_mime_reader *r;
        assert_int_equal(mw_mime_reader_new(&r, root, &err), 0);
        size_t n;
        char *got = read_all_pull(r, steps[i], &n);
        unboundary(got, n);
        assert_int_equal(n, wn);
        assert_memory_equal(got, want, n);
        assert_int_equal(mw_mime_reader_read(got, 10, r), 0); /* the end stays the end */
        free(got);
        mw_mime_reader_free(r);
    }
    /* The file goes away between planning and reading: MW_EIO, named, and
     * the same code again. */
    mw_mime_reader *r;
    assert_int_equal(mw_mime_reader_new(&r, root, &err), 0);
    unlink(path);
    char buf[4096];
    long got;
    while ((got = mw_mime_reader_read(buf, sizeof buf, r)) > 0) {}
    assert_int_equal(got, MW_EIO);
    assert_non_null(strstr(mw_mime_reader_error(r)->message, path));
    assert_int_equal(mw_mime_reader_read(buf, sizeof buf, r), MW_EIO);
    mw_mime_reader_free(r);
    assert_int_equal(mw_mime_reader_new(NULL, root, &err), MW_EINVAL);
    free(want);
    mw_mime_part_free(root);
}

static int count_warn;
static void on_warn(mw_mime_part *p, const char *what, void *ud)
{
    (void)p;
    (void)what;
    (void)ud;
    count_warn++;
}

static void test_parser_limits(void **state)
{
    (void)state;
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    mw_mime_part *root;
    mw_error err = {0};
    /* header field size */
    o.headers.max_field_len = 100;
    char msg[400];
    snprintf(msg, sizeof msg, "Subject: %0200d\r\n\r\nbody", 0);
    assert_int_equal(mw_mime_parse(&root, msg, strlen(msg), &o, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "longer than 100"));
    /* in a sub-part too, and the path is named */
    snprintf(msg, sizeof msg,
             "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX: %0200d\r\n\r\n--b--\r\n",
             0);
    assert_int_equal(mw_mime_parse(&root, msg, strlen(msg), &o, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "part 1.1"));
    /* depth */
    o = (mw_mime_parse_opts)MW_MIME_PARSE_OPTS_INIT;
    o.max_depth = 2;
    o.on_warning = on_warn;
    count_warn = 0;
    const char *deep = "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n"
                       "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
                       "Content-Type: multipart/mixed; boundary=c\r\n\r\n--c\r\n\r\nx\r\n--c--\r\n"
                       "--b--\r\n--a--\r\n";
    assert_int_equal(mw_mime_parse(&root, deep, strlen(deep), &o, &err), 0);
    mw_mime_part *c = mw_mime_part_child(mw_mime_part_child(root, 0), 0);
    assert_string_equal(mw_mime_part_path(c), "1.1.1");
    assert_true(mw_mime_part_flags(c) & MW_MIME_F_TOO_DEEP);
    assert_int_equal(mw_mime_part_child_count(c), 0);
    assert_true(count_warn >= 1);
    char *out;
    size_t n;
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), 0);
    assert_int_equal(n, strlen(deep));
    assert_memory_equal(out, deep, n);
    free(out);
    mw_mime_part_free(root);
    /* parts */
    o = (mw_mime_parse_opts)MW_MIME_PARSE_OPTS_INIT;
    o.max_parts = 3;
    const char *many =
        "Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\n\r\n1\r\n--a\r\n\r\n2"
        "\r\n--a\r\n\r\n3\r\n--a\r\n\r\n4\r\n--a--\r\n";
    assert_int_equal(mw_mime_parse(&root, many, strlen(many), &o, &err), 0);
    assert_int_equal(mw_mime_part_child_count(root), 2);
    assert_true(mw_mime_part_flags(root) & MW_MIME_F_TOO_MANY);
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), 0);
    assert_memory_equal(out, many, n);
    free(out);
    mw_mime_part_free(root);
    /* kept bytes */
    o = (mw_mime_parse_opts)MW_MIME_PARSE_OPTS_INIT;
    o.max_kept = 10;
    assert_int_equal(mw_mime_parse(&root, "A: b\r\n\r\n0123456789abc", 21, &o, &err), MW_ETOOBIG);
    /* streaming: bodies not kept cannot be written back */
    o = (mw_mime_parse_opts)MW_MIME_PARSE_OPTS_INIT;
    o.keep_bodies = 0;
    assert_int_equal(mw_mime_parse(&root, "A: b\r\n\r\nxyz", 11, &o, &err), 0);
    assert_int_equal(mw_mime_part_decoded_size(root), 3);
    assert_int_equal(mw_mime_part_to_buffer(root, &out, &n, &err), MW_ESTATE);
    mw_mime_part_free(root);
    o.version = 7;
    assert_int_equal(mw_mime_parse(&root, "", 0, &o, &err), MW_EINVAL);
}

static int stop_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    (void)p, (void)d, (void)n, (void)ud;
    return 42; /* the caller's own reason: it comes back unchanged */
}

static void test_to_utf8_and_cancel(void **state)
{
    (void)state;
    const char *m = "Content-Type: text/plain; charset=iso-8859-1\r\n"
                    "Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9 cr=E8me";
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    struct bodies b = {0};
    o.on_body = collect;
    o.userdata = &b;
    o.to_utf8 = 1;
    mw_mime_part *root;
    /* byte by byte, so multibyte output is cut everywhere */
    mw_mime_parser *p;
    assert_int_equal(mw_mime_parser_new(&p, &o, NULL), 0);
    for (size_t i = 0; m[i]; i++)
        assert_int_equal(mw_mime_parser_feed(p, m + i, 1), 0);
    assert_int_equal(mw_mime_parser_finish(p, &root), 0);
    mw_mime_parser_free(p);
    size_t bl;
    const char *bd = body_of(&b, "1", &bl);
    assert_string_equal(bd, "caf\xc3\xa9 cr\xc3\xa8me");
    assert_int_equal(mw_mime_part_decoded_size(root), 10); /* before conversion */
    free_bodies(&b);
    mw_mime_part_free(root);

    o.on_body = stop_body;
    o.to_utf8 = 0; /* converted text comes in 4 KiB blocks: this one only at the end */
    mw_error err = {0};
    assert_int_equal(mw_mime_parse(&root, m, strlen(m), &o, &err), 42);
    assert_non_null(strstr(err.message, "stopped by the body callback (42)"));
    assert_int_equal(mw_mime_parser_new(&p, &o, NULL), 0);
    assert_int_equal(mw_mime_parser_feed(p, m, strlen(m)), 42);
    assert_int_equal(mw_mime_parser_feed(p, "x", 1), MW_ESTATE);
    assert_int_equal(mw_mime_parser_finish(p, &root), MW_ESTATE);
    mw_mime_parser_free(p);
}

/* A growing string for generated messages. */
typedef struct gen {
    char *p;
    size_t n, cap;
} gen;

static void gen_add(gen *g, const char *s, size_t n)
{
    if (g->n + n + 1 > g->cap) {
        g->cap = (g->n + n + 1) * 2;
        g->p = realloc(g->p, g->cap);
        assert_non_null(g->p);
    }
    memcpy(g->p + g->n, s, n);
    g->n += n;
    g->p[g->n] = '\0';
}

static void gen_str(gen *g, const char *s)
{
    gen_add(g, s, strlen(s));
}

/* The default bounds, each hit by a message made for it.  Nesting: 5000
 * multiparts inside each other (and 5000 message/rfc822) parse; from the
 * default depth 32 on a part is a leaf flagged MW_MIME_F_TOO_DEEP. */
static void test_default_depth_bound(void **state)
{
    (void)state;
    for (int rfc822 = 0; rfc822 < 2; rfc822++) {
        gen g = {0};
        char line[128];
        for (int i = 0; i < 5000; i++) {
            if (rfc822) {
                gen_str(&g, "Content-Type: message/rfc822\r\n\r\n");
            } else {
                snprintf(line, sizeof line,
                         "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i);
                gen_str(&g, line);
            }
        }
        gen_str(&g, "\r\ninnermost\r\n");
        mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
        o.on_warning = on_warn;
        count_warn = 0;
        mw_mime_part *root = NULL;
        mw_error err = {0};
        assert_int_equal(mw_mime_parse(&root, g.p, g.n, &o, &err), 0);
        mw_mime_part *c = root;
        int depth = 0;
        while (mw_mime_part_child_count(c) > 0) {
            c = mw_mime_part_child(c, 0);
            depth++;
        }
        assert_int_equal(depth, 32);
        assert_true(mw_mime_part_flags(c) & MW_MIME_F_TOO_DEEP);
        assert_true(count_warn >= 1);
        mw_mime_part_free(root);
        free(g.p);
    }
}

/* Parts: 10 050 parts in one multipart; the default max_parts (10000)
 * keeps the tree at 10000 parts, the rest read as the last part's body,
 * and the multipart is flagged MW_MIME_F_TOO_MANY. */
static void test_default_parts_bound(void **state)
{
    (void)state;
    gen g = {0};
    gen_str(&g, "Content-Type: multipart/mixed; boundary=z\r\n\r\n");
    for (int i = 0; i < 10050; i++)
        gen_str(&g, "--z\r\n\r\nx\r\n");
    gen_str(&g, "--z--\r\n");
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    mw_mime_part *root = NULL;
    mw_error err = {0};
    assert_int_equal(mw_mime_parse(&root, g.p, g.n, &o, &err), 0);
    assert_int_equal(mw_mime_part_child_count(root), 9999); /* + the root: 10000 */
    assert_true(mw_mime_part_flags(root) & MW_MIME_F_TOO_MANY);
    mw_mime_part_free(root);
    free(g.p);
}

/* Header fields: 4097 of them (default max_fields 4096), and one field of
 * 300 KiB (default max_field_len 256 KiB): a named MW_ETOOBIG each. */
static void test_default_header_bounds(void **state)
{
    (void)state;
    gen g = {0};
    for (int i = 0; i < 4097; i++)
        gen_str(&g, "X-A: b\r\n");
    gen_str(&g, "\r\nbody\r\n");
    mw_mime_part *root = NULL;
    mw_error err = {0};
    assert_int_equal(mw_mime_parse(&root, g.p, g.n, NULL, &err), MW_ETOOBIG);
    assert_null(root);
    assert_non_null(strstr(err.message, "more than 4096 fields"));
    free(g.p);

    memset(&g, 0, sizeof g);
    gen_str(&g, "Subject: ");
    char chunk[1024];
    memset(chunk, 'a', sizeof chunk);
    for (int i = 0; i < 300; i++)
        gen_add(&g, chunk, sizeof chunk);
    gen_str(&g, "\r\n\r\nbody\r\n");
    assert_int_equal(mw_mime_parse(&root, g.p, g.n, NULL, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "longer than 262144"));
    free(g.p);
}

/* All header blocks together: 40 parts of 600 header bytes each are
 * 24 000 bytes, over 16 x a max_total of 1000: a named MW_ETOOBIG,
 * though each block is within its own bound. */
static void test_all_headers_bound(void **state)
{
    (void)state;
    gen g = {0};
    gen_str(&g, "Content-Type: multipart/mixed; boundary=q\r\n\r\n");
    char hdr[700];
    memset(hdr, 0, sizeof hdr);
    for (int i = 0; i < 40; i++) {
        gen_str(&g, "--q\r\n");
        for (int k = 0; k < 10; k++) {
            snprintf(hdr, sizeof hdr, "X-%d: %054d\r\n", k, i);
            gen_str(&g, hdr);
        }
        gen_str(&g, "\r\nx\r\n");
    }
    gen_str(&g, "--q--\r\n");
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    o.headers.max_total = 1000;
    mw_mime_part *root = NULL;
    mw_error err = {0};
    assert_int_equal(mw_mime_parse(&root, g.p, g.n, &o, &err), MW_ETOOBIG);
    assert_non_null(strstr(err.message, "header blocks of all parts are over the 16000 bytes"));
    /* With a max_total of 2000 (32 000 together) the same message parses. */
    o.headers.max_total = 2000;
    assert_int_equal(mw_mime_parse(&root, g.p, g.n, &o, &err), 0);
    assert_int_equal(mw_mime_part_child_count(root), 40);
    mw_mime_part_free(root);
    free(g.p);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_build_then_parse),
    cmocka_unit_test(test_injection_and_content_fields),
    cmocka_unit_test(test_encoding_choice),
    cmocka_unit_test(test_boundary_and_file),
    cmocka_unit_test(test_reader_matches_writer),
    cmocka_unit_test(test_parser_limits),
    cmocka_unit_test(test_default_depth_bound),
    cmocka_unit_test(test_default_parts_bound),
    cmocka_unit_test(test_default_header_bounds),
    cmocka_unit_test(test_all_headers_bound),
    cmocka_unit_test(test_to_utf8_and_cancel),
};
MW_TEST_MAIN(tests)
