/* mw_stream_tls_info: what `mailwire pop3|smtp serverinfo` shows of a TLS
 * session, from the peer a TLS stream (tls.c) keeps. */
#include "net/tls.h"
#include "util/err.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* RFC 2253 form of a name; non-ASCII and control octets escaped by OpenSSL
 * (ASN1_STRFLGS_ESC_MSB / ESC_CTRL), anything left over made '?'. */
static void name_2253(const X509_NAME *name, char *out, size_t outsz)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) return;
    if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253) >= 0) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0 && data) mwi_copy_printable(out, outsz, data, (size_t)n);
    }
    BIO_free(b);
}

static void time_iso(const ASN1_TIME *t, char *out, size_t outsz)
{
    struct tm tm;
    char buf[96]; /* room for any int values: no truncation to reason about */
    out[0] = '\0';
    if (!t || ASN1_TIME_to_tm(t, &tm) != 1) return;
    int n = snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n > 0 && (size_t)n < outsz) memcpy(out, buf, (size_t)n + 1);
}

int mw_stream_tls_info(const mw_stream *s, mw_tls_info *out)
{
    if (!out) return MW_EINVAL;
    memset(out, 0, sizeof *out);
    if (!s) return MW_EINVAL;
    /* The peer is there once the handshake is done (and gone when it
     * failed): the same test as before, without reaching into tls.c. */
    return mwi_tls_info_of_peer(mw_stream_tls_peer(s), out);
}

int mwi_tls_info_of_peer(const mw_tls_peer *p, mw_tls_info *out)
{
    memset(out, 0, sizeof *out);
    if (!p) return MW_EUNSUPPORTED;
    snprintf(out->protocol, sizeof out->protocol, "%s", p->protocol ? p->protocol : "");
    snprintf(out->cipher, sizeof out->cipher, "%s", p->cipher ? p->cipher : "");
    const unsigned char *d = p->der;
    X509 *cert = d2i_X509(NULL, &d, (long)p->der_len);
    if (cert) {
        name_2253(X509_get_subject_name(cert), out->subject, sizeof out->subject);
        name_2253(X509_get_issuer_name(cert), out->issuer, sizeof out->issuer);
        time_iso(X509_get0_notBefore(cert), out->not_before, sizeof out->not_before);
        time_iso(X509_get0_notAfter(cert), out->not_after, sizeof out->not_after);
        X509_free(cert);
    }
    static const char hex[] = "0123456789ABCDEF";
    for (int i = 0; i < 32; i++) {
        out->sha256[i * 3] = hex[p->cert_sha256[i] >> 4];
        out->sha256[i * 3 + 1] = hex[p->cert_sha256[i] & 15];
        out->sha256[i * 3 + 2] = i < 31 ? ':' : '\0';
    }
    mwi_tls_pin_text(p->cert_sha256, out->cert_pin);
    mwi_tls_pin_text(p->spki_sha256, out->spki_pin);
    out->verified = p->verified;
    snprintf(out->verify_error, sizeof out->verify_error, "%s",
             p->verify_error ? p->verify_error : "");
    return 0;
}
