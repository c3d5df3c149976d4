/* POP3 multi-line bodies: dot-unstuffing in place and the terminator
 * (RFC 1939 §3), across any chunk boundary. */
#include "proto/pop3_codec.h"

#include <string.h>

enum { ST_BOL = 0, ST_MID, ST_DOT, ST_DONE };

void mwi_pop3_body_init(mw_pop3_body *b)
{
    memset(b, 0, sizeof *b);
    b->state = ST_BOL;
}

int mwi_pop3_body_done(const mw_pop3_body *b)
{
    return b->state == ST_DONE;
}

int mwi_pop3_body_decode(mw_pop3_body *b, char *buf, size_t len, size_t *consumed, size_t *produced)
{
    size_t i = 0, o = 0;
    int st = b->state;
    while (i < len && st != ST_DONE) {
        if (st == ST_MID) {
            /* The hot path.  Only a dot at the start of a line means
             * anything (RFC 1939 §3), so look for dots, not line ends: a
             * base64 part has none, text about one a line.  A dot at i
             * itself is data (ST_MID: not at a line start).  One memmove
             * per run of data, only once a dot has been removed (before
             * that, o == i). */
            size_t k = i, end = len;
            int next = ST_MID;
            for (;;) {
                char *d = memchr(buf + k, '.', len - k);
                if (!d) {
                    if (buf[len - 1] == '\n') next = ST_BOL;
                    break;
                }
                size_t j = (size_t)(d - buf);
                if (j > i && buf[j - 1] == '\n') {
                    end = j;
                    next = ST_BOL;
                    break;
                }
                k = j + 1;
            }
            size_t n = end - i;
            if (o != i) memmove(buf + o, buf + i, n);
            o += n;
            i = end;
            st = next;
        } else if (st == ST_BOL) {
            if (buf[i] == '.') {
                i++; /* a line-start dot is never data (RFC 1939 §3) */
                st = ST_DOT;
            } else {
                st = ST_MID;
            }
        } else { /* ST_DOT: the line began with '.'; is it "." alone? */
            char c = buf[i];
            if (c == '\n') { /* ".\n": servers ending lines in bare LF */
                i++;
                st = ST_DONE;
            } else if (c == '\r') {
                if (i + 1 >= len) break; /* keep the CR until the next byte decides */
                if (buf[i + 1] == '\n') {
                    i += 2;
                    st = ST_DONE;
                } else {
                    st = ST_MID; /* ".\rX": a stuffed line with a bare CR */
                }
            } else {
                st = ST_MID; /* "..x" or ".x": the dot was stuffing */
            }
        }
    }
    b->state = st;
    b->produced += o;
    *consumed = i;
    *produced = o;
    return st == ST_DONE;
}
