/* Random bytes from the kernel (getrandom(2)); no weaker fallback. */
#include "util/random.h"

#include "util/err.h"

#include <errno.h>
#include <sys/random.h>

int mwi_random_bytes(void *buf, size_t n, mw_error *err)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < n) {
        /* Flags 0: waits only until the kernel's pool is first seeded
         * (early boot); afterwards never blocks and never fails short. */
        ssize_t r = getrandom(p + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return mwi_err_set(err, MW_EIO, "no random bytes from the kernel (getrandom): %s",
                               MW_ERRNO_TEXT(errno));
        }
        got += (size_t)r;
    }
    return 0;
}
