/* The SASL client engine against GNU SASL's own server side, in process,
 * plus the parts written by hand (OAuth, choice, masking) and hostile
 * challenges. */
#include "mwtest.h"

#include "mailwire/error.h"
#include "mailwire/sasl.h"
#include "sasl/sasl.h"
#include "util/base64.h"

#include <gsasl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- a GNU SASL server ------------------------------------------------- */

typedef struct server {
    Gsasl *ctx;
    Gsasl_session *ss;
    const char *user;
    const char *password;
} server;

static int server_cb(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
    server *sv = gsasl_callback_hook_get(ctx);
    const char *authid = gsasl_property_fast(sctx, GSASL_AUTHID);
    switch (prop) {
    case GSASL_PASSWORD:
        /* Known user only: an unknown one gets no password and fails. */
        if (authid && strcmp(authid, sv->user) == 0) {
            gsasl_property_set(sctx, GSASL_PASSWORD, sv->password);
            return GSASL_OK;
        }
        return GSASL_NO_CALLBACK;
    default:
        return GSASL_NO_CALLBACK;
    }
}

static void server_open(server *sv, const char *mech, const char *user, const char *password,
                        const char *cb_type, const unsigned char *cb, size_t cb_len)
{
    memset(sv, 0, sizeof *sv);
    sv->user = user;
    sv->password = password;
    assert_int_equal(gsasl_init(&sv->ctx), GSASL_OK);
    gsasl_callback_set(sv->ctx, server_cb);
    gsasl_callback_hook_set(sv->ctx, sv);
    assert_int_equal(gsasl_server_start(sv->ctx, mech, &sv->ss), GSASL_OK);
    gsasl_property_set(sv->ss, GSASL_SERVICE, "smtp");
    gsasl_property_set(sv->ss, GSASL_HOSTNAME, "mx.test");
    if (cb_type) {
        char b64[256];
        mwi_base64_encode(b64, cb, cb_len);
        gsasl_property_set(sv->ss,
                           strcmp(cb_type, "tls-exporter") == 0 ? GSASL_CB_TLS_EXPORTER
                                                                : GSASL_CB_TLS_UNIQUE,
                           b64);
    }
}

static void server_close(server *sv)
{
    gsasl_finish(sv->ss);
    gsasl_done(sv->ctx);
}

/* ---- running an exchange the way POP3 / SMTP do ---------------------------- */

enum { USE_IR, NO_IR, IR_NOT_SENT };

typedef struct outcome {
    int server_rc;   /* GNU SASL's final answer on the server side */
    int client_rc;   /* the first negative engine result, or 0 */
    int success_rc;  /* mwi_sasl_check_success when the server said yes */
    int finished;    /* mwi_sasl_finished at the end */
    char first[512]; /* the first client message, decoded */
    size_t first_len;
    mw_error err;
} outcome;

static const unsigned char cb_a[32] = "0123456789abcdef0123456789abcdef";
static const unsigned char cb_b[32] = "0123456789abcdef0123456789abcdeX";

static void decode(char *out, size_t cap, size_t *n, const char *b64)
{
    size_t len = strlen(b64);
    if (strcmp(b64, "=") == 0) len = 0;
    assert_true(len / 4 * 3 < cap);
    long dl = mwi_base64_decode_strict((unsigned char *)out, b64, len);
    assert_true(dl >= 0);
    out[dl] = '\0';
    *n = (size_t)dl;
}

static outcome run(const char *mech, const mw_sasl_creds *creds, const char *server_user,
                   const char *server_pass, int ir_mode, const char *scb_type,
                   const unsigned char *scb)
{
    outcome o;
    memset(&o, 0, sizeof o);
    server sv;
    server_open(&sv, mech, server_user, server_pass, scb_type, scb, 32);
    mw_sasl *c = NULL;
    const char *ir = NULL;
    int rc = mwi_sasl_start(&c, ir_mode == NO_IR ? NULL : &ir, mech, creds, &o.err);
    assert_int_equal(rc, 0);
    char *chal = NULL;
    int src;
    if (ir && ir_mode == USE_IR) {
        decode(o.first, sizeof o.first, &o.first_len, ir);
        src = gsasl_step64(sv.ss, strcmp(ir, "=") == 0 ? "" : ir, &chal);
    } else {
        src = gsasl_step64(sv.ss, "", &chal);
    }
    int rounds = 0;
    while (src == GSASL_NEEDS_MORE || (src == GSASL_OK && chal && *chal)) {
        /* GNU SASL's "OK with data" is RFC 4954's final 334 challenge. */
        int ok_with_data = src == GSASL_OK;
        const char *resp = NULL;
        rc = mwi_sasl_step(c, &resp, chal, strlen(chal), &o.err);
        gsasl_free(chal);
        chal = NULL;
        if (rc < 0) {
            o.client_rc = rc;
            break;
        }
        if (rounds == 0 && !o.first_len && ir_mode != USE_IR && resp[0])
            decode(o.first, sizeof o.first, &o.first_len, resp);
        if (ok_with_data) {
            assert_string_equal(resp, "");
            break;
        }
        src = gsasl_step64(sv.ss, resp, &chal);
        assert_true(++rounds < 10);
    }
    gsasl_free(chal);
    o.server_rc = src;
    if (src == GSASL_OK && !o.client_rc) o.success_rc = mwi_sasl_check_success(c, &o.err);
    o.finished = mwi_sasl_finished(c);
    mwi_sasl_free(c);
    server_close(&sv);
    return o;
}

static mw_sasl_creds creds_for(const char *user, const char *pass)
{
    mw_sasl_creds c;
    memset(&c, 0, sizeof c);
    c.authcid = user;
    c.password = pass;
    c.service = "smtp";
    c.hostname = "mx.test";
    return c;
}

static void expect_ok(const char *mech, int ir_mode)
{
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    outcome o = run(mech, &c, "s1", "pw-s1", ir_mode, NULL, NULL);
    if (o.client_rc) fail_msg("%s: client error %d: %s", mech, o.client_rc, o.err.message);
    assert_int_equal(o.server_rc, GSASL_OK);
    assert_int_equal(o.success_rc, 0);
    assert_true(o.finished);
}

static void expect_wrong_password_fails(const char *mech)
{
    mw_sasl_creds c = creds_for("s1", "wrong");
    outcome o = run(mech, &c, "s1", "pw-s1", USE_IR, NULL, NULL);
    assert_int_equal(o.client_rc, 0);
    assert_int_not_equal(o.server_rc, GSASL_OK);
    assert_int_not_equal(o.server_rc, GSASL_NEEDS_MORE);
}

static void plain_works(void **st)
{
    (void)st;
    expect_ok("PLAIN", USE_IR);
    expect_ok("PLAIN", NO_IR);
    expect_ok("PLAIN", IR_NOT_SENT);
    expect_wrong_password_fails("PLAIN");
}

static void plain_bytes_with_authzid(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    c.authzid = "boss";
    mw_sasl *s;
    const char *ir;
    assert_int_equal(mwi_sasl_start(&s, &ir, "plain", &c, NULL), 0);
    char raw[64];
    size_t n;
    decode(raw, sizeof raw, &n, ir);
    /* RFC 4616 §2: [authzid] NUL authcid NUL passwd */
    assert_int_equal(n, 13);
    assert_memory_equal(raw, "boss\0s1\0pw-s1", 14);
    assert_string_equal(mwi_sasl_mech(s), "PLAIN");
    assert_true(mwi_sasl_finished(s));
    assert_false(mwi_sasl_mutual(s));
    mwi_sasl_free(s);
}

static void login_works(void **st)
{
    (void)st;
    expect_ok("LOGIN", USE_IR);
    expect_wrong_password_fails("LOGIN");
}

static void login_has_no_initial_response(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir = "x";
    assert_int_equal(mwi_sasl_start(&s, &ir, "LOGIN", &c, NULL), 0);
    assert_null(ir);
    const char *r;
    assert_int_equal(mwi_sasl_step(s, &r, "VXNlcm5hbWU6", 12, NULL), MW_SASL_CONTINUE);
    assert_string_equal(r, "czE="); /* "s1" */
    assert_int_equal(mwi_sasl_step(s, &r, "UGFzc3dvcmQ6", 12, NULL), MW_SASL_DONE);
    assert_string_equal(r, "cHctczE="); /* "pw-s1" */
    assert_true(mwi_sasl_finished(s));
    mwi_sasl_free(s);
}

static void cram_md5_works(void **st)
{
    (void)st;
    expect_ok("CRAM-MD5", USE_IR);
    expect_wrong_password_fails("CRAM-MD5");
}

static void cram_md5_rfc2195_example(void **st)
{
    (void)st;
    /* RFC 2195 §2: user tim, secret tanstaaftanstaaf. */
    mw_sasl_creds c = creds_for("tim", "tanstaaftanstaaf");
    mw_sasl *s;
    const char *ir = "x", *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "CRAM-MD5", &c, NULL), 0);
    assert_null(ir);
    const char *chal = "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+";
    assert_int_equal(mwi_sasl_step(s, &r, chal, strlen(chal), NULL), MW_SASL_DONE);
    assert_string_equal(r, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
    assert_int_equal(mwi_sasl_check_success(s, NULL), 0);
    mwi_sasl_free(s);
}

static void digest_md5_works(void **st)
{
    (void)st;
    expect_ok("DIGEST-MD5", USE_IR);
    expect_wrong_password_fails("DIGEST-MD5");
}

static void scram_works(void **st)
{
    (void)st;
    const char *m[] = {"SCRAM-SHA-1", "SCRAM-SHA-256"};
    for (int i = 0; i < 2; i++) {
        expect_ok(m[i], USE_IR);
        expect_ok(m[i], NO_IR);
        expect_ok(m[i], IR_NOT_SENT);
        expect_wrong_password_fails(m[i]);
    }
}

static void scram_user_escaping_and_saslprep(void **st)
{
    (void)st;
    /* RFC 5802 §5.1: ',' and '=' in the user name travel as =2C and =3D. */
    mw_sasl_creds c = creds_for("a,b=c", "pw-s1");
    outcome o = run("SCRAM-SHA-256", &c, "a,b=c", "pw-s1", USE_IR, NULL, NULL);
    assert_int_equal(o.server_rc, GSASL_OK);
    assert_non_null(memmem(o.first, o.first_len, "n=a=2Cb=3Dc,", 12));
    /* RFC 4013 §2.3: control characters are prohibited: refused before
     * anything is sent. */
    c = creds_for("bell\007", "pw");
    mw_sasl *s;
    const char *ir;
    mw_error e = {0};
    assert_int_equal(mwi_sasl_start(&s, &ir, "SCRAM-SHA-1", &c, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "SASLprep"));
}

static void scram_unknown_user_fails(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("nobody", "pw-s1");
    outcome o = run("SCRAM-SHA-256", &c, "s1", "pw-s1", USE_IR, NULL, NULL);
    assert_int_not_equal(o.server_rc, GSASL_OK);
}

static void scram_plus_binds_channel(void **st)
{
    (void)st;
    const char *m[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"};
    const char *types[] = {"tls-exporter", "tls-unique"};
    for (int i = 0; i < 2; i++) {
        for (int t = 0; t < 2; t++) {
            mw_sasl_creds c = creds_for("s1", "pw-s1");
            c.cb_type = types[t];
            c.cb_data = cb_a;
            c.cb_len = sizeof cb_a;
            outcome o = run(m[i], &c, "s1", "pw-s1", USE_IR, types[t], cb_a);
            if (o.client_rc) fail_msg("%s %s: %s", m[i], types[t], o.err.message);
            assert_int_equal(o.server_rc, GSASL_OK);
            assert_int_equal(o.success_rc, 0);
            /* RFC 5802 §7: gs2-cbind-flag "p=" cb-name */
            char want[32];
            snprintf(want, sizeof want, "p=%s,", types[t]);
            assert_memory_equal(o.first, want, strlen(want));
            /* Different bytes on the server side: a man in the middle. */
            o = run(m[i], &c, "s1", "pw-s1", USE_IR, types[t], cb_b);
            assert_int_not_equal(o.server_rc, GSASL_OK);
        }
    }
}

static void scram_without_plus_says_n(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    c.cb_type = "tls-exporter";
    c.cb_data = cb_a;
    c.cb_len = sizeof cb_a;
    /* Binding data known but plain SCRAM chosen: "n" (GNU SASL 2.2 cannot
     * send "y"; see gs_start), against servers with and without binding. */
    outcome o = run("SCRAM-SHA-256", &c, "s1", "pw-s1", USE_IR, NULL, NULL);
    assert_int_equal(o.server_rc, GSASL_OK);
    assert_memory_equal(o.first, "n,,", 3);
    o = run("SCRAM-SHA-1", &c, "s1", "pw-s1", USE_IR, "tls-exporter", cb_a);
    assert_int_equal(o.server_rc, GSASL_OK);
    assert_memory_equal(o.first, "n,,", 3);
    /* No binding data at all: "n". */
    c.cb_type = NULL;
    c.cb_data = NULL;
    c.cb_len = 0;
    o = run("SCRAM-SHA-256", &c, "s1", "pw-s1", USE_IR, NULL, NULL);
    assert_int_equal(o.server_rc, GSASL_OK);
    assert_memory_equal(o.first, "n,,", 3);
}

static void plus_needs_binding_data(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir;
    mw_error e = {0};
    assert_int_equal(mwi_sasl_start(&s, &ir, "SCRAM-SHA-256-PLUS", &c, &e), MW_EINVAL);
    assert_null(s);
    assert_non_null(strstr(e.message, "channel binding"));
    c.cb_type = "tls-server-end-point";
    c.cb_data = cb_a;
    c.cb_len = 32;
    assert_int_equal(mwi_sasl_start(&s, &ir, "SCRAM-SHA-256-PLUS", &c, &e), MW_EINVAL);
}

static void missing_credentials_refused(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", NULL);
    mw_sasl *s;
    const char *ir;
    mw_error e = {0};
    assert_int_equal(mwi_sasl_start(&s, &ir, "SCRAM-SHA-1", &c, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "password"));
    c = creds_for(NULL, "pw");
    assert_int_equal(mwi_sasl_start(&s, &ir, "PLAIN", &c, &e), MW_EINVAL);
    c = creds_for("s1", "pw");
    c.hostname = NULL;
    assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, &e), MW_EINVAL);
    assert_int_equal(mwi_sasl_start(&s, &ir, "GSSAPI", &c, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "unknown SASL mechanism"));
    assert_int_equal(mwi_sasl_start(&s, &ir, "XOAUTH2", &c, &e), MW_EINVAL); /* no token */
}

static void external_sends_authzid_or_empty(void **st)
{
    (void)st;
    mw_sasl_creds c;
    memset(&c, 0, sizeof c);
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "EXTERNAL", &c, NULL), 0);
    assert_string_equal(ir, "=");
    /* Not sent after all: the empty challenge gets the empty response. */
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_SASL_DONE);
    assert_string_equal(r, "");
    mwi_sasl_free(s);
    c.authzid = "s1";
    assert_int_equal(mwi_sasl_start(&s, &ir, "EXTERNAL", &c, NULL), 0);
    assert_string_equal(ir, "czE=");
    mwi_sasl_free(s);
}

/* ---- OAuth ------------------------------------------------------------------- */

static void oauth_creds(mw_sasl_creds *c)
{
    memset(c, 0, sizeof *c);
    c->authcid = "user@example.com";
    c->token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    c->hostname = "server.example.com";
    c->port = 143;
}

static void expect_ir(const char *mech, const mw_sasl_creds *c, const char *want, size_t wlen)
{
    mw_sasl *s;
    const char *ir;
    mw_error e = {0};
    assert_int_equal(mwi_sasl_start(&s, &ir, mech, c, &e), 0);
    char raw[512];
    size_t n;
    decode(raw, sizeof raw, &n, ir);
    assert_int_equal(n, wlen);
    assert_memory_equal(raw, want, wlen);
    assert_true(mwi_sasl_finished(s));
    mwi_sasl_free(s);
}

static void xoauth2_layout(void **st)
{
    (void)st;
    mw_sasl_creds c;
    oauth_creds(&c);
    static const char want[] = "user=user@example.com\001auth=Bearer "
                               "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001";
    expect_ir("XOAUTH2", &c, want, sizeof want - 1);
}

static void oauthbearer_layout(void **st)
{
    (void)st;
    mw_sasl_creds c;
    oauth_creds(&c);
    /* RFC 7628 §4.1's example. */
    static const char want[] = "n,a=user@example.com,\001host=server.example.com\001port=143\001"
                               "auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001";
    expect_ir("OAUTHBEARER", &c, want, sizeof want - 1);
    /* Without host and port; ',' and '=' escaped in the authzid (RFC 5801 §4). */
    c.hostname = NULL;
    c.port = 0;
    c.authzid = "a,b=c";
    static const char want2[] = "n,a=a=2Cb=3Dc,\001auth=Bearer "
                                "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001";
    expect_ir("OAUTHBEARER", &c, want2, sizeof want2 - 1);
    /* No user at all. */
    c.authzid = NULL;
    c.authcid = NULL;
    static const char want3[] = "n,,\001auth=Bearer "
                                "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==\001\001";
    expect_ir("OAUTHBEARER", &c, want3, sizeof want3 - 1);
}

static void oauth_error_challenge(void **st)
{
    (void)st;
    mw_sasl_creds c;
    oauth_creds(&c);
    const char json[] = "{\"status\":\"invalid_token\",\"scope\":\"mail\"}";
    char b64[128];
    mwi_base64_encode(b64, (const unsigned char *)json, strlen(json));
    const char *mechs[] = {"OAUTHBEARER", "XOAUTH2"};
    const char *answers[] = {"AQ==", ""}; /* ^A (RFC 7628 §3.2.3), empty */
    for (int i = 0; i < 2; i++) {
        mw_sasl *s;
        const char *ir, *r;
        assert_int_equal(mwi_sasl_start(&s, &ir, mechs[i], &c, NULL), 0);
        assert_int_equal(mwi_sasl_step(s, &r, b64, strlen(b64), NULL), MW_SASL_DONE);
        assert_string_equal(r, answers[i]);
        assert_string_equal(mwi_sasl_server_error(s), json);
        mw_error e = {0};
        assert_int_equal(mwi_sasl_check_success(s, &e), MW_EPROTO);
        /* A second challenge is a protocol error. */
        assert_int_equal(mwi_sasl_step(s, &r, b64, strlen(b64), &e), MW_EPROTO);
        mwi_sasl_free(s);
    }
}

static void oauth_refuses_bad_values(void **st)
{
    (void)st;
    mw_sasl_creds c;
    mw_sasl *s;
    const char *ir;
    oauth_creds(&c);
    c.token = "abc def";
    assert_int_equal(mwi_sasl_start(&s, &ir, "XOAUTH2", &c, NULL), MW_EINVAL);
    c.token = "abc\001auth=Bearer evil";
    assert_int_equal(mwi_sasl_start(&s, &ir, "OAUTHBEARER", &c, NULL), MW_EINVAL);
    c.token = "=abc";
    assert_int_equal(mwi_sasl_start(&s, &ir, "OAUTHBEARER", &c, NULL), MW_EINVAL);
    oauth_creds(&c);
    c.authcid = "user\001auth=Bearer x";
    assert_int_equal(mwi_sasl_start(&s, &ir, "XOAUTH2", &c, NULL), MW_EINVAL);
    oauth_creds(&c);
    c.hostname = "h\r\nx";
    assert_int_equal(mwi_sasl_start(&s, &ir, "OAUTHBEARER", &c, NULL), MW_EINVAL);
    oauth_creds(&c);
    c.authcid = NULL;
    assert_int_equal(mwi_sasl_start(&s, &ir, "XOAUTH2", &c, NULL), MW_EINVAL);
    assert_null(s);
}

static void oauth_without_ir(void **st)
{
    (void)st;
    mw_sasl_creds c;
    oauth_creds(&c);
    mw_sasl *s;
    const char *r;
    const char *ir;
    /* Asked for, not sent: the empty challenge gets the same message. */
    assert_int_equal(mwi_sasl_start(&s, &ir, "OAUTHBEARER", &c, NULL), 0);
    char first[512];
    snprintf(first, sizeof first, "%s", ir);
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_SASL_DONE);
    assert_string_equal(r, first);
    mwi_sasl_free(s);
    assert_int_equal(mwi_sasl_start(&s, NULL, "XOAUTH2", &c, NULL), 0);
    assert_false(mwi_sasl_finished(s));
    /* Data before our first message is refused. */
    assert_int_equal(mwi_sasl_step(s, &r, "eA==", 4, NULL), MW_EPROTO);
    mwi_sasl_free(s);
    assert_int_equal(mwi_sasl_start(&s, NULL, "XOAUTH2", &c, NULL), 0);
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_SASL_DONE);
    assert_true(strlen(r) > 40);
    /* An empty challenge after the token is not an error report. */
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_EPROTO);
    mwi_sasl_free(s);
}

/* ---- hostile challenges --------------------------------------------------------- */

/* Starts a SCRAM-SHA-256 client and a server and returns the server-first
 * message (raw) in sf. */
typedef struct scram_pair {
    server sv;
    mw_sasl *c;
    char sf[512];
    size_t sf_len;
} scram_pair;

static void scram_begin(scram_pair *p, const char *pass)
{
    mw_sasl_creds c = creds_for("s1", pass);
    server_open(&p->sv, "SCRAM-SHA-256", "s1", "pw-s1", NULL, NULL, 0);
    const char *ir;
    assert_int_equal(mwi_sasl_start(&p->c, &ir, "SCRAM-SHA-256", &c, NULL), 0);
    char *chal;
    assert_int_equal(gsasl_step64(p->sv.ss, ir, &chal), GSASL_NEEDS_MORE);
    decode(p->sf, sizeof p->sf, &p->sf_len, chal);
    gsasl_free(chal);
}

static void scram_end(scram_pair *p)
{
    mwi_sasl_free(p->c);
    server_close(&p->sv);
}

static int step_raw(mw_sasl *s, const char *raw, size_t n, const char **r, mw_error *e)
{
    char b64[2048];
    assert_true(n < 1500);
    mwi_base64_encode(b64, (const unsigned char *)raw, n);
    return mwi_sasl_step(s, r, b64, strlen(b64), e);
}

static void scram_truncated_server_first_every_split(void **st)
{
    (void)st;
    scram_pair p;
    scram_begin(&p, "pw-s1");
    size_t full = p.sf_len;
    scram_end(&p);
    for (size_t cut = 0; cut < full; cut++) {
        scram_begin(&p, "pw-s1");
        const char *r;
        mw_error e = {0};
        int rc = step_raw(p.c, p.sf, cut, &r, &e);
        if (cut == 0) {
            /* An empty first challenge asks for the initial response again
             * (it was not sent): the same client-first message. */
            assert_int_equal(rc, MW_SASL_CONTINUE);
            assert_false(mwi_sasl_finished(p.c));
            scram_end(&p);
            continue;
        }
        /* A prefix that still ends in a whole i=N (e.g. "i=40" of "i=4096")
         * is a valid, different message: it must not crash and must not
         * log in. */
        if (rc >= 0) {
            assert_true(cut >= full - 3);
            assert_non_null(memmem(p.sf, cut, ",i=", 3));
        } else {
            assert_int_equal(rc, MW_EPROTO);
            assert_true(strlen(e.message) > 0);
            /* No more steps after an error. */
            assert_int_equal(mwi_sasl_step(p.c, &r, "", 0, NULL), MW_ESTATE);
        }
        scram_end(&p);
    }
}

static void scram_rejects_wrong_nonce(void **st)
{
    (void)st;
    scram_pair p;
    scram_begin(&p, "pw-s1");
    const char *r;
    mw_error e = {0};
    char bad[512];
    memcpy(bad, p.sf, p.sf_len);
    bad[3] = bad[3] == 'A' ? 'B' : 'A'; /* inside our part of the nonce */
    assert_int_equal(step_raw(p.c, bad, p.sf_len, &r, &e), MW_EPROTO);
    assert_non_null(strstr(e.message, "nonce"));
    scram_end(&p);
    /* The server's nonce equal to ours, not extending it. */
    scram_begin(&p, "pw-s1");
    const char *comma = memchr(p.sf, ',', p.sf_len);
    char msg[512];
    int n = snprintf(msg, sizeof msg, "r=%.*s%s", 24, p.sf + 2, comma);
    (void)n;
    assert_int_equal(step_raw(p.c, msg, strlen(msg), &r, &e), MW_EPROTO);
    scram_end(&p);
}

static void scram_rejects_bad_fields(void **st)
{
    (void)st;
    const char *tails[] = {
        ",s=QSXCR+Q6sek8bf92,i=0",       ",s=QSXCR+Q6sek8bf92,i=99999999999",
        ",s=QSXCR+Q6sek8bf92,i=-1",      ",s=QSXCR+Q6sek8bf92,i=4096x",
        ",s=QSXCR+Q6sek8bf9,i=4096",     ",s=,i=4096",
        ",s=QSXC*+Q6sek8bf92,i=4096",    ",i=4096,s=QSXCR+Q6sek8bf92",
        ",s=QSXCR+Q6sek8bf92",           ",s=QSXCR+Q6sek8bf92,i=",
        ",s=QSXCR+Q6sek8bf92,i=1000001",
    };
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        scram_pair p;
        scram_begin(&p, "pw-s1");
        const char *comma = memchr(p.sf, ',', p.sf_len);
        char msg[512];
        snprintf(msg, sizeof msg, "%.*sSRV%s", (int)(comma - p.sf), p.sf, tails[i]);
        const char *r;
        mw_error e = {0};
        int rc = step_raw(p.c, msg, strlen(msg), &r, &e);
        if (rc != MW_EPROTO) fail_msg("tail %s: rc %d", tails[i], rc);
        scram_end(&p);
    }
    /* Mandatory extension, and a message that is not SCRAM at all. */
    const char *whole[] = {"m=ext,r=abc,s=QSXCR+Q6sek8bf92,i=4096", "hello", "r"};
    for (size_t i = 0; i < 3; i++) {
        scram_pair p;
        scram_begin(&p, "pw-s1");
        const char *r;
        assert_int_equal(step_raw(p.c, whole[i], strlen(whole[i]), &r, NULL), MW_EPROTO);
        scram_end(&p);
    }
}

/* A count above the cap is refused before any hashing, and the message
 * names the count and the cap; one too long for any integer is cut. */
static void scram_iteration_cap_named(void **st)
{
    (void)st;
    static const struct {
        const char *count, *want;
    } t[] = {
        {"100000000", "iteration count 100000000 exceeds the cap 1000000"},
        {"2147483647", "iteration count 2147483647 exceeds the cap 1000000"},
        {"1000001", "iteration count 1000001 exceeds the cap 1000000"},
        {"18446744073709551617", "iteration count 18446744073709551617 exceeds the cap"},
        {"123456789012345678901234567890",
         "iteration count 12345678901234567890... (30 digits, too big for any integer) exceeds "
         "the cap 1000000"},
        {"0", "iteration count 0 is below the minimum of 1"},
        {"12x", "the iteration count \"12x\" is not a number"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        scram_pair p;
        scram_begin(&p, "pw-s1");
        const char *comma = memchr(p.sf, ',', p.sf_len);
        char msg[512];
        snprintf(msg, sizeof msg, "%.*sSRV,s=QSXCR+Q6sek8bf92,i=%s", (int)(comma - p.sf), p.sf,
                 t[i].count);
        const char *r;
        mw_error e = {0};
        assert_int_equal(step_raw(p.c, msg, strlen(msg), &r, &e), MW_EPROTO);
        if (!strstr(e.message, t[i].want)) fail_msg("i=%s: got \"%s\"", t[i].count, e.message);
        scram_end(&p);
    }
}

/* Runs SCRAM up to the server-final message and hands it to `tamper`. */
static int scram_final_with(void (*tamper)(char *msg, size_t *n), mw_error *e, int *early)
{
    scram_pair p;
    scram_begin(&p, "pw-s1");
    const char *r;
    char b64[1024];
    mwi_base64_encode(b64, (const unsigned char *)p.sf, p.sf_len);
    assert_int_equal(mwi_sasl_step(p.c, &r, b64, strlen(b64), e), MW_SASL_CONTINUE);
    char *chal;
    assert_int_equal(gsasl_step64(p.sv.ss, r, &chal), GSASL_OK);
    /* The server accepted the proof; before its signature is checked, a
     * success would be early. */
    *early = mwi_sasl_check_success(p.c, NULL);
    char msg[512];
    size_t n;
    decode(msg, sizeof msg, &n, chal);
    gsasl_free(chal);
    tamper(msg, &n);
    int rc = step_raw(p.c, msg, n, &r, e);
    if (rc == MW_SASL_DONE) {
        assert_string_equal(r, "");
        assert_int_equal(mwi_sasl_check_success(p.c, e), 0);
        /* Anything after the end is a protocol error. */
        assert_int_equal(mwi_sasl_step(p.c, &r, "dj14", 4, NULL), MW_EPROTO);
    }
    scram_end(&p);
    return rc;
}

static void keep(char *m, size_t *n)
{
    (void)m, (void)n;
}
static void flip_signature(char *m, size_t *n)
{
    m[*n - 2] = m[*n - 2] == 'A' ? 'B' : 'A';
}
static void server_error(char *m, size_t *n)
{
    strcpy(m, "e=invalid-proof");
    *n = strlen(m);
}
static void no_verifier(char *m, size_t *n)
{
    strcpy(m, "x=abc");
    *n = strlen(m);
}
static void short_signature(char *m, size_t *n)
{
    *n = 4;
}

static void scram_server_final_checked(void **st)
{
    (void)st;
    mw_error e = {0};
    int early;
    assert_int_equal(scram_final_with(keep, &e, &early), MW_SASL_DONE);
    assert_int_equal(early, MW_EAUTH);
    memset(&e, 0, sizeof e);
    assert_int_equal(scram_final_with(flip_signature, &e, &early), MW_EAUTH);
    assert_non_null(strstr(e.message, "server signature did not verify"));
    assert_int_equal(scram_final_with(server_error, &e, &early), MW_EAUTH);
    assert_non_null(strstr(e.message, "invalid-proof"));
    assert_int_equal(scram_final_with(no_verifier, &e, &early), MW_EPROTO);
    int rc = scram_final_with(short_signature, &e, &early);
    assert_true(rc == MW_EAUTH || rc == MW_EPROTO);
}

static void scram_server_final_every_split(void **st)
{
    (void)st;
    /* Every strict prefix of a valid server-final fails (never logs in). */
    for (size_t cut = 0; cut < 46; cut++) {
        scram_pair p;
        scram_begin(&p, "pw-s1");
        const char *r;
        char b64[1024];
        mwi_base64_encode(b64, (const unsigned char *)p.sf, p.sf_len);
        assert_int_equal(mwi_sasl_step(p.c, &r, b64, strlen(b64), NULL), MW_SASL_CONTINUE);
        char *chal;
        assert_int_equal(gsasl_step64(p.sv.ss, r, &chal), GSASL_OK);
        char msg[512];
        size_t n;
        decode(msg, sizeof msg, &n, chal);
        gsasl_free(chal);
        assert_int_equal(n, 46); /* "v=" + base64 of 32 bytes */
        int rc = step_raw(p.c, msg, cut, &r, NULL);
        assert_true(rc == MW_EAUTH || rc == MW_EPROTO);
        assert_int_not_equal(mwi_sasl_check_success(p.c, NULL), 0);
        scram_end(&p);
    }
}

static void digest_md5_early_success_refused(void **st)
{
    (void)st;
    server sv;
    server_open(&sv, "DIGEST-MD5", "s1", "pw-s1", NULL, NULL, 0);
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, NULL), 0);
    assert_null(ir);
    assert_true(mwi_sasl_mutual(s));
    char *chal;
    assert_int_equal(gsasl_step64(sv.ss, "", &chal), GSASL_NEEDS_MORE);
    assert_int_equal(mwi_sasl_step(s, &r, chal, strlen(chal), NULL), MW_SASL_CONTINUE);
    gsasl_free(chal);
    assert_false(mwi_sasl_finished(s));
    mw_error e = {0};
    assert_int_equal(mwi_sasl_check_success(s, &e), MW_EAUTH);
    assert_non_null(strstr(e.message, "before proving"));
    /* A forged rspauth is refused too. */
    const char *forged = "rspauth=00000000000000000000000000000000";
    assert_int_equal(step_raw(s, forged, strlen(forged), &r, &e), MW_EAUTH);
    mwi_sasl_free(s);
    server_close(&sv);
}

static void garbage_challenges(void **st)
{
    (void)st;
    const char *mechs[] = {"LOGIN",         "CRAM-MD5", "DIGEST-MD5",         "SCRAM-SHA-1",
                           "SCRAM-SHA-256", "PLAIN",    "SCRAM-SHA-256-PLUS", "XOAUTH2",
                           "OAUTHBEARER",   "EXTERNAL"};
    const char *bad[] = {"!!!!", "abc", "ab=c", "a===", "YQ", "YQ==YQ==", "Y Q=", "YQ==\r"};
    for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++) {
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            mw_sasl_creds c = creds_for("s1", "pw-s1");
            c.token = "tok";
            c.cb_type = "tls-exporter";
            c.cb_data = cb_a;
            c.cb_len = 32;
            mw_sasl *s;
            const char *ir, *r;
            assert_int_equal(mwi_sasl_start(&s, &ir, mechs[m], &c, NULL), 0);
            mw_error e = {0};
            assert_int_equal(mwi_sasl_step(s, &r, bad[b], strlen(bad[b]), &e), MW_EPROTO);
            assert_null(r);
            assert_non_null(strstr(e.message, "base64"));
            mwi_sasl_free(s);
        }
    }
}

static void oversize_challenge(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "CRAM-MD5", &c, NULL), 0);
    size_t n = MW_SASL_MAX_CHALLENGE + 4;
    char *big = malloc(n + 1);
    memset(big, 'A', n);
    big[n] = '\0';
    assert_int_equal(mwi_sasl_step(s, &r, big, n, NULL), MW_ETOOBIG);
    assert_int_equal(mwi_sasl_step(s, &r, "AAAA", 4, NULL), MW_ESTATE);
    mwi_sasl_free(s);
    /* Right at the limit is fine for the size check. */
    assert_int_equal(mwi_sasl_start(&s, &ir, "CRAM-MD5", &c, NULL), 0);
    assert_int_equal(mwi_sasl_step(s, &r, big, MW_SASL_MAX_CHALLENGE, NULL), MW_SASL_DONE);
    mwi_sasl_free(s);
    free(big);
}

static void challenge_after_done(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    const char *m[] = {"PLAIN", "CRAM-MD5", "LOGIN"};
    for (int i = 0; i < 3; i++) {
        mw_sasl *s;
        const char *ir, *r;
        assert_int_equal(mwi_sasl_start(&s, &ir, m[i], &c, NULL), 0);
        int steps = ir ? 0 : (i == 2 ? 2 : 1);
        for (int k = 0; k < steps; k++)
            assert_true(mwi_sasl_step(s, &r, "eA==", 4, NULL) >= 0);
        assert_true(mwi_sasl_finished(s));
        assert_int_equal(mwi_sasl_check_success(s, NULL), 0);
        mw_error e = {0};
        assert_int_equal(mwi_sasl_step(s, &r, "eA==", 4, &e), MW_EPROTO);
        mwi_sasl_free(s);
    }
    /* Server-first mechanisms refuse an empty first challenge. */
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "CRAM-MD5", &c, NULL), 0);
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_EPROTO);
    mwi_sasl_free(s);
    assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, NULL), 0);
    assert_int_equal(mwi_sasl_step(s, &r, "", 0, NULL), MW_EPROTO);
    mwi_sasl_free(s);
}

static void digest_md5_never_asks_for_a_security_layer(void **st)
{
    (void)st;
    /* The sessions have no SASL security layer (RFC 2831 §2.3/§2.4), so the
     * response must say qop=auth whatever else the server offers. */
    const char *ch = "realm=\"x\",nonce=\"abc\",qop=\"auth,auth-int,auth-conf\",cipher=\"rc4\","
                     "charset=utf-8,algorithm=md5-sess";
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, NULL), 0);
    assert_int_equal(step_raw(s, ch, strlen(ch), &r, NULL), MW_SASL_CONTINUE);
    char raw[1024];
    size_t n;
    decode(raw, sizeof raw, &n, r);
    assert_non_null(strstr(raw, "qop=auth,"));
    assert_non_null(strstr(raw, "digest-uri=\"smtp/mx.test\""));
    mwi_sasl_free(s);
}

static void digest_md5_garbage(void **st)
{
    (void)st;
    const char *bad[] = {"nonce",
                         "realm=\"x\"",
                         "nonce=\"abc\",algorithm=md5-sess,charset=",
                         "nonce=\"abc\",qop=\"auth-conf\",algorithm=bogus",
                         "\"\"\"\"",
                         ","};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        mw_sasl_creds c = creds_for("s1", "pw-s1");
        mw_sasl *s;
        const char *ir, *r;
        assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, NULL), 0);
        int rc = step_raw(s, bad[i], strlen(bad[i]), &r, NULL);
        assert_int_equal(rc, MW_EPROTO);
        mwi_sasl_free(s);
    }
}

/* RFC 2831 §2.1.1: a digest-challenge is less than 2048 bytes. */
static void digest_md5_challenge_bounded(void **st)
{
    (void)st;
    for (size_t len = 2046; len <= 2049; len++) {
        char raw[2100];
        const char *head = "realm=\"x\",nonce=\"abc\",qop=\"auth\",charset=utf-8,"
                           "algorithm=md5-sess,x=\"";
        size_t hl = strlen(head);
        memcpy(raw, head, hl);
        memset(raw + hl, 'a', len - hl - 1);
        raw[len - 1] = '"';
        mw_sasl_creds c = creds_for("s1", "pw-s1");
        mw_sasl *s;
        const char *ir, *r;
        mw_error e = {0};
        assert_int_equal(mwi_sasl_start(&s, &ir, "DIGEST-MD5", &c, NULL), 0);
        char b64[2900];
        mwi_base64_encode(b64, (const unsigned char *)raw, len);
        int rc = mwi_sasl_step(s, &r, b64, strlen(b64), &e);
        if (len < 2048) {
            if (rc == MW_ETOOBIG) fail_msg("%zu bytes refused: %s", len, e.message);
        } else {
            assert_int_equal(rc, MW_ETOOBIG);
            assert_non_null(strstr(e.message, "RFC 2831"));
            char want[64];
            snprintf(want, sizeof want, "challenge of %zu bytes", len);
            assert_non_null(strstr(e.message, want));
        }
        mwi_sasl_free(s);
    }
}

/* ---- choice ----------------------------------------------------------------------- */

static const char *ALL = "plain LOGIN cram-md5 DIGEST-MD5 SCRAM-SHA-1 SCRAM-SHA-1-PLUS "
                         "SCRAM-SHA-256 SCRAM-SHA-256-PLUS XOAUTH2 OAUTHBEARER EXTERNAL GSSAPI "
                         "NTLM X-UNKNOWN-MECHANISM-WITH-A-LONG-NAME";

static void expect_choice(const char *offered, const mw_sasl_policy *p, const char *want)
{
    const char *out[MW_SASL_MAX_MECHS];
    size_t n = 99;
    mw_error e = {0};
    int rc = mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, offered, p, &e);
    if (rc) fail_msg("choose: %d %s", rc, e.message);
    char got[512] = "";
    for (size_t i = 0; i < n; i++) {
        if (i) strcat(got, " ");
        strcat(got, out[i]);
    }
    assert_string_equal(got, want);
}

static void choose_order_over_tls(void **st)
{
    (void)st;
    mw_sasl_policy p = {NULL, 1, 0, 1, 0, 0, 1};
    expect_choice(ALL, &p,
                  "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 DIGEST-MD5 "
                  "CRAM-MD5 PLAIN LOGIN");
    p.has_cb = 0;
    expect_choice(ALL, &p, "SCRAM-SHA-256 SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 PLAIN LOGIN");
    p.has_token = 1;
    p.want_external = 1;
    expect_choice(ALL, &p,
                  "EXTERNAL OAUTHBEARER XOAUTH2 SCRAM-SHA-256 SCRAM-SHA-1 DIGEST-MD5 CRAM-MD5 "
                  "PLAIN LOGIN");
    p.has_password = 0;
    p.want_external = 0;
    expect_choice(ALL, &p, "OAUTHBEARER XOAUTH2");
    p.want = "auto";
    expect_choice(ALL, &p, "OAUTHBEARER XOAUTH2");
}

static void choose_refuses_plaintext_in_clear(void **st)
{
    (void)st;
    mw_sasl_policy p = {NULL, 0, 0, 1, 1, 0, 0};
    const char *out[MW_SASL_MAX_MECHS];
    size_t n = 7;
    mw_error e = {0};
    /* No login at all over an unencrypted link unless allowed: SCRAM, which
     * sends no password, would still open a session anyone can read. */
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, ALL, &p, &e), MW_EPOLICY);
    assert_int_equal(n, 0);
    n = 7;
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "SCRAM-SHA-256", &p, &e),
                     MW_EPOLICY);
    assert_non_null(strstr(e.message, "no login over an unencrypted connection"));
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "PLAIN LOGIN", &p, &e),
                     MW_EPOLICY);
    assert_int_equal(n, 0);
    assert_non_null(strstr(e.message, "clear text"));
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "XOAUTH2", &p, &e), MW_EPOLICY);
    p.allow_plaintext = 1;
    expect_choice("PLAIN LOGIN", &p, "PLAIN LOGIN");
    expect_choice("LOGIN PLAIN XOAUTH2", &p, "XOAUTH2 PLAIN LOGIN");
    /* -PLUS is never chosen without TLS, even if binding data is claimed. */
    p.has_cb = 1;
    expect_choice("SCRAM-SHA-256-PLUS SCRAM-SHA-256", &p, "SCRAM-SHA-256");
}

static void choose_explicit_wants(void **st)
{
    (void)st;
    mw_sasl_policy p = {"cram-md5, plain", 1, 0, 1, 0, 0, 0};
    expect_choice(ALL, &p, "CRAM-MD5 PLAIN");
    expect_choice(NULL, &p, "CRAM-MD5 PLAIN"); /* the server did not say */
    const char *out[MW_SASL_MAX_MECHS];
    size_t n;
    mw_error e = {0};
    p.want = "GSSAPI";
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, ALL, &p, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "GSSAPI"));
    p.want = "SCRAM-SHA-256";
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "PLAIN", &p, &e), MW_EUNSUPPORTED);
    assert_non_null(strstr(e.message, "does not offer SCRAM-SHA-256"));
    p.want = "PLAIN";
    p.tls = 0;
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "PLAIN", &p, &e), MW_EPOLICY);
    p.want = "SCRAM-SHA-256-PLUS";
    p.tls = 1;
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, ALL, &p, &e), MW_EUNSUPPORTED);
    p.want = "XOAUTH2";
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, ALL, &p, &e), MW_EINVAL);
    assert_non_null(strstr(e.message, "token"));
    /* An unknown name after good ones still fails, and returns nothing. */
    p.want = "PLAIN LPAIN";
    n = 5;
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, ALL, &p, &e), MW_EINVAL);
    assert_int_equal(n, 0);
    /* Skips the unusable one, keeps the usable one. */
    p.want = "XOAUTH2 LOGIN LOGIN";
    expect_choice(ALL, &p, "LOGIN");
}

static void choose_nothing_usable(void **st)
{
    (void)st;
    mw_sasl_policy p = {NULL, 1, 0, 1, 0, 0, 0};
    const char *out[MW_SASL_MAX_MECHS];
    size_t n;
    mw_error e = {0};
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "GSSAPI NTLM", &p, &e),
                     MW_EUNSUPPORTED);
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, "", &p, &e), MW_EUNSUPPORTED);
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, NULL, &p, &e), MW_EUNSUPPORTED);
    assert_int_equal(mwi_sasl_choose(out, 0, &n, ALL, &p, &e), MW_EINVAL);
    /* A small out[] gets the best ones. */
    assert_int_equal(mwi_sasl_choose(out, 2, &n, ALL, &p, &e), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0], "SCRAM-SHA-256");
    assert_string_equal(out[1], "SCRAM-SHA-1");
}

static void choose_bounds_the_list(void **st)
{
    (void)st;
    /* 64 junk names then SCRAM: the list is cut before it. */
    char list[4096] = "";
    for (int i = 0; i < 64; i++)
        strcat(list, "X-JUNK ");
    strcat(list, "SCRAM-SHA-256 CRAM-MD5");
    mw_sasl_policy p = {NULL, 1, 0, 1, 0, 0, 0};
    const char *out[MW_SASL_MAX_MECHS];
    size_t n;
    assert_int_equal(mwi_sasl_choose(out, MW_SASL_MAX_MECHS, &n, list, &p, NULL), MW_EUNSUPPORTED);
    /* 63 junk names: SCRAM is the 64th and is seen. */
    list[0] = '\0';
    for (int i = 0; i < 63; i++)
        strcat(list, "X-JUNK\t");
    strcat(list, "SCRAM-SHA-256 CRAM-MD5");
    expect_choice(list, &p, "SCRAM-SHA-256");
    /* Over-long and prefix names are not mechanisms. */
    expect_choice("SCRAM-SHA-256-PLUSX SCRAM-SHA PLAINPLAIN CRAM-MD5", &p, "CRAM-MD5");
}

static void bad_arguments(void **st)
{
    (void)st;
    mw_sasl_creds c = creds_for("s1", "pw-s1");
    mw_sasl *s;
    const char *ir, *r;
    assert_int_equal(mwi_sasl_start(NULL, &ir, "PLAIN", &c, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_start(&s, &ir, NULL, &c, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_start(&s, &ir, "PLAIN", NULL, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_step(NULL, &r, "", 0, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_start(&s, &ir, "CRAM-MD5", &c, NULL), 0);
    assert_int_equal(mwi_sasl_step(s, NULL, "", 0, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_step(s, &r, NULL, 4, NULL), MW_EINVAL);
    mwi_sasl_free(s);
    assert_int_equal(mwi_sasl_check_success(NULL, NULL), MW_EINVAL);
    assert_string_equal(mwi_sasl_mech(NULL), "");
    assert_false(mwi_sasl_finished(NULL));
    mwi_sasl_free(NULL);
    const char *out[2];
    size_t n;
    mw_sasl_policy p = {NULL, 1, 0, 1, 0, 0, 0};
    assert_int_equal(mwi_sasl_choose(NULL, 2, &n, "PLAIN", &p, NULL), MW_EINVAL);
    assert_int_equal(mwi_sasl_choose(out, 2, &n, "PLAIN", NULL, NULL), MW_EINVAL);
}

static void public_mechanism_list(void **st)
{
    (void)st;
    const char *const *m = mw_sasl_mechanisms();
    size_t n = 0;
    for (; m[n]; n++)
        assert_true(mw_sasl_mechanism_supported(m[n]));
    assert_int_equal(n, 11);
    assert_string_equal(m[0], "EXTERNAL");
    assert_true(mw_sasl_mechanism_supported("scram-sha-256-plus"));
    assert_false(mw_sasl_mechanism_supported("GSSAPI"));
    assert_false(mw_sasl_mechanism_supported(""));
    assert_false(mw_sasl_mechanism_supported(NULL));
}

/* ---- masking ----------------------------------------------------------------------- */

static void expect_mask(const char *line, const char *want)
{
    char out[64];
    size_t n = mwi_sasl_mask(out, sizeof out, line, strlen(line));
    assert_string_equal(out, want);
    assert_int_equal(n, strlen(want));
}

static void mask_lines(void **st)
{
    (void)st;
    expect_mask("AUTH PLAIN AHMxAHB3LXMx", "AUTH PLAIN ****");
    expect_mask("auth plain AHMxAHB3LXMx\r\n", "auth plain ****");
    expect_mask("AUTH CRAM-MD5", "AUTH CRAM-MD5");
    expect_mask("AUTH CRAM-MD5\r\n", "AUTH CRAM-MD5");
    expect_mask("AUTH EXTERNAL =", "AUTH EXTERNAL ****");
    expect_mask("dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw", "****");
    expect_mask("*", "*");
    expect_mask("", "");
    expect_mask("\r\n", "");
    expect_mask("AUTH secret\001stuff", "AUTH ****");
    expect_mask("AUTHPLAIN x", "****");
    char small[8];
    assert_int_equal(mwi_sasl_mask(small, sizeof small, "AUTH PLAIN xyz", 14), 7);
    assert_string_equal(small, "AUTH PL");
    assert_int_equal(mwi_sasl_mask(small, 0, "x", 1), 0);
}

/* ---- threads ----------------------------------------------------------------------- */

static void *thread_login(void *arg)
{
    int *ok = arg;
    for (int i = 0; i < 5; i++) {
        mw_sasl_creds c = creds_for("s1", "pw-s1");
        outcome o =
            run(i % 2 ? "SCRAM-SHA-1" : "DIGEST-MD5", &c, "s1", "pw-s1", USE_IR, NULL, NULL);
        if (o.server_rc != GSASL_OK || o.client_rc || o.success_rc) return NULL;
    }
    *ok = 1;
    return NULL;
}

static void engines_in_threads(void **st)
{
    (void)st;
    pthread_t t[6];
    int ok[6] = {0};
    for (int i = 0; i < 6; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_login, &ok[i]), 0);
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(ok[i], 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_works),
        cmocka_unit_test(plain_bytes_with_authzid),
        cmocka_unit_test(login_works),
        cmocka_unit_test(login_has_no_initial_response),
        cmocka_unit_test(cram_md5_works),
        cmocka_unit_test(cram_md5_rfc2195_example),
        cmocka_unit_test(digest_md5_works),
        cmocka_unit_test(scram_works),
        cmocka_unit_test(scram_user_escaping_and_saslprep),
        cmocka_unit_test(scram_unknown_user_fails),
        cmocka_unit_test(scram_plus_binds_channel),
        cmocka_unit_test(scram_without_plus_says_n),
        cmocka_unit_test(plus_needs_binding_data),
        cmocka_unit_test(missing_credentials_refused),
        cmocka_unit_test(external_sends_authzid_or_empty),
        cmocka_unit_test(xoauth2_layout),
        cmocka_unit_test(oauthbearer_layout),
        cmocka_unit_test(oauth_error_challenge),
        cmocka_unit_test(oauth_refuses_bad_values),
        cmocka_unit_test(oauth_without_ir),
        cmocka_unit_test(scram_truncated_server_first_every_split),
        cmocka_unit_test(scram_rejects_wrong_nonce),
        cmocka_unit_test(scram_rejects_bad_fields),
        cmocka_unit_test(scram_iteration_cap_named),
        cmocka_unit_test(digest_md5_challenge_bounded),
        cmocka_unit_test(scram_server_final_checked),
        cmocka_unit_test(scram_server_final_every_split),
        cmocka_unit_test(digest_md5_early_success_refused),
        cmocka_unit_test(garbage_challenges),
        cmocka_unit_test(oversize_challenge),
        cmocka_unit_test(challenge_after_done),
        cmocka_unit_test(digest_md5_never_asks_for_a_security_layer),
        cmocka_unit_test(digest_md5_garbage),
        cmocka_unit_test(choose_order_over_tls),
        cmocka_unit_test(choose_refuses_plaintext_in_clear),
        cmocka_unit_test(choose_explicit_wants),
        cmocka_unit_test(choose_nothing_usable),
        cmocka_unit_test(choose_bounds_the_list),
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(public_mechanism_list),
        cmocka_unit_test(mask_lines),
        cmocka_unit_test(engines_in_threads),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
