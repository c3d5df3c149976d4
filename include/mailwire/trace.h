/* mailwire — conversation traces (the scsh log port, Tcllib's -debug). */
#ifndef MAILWIRE_TRACE_H
#define MAILWIRE_TRACE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum mw_trace_dir {
    MW_TRACE_RECV = 0, /* a line the server sent */
    MW_TRACE_SEND = 1, /* a line we sent (secrets masked unless asked for) */
    MW_TRACE_INFO = 2, /* a note: connected, TLS established, ... */
};

/* Called once per line, without its line end.  `line` is not NUL-terminated. */
typedef void (*mw_trace_fn)(int dir, const char *line, size_t len, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
