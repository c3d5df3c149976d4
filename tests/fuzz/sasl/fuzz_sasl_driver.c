/* Drives the SASL driver (src/sasl/driver.h) with arbitrary reply lines in
 * POP3's or SMTP's shape, the way a session does: send what it says, feed
 * it the reply, answer its token requests, start the next mechanism.
 *
 * Input: byte 0 holds flags (bit 0: SMTP, else POP3; bit 1: initial
 * responses; bit 2: AUTH-RESP-CODE announced; bit 3: tokens come from a
 * provider; bit 4: trace secrets; bits 5-7 pick the server's mechanism
 * list), byte 1 how the provider answers (bit 0: no token at first; bit 1:
 * no newer token; bit 2: an error), the rest the server's lines separated
 * by '\n'.  Checked on every step: no CR, LF or NUL in a line to send, the
 * masked form never longer than its buffer, a bounded number of lines. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pop3_codec.h"
#include "proto/smtp_reply.h"
#include "sasl/driver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const offered[8] = {
    "PLAIN",
    "LOGIN PLAIN",
    "CRAM-MD5 PLAIN",
    "DIGEST-MD5",
    "XOAUTH2 OAUTHBEARER PLAIN",
    "SCRAM-SHA-1 SCRAM-SHA-256 CRAM-MD5 LOGIN PLAIN",
    "EXTERNAL PLAIN",
    "OAUTHBEARER XOAUTH2 SCRAM-SHA-256-PLUS LOGIN",
};

static mw_smtp_reply rep;

static void check_line(const mwi_sasld *d)
{
    size_t n;
    const char *l = mwi_sasld_line(d, &n);
    if (n != strlen(l) || n + 2 > MWI_SASLD_MAX_LINE) abort();
    if (memchr(l, '\r', n) || memchr(l, '\n', n)) abort();
    const char *sh = mwi_sasld_shown(d);
    if (sh && strlen(sh) >= 200) abort();
}

static int answer_token(mwi_sasld *d, uint8_t how)
{
    int refresh = mwi_sasld_token_refresh(d);
    if (how & 4) {
        mw_error e;
        memset(&e, 0, sizeof e);
        e.code = MW_ENET;
        return mwi_sasld_token(d, MW_ENET, NULL, &e);
    }
    if ((!refresh && (how & 1)) || (refresh && (how & 2))) return mwi_sasld_token(d, 0, NULL, NULL);
    char *t = strdup(refresh ? "tok-2" : "tok-1");
    return mwi_sasld_token(d, 0, t, NULL);
}

/* The next complete reply from the input; 0 when it ends or is unusable. */
static int next_reply(int smtp, const char **p, const char *end, const void **out,
                      mw_pop3_status *st)
{
    if (smtp) mwi_smtp_reply_init(&rep);
    while (*p < end) {
        const char *nl = memchr(*p, '\n', (size_t)(end - *p));
        const char *le = nl ? nl : end;
        const char *l = *p;
        *p = nl ? nl + 1 : end;
        size_t n = (size_t)(le - l);
        if (n && l[n - 1] == '\r') n--;
        if (!smtp) {
            if (mwi_pop3_parse_status(st, l, n)) return 0;
            *out = st;
            return 1;
        }
        int rc = mwi_smtp_reply_feed(&rep, l, n, NULL);
        if (rc < 0) return 0;
        if (rc == 1) {
            *out = &rep;
            return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    uint8_t f = data[0], how = data[1];
    int smtp = f & 1;
    mwi_sasld_cfg c;
    memset(&c, 0, sizeof c);
    c.proto = smtp ? &mwi_sasl_proto_smtp : &mwi_sasl_proto_pop3;
    c.offered = offered[f >> 5];
    c.policy.tls = 1;
    c.policy.has_password = 1;
    c.policy.has_token = 1;
    c.policy.want_external = 1;
    c.policy.has_cb = 1;
    c.creds.authcid = "user";
    c.creds.password = "secret";
    c.creds.token = (f & 8) ? NULL : "tok-0";
    c.creds.hostname = "mail.example";
    c.creds.cb_type = "tls-exporter";
    c.creds.cb_data = (const unsigned char *)"0123456789abcdef0123456789abcdef";
    c.creds.cb_len = 32;
    c.use_ir = (f >> 1) & 1;
    c.flags = (f & 4) ? MWI_SASLD_F_RESP_CODES : 0;
    c.has_token_fn = (f >> 3) & 1;
    c.trace_secrets = (f >> 4) & 1;
    mwi_sasld *d = NULL;
    if (mwi_sasld_new(&d, &c, NULL)) return 0;
    const char *p = (const char *)data + 2, *end = (const char *)data + size;
    mw_pop3_status st;
    /* Every mechanism: its AUTH line, a refresh, its rounds, a cancel. */
    int sends = 0, limit = MW_SASL_MAX_MECHS * 2 * (MWI_SASLD_MAX_ROUNDS + 2);
    int act = mwi_sasld_start(d);
    for (;;) {
        if (act == MWI_SASLD_SEND) {
            check_line(d);
            if (++sends > limit) abort();
            const void *r = NULL;
            if (!next_reply(smtp, &p, end, &r, &st)) break;
            act = mwi_sasld_feed(d, r);
        } else if (act == MWI_SASLD_TOKEN) {
            act = answer_token(d, how);
        } else if (act == MWI_SASLD_NEXT) {
            act = mwi_sasld_start(d);
        } else {
            const mw_error *e = mwi_sasld_error(d);
            if (act == MWI_SASLD_FAIL && (!e || e->code >= 0)) abort();
            if (act != MWI_SASLD_FAIL && act != MWI_SASLD_DONE) abort();
            break;
        }
    }
    mwi_sasld_free(d);
    return 0;
}
