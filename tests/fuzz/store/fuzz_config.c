/* Fuzzes the accounts config parser: any bytes give a config or an error
 * "NAME:LINE: …"; every account of a config can be looked up by name. */
#include "mailwire/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mw_config *c = NULL;
    mw_error err;
    mw_error_clear(&err);
    mw_config_options o = MW_CONFIG_OPTIONS_INIT;
    o.home = "/home/fuzz";
    int rc = mw_config_parse(&c, (const char *)data, size, "fuzz.conf", &o, &err);
    if (rc == 0) {
        for (size_t i = 0; i < mw_config_count(c); i++) {
            const mw_account *a = mw_config_account_at(c, i);
            if (mw_config_find(c, a->name) != a) abort();
            if (a->from && !mw_config_find_by_from(c, a->from)) abort();
            if (a->port < 0 || a->port > 65535) abort();
        }
        mw_config_free(c);
    } else if (c != NULL || strncmp(err.message, "fuzz.conf", 9) != 0) {
        abort();
    }
    return 0;
}
