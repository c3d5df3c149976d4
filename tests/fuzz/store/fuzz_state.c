/* Fuzzes the UIDL state file parser: any bytes give success or a clean
 * error with a message naming the line; a parsed state answers lookups
 * for every UID it listed. */
#include "mailwire/store.h"
#include "store/store_int.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mw_state *st = mwi_state_new_detached();
    if (!st) return 0;
    int rc = mwi_state_parse(st, (const char *)data, size, "fuzz.uidl");
    if (rc == 0) {
        /* every data line was taken: its UID must be found */
        size_t lines = 0;
        const char *p = (const char *)data, *end = p + size;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (lines++ > 0) {
                const char *sp = memchr(p, ' ', (size_t)(nl - p));
                char uid[MW_STATE_UID_MAX + 1];
                size_t n = (size_t)(nl - sp - 1);
                memcpy(uid, sp + 1, n);
                uid[n] = '\0';
                if (!mw_state_contains(st, uid)) abort();
            }
            p = nl + 1;
        }
        if (lines && mw_state_count(st) != lines - 1) abort();
        mw_state_add(st, "fuzz-extra", 1);
        mw_state_remove(st, "fuzz-extra");
    } else if (!strstr(mw_state_error(st)->message, "fuzz.uidl:")) {
        abort();
    }
    mw_state_free(st);
    return 0;
}
