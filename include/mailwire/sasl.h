/* mailwire — SASL mechanisms the library can use for POP3 AUTH (RFC 5034)
 * and SMTP AUTH (RFC 4954).  The engine itself is internal; this tells a
 * caller (or the command line's --auth) which names it may ask for. */
#ifndef MAILWIRE_SASL_H
#define MAILWIRE_SASL_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The mechanisms mailwire supports, strongest first, as a NULL-terminated
 * array of static upper-case names:
 * EXTERNAL, OAUTHBEARER, XOAUTH2, SCRAM-SHA-256-PLUS, SCRAM-SHA-256,
 * SCRAM-SHA-1-PLUS, SCRAM-SHA-1, DIGEST-MD5, CRAM-MD5, PLAIN, LOGIN. */
MW_EXTERN const char *const *mw_sasl_mechanisms(void);
/* 1 when `name` (case-insensitive) is one of them, else 0. */
MW_EXTERN int mw_sasl_mechanism_supported(const char *name);

#ifdef __cplusplus
}
#endif
#endif
