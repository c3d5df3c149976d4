/* mwi_sasl_choose() on arbitrary server lists and wanted lists, and
 * mwi_sasl_mask() on arbitrary client lines.  Byte 0: policy flags; the rest
 * up to the first NUL is the server's list, after it the wanted list (if
 * any).  The whole input is also masked. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sasl/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 16384) return 0;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t first = strlen(text);
    const char *want = first < size - 1 ? text + first + 1 : NULL;
    mw_sasl_policy pol = {want,        data[0] & 1,  data[0] & 2, data[0] & 4,
                          data[0] & 8, data[0] & 16, data[0] & 32};
    const char *out[MW_SASL_MAX_MECHS];
    size_t n = 0;
    mw_error err;
    memset(&err, 0, sizeof err);
    int rc = mwi_sasl_choose(out, (size_t)(data[0] >> 6) + 1, &n, (data[0] & 64) ? NULL : text,
                             &pol, &err);
    if (rc == 0 && (n == 0 || n > (size_t)(data[0] >> 6) + 1)) abort();
    if (rc != 0 && (n != 0 || err.message[0] == '\0')) abort();
    for (size_t i = 0; i < n; i++) {
        if (!mw_sasl_mechanism_supported(out[i])) abort();
        /* Never a plaintext mechanism in clear unless allowed. */
        if (!pol.tls && !pol.allow_plaintext &&
            (!strcmp(out[i], "PLAIN") || !strcmp(out[i], "LOGIN") || !strcmp(out[i], "XOAUTH2") ||
             !strcmp(out[i], "OAUTHBEARER")))
            abort();
        if (strstr(out[i], "-PLUS") && !(pol.tls && pol.has_cb)) abort();
    }
    char masked[128];
    size_t m = mwi_sasl_mask(masked, sizeof masked, (const char *)data, size);
    if (m >= sizeof masked || strlen(masked) != m) abort();
    free(text);
    return 0;
}
