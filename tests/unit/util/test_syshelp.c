/* The errno text and random-bytes helpers of src/util.  Built twice: with
 * the project's _GNU_SOURCE (GNU strerror_r) and with POSIX only (XSI
 * strerror_r), so both shapes of mwi_errno_text are run. */
#include "mwtest.h"

#include "mailwire/error.h"
#include "util/err.h"
#include "util/random.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void errno_text_names_the_error(void **state)
{
    (void)state;
    char a[MW_ERRNO_TEXT_SIZE], b[MW_ERRNO_TEXT_SIZE];
    const char *ta = mwi_errno_text(ENOENT, a, sizeof a);
    const char *tb = mwi_errno_text(EACCES, b, sizeof b);
    assert_ptr_equal(ta, a);
    assert_ptr_equal(tb, b);
    assert_true(strlen(a) > 0);
    assert_true(strlen(b) > 0);
    assert_string_not_equal(a, b);
    /* A real text, not the fallback for an unknown number. */
    assert_string_not_equal(a, "error 2");
    assert_null(strchr(a, '\n'));
}

static void errno_text_is_cut_and_terminated(void **state)
{
    (void)state;
    char full[MW_ERRNO_TEXT_SIZE];
    mwi_errno_text(ENOENT, full, sizeof full);
    char small[6];
    memset(small, 'x', sizeof small);
    mwi_errno_text(ENOENT, small, sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_memory_equal(small, full, sizeof small - 1);
    char one[1] = {'x'};
    assert_string_equal(mwi_errno_text(ENOENT, one, sizeof one), "");
    char untouched = 'x';
    assert_string_equal(mwi_errno_text(ENOENT, &untouched, 0), "");
    assert_int_equal(untouched, 'x');
}

static void errno_text_unknown_number(void **state)
{
    (void)state;
    char buf[MW_ERRNO_TEXT_SIZE];
    mwi_errno_text(987654, buf, sizeof buf);
    assert_true(strlen(buf) > 0);
    assert_non_null(strstr(buf, "987654"));
}

static void errno_text_macro_in_an_error_record(void **state)
{
    (void)state;
    mw_error err;
    mw_error_clear(&err);
    char want[MW_ERRNO_TEXT_SIZE];
    mwi_errno_text(EPIPE, want, sizeof want);
    assert_int_equal(mwi_err_set(&err, MW_EIO, "write: %s", MW_ERRNO_TEXT(EPIPE)), MW_EIO);
    assert_true(strncmp(err.message, "write: ", 7) == 0);
    assert_string_equal(err.message + 7, want);
}

static void random_bytes_fill_and_differ(void **state)
{
    (void)state;
    unsigned char a[64], b[64], zero[64] = {0};
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    assert_int_equal(mwi_random_bytes(a, sizeof a, NULL), 0);
    assert_int_equal(mwi_random_bytes(b, sizeof b, NULL), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_memory_not_equal(a, zero, sizeof a);
    assert_int_equal(mwi_random_bytes(NULL, 0, NULL), 0);
}

static void random_bytes_fill_a_large_buffer_to_the_end(void **state)
{
    (void)state;
    /* Past one getrandom call's 32 MiB limit would be slow; 1 MiB still
     * checks that the tail is written, not only the head. */
    size_t n = 1u << 20;
    unsigned char *p = calloc(n, 1);
    assert_non_null(p);
    assert_int_equal(mwi_random_bytes(p, n, NULL), 0);
    unsigned char zero[256] = {0};
    assert_memory_not_equal(p + n - sizeof zero, zero, sizeof zero);
    free(p);
}

static void random_bytes_fail_with_a_clear_error(void **state)
{
    (void)state;
    /* An unwritable page: the kernel answers EFAULT, and there is no
     * fallback to hide it. */
    long pg = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(p != MAP_FAILED);
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(mwi_random_bytes(p, 16, &err), MW_EIO);
    assert_int_equal(err.code, MW_EIO);
    assert_non_null(strstr(err.message, "getrandom"));
    assert_int_equal(mwi_random_bytes(p, 16, NULL), MW_EIO);
    munmap(p, (size_t)pg);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(errno_text_names_the_error),
    cmocka_unit_test(errno_text_is_cut_and_terminated),
    cmocka_unit_test(errno_text_unknown_number),
    cmocka_unit_test(errno_text_macro_in_an_error_record),
    cmocka_unit_test(random_bytes_fill_and_differ),
    cmocka_unit_test(random_bytes_fill_a_large_buffer_to_the_end),
    cmocka_unit_test(random_bytes_fail_with_a_clear_error),
};
MW_TEST_MAIN(tests)
