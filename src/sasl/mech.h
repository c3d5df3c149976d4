/* The mechanisms the SASL engine knows, strongest first (internal). */
#ifndef MW_SASL_MECH_H
#define MW_SASL_MECH_H

#include <stddef.h>

enum {
    MW_MF_CLIENT_FIRST = 1 << 0, /* the client speaks first (RFC 4422 §3.3 initial response) */
    MW_MF_MUTUAL = 1 << 1,       /* the server proves itself too */
    MW_MF_CLEARTEXT = 1 << 2,    /* the secret crosses the wire as is: needs TLS */
    MW_MF_PASSWORD = 1 << 3,     /* needs a user name and a password */
    MW_MF_TOKEN = 1 << 4,        /* needs an OAuth 2.0 bearer token */
    MW_MF_CB = 1 << 5,           /* needs channel binding data (-PLUS) */
    MW_MF_SCRAM = 1 << 6,        /* RFC 5802 message syntax */
    MW_MF_GSASL = 1 << 7,        /* run by GNU SASL (else written here) */
    MW_MF_EXTERNAL = 1 << 8,     /* identity from the TLS client certificate */
};

enum mw_sasl_mech_id {
    MW_M_EXTERNAL,
    MW_M_OAUTHBEARER,
    MW_M_XOAUTH2,
    MW_M_SCRAM_SHA_256_PLUS,
    MW_M_SCRAM_SHA_256,
    MW_M_SCRAM_SHA_1_PLUS,
    MW_M_SCRAM_SHA_1,
    MW_M_DIGEST_MD5,
    MW_M_CRAM_MD5,
    MW_M_PLAIN,
    MW_M_LOGIN,
    MW_M_COUNT
};

typedef struct mw_sasl_mech_info {
    const char *name;
    int id; /* enum mw_sasl_mech_id */
    unsigned flags;
} mw_sasl_mech_info;

/* The entry for name[0..len) (case-insensitive), or NULL. */
const mw_sasl_mech_info *mwi_sasl_mech_find(const char *name, size_t len);

#endif
