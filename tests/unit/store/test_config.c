/* The accounts config parser: inheritance, quoting, ~ expansion, every
 * kind of bad line reported as FILE:LINE: what, and the permission rules
 * for files holding passwords. */
#include "mailwire/config.h"
#include "mwtest.h"
#include "storetest.h"

static const char example[] = "# mailwire accounts\n"
                              "defaults\n"
                              "  tls starttls\n"
                              "  delivery maildir ~/Maildir\n"
                              "  timeout 30\n"
                              "\n"
                              "account work\n"
                              "host pop.example.org\n"
                              "port 995\n"
                              "tls implicit\n"
                              "user \"me \\\"quoted\\\" \\\\ here\"\n"
                              "passwordeval pass show mail/work\n"
                              "cafile ~/ca.pem\n"
                              "crlfile ~/crl.pem\n"
                              "pin sha256:AAAA+/==\n"
                              "keep on\n"
                              "size_limit 10m\n"
                              "delete_after_days 7\r\n"
                              "\t# indented comment\n"
                              "account work-send : work\n"
                              "port 587\n"
                              "from Me@Example.org\n"
                              "delivery mda /usr/bin/procmail -d me\n"
                              "\n"
                              "defaults\n"
                              "only_new off\n"
                              "account home\n"
                              "host mail.home.example\n"
                              "password_file ~/.pw\n"
                              "delivery mbox /var/mail/me\n"
                              "filter /usr/local/bin/spamcheck --quick\n"
                              "auth scram-sha-256\n"
                              "cert ~\n"
                              "account both : home, work-send\n"
                              "size_limit 512";

static void parse_example(void **state)
{
    (void)state;
    mw_config *c;
    mw_error err;
    mw_config_options o = MW_CONFIG_OPTIONS_INIT;
    o.home = "/home/me";
    int rc = mw_config_parse(&c, example, sizeof example - 1, "cfg", &o, &err);
    if (rc) fail_msg("%s", err.message);
    assert_int_equal(mw_config_count(c), 4);

    const mw_account *w = mw_config_find(c, "work");
    assert_non_null(w);
    assert_ptr_equal(w, mw_config_account_at(c, 0));
    assert_string_equal(w->file, "cfg");
    assert_int_equal(w->line, 7);
    assert_string_equal(w->host, "pop.example.org");
    assert_int_equal(w->port, 995);
    assert_int_equal(w->tls, MW_CONFIG_TLS_IMPLICIT);
    assert_string_equal(w->user, "me \"quoted\" \\ here");
    assert_string_equal(w->passwordeval, "pass show mail/work");
    assert_string_equal(w->cafile, "/home/me/ca.pem");
    assert_string_equal(w->crlfile, "/home/me/crl.pem");
    assert_string_equal(w->pin, "sha256:AAAA+/==");
    assert_int_equal(w->keep, 1);
    assert_int_equal(w->only_new, 1);
    assert_int_equal(w->size_limit, 10 * 1024 * 1024);
    assert_int_equal(w->delete_after_days, 7);
    assert_int_equal(w->timeout_s, 30);
    assert_int_equal(w->delivery, MW_STORE_MAILDIR);
    assert_string_equal(w->delivery_target, "/home/me/Maildir");
    assert_null(w->from);
    assert_null(w->password);

    const mw_account *s = mw_config_find(c, "work-send");
    assert_string_equal(s->host, "pop.example.org"); /* from the parent */
    assert_int_equal(s->port, 587);
    assert_int_equal(s->tls, MW_CONFIG_TLS_IMPLICIT);
    assert_int_equal(s->delivery, MW_STORE_MDA);
    assert_string_equal(s->delivery_target, "/usr/bin/procmail -d me");
    assert_ptr_equal(mw_config_find_by_from(c, "me@example.ORG"), s);
    assert_null(mw_config_find_by_from(c, "other@example.org"));

    const mw_account *h = mw_config_find(c, "home");
    assert_int_equal(h->tls, MW_CONFIG_TLS_STARTTLS); /* defaults */
    assert_int_equal(h->only_new, 0);                 /* second defaults */
    assert_int_equal(h->timeout_s, 30);
    assert_int_equal(h->keep, 0);
    assert_int_equal(h->delete_after_days, -1);
    assert_int_equal(h->port, 0);
    assert_string_equal(h->password_file, "/home/me/.pw");
    assert_int_equal(h->delivery, MW_STORE_MBOX);
    assert_string_equal(h->delivery_target, "/var/mail/me");
    assert_string_equal(h->filter, "/usr/local/bin/spamcheck --quick");
    assert_string_equal(h->auth, "scram-sha-256");
    assert_string_equal(h->cert, "/home/me");

    /* P1 then P2: work-send's settings win where both have one */
    const mw_account *b = mw_config_find(c, "both");
    assert_string_equal(b->host, "pop.example.org");
    assert_int_equal(b->port, 587);
    assert_string_equal(b->password_file, "/home/me/.pw");
    assert_int_equal(b->delivery, MW_STORE_MDA);
    assert_int_equal(b->size_limit, 512);
    assert_string_equal(b->from, "Me@Example.org");
    assert_null(mw_config_find(c, "nope"));
    assert_null(mw_config_account_at(c, 4));
    mw_config_free(c);
}

static void expect_bad(const char *text, int code, int line, const char *what)
{
    mw_config *c = (mw_config *)1;
    mw_error err;
    mw_error_clear(&err);
    mw_config_options o = MW_CONFIG_OPTIONS_INIT;
    o.home = "/h";
    int rc = mw_config_parse(&c, text, strlen(text), "/etc/mw.conf", &o, &err);
    if (rc != code) fail_msg("'%s': code %d, want %d (%s)", text, rc, code, err.message);
    assert_null(c);
    char want[64];
    snprintf(want, sizeof want, "/etc/mw.conf:%d: ", line);
    if (strncmp(err.message, want, strlen(want)) != 0 || !strstr(err.message, what))
        fail_msg("'%s': message '%s', want '%s' and '%s'", text, err.message, want, what);
}

static void bad_lines(void **state)
{
    (void)state;
    expect_bad("host x\n", MW_EFORMAT, 1, "\"host\" before any");
    expect_bad("account a\nhots x\n", MW_EFORMAT, 2, "unknown key \"hots\"");
    expect_bad("account a\nport 0\n", MW_EFORMAT, 2, "port: \"0\" is not a number");
    expect_bad("account a\nport 65536\n", MW_EFORMAT, 2, "port");
    expect_bad("account a\nport 99999999999999999999999\n", MW_EFORMAT, 2, "port");
    expect_bad("account a\nport\n", MW_EFORMAT, 2, "port needs a value");
    expect_bad("account a\ntls yes\n", MW_EFORMAT, 2, "tls: \"yes\" is not one of");
    expect_bad("account a\nkeep yes\n", MW_EFORMAT, 2, "keep: \"yes\" is not on or off");
    expect_bad("account a\nonly_new 1\n", MW_EFORMAT, 2, "only_new");
    expect_bad("account a\nsize_limit 10x\n", MW_EFORMAT, 2, "size_limit");
    expect_bad("account a\nsize_limit 99999999999g\n", MW_EFORMAT, 2, "size_limit");
    expect_bad("account a\ntimeout -1\n", MW_EFORMAT, 2, "timeout");
    expect_bad("account a\ndelete_after_days x\n", MW_EFORMAT, 2, "delete_after_days");
    expect_bad("account a\ndelivery maildir\n", MW_EFORMAT, 2, "needs a path");
    expect_bad("account a\ndelivery mda\n", MW_EFORMAT, 2, "needs a command");
    expect_bad("account a\ndelivery pigeon x\n", MW_EFORMAT, 2, "expected maildir PATH");
    expect_bad("account a\npin md5:xx\n", MW_EFORMAT, 2, "pin");
    expect_bad("account a\nauth pla in\n", MW_EFORMAT, 2, "auth");
    expect_bad("account a\nhost a b\n", MW_EFORMAT, 2, "must not contain spaces");
    expect_bad("account a\nuser \"unterminated\n", MW_EFORMAT, 2, "missing closing");
    expect_bad("account a\nuser \"x\" y\n", MW_EFORMAT, 2, "text after the closing");
    expect_bad("account a\nuser \"a\\n\"\n", MW_EFORMAT, 2, "escapes");
    expect_bad("account a\npassword \"\"\n", MW_EFORMAT, 2, "password needs a value");
    expect_bad("account a\ncafile ~bob/ca\n", MW_EFORMAT, 2, "~user");
    expect_bad("\n\naccount a\naccount a\n", MW_EFORMAT, 4, "defined twice (first on line 3)");
    expect_bad("account a : b\n", MW_EFORMAT, 1, "parent \"b\" is not defined above");
    expect_bad("account a\naccount c : a,\n", MW_EFORMAT, 2, "empty parent");
    expect_bad("account a b\n", MW_EFORMAT, 1, "account name");
    expect_bad("account\n", MW_EFORMAT, 1, "account name");
    expect_bad("defaults x\n", MW_EFORMAT, 1, "takes no argument");
    expect_bad("account a\nuser a\rb\n", MW_EFORMAT, 2, "carriage return");
    char nul[] = "account a\nuser a\0b\n";
    mw_config *c;
    mw_error err;
    assert_int_equal(mw_config_parse(&c, nul, sizeof nul - 1, "f", NULL, &err), MW_EFORMAT);
    assert_non_null(strstr(err.message, "f:2: NUL byte"));
    char *longl = malloc(5000);
    memcpy(longl, "account a\nuser ", 15);
    memset(longl + 15, 'x', 4500);
    longl[4515] = '\0';
    expect_bad(longl, MW_ETOOBIG, 2, "longer than 4096");
    free(longl);
    /* "~" with no home known */
    assert_int_equal(mw_config_parse(&c, "account a\ncafile ~/x\n", 20, "f", NULL, &err),
                     MW_EFORMAT);
    assert_non_null(strstr(err.message, "f:2: cafile: \"~\" used but no home"));
    /* empty file: no accounts */
    assert_int_equal(mw_config_parse(&c, "", 0, "f", NULL, &err), 0);
    assert_int_equal(mw_config_count(c), 0);
    mw_config_free(c);
}

static void file_permissions(void **state)
{
    (void)state;
    char *dir = st_mkdtemp();
    char path[4200], pw[4200];
    snprintf(path, sizeof path, "%s/config", dir);
    snprintf(pw, sizeof pw, "%s/pw", dir);
    mw_config *c;
    mw_error err;
    const char *with_pw = "account a\nhost h\npassword s3cret\n";
    st_write(path, with_pw, strlen(with_pw));
    chmod(path, 0644);
    assert_int_equal(mw_config_load(&c, path, NULL, &err), MW_EPOLICY);
    assert_null(c);
    assert_non_null(strstr(err.message, "chmod 600"));
    assert_non_null(strstr(err.message, path));
    chmod(path, 0600);
    assert_int_equal(mw_config_load(&c, path, NULL, &err), 0);
    assert_string_equal(mw_config_find(c, "a")->password, "s3cret");
    assert_string_equal(mw_config_find(c, "a")->file, path);
    mw_config_free(c);
    /* no password: any mode is fine */
    st_write(path, "account a\nhost h\n", 17);
    chmod(path, 0644);
    assert_int_equal(mw_config_load(&c, path, NULL, &err), 0);
    mw_config_free(c);
    /* errors in a loaded file name the file */
    st_write(path, "account a\nbogus 1\n", 18);
    assert_int_equal(mw_config_load(&c, path, NULL, &err), MW_EFORMAT);
    char want[4300];
    snprintf(want, sizeof want, "%s:2: unknown key", path);
    assert_non_null(strstr(err.message, want));
    assert_int_equal(mw_config_load(&c, "/nonexistent/cfg", NULL, &err), MW_EIO);
    assert_non_null(strstr(err.message, "/nonexistent/cfg: No such file"));

    /* password files */
    char *secret;
    st_write(pw, "hunter2\r\nsecond line\n", 21);
    chmod(pw, 0640);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), MW_EPOLICY);
    chmod(pw, 0600);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), 0);
    assert_string_equal(secret, "hunter2");
    free(secret);
    st_write(pw, "\n", 1);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), MW_EFORMAT);
    st_write(pw, "ab\0c\n", 5);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), MW_EFORMAT);
    /* One limit for every secret's first line: MW_SECRET_MAX. */
    char *big = malloc(MW_SECRET_MAX + 1);
    assert_non_null(big);
    memset(big, 'p', MW_SECRET_MAX + 1);
    st_write(pw, big, MW_SECRET_MAX + 1);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), MW_ETOOBIG);
    st_write(pw, big, MW_SECRET_MAX);
    assert_int_equal(mw_config_read_password_file(&secret, pw, &err), 0);
    assert_int_equal(strlen(secret), MW_SECRET_MAX);
    free(secret);
    free(big);
    st_rm_rf(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_example),
        cmocka_unit_test(bad_lines),
        cmocka_unit_test(file_permissions),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
