/* The one secret reader (src/util/secret.c): first line of a descriptor,
 * a file or a command's output, one limit (MW_SECRET_MAX). */
#include "mwtest.h"

#include "mailwire/config.h"
#include "mailwire/error.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file holding data[0..n) with mode `mode`; its path in path. */
static void make_file(char *path, size_t size, const char *data, size_t n, mode_t mode)
{
    snprintf(path, size, "/tmp/mw-secret-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static char *token_of(size_t n)
{
    char *t = malloc(n + 3);
    assert_non_null(t);
    for (size_t i = 0; i < n; i++)
        t[i] = (char)('a' + i % 26);
    memcpy(t + n, "\r\n", 3);
    return t;
}

static void a_multi_kib_token_from_a_file(void **state)
{
    (void)state;
    char path[64];
    char *t = token_of(1536);
    make_file(path, sizeof path, t, strlen(t), 0600);
    char *out = (char *)1;
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(mw_secret_from_file(&out, path, &err), 0);
    assert_int_equal(strlen(out), 1536);
    assert_memory_equal(out, t, 1536);
    free(out);
    /* The password-file call is the same reader. */
    assert_int_equal(mw_config_read_password_file(&out, path, &err), 0);
    assert_int_equal(strlen(out), 1536);
    free(out);
    unlink(path);
    free(t);
}

static void the_limit_is_exact(void **state)
{
    (void)state;
    char path[64];
    char *t = token_of(MW_SECRET_MAX);
    make_file(path, sizeof path, t, strlen(t), 0600);
    char *out = NULL;
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(mw_secret_from_file(&out, path, &err), 0);
    assert_int_equal(strlen(out), MW_SECRET_MAX);
    free(out);
    unlink(path);
    free(t);
    t = token_of(MW_SECRET_MAX + 1);
    make_file(path, sizeof path, t, strlen(t), 0600);
    out = (char *)1;
    assert_int_equal(mw_secret_from_file(&out, path, &err), MW_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(err.message, "65536"));
    unlink(path);
    free(t);
}

static void bad_first_lines_are_refused(void **state)
{
    (void)state;
    static const struct {
        const char *data;
        size_t n;
        int rc;
    } cases[] = {
        {"", 0, MW_EFORMAT},       {"\nsecond\n", 8, MW_EFORMAT}, {"a\0b\n", 4, MW_EFORMAT},
        {"a\rb\n", 4, MW_EFORMAT}, {"no line end", 11, 0},        {"x\r\n", 3, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[64];
        make_file(path, sizeof path, cases[i].data, cases[i].n, 0600);
        char *out = NULL;
        mw_error err;
        mw_error_clear(&err);
        assert_int_equal(mw_secret_from_file(&out, path, &err), cases[i].rc);
        if (cases[i].rc == 0) assert_true(strlen(out) > 0 && !strchr(out, '\r'));
        free(out);
        unlink(path);
    }
}

static void a_readable_file_is_refused(void **state)
{
    (void)state;
    char path[64];
    make_file(path, sizeof path, "pw\n", 3, 0640);
    char *out = NULL;
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(mw_secret_from_file(&out, path, &err), MW_EPOLICY);
    assert_non_null(strstr(err.message, "group or others"));
    assert_int_equal(mw_secret_from_file(&out, "/nonexistent/mw", &err), MW_EIO);
    unlink(path);
}

static void from_a_command(void **state)
{
    (void)state;
    char *out = NULL;
    mw_error err;
    mw_error_clear(&err);
    /* A 1.5 KiB token, then far more output than a pipe holds. */
    assert_int_equal(mw_secret_from_command(&out,
                                            "head -c 1536 /dev/zero | tr '\\0' t; echo; "
                                            "head -c 300000 /dev/zero",
                                            &err),
                     0);
    assert_int_equal(strlen(out), 1536);
    assert_int_equal(out[0], 't');
    free(out);
    out = (char *)1;
    assert_int_equal(mw_secret_from_command(&out, "echo pw; exit 3", &err), MW_EIO);
    assert_null(out);
    assert_non_null(strstr(err.message, "exit status 3"));
    assert_int_equal(mw_secret_from_command(&out, "true", &err), MW_EFORMAT);
    assert_int_equal(mw_secret_from_command(&out, "", &err), MW_EINVAL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(a_multi_kib_token_from_a_file),
    cmocka_unit_test(the_limit_is_exact),
    cmocka_unit_test(bad_first_lines_are_refused),
    cmocka_unit_test(a_readable_file_is_refused),
    cmocka_unit_test(from_a_command),
};
MW_TEST_MAIN(tests)
