/* libFuzzer target: an arbitrary header block through the envelope rules
 * (address lists, From/Sender/Resent-, Bcc removal, header rewrite), and
 * arbitrary bytes through the DATA encoder split at a point taken from the
 * input.  Every address that comes out must be a safe command argument. */
#include "proto/smtp_data.h"
#include "smtp/envelope.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    mw_error err;
    mw_smtp_msg m = MW_SMTP_MSG_INIT;
    mw_smtp_env env;
    if (mwi_smtp_env_build(&env, &m, p, size, "fuzz.host", &err) == 0) {
        for (size_t i = 0; i < env.nrcpt; i++)
            if (strpbrk(env.rcpt[i], "\r\n<>") || mwi_smtp_check_address(env.rcpt[i], "r", &err))
                abort();
        if (strpbrk(env.originator, "\r\n<>")) abort();
        mwi_smtp_env_free(&env);
    }
    /* DATA: the output never holds a bare CR or LF, and only the final
     * CRLF.CRLF ends it. */
    size_t cut = size ? data[0] % (size + 1) : 0;
    mw_smtp_data_enc e;
    mwi_smtp_data_init(&e, 0);
    mw_buf out = MW_BUF_INIT(0);
    int rc = mwi_smtp_data_encode(&e, p, cut, &out, &err);
    if (!rc) rc = mwi_smtp_data_encode(&e, p + cut, size - cut, &out, &err);
    if (!rc) rc = mwi_smtp_data_finish(&e, &out, &err);
    if (!rc) {
        for (size_t i = 0; i < out.len; i++) {
            if (out.data[i] == '\r' && (i + 1 >= out.len || out.data[i + 1] != '\n')) abort();
            if (out.data[i] == '\n' && (i == 0 || out.data[i - 1] != '\r')) abort();
        }
        const char *end = memmem(out.data, out.len, "\r\n.\r\n", 5);
        if (out.len == 3 ? memcmp(out.data, ".\r\n", 3) != 0
                         : (!end || (size_t)(end - out.data) + 5 != out.len))
            abort();
    }
    mwi_buf_free(&out);
    return 0;
}
