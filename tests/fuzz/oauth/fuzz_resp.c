/* Fuzz target: the token / device-authorization response parser
 * (src/oauth/resp.c), for every kind and a spread of HTTP statuses, then
 * the error namer on whatever "error" it found. */
#include "oauth/oauth_int.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 500, 302};
    for (int kind = 0; kind < 2; kind++) {
        for (size_t s = 0; s < sizeof statuses / sizeof statuses[0]; s++) {
            mw_oauth_resp r;
            mw_error e;
            memset(&e, 0, sizeof e);
            int rc = mwi_oauth_parse_resp((const char *)data, size, statuses[s], kind, &r, &e);
            if (rc == 0 && r.error) mwi_oauth_error_for(&r, "token", &e);
            mwi_oauth_resp_clear(&r);
        }
    }
    return 0;
}
