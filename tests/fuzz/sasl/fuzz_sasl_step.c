/* Feeds arbitrary server challenges to every mechanism of the SASL engine.
 *
 * Input: byte 0 picks the mechanism (index into mw_sasl_mechanisms()),
 * byte 1 holds flags (bit 0: ask for an initial response; bit 1: pass the
 * challenges as they are instead of base64-encoding them, to reach the
 * decoder; bit 2: channel binding data present), the rest is the
 * challenges separated by '\n'.  "%N" in a challenge is replaced by our SCRAM
 * client nonce so that the fuzzer can get past the nonce check. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mailwire/sasl.h"
#include "sasl/sasl.h"
#include "util/base64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned char cb[32] = "fuzz-channel-binding-data-32byte";

/* Our client nonce, from a SCRAM client-first message (raw). */
static size_t find_nonce(const char *ir_b64, char *out, size_t cap)
{
    size_t len = strlen(ir_b64);
    unsigned char raw[512];
    if (len / 4 * 3 >= sizeof raw) return 0;
    long n = mwi_base64_decode_strict(raw, ir_b64, len);
    if (n <= 0) return 0;
    const char *r = memmem(raw, (size_t)n, ",r=", 3);
    if (!r) return 0;
    r += 3;
    size_t k = 0;
    while (r + k < (const char *)raw + n && r[k] != ',' && k + 1 < cap) {
        out[k] = r[k];
        k++;
    }
    out[k] = '\0';
    return k;
}

/* An iteration count the engine would accept but that takes seconds under
 * the sanitizers (100000 up to the cap, 1000000): not interesting, skipped.
 * Counts above the cap, of any length, are refused before any hashing and
 * are fuzzed (the refusal names them). */
static int slow_iterations(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] == 'i' && p[i + 1] == '=') {
            unsigned long v = 0;
            size_t d = 0;
            while (i + 2 + d < n && p[i + 2 + d] >= '0' && p[i + 2 + d] <= '9') {
                if (v <= 1000000) v = v * 10 + (unsigned long)(p[i + 2 + d] - '0');
                d++;
            }
            if (v >= 100000 && v <= 1000000) return 1;
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 8192 || slow_iterations(data, size)) return 0;
    const char *const *names = mw_sasl_mechanisms();
    size_t nmech = 0;
    while (names[nmech])
        nmech++;
    const char *mech = names[data[0] % nmech];
    int want_ir = data[1] & 1, raw_mode = data[1] & 2, with_cb = data[1] & 4;

    mw_sasl_creds c;
    memset(&c, 0, sizeof c);
    c.authcid = "user,=name";
    c.password = "pencil";
    c.token = "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==";
    c.service = "smtp";
    c.hostname = "mx.example";
    c.port = 587;
    if (with_cb) {
        c.cb_type = "tls-exporter";
        c.cb_data = cb;
        c.cb_len = sizeof cb;
    }
    mw_error err;
    memset(&err, 0, sizeof err);
    mw_sasl *s = NULL;
    const char *ir = NULL;
    if (mwi_sasl_start(&s, want_ir ? &ir : NULL, mech, &c, &err) != 0) return 0;
    char nonce[128] = "";
    size_t nonce_len = ir ? find_nonce(ir, nonce, sizeof nonce) : 0;

    const uint8_t *p = data + 2, *end = data + size;
    /* Each 2-byte "%N" grows into the nonce. */
    size_t chal_cap = size * (nonce_len / 2 + 1) + 1;
    char *chal = malloc(chal_cap);
    char *b64 = malloc(mwi_base64_encoded_len(chal_cap) + 1);
    while (chal && b64 && p <= end) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *e = nl ? nl : end;
        size_t n = 0;
        for (const uint8_t *q = p; q < e; q++) {
            if (q + 1 < e && q[0] == '%' && q[1] == 'N' && nonce_len) {
                memcpy(chal + n, nonce, nonce_len);
                n += nonce_len;
                q++;
            } else {
                chal[n++] = (char)*q;
            }
        }
        const char *resp = NULL;
        int rc;
        if (raw_mode) {
            rc = mwi_sasl_step(s, &resp, chal, n, &err);
        } else {
            mwi_base64_encode(b64, (const unsigned char *)chal, n);
            rc = mwi_sasl_step(s, &resp, b64, strlen(b64), &err);
        }
        if (rc < 0) {
            if (resp || err.message[0] == '\0')
                abort(); /* an error must say why and give no response */
            break;
        }
        if (!resp || strlen(resp) % 4) abort(); /* a response is always base64 */
        if (!nl) break;
        p = nl + 1;
    }
    (void)mwi_sasl_check_success(s, &err);
    (void)mwi_sasl_finished(s);
    (void)strlen(mwi_sasl_server_error(s));
    mwi_sasl_free(s);
    free(chal);
    free(b64);
    return 0;
}
