/* The SASL engine against GNU SASL's server side, with the fuzzer editing
 * the server's challenges on the way: reaches the later stages (SCRAM
 * server-final, DIGEST-MD5 rspauth) that random challenges never get to.
 *
 * Input: byte 0 picks the mechanism, byte 1 flags (bit 0: initial
 * response; bit 1: wrong password; bit 2: channel binding on both sides),
 * then per server challenge an edit: a count byte c, then c pairs
 * (position, value) — the byte at position % length becomes value — or, when
 * c is 0xFF, the challenge is cut at the next byte.  An exchange with no
 * edits and the right password must succeed. */
#include <gsasl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/sasl.h"
#include "util/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const mechs[] = {"PLAIN",         "LOGIN",
                                    "CRAM-MD5",      "DIGEST-MD5",
                                    "SCRAM-SHA-1",   "SCRAM-SHA-1-PLUS",
                                    "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
static const unsigned char cb[32] = "fuzz-channel-binding-data-32byte";

static int server_cb(Gsasl *ctx, Gsasl_session *sctx, Gsasl_property prop)
{
    (void)ctx;
    if (prop == GSASL_PASSWORD) {
        const char *u = gsasl_property_fast(sctx, GSASL_AUTHID);
        if (u && strcmp(u, "s1") == 0) {
            gsasl_property_set(sctx, GSASL_PASSWORD, "pw-s1");
            return GSASL_OK;
        }
    }
    return GSASL_NO_CALLBACK;
}

/* Applies the next edit of the input to the raw challenge; returns 1 when
 * something was changed. */
static int edit(char *msg, size_t *n, const uint8_t **p, const uint8_t *end)
{
    if (*p >= end) return 0;
    uint8_t c = *(*p)++;
    if (c == 0xFF) {
        if (*p >= end) return 0;
        size_t cut = *n ? *(*p)++ % *n : 0;
        int changed = cut != *n;
        *n = cut;
        return changed;
    }
    int changed = 0;
    for (uint8_t i = 0; i < c && *p + 1 < end && *n; i++) {
        size_t pos = (*p)[0] % *n;
        if (msg[pos] != (char)(*p)[1]) changed = 1;
        msg[pos] = (char)(*p)[1];
        *p += 2;
    }
    return changed;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 4096) return 0;
    const char *mech = mechs[data[0] % (sizeof mechs / sizeof mechs[0])];
    int want_ir = data[1] & 1, wrong = data[1] & 2, bind = data[1] & 4;
    if (strstr(mech, "-PLUS")) bind = 1;
    const uint8_t *p = data + 2, *end = data + size;

    Gsasl *ctx;
    Gsasl_session *ss;
    if (gsasl_init(&ctx) != GSASL_OK) return 0;
    gsasl_callback_set(ctx, server_cb);
    if (gsasl_server_start(ctx, mech, &ss) != GSASL_OK) {
        gsasl_done(ctx);
        return 0;
    }
    gsasl_property_set(ss, GSASL_SERVICE, "smtp");
    gsasl_property_set(ss, GSASL_HOSTNAME, "mx.example");
    char cb64[64];
    mwi_base64_encode(cb64, cb, sizeof cb);
    if (bind) gsasl_property_set(ss, GSASL_CB_TLS_EXPORTER, cb64);

    mw_sasl_creds c;
    memset(&c, 0, sizeof c);
    c.authcid = "s1";
    c.password = wrong ? "pw-s2" : "pw-s1";
    c.service = "smtp";
    c.hostname = "mx.example";
    if (bind) {
        c.cb_type = "tls-exporter";
        c.cb_data = cb;
        c.cb_len = sizeof cb;
    }
    mw_sasl *s = NULL;
    const char *ir = NULL;
    mw_error err;
    memset(&err, 0, sizeof err);
    if (mwi_sasl_start(&s, want_ir ? &ir : NULL, mech, &c, &err) != 0)
        abort(); /* every credential it needs is there */

    /* The server's first challenge, raw. */
    char *out = NULL;
    size_t out_len = 0;
    int src;
    if (ir && strcmp(ir, "=") != 0) {
        char *o64 = NULL;
        src = gsasl_step64(ss, ir, &o64);
        if (o64) {
            size_t l = strlen(o64);
            out = malloc(l + 1);
            long dl = mwi_base64_decode_strict((unsigned char *)out, o64, l);
            out_len = dl > 0 ? (size_t)dl : 0;
            gsasl_free(o64);
        }
    } else {
        src = gsasl_step(ss, "", 0, &out, &out_len);
    }
    int edited = 0, client_failed = 0, rounds = 0, accepted = 0, final_seen = 0;
    while ((src == GSASL_NEEDS_MORE || (src == GSASL_OK && out_len)) && rounds++ < 8) {
        int final_data = src == GSASL_OK;
        char *msg = malloc(out_len + 1);
        memcpy(msg, out ? out : "", out_len);
        size_t n = out_len;
        free(out);
        out = NULL;
        edited |= edit(msg, &n, &p, end);
        char *b64 = malloc(mwi_base64_encoded_len(n) + 1);
        mwi_base64_encode(b64, (const unsigned char *)msg, n);
        free(msg);
        const char *resp = NULL;
        int rc = mwi_sasl_step(s, &resp, b64, strlen(b64), &err);
        free(b64);
        if (rc < 0) {
            client_failed = 1;
            break;
        }
        if (final_data) {
            final_seen = 1;
            accepted = mwi_sasl_check_success(s, &err) == 0;
            break;
        }
        char *o64 = NULL;
        src = gsasl_step64(ss, resp, &o64);
        out_len = 0;
        if (o64) {
            size_t l = strlen(o64);
            out = malloc(l + 1);
            long dl = mwi_base64_decode_strict((unsigned char *)out, o64, l);
            out_len = dl > 0 ? (size_t)dl : 0;
            gsasl_free(o64);
        }
    }
    free(out);
    if (!client_failed && !final_seen && src == GSASL_OK)
        accepted = mwi_sasl_check_success(s, &err) == 0;
    /* The honest exchange works. */
    if (!edited && !wrong && (client_failed || !accepted)) abort();
    /* A wrong password never ends in an accepted login. */
    if (wrong && accepted) abort();
    mwi_sasl_free(s);
    gsasl_finish(ss);
    gsasl_done(ctx);
    return 0;
}
