/* Internal, I/O-free: the SMTP DATA encoder (RFC 5321 §4.5.2, §4.1.1.4).
 *
 * Takes the message in chunks of any size and appends what goes on the
 * wire: every line end (CRLF, bare LF, bare CR) becomes CRLF, so a bare CR
 * or LF never reaches the wire (the "SMTP smuggling" attacks rely on
 * servers reading <LF>.<LF> or <CR>.<CR> as the end of data); a '.' at the
 * start of a line is doubled (transparency, §4.5.2); a line over 998 octets
 * is refused (§4.5.3.1.6).  The state carries across chunk boundaries, so
 * splitting the input anywhere gives the same output.  With `bdat` set
 * (CHUNKING, RFC 3030) the lines are normalised but not dot-stuffed, and
 * finish adds no terminating dot. */
#ifndef MW_PROTO_SMTP_DATA_H
#define MW_PROTO_SMTP_DATA_H

#include "mailwire/error.h"
#include "util/buf.h"

#include <stddef.h>
#include <stdint.h>

#define MW_SMTP_MAX_LINE_OCTETS 998

typedef struct mw_smtp_data_enc {
    int bdat;          /* 1: no dot-stuffing, no final dot */
    int at_line_start; /* next input octet starts a line */
    int after_cr;      /* last input octet was CR (an LF next is its pair) */
    size_t line_len;   /* octets of the current line so far */
    uint64_t line_no;  /* 1-based, for error messages */
    uint64_t in_octets;
    uint64_t out_octets;
    int saw_8bit;     /* an octet >= 0x80 went through */
    int saw_bare_eol; /* a bare CR or LF was repaired */
    size_t max_line;  /* default MW_SMTP_MAX_LINE_OCTETS; 0 = no limit */
    /* BODY=BINARYMIME (RFC 3030 §3, with bdat): the header is encoded as
     * above, then after its empty line every octet goes as it is (no line
     * end repaired, no line limit, nothing added at the end). */
    int binary_body;
    int in_body; /* binary_body: the header's empty line has passed */
    int avx2;    /* plain lines 32 octets a step (init sets it where the CPU can) */
} mw_smtp_data_enc;

void mwi_smtp_data_init(mw_smtp_data_enc *e, int bdat);
/* Appends the encoding of in[0..n) to out.  Returns 0, MW_ETOOBIG (a line
 * over max_line: err names the line number), or what mwi_buf_append says. */
int mwi_smtp_data_encode(mw_smtp_data_enc *e, const char *in, size_t n, mw_buf *out, mw_error *err);
/* Ends the message: a final CRLF unless the input ended with a line end,
 * then ".\r\n" (not with bdat). */
int mwi_smtp_data_finish(mw_smtp_data_enc *e, mw_buf *out, mw_error *err);

#endif
