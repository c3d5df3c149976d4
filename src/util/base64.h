/* Base64 (RFC 4648 §4), shared by SASL and MIME. */
#ifndef MW_UTIL_BASE64_H
#define MW_UTIL_BASE64_H

#include <stddef.h>

/* Encoded size of n bytes, without line breaks and without the NUL. */
size_t mwi_base64_encoded_len(size_t n);
/* Writes mwi_base64_encoded_len(n) characters plus a NUL to out. */
void mwi_base64_encode(char *out, const unsigned char *in, size_t n);
/* Strict decoding (padding required, no white space): returns the decoded
 * length, or -1 on any invalid character or length.  out needs room for
 * len/4*3 bytes. */
long mwi_base64_decode_strict(unsigned char *out, const char *in, size_t len);

#endif
