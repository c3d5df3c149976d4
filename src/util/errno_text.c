/* The system's text for an errno value, thread-safe on every libc.
 *
 * strerror() may return a buffer shared by all threads.  strerror_r()
 * comes in two shapes: POSIX (XSI) returns an int and fills the buffer;
 * GNU (glibc with _GNU_SOURCE) returns a char * that may point to a static
 * string instead.  _Generic on the type of the unevaluated call picks the
 * matching handler at compile time, so no feature-test macro decides it.
 *
 * checksrc: allow strerror_r: this file is the one wrapper around it */
#include "util/err.h"

#include <stdio.h>
#include <string.h>

/* GNU: the text is what the call returned, maybe not the buffer. */
static const char *from_gnu(char *r, char *tmp)
{
    (void)tmp;
    return r;
}

/* XSI: 0 and the buffer filled, or an error number (-1 and errno on old
 * glibc), e.g. ERANGE when the buffer is short: tmp is large enough for
 * every real text, and the caller's buffer gets a cut copy. */
static const char *from_xsi(int r, char *tmp)
{
    return r == 0 ? tmp : NULL;
}

const char *mwi_errno_text(int e, char *buf, size_t n)
{
    if (!buf || n == 0) return "";
    char tmp[256];
    tmp[0] = '\0';
    const char *t = _Generic(strerror_r(e, tmp, sizeof tmp), char *: from_gnu,
                             default: from_xsi)(strerror_r(e, tmp, sizeof tmp), tmp);
    if (t && *t)
        snprintf(buf, n, "%s", t);
    else
        snprintf(buf, n, "error %d", e);
    return buf;
}
