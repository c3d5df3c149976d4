/* Streaming transfer-encoding decoders and encoders (RFC 2045 §6). */
#ifndef MW_MIME_CODEC_H
#define MW_MIME_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* Base64 decoder state (RFC 2045 §6.8).  Lenient: characters outside the
 * alphabet are skipped, '=' ends a quantum wherever it comes, and data after
 * padding is decoded as more base64. */
typedef struct mw_b64dec {
    uint32_t acc;
    int n;
    unsigned long skipped; /* characters that were not base64 nor white space */
} mw_b64dec;
/* Decodes len bytes; out needs room for len/4*3 + 3 bytes.  Returns bytes out. */
size_t mwi_b64dec_run(mw_b64dec *d, const char *in, size_t len, unsigned char *out);
/* Ends the input: a quantum left over gives what bits it has.  out needs 3. */
size_t mwi_b64dec_end(mw_b64dec *d, unsigned char *out);

/* Quoted-printable decoder state (RFC 2045 §6.7).  Lenient: a malformed
 * '=' sequence is kept literally; white space at the end of a line is
 * dropped (rule 3); soft line breaks "=CRLF" and "=LF" vanish. */
typedef struct mw_qpdec {
    char eq[3]; /* '=' and what followed it so far */
    int neq;
    size_t nws; /* white space held back: it is dropped if a line end follows */
    char ws[64];
    int cr; /* a CR seen, waiting to see if LF follows */
    unsigned long malformed;
} mw_qpdec;
/* out needs room for len + 70 bytes. */
size_t mwi_qpdec_run(mw_qpdec *d, const char *in, size_t len, unsigned char *out);
/* out needs 70 bytes. */
size_t mwi_qpdec_end(mw_qpdec *d, unsigned char *out);

/* Quoted-printable encoder for text (RFC 2045 §6.7): lines of at most 76
 * characters with soft breaks, CRLF or LF in the input become CRLF hard
 * breaks, white space before a line end is encoded, and a '.' or 'F' that
 * starts a line is encoded (so no line reads "." or "From "). */
typedef struct mw_qpenc {
    int col;
    int pending_ws; /* a space or tab not yet written: -1 if none */
    int cr;
    int binary; /* 1: CR and LF are data (encoded), not line ends */
} mw_qpenc;
void mwi_qpenc_init(mw_qpenc *e, int binary);
/* out needs room for len * 6 + 16 bytes. Returns bytes out. */
size_t mwi_qpenc_run(mw_qpenc *e, const unsigned char *in, size_t len, char *out);
size_t mwi_qpenc_end(mw_qpenc *e, char *out);

/* Base64 encoder in lines of 76 characters + CRLF. */
typedef struct mw_b64enc {
    unsigned char rest[3];
    int nrest;
    int col;
} mw_b64enc;
/* out needs room for (len + 3) / 3 * 4 * 78 / 76 + 8 bytes. */
size_t mwi_b64enc_run(mw_b64enc *e, const unsigned char *in, size_t len, char *out);
size_t mwi_b64enc_end(mw_b64enc *e, char *out);

#endif
