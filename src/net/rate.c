/* Transfer-rate floor bookkeeping (see rate.h). */
#include "net/rate.h"

void mwi_rate_init(mw_rate *r, unsigned bytes_per_s, int window_ms)
{
    r->need = 0;
    r->window_ms = 0;
    r->waited_ms = 0;
    r->bytes = 0;
    r->failed_bytes = 0;
    if (bytes_per_s == 0 || window_ms <= 0) return;
    r->window_ms = window_ms;
    /* At least one byte per window, whatever the rounding. */
    uint64_t need = (uint64_t)bytes_per_s * (uint64_t)window_ms / 1000u;
    r->need = need ? need : 1;
}

int mwi_rate_on(const mw_rate *r)
{
    return r->need != 0;
}

int64_t mwi_rate_budget(const mw_rate *r)
{
    if (!r->need) return INT64_MAX;
    int64_t left = r->window_ms - r->waited_ms;
    return left > 0 ? left : 0;
}

int mwi_rate_account(mw_rate *r, int64_t ms, uint64_t n)
{
    if (!r->need) return 0;
    if (ms < 0) ms = 0;
    r->bytes = n > UINT64_MAX - r->bytes ? UINT64_MAX : r->bytes + n;
    r->waited_ms = ms > INT64_MAX - r->waited_ms ? INT64_MAX : r->waited_ms + ms;
    if (r->bytes >= r->need) {
        /* Satisfied: the next window starts now. */
        r->bytes = 0;
        r->waited_ms = 0;
        return 0;
    }
    if (r->waited_ms < r->window_ms) return 0;
    r->failed_bytes = r->bytes;
    r->bytes = 0;
    r->waited_ms = 0;
    return -1;
}
