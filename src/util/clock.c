#include "mailwire/common.h"

#include <stdlib.h>
#include <time.h>

int64_t mw_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* In the library's own allocator's terms, whatever the caller links with. */
void mw_free(void *p)
{
    free(p);
}
