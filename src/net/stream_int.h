/* Internal: everything of the net layer's streams in one include, for the
 * unit tests (tests/unit/net).  No file of src/net includes it: each
 * includes the headers of the layers it uses (docs/ARCHITECTURE.md, "How
 * the net layer is layered"; checked by scripts/check_layers). */
#ifndef MW_NET_STREAM_INT_H
#define MW_NET_STREAM_INT_H

#include "net/s_fd.h"
#include "net/s_tcp.h"
#include "net/stream.h"
#include "net/tls.h"

#endif
