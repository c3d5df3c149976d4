/* The SASL driver (src/sasl/driver.h) alone: scripted replies in POP3's and
 * SMTP's shapes, the one fallback rule, the token provider's refresh, the
 * initial-response line limits and hostile servers. */
#include "mwtest.h"

#include "mailwire/error.h"
#include "proto/pop3_codec.h"
#include "proto/smtp_reply.h"
#include "sasl/driver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- replies --------------------------------------------------------------- */

static mw_pop3_status pst;
static mw_smtp_reply srep;

static const void *pop3(const char *line)
{
    assert_int_equal(mwi_pop3_parse_status(&pst, line, strlen(line)), 0);
    return &pst;
}

/* Lines separated by '\n'; the reply must be complete. */
static const void *smtp(const char *lines)
{
    mwi_smtp_reply_init(&srep);
    const char *p = lines;
    int rc = 0;
    for (;;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        rc = mwi_smtp_reply_feed(&srep, p, n, NULL);
        if (!e) break;
        p = e + 1;
    }
    assert_int_equal(rc, 1);
    return &srep;
}

/* A reply from a table: POP3 when proto is POP3, else SMTP. */
typedef struct twin {
    const mwi_sasl_proto *proto;
    const char *ok, *mech_refused, *creds_refused, *temp, *cancelled;
    const char *cont_prefix;
} twin;

static const twin twins[] = {
    {&mwi_sasl_proto_pop3, "+OK in", "-ERR not here", "-ERR [AUTH] bad credentials",
     "-ERR [IN-USE] busy", "-ERR cancelled", "+ "},
    {&mwi_sasl_proto_smtp, "235 2.7.0 ok", "504 5.5.4 not here", "535 5.7.8 bad credentials",
     "454 4.7.0 later", "501 5.7.0 cancelled", "334 "},
};

static const void *reply(const twin *t, const char *line)
{
    return t->proto == &mwi_sasl_proto_pop3 ? pop3(line) : smtp(line);
}

/* A continuation carrying base64 b64. */
static const void *cont(const twin *t, const char *b64)
{
    static char buf[MW_SASL_MAX_CHALLENGE + 64];
    snprintf(buf, sizeof buf, "%s%s", t->cont_prefix, b64);
    return reply(t, buf);
}

static mwi_sasld_cfg cfg_for(const twin *t, const char *offered, const char *want)
{
    mwi_sasld_cfg c;
    memset(&c, 0, sizeof c);
    c.proto = t->proto;
    c.offered = offered;
    c.policy.want = want;
    c.policy.tls = 1;
    c.policy.has_password = 1;
    c.creds.authcid = "u";
    c.creds.password = "pw";
    c.creds.hostname = "mail.example";
    c.use_ir = 1;
    c.flags = MWI_SASLD_F_RESP_CODES;
    return c;
}

static mwi_sasld *new_driver(const mwi_sasld_cfg *c)
{
    mwi_sasld *d = NULL;
    mw_error e;
    assert_int_equal(mwi_sasld_new(&d, c, &e), 0);
    assert_non_null(d);
    return d;
}

static void assert_line(const mwi_sasld *d, const char *want)
{
    size_t n;
    const char *l = mwi_sasld_line(d, &n);
    assert_string_equal(l, want);
    assert_int_equal(n, strlen(want));
}

/* ---- the exchange -------------------------------------------------------- */

static void plain_with_initial_response(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        mwi_sasld_cfg c = cfg_for(&twins[i], "PLAIN LOGIN", NULL);
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_line(d, "AUTH PLAIN AHUAcHc="); /* "\0u\0pw" */
        assert_string_equal(mwi_sasld_shown(d), "AUTH PLAIN ****");
        assert_false(mwi_sasld_in_exchange(d));
        assert_int_equal(mwi_sasld_feed(d, reply(&twins[i], twins[i].ok)), MWI_SASLD_DONE);
        assert_string_equal(mwi_sasld_mech(d), "PLAIN");
        mwi_sasld_free(d);
    }
}

static void plain_without_initial_response(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        mwi_sasld_cfg c = cfg_for(&twins[i], "PLAIN", NULL);
        c.use_ir = 0;
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_line(d, "AUTH PLAIN");
        assert_string_equal(mwi_sasld_shown(d), "AUTH PLAIN");
        assert_int_equal(mwi_sasld_feed(d, cont(&twins[i], "")), MWI_SASLD_SEND);
        assert_line(d, "AHUAcHc=");
        assert_string_equal(mwi_sasld_shown(d), "****");
        assert_true(mwi_sasld_in_exchange(d));
        assert_int_equal(mwi_sasld_feed(d, reply(&twins[i], twins[i].ok)), MWI_SASLD_DONE);
        mwi_sasld_free(d);
    }
}

static void trace_secrets_shows_nothing_masked(void **state)
{
    (void)state;
    mwi_sasld_cfg c = cfg_for(&twins[0], "PLAIN", NULL);
    c.trace_secrets = 1;
    mwi_sasld *d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
    assert_null(mwi_sasld_shown(d));
    mwi_sasld_free(d);
}

/* XOAUTH2 "user=u^Aauth=Bearer <tok>^A^A" (21 + toklen raw octets): the
 * length of "AUTH XOAUTH2 <ir>", and whether the AUTH line carried it. */
static size_t xoauth2_line(const twin *t, size_t toklen, int *inline_ir)
{
    char *tok = malloc(toklen + 1);
    assert_non_null(tok);
    memset(tok, 'a', toklen);
    tok[toklen] = '\0';
    mwi_sasld_cfg c = cfg_for(t, "XOAUTH2", NULL);
    c.policy.has_token = 1;
    c.creds.token = tok;
    mwi_sasld *d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
    size_t n;
    const char *l = mwi_sasld_line(d, &n);
    *inline_ir = strcmp(l, "AUTH XOAUTH2") != 0;
    size_t len = n;
    if (!*inline_ir) {
        /* The response follows the server's empty challenge. */
        assert_int_equal(mwi_sasld_feed(d, cont(t, "")), MWI_SASLD_SEND);
        mwi_sasld_line(d, &n);
        len = strlen("AUTH XOAUTH2 ") + n;
    }
    mwi_sasld_free(d);
    free(tok);
    return len;
}

static void initial_response_line_limits(void **state)
{
    (void)state;
    int in;
    /* POP3: 255 octets with CRLF (RFC 2449 §4, RFC 5034 §4).  A token of
     * 159 octets makes 180 raw, 240 base64, "AUTH XOAUTH2 " 13: 253 + 2. */
    assert_int_equal(xoauth2_line(&twins[0], 159, &in) + 2, 255);
    assert_true(in);
    assert_int_equal(xoauth2_line(&twins[0], 160, &in) + 2, 259);
    assert_false(in);
    /* SMTP: 512 (RFC 5321 §4.5.3.1.4, RFC 4954 §4): 160 still fits;
     * 351 octets: 372 raw, 496 base64, 509 + 2 fits; 354: 513 does not. */
    xoauth2_line(&twins[1], 160, &in);
    assert_true(in);
    assert_int_equal(xoauth2_line(&twins[1], 351, &in) + 2, 511);
    assert_true(in);
    assert_int_equal(xoauth2_line(&twins[1], 354, &in) + 2, 515);
    assert_false(in);
}

/* ---- the fallback rule, the same in both protocols ---------------------- */

static void mechanism_refusal_moves_on_credentials_end(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        const twin *t = &twins[i];
        mwi_sasld_cfg c = cfg_for(t, "PLAIN CRAM-MD5 SCRAM-SHA-256", NULL);
        mwi_sasld *d = new_driver(&c);
        assert_string_equal(mwi_sasld_mech_first(d), "SCRAM-SHA-256");
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->mech_refused)), MWI_SASLD_NEXT);
        assert_non_null(strstr(mwi_sasld_error(d)->message, "not here"));
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_line(d, "AUTH CRAM-MD5");
        assert_int_equal(mwi_sasld_feed(d, cont(t, "PDEyMzQ1QHNjcmlwdGVkPg==")), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->creds_refused)), MWI_SASLD_FAIL);
        const mw_error *e = mwi_sasld_error(d);
        assert_int_equal(e->code, MW_EAUTH);
        assert_string_equal(e->command, "AUTH CRAM-MD5");
        assert_non_null(strstr(e->message, "AUTH CRAM-MD5: authentication failed: "));
        assert_non_null(strstr(e->reply, "bad credentials"));
        if (i == 0) {
            assert_string_equal(e->resp_code, "AUTH");
        } else {
            assert_int_equal(e->reply_code, 535);
            assert_string_equal(e->enhanced, "5.7.8");
        }
        assert_false(mwi_sasld_fatal(d));
        /* PLAIN is never started. */
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_FAIL);
        mwi_sasld_free(d);
    }
}

static void named_mechanism_has_no_fallback(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        const twin *t = &twins[i];
        mwi_sasld_cfg c = cfg_for(t, "PLAIN SCRAM-SHA-256", "SCRAM-SHA-256");
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->mech_refused)), MWI_SASLD_FAIL);
        assert_int_equal(mwi_sasld_error(d)->code, MW_EAUTH);
        mwi_sasld_free(d);
    }
}

static void pop3_codes(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        unsigned flags;
        int act, code;
    } cases[] = {
        {"-ERR no", 0, MWI_SASLD_FAIL, MW_EAUTH}, /* no AUTH-RESP-CODE: may be the password */
        {"-ERR no", MWI_SASLD_F_RESP_CODES, MWI_SASLD_NEXT, MW_EAUTH},
        {"-ERR [SYS/PERM] weak", 0, MWI_SASLD_NEXT, MW_EAUTH},
        {"-ERR [AUTH] no", MWI_SASLD_F_RESP_CODES, MWI_SASLD_FAIL, MW_EAUTH},
        {"-ERR [SYS/TEMP] down", MWI_SASLD_F_RESP_CODES, MWI_SASLD_FAIL, MW_ETEMP},
        {"-ERR [LOGIN-DELAY] wait", 0, MWI_SASLD_FAIL, MW_ETEMP},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mwi_sasld_cfg c = cfg_for(&twins[0], "PLAIN SCRAM-SHA-1", NULL);
        c.flags = cases[i].flags;
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, pop3(cases[i].line)), cases[i].act);
        assert_int_equal(mwi_sasld_error(d)->code, cases[i].code);
        mwi_sasld_free(d);
    }
}

static void smtp_codes(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        int act, code, fatal;
    } cases[] = {
        {"535 5.7.8 no", MWI_SASLD_FAIL, MW_EAUTH, 0},
        {"550 5.7.8 no", MWI_SASLD_FAIL, MW_EAUTH, 0},
        {"432 4.7.12 change it", MWI_SASLD_FAIL, MW_EAUTH, 0},
        {"534 5.7.9 weak", MWI_SASLD_NEXT, MW_EAUTH, 0},
        {"538 5.7.11 tls", MWI_SASLD_NEXT, MW_EAUTH, 0},
        {"500 5.5.6 too long", MWI_SASLD_NEXT, MW_EAUTH, 0},
        {"454 4.7.0 later", MWI_SASLD_FAIL, MW_ETEMP, 0},
        {"421 4.3.2 bye", MWI_SASLD_FAIL, MW_ETEMP, 1},
        {"554 5.0.0 no", MWI_SASLD_FAIL, MW_EAUTH, 0},
        {"354 go", MWI_SASLD_FAIL, MW_EPROTO, 1},
        {"334-abc\n334 def", MWI_SASLD_FAIL, MW_EPROTO, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        mwi_sasld_cfg c = cfg_for(&twins[1], "PLAIN SCRAM-SHA-1", NULL);
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, smtp(cases[i].reply)), cases[i].act);
        assert_int_equal(mwi_sasld_error(d)->code, cases[i].code);
        if (cases[i].act == MWI_SASLD_FAIL) assert_int_equal(mwi_sasld_fatal(d), cases[i].fatal);
        mwi_sasld_free(d);
    }
}

static void local_failure_moves_on(void **state)
{
    (void)state;
    mwi_sasld_cfg c = cfg_for(&twins[1], "CRAM-MD5 XOAUTH2", "CRAM-MD5 XOAUTH2");
    c.policy.has_token = 1;
    c.creds.password = NULL; /* the policy said yes, the engine finds none */
    c.creds.token = "tok";
    mwi_sasld *d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_NEXT);
    assert_int_equal(mwi_sasld_error(d)->code, MW_EINVAL);
    assert_non_null(strstr(mwi_sasld_error(d)->message, "password"));
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
    assert_string_equal(mwi_sasld_mech(d), "XOAUTH2");
    mwi_sasld_free(d);
}

static void choose_errors_come_from_new(void **state)
{
    (void)state;
    mwi_sasld_cfg c = cfg_for(&twins[0], "GSSAPI NTLM", NULL);
    mwi_sasld *d = (mwi_sasld *)&c;
    mw_error e;
    assert_int_equal(mwi_sasld_new(&d, &c, &e), MW_EUNSUPPORTED);
    assert_null(d);
    c.proto = NULL;
    assert_int_equal(mwi_sasld_new(&d, &c, &e), MW_EINVAL);
}

/* ---- the token provider -------------------------------------------------- */

static void token_refreshed_once_then_final(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        const twin *t = &twins[i];
        mwi_sasld_cfg c = cfg_for(t, "PLAIN XOAUTH2", NULL);
        c.policy.has_token = 1;
        c.has_token_fn = 1;
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_TOKEN);
        assert_false(mwi_sasld_token_refresh(d));
        assert_int_equal(mwi_sasld_token(d, 0, strdup("tok1"), NULL), MWI_SASLD_SEND);
        /* base64("user=u\1auth=Bearer tok1\1\1") */
        assert_line(d, "AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHRvazEBAQ==");
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->creds_refused)), MWI_SASLD_TOKEN);
        assert_true(mwi_sasld_token_refresh(d));
        assert_int_equal(mwi_sasld_token(d, 0, strdup("tok2"), NULL), MWI_SASLD_SEND);
        assert_line(d, "AUTH XOAUTH2 dXNlcj11AWF1dGg9QmVhcmVyIHRvazIBAQ==");
        /* Refused again: final, PLAIN is not tried. */
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->creds_refused)), MWI_SASLD_FAIL);
        assert_int_equal(mwi_sasld_error(d)->code, MW_EAUTH);
        mwi_sasld_free(d);
    }
}

static void token_provider_answers(void **state)
{
    (void)state;
    const twin *t = &twins[1];
    mwi_sasld_cfg c = cfg_for(t, "OAUTHBEARER", NULL);
    c.policy.has_token = 1;
    c.has_token_fn = 1;
    /* Nothing newer on refresh: the refusal stands. */
    mwi_sasld *d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_TOKEN);
    assert_int_equal(mwi_sasld_token(d, 0, strdup("tok1"), NULL), MWI_SASLD_SEND);
    assert_int_equal(mwi_sasld_feed(d, smtp("535 5.7.8 expired")), MWI_SASLD_TOKEN);
    assert_int_equal(mwi_sasld_token(d, 0, NULL, NULL), MWI_SASLD_FAIL);
    assert_non_null(strstr(mwi_sasld_error(d)->message, "expired"));
    mwi_sasld_free(d);
    /* The provider fails: its error, unchanged. */
    d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_TOKEN);
    mw_error pe;
    memset(&pe, 0, sizeof pe);
    pe.code = MW_ENET;
    snprintf(pe.message, sizeof pe.message, "token endpoint unreachable");
    assert_int_equal(mwi_sasld_token(d, MW_ENET, NULL, &pe), MWI_SASLD_FAIL);
    assert_int_equal(mwi_sasld_error(d)->code, MW_ENET);
    assert_string_equal(mwi_sasld_error(d)->message, "token endpoint unreachable");
    mwi_sasld_free(d);
    /* No token at first: an error. */
    d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_TOKEN);
    assert_int_equal(mwi_sasld_token(d, 0, NULL, NULL), MWI_SASLD_FAIL);
    assert_int_equal(mwi_sasld_error(d)->code, MW_EINVAL);
    /* A token nobody asked for. */
    assert_int_equal(mwi_sasld_token(d, 0, strdup("x"), NULL), MWI_SASLD_FAIL);
    mwi_sasld_free(d);
}

/* ---- hostile servers ------------------------------------------------------ */

/* Starts CRAM-MD5 and feeds a challenge; expects the cancel "*". */
static mwi_sasld *cancelled_by(const twin *t, const char *b64)
{
    mwi_sasld_cfg c = cfg_for(t, "CRAM-MD5", NULL);
    mwi_sasld *d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
    assert_int_equal(mwi_sasld_feed(d, cont(t, b64)), MWI_SASLD_SEND);
    assert_line(d, "*");
    assert_string_equal(mwi_sasld_shown(d), "*");
    return d;
}

static void bad_challenges_are_cancelled(void **state)
{
    (void)state;
    char *big = malloc(MW_SASL_MAX_CHALLENGE + 5);
    assert_non_null(big);
    memset(big, 'A', MW_SASL_MAX_CHALLENGE + 4);
    big[MW_SASL_MAX_CHALLENGE + 4] = '\0';
    for (size_t i = 0; i < 2; i++) {
        const twin *t = &twins[i];
        mwi_sasld *d = cancelled_by(t, "!!!not base64!!!");
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->cancelled)), MWI_SASLD_FAIL);
        assert_int_equal(mwi_sasld_error(d)->code, MW_EPROTO);
        assert_non_null(strstr(mwi_sasld_error(d)->message, "bad server challenge, cancelled"));
        assert_false(mwi_sasld_fatal(d));
        mwi_sasld_free(d);
        /* Over the engine's bound.  SMTP's codec stops a line of 2048
         * octets already; the classified reply goes to the driver direct. */
        if (i == 0) {
            d = cancelled_by(t, big);
        } else {
            mwi_sasld_cfg c = cfg_for(t, "CRAM-MD5", NULL);
            d = new_driver(&c);
            assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
            mwi_sasld_reply r;
            memset(&r, 0, sizeof r);
            r.kind = MWI_SASLD_R_CONT;
            r.text = big;
            r.len = strlen(big);
            assert_int_equal(mwi_sasld_feed_class(d, &r), MWI_SASLD_SEND);
            assert_line(d, "*");
        }
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->cancelled)), MWI_SASLD_FAIL);
        assert_int_equal(mwi_sasld_error(d)->code, MW_ETOOBIG);
        mwi_sasld_free(d);
        /* The server ignores the "*": out of step, the connection is done. */
        d = cancelled_by(t, "!!!");
        assert_int_equal(mwi_sasld_feed(d, cont(t, "")), MWI_SASLD_FAIL);
        assert_true(mwi_sasld_fatal(d));
        assert_int_equal(mwi_sasld_error(d)->code, MW_EPROTO);
        mwi_sasld_free(d);
    }
    free(big);
}

static void early_success_is_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < 2; i++) {
        const twin *t = &twins[i];
        mwi_sasld_cfg c = cfg_for(t, "SCRAM-SHA-256", NULL);
        mwi_sasld *d = new_driver(&c);
        assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
        assert_int_equal(mwi_sasld_feed(d, reply(t, t->ok)), MWI_SASLD_FAIL);
        assert_int_equal(mwi_sasld_error(d)->code, MW_EAUTH);
        assert_non_null(strstr(mwi_sasld_error(d)->message, "before proving itself"));
        assert_true(mwi_sasld_fatal(d));
        mwi_sasld_free(d);
    }
}

/* Whatever the mechanism, endless continuations end in a bounded number
 * of lines, with a cancel and a failure. */
static void endless_continuations_are_bounded(void **state)
{
    (void)state;
    static const char *const mechs[] = {"PLAIN",   "LOGIN",       "CRAM-MD5",
                                        "XOAUTH2", "OAUTHBEARER", "EXTERNAL"};
    static const char *const challenges[] = {"", "VXNlcm5hbWU6", "PDEyMzQ1QHNjcmlwdGVkPg=="};
    for (size_t i = 0; i < 2; i++) {
        for (size_t m = 0; m < sizeof mechs / sizeof mechs[0]; m++) {
            for (size_t k = 0; k < 3; k++) {
                mwi_sasld_cfg c = cfg_for(&twins[i], mechs[m], NULL);
                c.policy.has_token = 1;
                c.policy.want_external = 1;
                c.creds.token = "tok";
                c.use_ir = (int)(k & 1);
                mwi_sasld *d = new_driver(&c);
                int act = mwi_sasld_start(d), sends = 0;
                while (act == MWI_SASLD_SEND && sends < 100) {
                    sends++;
                    act = mwi_sasld_feed(d, cont(&twins[i], challenges[(k + sends) % 3]));
                }
                assert_int_equal(act, MWI_SASLD_FAIL);
                assert_true(sends <= MWI_SASLD_MAX_ROUNDS + 2);
                mwi_sasld_free(d);
            }
        }
    }
}

static void misuse_is_refused(void **state)
{
    (void)state;
    mwi_sasld_cfg c = cfg_for(&twins[0], "PLAIN", NULL);
    mwi_sasld *d = new_driver(&c);
    /* A reply before anything was sent. */
    assert_int_equal(mwi_sasld_feed(d, pop3("+OK")), MWI_SASLD_FAIL);
    assert_int_equal(mwi_sasld_error(d)->code, MW_ESTATE);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_FAIL);
    mwi_sasld_free(d);
    d = new_driver(&c);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_SEND);
    assert_int_equal(mwi_sasld_start(d), MWI_SASLD_FAIL); /* mid-exchange */
    mwi_sasld_free(d);
    assert_int_equal(mwi_sasld_start(NULL), MWI_SASLD_FAIL);
    assert_int_equal(mwi_sasld_feed(NULL, NULL), MWI_SASLD_FAIL);
    mwi_sasld_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_with_initial_response),
        cmocka_unit_test(plain_without_initial_response),
        cmocka_unit_test(trace_secrets_shows_nothing_masked),
        cmocka_unit_test(initial_response_line_limits),
        cmocka_unit_test(mechanism_refusal_moves_on_credentials_end),
        cmocka_unit_test(named_mechanism_has_no_fallback),
        cmocka_unit_test(pop3_codes),
        cmocka_unit_test(smtp_codes),
        cmocka_unit_test(local_failure_moves_on),
        cmocka_unit_test(choose_errors_come_from_new),
        cmocka_unit_test(token_refreshed_once_then_final),
        cmocka_unit_test(token_provider_answers),
        cmocka_unit_test(bad_challenges_are_cancelled),
        cmocka_unit_test(early_success_is_refused),
        cmocka_unit_test(endless_continuations_are_bounded),
        cmocka_unit_test(misuse_is_refused),
    };
    cmocka_set_message_output(CM_OUTPUT_TAP);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
