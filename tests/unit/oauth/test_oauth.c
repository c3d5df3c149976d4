/* src/oauth without a network: option checks, the token store (mode,
 * corruption, what status reads), the token provider's choice between the
 * cached token and a refresh, the response parser's limits, form encoding
 * and the secret-store command's failures.  The flows themselves run
 * against the real provider in tests/interop/oauth. */
#include "mailwire/oauth.h"
#include "mwtest.h"
#include "oauth/oauth_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char dir[64];
static char path[128];

static void mkstore(const char *json, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    chmod(path, mode);
}

static mw_oauth *open_oa(const char *token_url)
{
    mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
    o.client_id = "c";
    o.token_url = token_url;
    o.store_path = path;
    o.timeout_ms = 2000;
    mw_oauth *oa = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_new(&oa, &o, &e), 0);
    return oa;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/mw-oauth-unit.XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/sub/store.json", dir);
    char sub[100];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    mkdir(sub, 0700);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static void options_checked(void **state)
{
    (void)state;
    mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
    mw_oauth *oa = (mw_oauth *)1;
    mw_error e;
    assert_int_equal(mw_oauth_new(&oa, &o, &e), MW_EINVAL);
    assert_null(oa);
    assert_non_null(strstr(e.message, "client id"));
    o.client_id = "c";
    assert_int_equal(mw_oauth_new(&oa, &o, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "token endpoint"));
    o.token_url = "https://x/token";
    o.store_path = path;
    o.secret_store_cmd = "true";
    assert_int_equal(mw_oauth_new(&oa, &o, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "both commands"));
    o.version = 99;
    assert_int_equal(mw_oauth_new(&oa, &o, &e), MW_EINVAL);
}

static void not_logged_in(void **state)
{
    (void)state;
    unlink(path);
    mw_oauth *oa = open_oa("https://127.0.0.1:1/token");
    char *t = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_ESTATE);
    assert_null(t);
    assert_non_null(strstr(e.message, "oauth login"));
    mw_oauth_status st;
    assert_int_equal(mw_oauth_get_status(oa, &st, &e), 0);
    assert_int_equal(st.logged_in, 0);
    mw_oauth_free(oa);
}

static void store_readable_by_others_refused(void **state)
{
    (void)state;
    mkstore("{\"refresh_token\":\"r\",\"access_token\":\"a\",\"expires_at\":0}", 0644);
    mw_oauth *oa = open_oa("https://127.0.0.1:1/token");
    char *t = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_EPOLICY);
    assert_non_null(strstr(e.message, "chmod 600"));
    mw_oauth_free(oa);
}

static void corrupt_store_named(void **state)
{
    (void)state;
    mkstore("{\"refresh_token\": \"r\", ", 0600);
    mw_oauth *oa = open_oa("https://127.0.0.1:1/token");
    char *t = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_EFORMAT);
    assert_non_null(strstr(e.message, "not valid JSON"));
    mw_oauth_free(oa);
}

/* A token with time left comes from the cache (the endpoint, port 1, is
 * never reached); one in its last seconds, or refused, means a refresh —
 * which fails here at the network, proving it was tried. */
static void cached_or_refresh(void **state)
{
    (void)state;
    char json[300];
    long long now = (long long)time(NULL);
    snprintf(json, sizeof json,
             "{\"refresh_token\":\"RT\",\"access_token\":\"AT1\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld,\"scope\":\"mail\",\"refreshes\":3}",
             now + 3000, now - 600);
    mkstore(json, 0600);
    mw_oauth *oa = open_oa("https://127.0.0.1:1/token");
    char *t = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), 0);
    assert_string_equal(t, "AT1");
    mw_oauth_token_free(t);
    mw_oauth_status st;
    assert_int_equal(mw_oauth_get_status(oa, &st, &e), 0);
    assert_int_equal(st.logged_in, 1);
    assert_int_equal(st.refreshes, 3);
    assert_string_equal(st.scope, "mail");
    /* refused: a refresh is tried (and fails: nothing listens on port 1) */
    int rc = mw_oauth_token(oa, 1, &t, &e);
    assert_true(rc == MW_ENET || rc == MW_ETIMEOUT);
    assert_null(t);
    /* 40 s left of a 60 s token: the margin (60 s, capped at half the
     * lifetime = 30 s) is not reached: cached */
    snprintf(json, sizeof json,
             "{\"refresh_token\":\"RT\",\"access_token\":\"AT2\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld}",
             now + 40, now - 20);
    mkstore(json, 0600);
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), 0);
    assert_string_equal(t, "AT2");
    mw_oauth_token_free(t);
    /* 10 s left of it: refresh */
    snprintf(json, sizeof json,
             "{\"refresh_token\":\"RT\",\"access_token\":\"AT3\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld}",
             now + 10, now - 50);
    mkstore(json, 0600);
    rc = mw_oauth_token(oa, 0, &t, &e);
    assert_true(rc == MW_ENET || rc == MW_ETIMEOUT);
    /* a clock that went back behind when the token came: refresh */
    snprintf(json, sizeof json,
             "{\"refresh_token\":\"RT\",\"access_token\":\"AT4\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld}",
             now + 100000, now + 90000);
    mkstore(json, 0600);
    rc = mw_oauth_token(oa, 0, &t, &e);
    assert_true(rc == MW_ENET || rc == MW_ETIMEOUT);
    mw_oauth_free(oa);
}

static void plain_http_refused(void **state)
{
    (void)state;
    char json[200];
    long long now = (long long)time(NULL);
    snprintf(json, sizeof json,
             "{\"refresh_token\":\"RT\",\"access_token\":\"A\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld}",
             now - 1, now - 100);
    mkstore(json, 0600);
    mw_oauth *oa = open_oa("http://127.0.0.1:1/token");
    char *t = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_EPOLICY);
    assert_non_null(strstr(e.message, "not https"));
    mw_oauth_free(oa);
}

static void secret_lookup_failure_named(void **state)
{
    (void)state;
    char json[200];
    long long now = (long long)time(NULL);
    snprintf(json, sizeof json,
             "{\"refresh_token_in\":\"command\",\"access_token\":\"A\",\"expires_at\":%lld,"
             "\"obtained_at\":%lld}",
             now - 1, now - 100);
    mkstore(json, 0600);
    mw_oauth_opts o = MW_OAUTH_OPTS_INIT;
    o.client_id = "c";
    o.token_url = "https://127.0.0.1:1/token";
    o.store_path = path;
    o.secret_store_cmd = "cat >/dev/null";
    o.secret_lookup_cmd = "exit 3";
    mw_oauth *oa = NULL;
    mw_error e;
    assert_int_equal(mw_oauth_new(&oa, &o, &e), 0);
    mw_oauth_status st;
    assert_int_equal(mw_oauth_get_status(oa, &st, &e), 0);
    assert_int_equal(st.logged_in, 1);
    char *t = NULL;
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_EIO);
    assert_non_null(strstr(e.message, "exit status 3"));
    assert_non_null(strstr(e.message, "oauth_secret_lookup"));
    mw_oauth_free(oa);
    /* a lookup that prints nothing: log in again */
    o.secret_lookup_cmd = "true";
    assert_int_equal(mw_oauth_new(&oa, &o, &e), 0);
    assert_int_equal(mw_oauth_token(oa, 0, &t, &e), MW_EAUTH);
    assert_non_null(strstr(e.message, "oauth login"));
    mw_oauth_free(oa);
}

static void parser_limits(void **state)
{
    (void)state;
    mw_oauth_resp r;
    mw_error e;
    const char *ok = "{\"access_token\":\"a\",\"token_type\":\"bearer\",\"expires_in\":\"60\"}";
    assert_int_equal(mwi_oauth_parse_resp(ok, strlen(ok), 200, MW_OAUTH_RESP_TOKEN, &r, &e), 0);
    assert_string_equal(r.access_token, "a");
    assert_int_equal(r.expires_in, 60);
    mwi_oauth_resp_clear(&r);
    const char *mac = "{\"access_token\":\"a\",\"token_type\":\"mac\"}";
    assert_int_equal(mwi_oauth_parse_resp(mac, strlen(mac), 200, MW_OAUTH_RESP_TOKEN, &r, &e),
                     MW_EUNSUPPORTED);
    mwi_oauth_resp_clear(&r);
    const char *ctl = "{\"access_token\":\"a\\nb\"}";
    assert_int_equal(mwi_oauth_parse_resp(ctl, strlen(ctl), 200, MW_OAUTH_RESP_TOKEN, &r, &e),
                     MW_EPROTO);
    mwi_oauth_resp_clear(&r);
    const char *neg = "{\"access_token\":\"a\",\"expires_in\":-5}";
    assert_int_equal(mwi_oauth_parse_resp(neg, strlen(neg), 200, MW_OAUTH_RESP_TOKEN, &r, &e),
                     MW_EPROTO);
    mwi_oauth_resp_clear(&r);
    char deep[41];
    memset(deep, '[', 40);
    deep[40] = '\0';
    assert_int_equal(mwi_oauth_parse_resp(deep, strlen(deep), 200, MW_OAUTH_RESP_TOKEN, &r, &e),
                     MW_EPROTO);
    mwi_oauth_resp_clear(&r);
    const char *dup_err = "{\"error\":\"slow_down\"}";
    assert_int_equal(
        mwi_oauth_parse_resp(dup_err, strlen(dup_err), 400, MW_OAUTH_RESP_TOKEN, &r, &e), 0);
    assert_string_equal(r.error, "slow_down");
    mwi_oauth_resp_clear(&r);
    assert_int_equal(mwi_oauth_parse_resp("x", MW_OAUTH_MAX_BODY + 1, 200, 0, &r, &e), MW_ETOOBIG);
    mwi_oauth_resp_clear(&r);
}

static void form_encoding(void **state)
{
    (void)state;
    char *f = NULL;
    assert_int_equal(mwi_oauth_form_add(&f, "a", "x y+z/~-._"), 0);
    assert_int_equal(mwi_oauth_form_add(&f, "b", "\xc3\xa9&="), 0);
    assert_string_equal(f, "a=x%20y%2Bz%2F~-._&b=%C3%A9%26%3D");
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(options_checked),
        cmocka_unit_test(not_logged_in),
        cmocka_unit_test(store_readable_by_others_refused),
        cmocka_unit_test(corrupt_store_named),
        cmocka_unit_test(cached_or_refresh),
        cmocka_unit_test(plain_http_refused),
        cmocka_unit_test(secret_lookup_failure_named),
        cmocka_unit_test(parser_limits),
        cmocka_unit_test(form_encoding),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, setup, teardown);
}
