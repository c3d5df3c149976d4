/* Internal: what the stream kinds need of a cancel token besides the
 * public calls (mailwire/net.h). */
#ifndef MW_NET_CANCEL_H
#define MW_NET_CANCEL_H

#include "mailwire/net.h"

/* The cancel token's pollable descriptor (readable once cancel is
 * requested), or -1 (no token). */
int mwi_cancel_fd(const mw_cancel *c);

#endif
