/* Unit tests of the netrc helper (src/util/netrc.c): matching, default,
 * quoting, macdef, permissions, and MAILHOST. */
#include "mwtest.h"

#include "mailwire/netrc.h"
#include "util/netrc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int parse(mw_netrc_entry *e, const char *text, const char *host, const char *login)
{
    mw_error err;
    mw_error_clear(&err);
    return mwi_netrc_parse(e, text, strlen(text), host, login, &err);
}

static void test_match_case_insensitive(void **state)
{
    (void)state;
    mw_netrc_entry e;
    const char *t = "machine other login o password po\n"
                    "machine Mail.Example.ORG login alice password s3cret account acc\n";
    assert_int_equal(parse(&e, t, "mail.example.org", NULL), 1);
    assert_string_equal(e.login, "alice");
    assert_string_equal(e.password, "s3cret");
    assert_string_equal(e.account, "acc");
    assert_int_equal(e.is_default, 0);
    assert_int_equal(parse(&e, t, "nowhere", NULL), 0);
    assert_string_equal(e.login, "");
}

static void test_default_honoured(void **state)
{
    (void)state;
    mw_netrc_entry e;
    /* default applies only when no machine entry matches, wherever it is. */
    const char *t = "default login anon password guest\nmachine h login u password p\n";
    assert_int_equal(parse(&e, t, "h", NULL), 1);
    assert_string_equal(e.login, "u");
    assert_int_equal(parse(&e, t, "x", NULL), 1);
    assert_string_equal(e.login, "anon");
    assert_int_equal(e.is_default, 1);
}

static void test_login_filter(void **state)
{
    (void)state;
    mw_netrc_entry e;
    const char *t = "machine h login a password pa\nmachine h login b password pb\n";
    assert_int_equal(parse(&e, t, "h", "b"), 1);
    assert_string_equal(e.password, "pb");
    assert_int_equal(parse(&e, t, "h", NULL), 1);
    assert_string_equal(e.password, "pa");
    assert_int_equal(parse(&e, t, "h", "c"), 0);
}

static void test_quotes_comments_macdef(void **state)
{
    (void)state;
    mw_netrc_entry e;
    const char *t = "# a comment line\n"
                    "macdef init\ncd /pub\nmachine fake login x password y\n\n"
                    "machine h login \"user name\" password \"p\\\"w d\"\n";
    assert_int_equal(parse(&e, t, "h", NULL), 1);
    assert_string_equal(e.login, "user name");
    assert_string_equal(e.password, "p\"w d");
    assert_int_equal(parse(&e, t, "fake", NULL), 0); /* inside the macro: not an entry */
}

static void test_syntax_errors(void **state)
{
    (void)state;
    mw_netrc_entry e;
    assert_int_equal(parse(&e, "machine h login", "h", NULL), MW_EFORMAT);
    assert_int_equal(parse(&e, "machine h password \"open", "h", NULL), MW_EFORMAT);
    assert_int_equal(parse(&e, "machine h frobnicate 1", "h", NULL), MW_EFORMAT);
    char big[400];
    memcpy(big, "machine h login ", 16);
    memset(big + 16, 'a', 300);
    big[316] = '\0';
    assert_int_equal(parse(&e, big, "h", NULL), MW_EFORMAT);
    assert_int_equal(parse(&e, "", "h", NULL), 0);
}

static void test_file_permissions(void **state)
{
    (void)state;
    char path[] = "/tmp/mw-netrc-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *t = "machine h login u password p\n";
    assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    mw_netrc_entry e;
    mw_error err;
    mw_error_clear(&err);
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(mw_netrc_lookup(&e, path, "H", NULL, &err), 1);
    assert_string_equal(e.password, "p");
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(mw_netrc_lookup(&e, path, "h", NULL, &err), MW_EPOLICY);
    assert_non_null(strstr(err.message, "group or others"));
    assert_int_equal(chmod(path, 0604), 0);
    assert_int_equal(mw_netrc_lookup(&e, path, "h", NULL, &err), MW_EPOLICY);
    unlink(path);
    assert_int_equal(mw_netrc_lookup(&e, path, "h", NULL, &err), 0); /* missing file */
    assert_int_equal(mw_netrc_lookup(&e, "/tmp", "h", NULL, &err), MW_EPOLICY);
    mw_netrc_entry_clear(&e);
    assert_string_equal(e.password, "");
}

static void test_env_helpers(void **state)
{
    (void)state;
    char buf[512];
    setenv("HOME", "/home/someone", 1);
    assert_int_equal(mw_netrc_default_path(buf, sizeof buf), 0);
    assert_string_equal(buf, "/home/someone/.netrc");
    assert_int_equal(mw_netrc_default_path(buf, 8), MW_ETOOBIG);
    unsetenv("HOME");
    assert_int_equal(mw_netrc_default_path(buf, sizeof buf), MW_EINVAL);
    setenv("MAILHOST", "pop.example.org", 1);
    assert_string_equal(mw_mailhost(), "pop.example.org");
    setenv("MAILHOST", "", 1);
    assert_null(mw_mailhost());
    unsetenv("MAILHOST");
    assert_null(mw_mailhost());
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_match_case_insensitive),
    cmocka_unit_test(test_default_honoured),
    cmocka_unit_test(test_login_filter),
    cmocka_unit_test(test_quotes_comments_macdef),
    cmocka_unit_test(test_syntax_errors),
    cmocka_unit_test(test_file_permissions),
    cmocka_unit_test(test_env_helpers),
};

MW_TEST_MAIN(tests)
