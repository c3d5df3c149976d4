/* mailwire — common definitions shared by every public header. */
#ifndef MAILWIRE_COMMON_H
#define MAILWIRE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && __GNUC__ >= 4
#define MW_EXTERN __attribute__((visibility("default")))
#else
#define MW_EXTERN
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the library, as "MAJOR.MINOR.PATCH". */
MW_EXTERN const char *mw_version(void);
/* Versions of the libraries mailwire runs with, as they report themselves. */
MW_EXTERN const char *mw_openssl_version(void);
MW_EXTERN const char *mw_gsasl_version(void);

/* Milliseconds on a monotonic clock.  Every deadline in the API is a value of
 * this clock (absolute), or MW_NO_DEADLINE. */
#define MW_NO_DEADLINE INT64_MAX
MW_EXTERN int64_t mw_now_ms(void);

/* Frees a buffer the library returned (a char ** output, a lines array of
 * mw_pop3_retrieve_message_lines...).  Handles, lists and results have
 * free functions of their own.  NULL is fine. */
MW_EXTERN void mw_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
