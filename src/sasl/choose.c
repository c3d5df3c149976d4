/* Mechanism table and mechanism choice. */
#include "sasl/mech.h"
#include "sasl/sasl.h"

#include <string.h>
#include <strings.h>

#include "util/err.h"

/* Names of the server's list looked at; a longer list is cut here so a
 * hostile capability line costs bounded work. */
#define MAX_OFFERED_NAMES 64

/* Indexed by enum mw_sasl_mech_id, which is also the preference order. */
static const mw_sasl_mech_info mech_table[MW_M_COUNT] = {
    {"EXTERNAL", MW_M_EXTERNAL, MW_MF_CLIENT_FIRST | MW_MF_GSASL | MW_MF_EXTERNAL},
    /* RFC 7628 §5: bearer tokens only over TLS. */
    {"OAUTHBEARER", MW_M_OAUTHBEARER, MW_MF_CLIENT_FIRST | MW_MF_CLEARTEXT | MW_MF_TOKEN},
    {"XOAUTH2", MW_M_XOAUTH2, MW_MF_CLIENT_FIRST | MW_MF_CLEARTEXT | MW_MF_TOKEN},
    {"SCRAM-SHA-256-PLUS", MW_M_SCRAM_SHA_256_PLUS,
     MW_MF_CLIENT_FIRST | MW_MF_MUTUAL | MW_MF_PASSWORD | MW_MF_CB | MW_MF_SCRAM | MW_MF_GSASL},
    {"SCRAM-SHA-256", MW_M_SCRAM_SHA_256,
     MW_MF_CLIENT_FIRST | MW_MF_MUTUAL | MW_MF_PASSWORD | MW_MF_SCRAM | MW_MF_GSASL},
    {"SCRAM-SHA-1-PLUS", MW_M_SCRAM_SHA_1_PLUS,
     MW_MF_CLIENT_FIRST | MW_MF_MUTUAL | MW_MF_PASSWORD | MW_MF_CB | MW_MF_SCRAM | MW_MF_GSASL},
    {"SCRAM-SHA-1", MW_M_SCRAM_SHA_1,
     MW_MF_CLIENT_FIRST | MW_MF_MUTUAL | MW_MF_PASSWORD | MW_MF_SCRAM | MW_MF_GSASL},
    /* RFC 2831 §2.1.3 rspauth: the server proves it knows the password. */
    {"DIGEST-MD5", MW_M_DIGEST_MD5, MW_MF_MUTUAL | MW_MF_PASSWORD | MW_MF_GSASL},
    {"CRAM-MD5", MW_M_CRAM_MD5, MW_MF_PASSWORD | MW_MF_GSASL},
    {"PLAIN", MW_M_PLAIN, MW_MF_CLIENT_FIRST | MW_MF_CLEARTEXT | MW_MF_PASSWORD | MW_MF_GSASL},
    {"LOGIN", MW_M_LOGIN, MW_MF_CLEARTEXT | MW_MF_PASSWORD | MW_MF_GSASL},
};

const mw_sasl_mech_info *mwi_sasl_mech_find(const char *name, size_t len)
{
    if (!name || len == 0 || len > MW_SASL_MECH_NAME_MAX) return NULL;
    for (int i = 0; i < MW_M_COUNT; i++) {
        const char *n = mech_table[i].name;
        if (strlen(n) == len && strncasecmp(n, name, len) == 0) return &mech_table[i];
    }
    return NULL;
}

const char *const *mw_sasl_mechanisms(void)
{
    static const char *const names[MW_M_COUNT + 1] = {"EXTERNAL",      "OAUTHBEARER",
                                                      "XOAUTH2",       "SCRAM-SHA-256-PLUS",
                                                      "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS",
                                                      "SCRAM-SHA-1",   "DIGEST-MD5",
                                                      "CRAM-MD5",      "PLAIN",
                                                      "LOGIN",         NULL};
    return names;
}

int mw_sasl_mechanism_supported(const char *name)
{
    return name && mwi_sasl_mech_find(name, strlen(name)) != NULL;
}

static int is_sep(char c)
{
    return c == ' ' || c == '\t' || c == ',';
}

/* Sets bit i of *mask for each known mechanism named in `list`. */
static void parse_offered(const char *list, unsigned *mask)
{
    size_t names = 0;
    const char *p = list;
    while (*p && names < MAX_OFFERED_NAMES) {
        while (*p && is_sep(*p))
            p++;
        const char *start = p;
        while (*p && !is_sep(*p))
            p++;
        if (p > start) {
            names++;
            const mw_sasl_mech_info *m = mwi_sasl_mech_find(start, (size_t)(p - start));
            if (m) *mask |= 1u << m->id;
        }
    }
}

/* Why mechanism m cannot be used under policy pol: 0 when it can. */
static int unusable(const mw_sasl_mech_info *m, const mw_sasl_policy *pol, mw_error *err)
{
    unsigned f = m->flags;
    if ((f & MW_MF_EXTERNAL) && !pol->want_external)
        return mwi_err_set(err, MW_EUNSUPPORTED, "%s needs a TLS client certificate", m->name);
    if ((f & MW_MF_TOKEN) && !pol->has_token)
        return mwi_err_set(err, MW_EINVAL, "%s needs an OAuth 2.0 token", m->name);
    if ((f & MW_MF_PASSWORD) && !pol->has_password)
        return mwi_err_set(err, MW_EINVAL, "%s needs a password", m->name);
    if ((f & MW_MF_CB) && !(pol->tls && pol->has_cb))
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "%s needs TLS channel binding data, which this connection lacks",
                           m->name);
    /* No login over an unencrypted link unless the caller allowed it, whatever
     * the mechanism: even where the secret is not sent in clear (SCRAM, RFC
     * 5802 §9), the session it opens, mail included, would be (RFC 8314 §5). */
    if (!pol->tls && !pol->allow_plaintext) {
        if (f & MW_MF_CLEARTEXT)
            return mwi_err_set(err, MW_EPOLICY,
                               "%s would send the %s in clear text over an unencrypted connection "
                               "(use TLS, or allow plaintext passwords explicitly)",
                               m->name, (f & MW_MF_TOKEN) ? "token" : "password");
        return mwi_err_set(err, MW_EPOLICY,
                           "%s: no login over an unencrypted connection (use TLS, or allow "
                           "plaintext logins explicitly)",
                           m->name);
    }
    return 0;
}

static int add(const char **out, size_t out_cap, size_t *n, const mw_sasl_mech_info *m)
{
    for (size_t i = 0; i < *n; i++)
        if (out[i] == m->name) return 0;
    if (*n < out_cap) out[(*n)++] = m->name;
    return 0;
}

static int choose_auto(const char **out, size_t out_cap, size_t *n, unsigned offered,
                       const mw_sasl_policy *pol, mw_error *err)
{
    int first_fail = 0;
    mw_error why;
    memset(&why, 0, sizeof why);
    for (int i = 0; i < MW_M_COUNT; i++) {
        const mw_sasl_mech_info *m = &mech_table[i];
        if (!(offered & (1u << i))) continue;
        mw_error e;
        memset(&e, 0, sizeof e);
        int rc = unusable(m, pol, &e);
        if (rc == 0) {
            add(out, out_cap, n, m);
        } else if (rc == MW_EPOLICY && first_fail != MW_EPOLICY) {
            /* The policy refusal is the most useful thing to report. */
            first_fail = rc;
            why = e;
        }
    }
    if (*n) return 0;
    if (first_fail == MW_EPOLICY) return mwi_err_set(err, MW_EPOLICY, "%s", why.message);
    return mwi_err_set(err, MW_EUNSUPPORTED,
                       "the server offers no SASL mechanism usable with the credentials given");
}

static int choose_wanted(const char **out, size_t out_cap, size_t *n, const char *want,
                         unsigned offered, int offered_known, const mw_sasl_policy *pol,
                         mw_error *err)
{
    int first_fail = 0;
    mw_error why;
    memset(&why, 0, sizeof why);
    const char *p = want;
    size_t names = 0;
    while (*p && names < MAX_OFFERED_NAMES) {
        while (*p && is_sep(*p))
            p++;
        const char *start = p;
        while (*p && !is_sep(*p))
            p++;
        if (p == start) continue;
        names++;
        size_t len = (size_t)(p - start);
        const mw_sasl_mech_info *m = mwi_sasl_mech_find(start, len);
        if (!m) {
            *n = 0; /* a typo anywhere in the list voids the whole list */
            char name[MW_SASL_MECH_NAME_MAX + 2];
            mwi_copy_printable(name, sizeof name, start, len);
            return mwi_err_set(err, MW_EINVAL, "unknown SASL mechanism \"%s%s\"", name,
                               len > MW_SASL_MECH_NAME_MAX + 1 ? "..." : "");
        }
        mw_error e;
        memset(&e, 0, sizeof e);
        int rc = 0;
        if (offered_known && !(offered & (1u << m->id)))
            rc = mwi_err_set(&e, MW_EUNSUPPORTED, "the server does not offer %s", m->name);
        else
            rc = unusable(m, pol, &e);
        if (rc == 0) {
            add(out, out_cap, n, m);
        } else if (!first_fail) {
            first_fail = rc;
            why = e;
        }
    }
    if (*n) return 0;
    if (!first_fail) return mwi_err_set(err, MW_EINVAL, "no SASL mechanism named");
    return mwi_err_set(err, first_fail, "%s", why.message);
}

int mwi_sasl_choose(const char **out, size_t out_cap, size_t *n_out, const char *offered,
                    const mw_sasl_policy *policy, mw_error *err)
{
    if (n_out) *n_out = 0;
    if (!out || !n_out || !policy || out_cap == 0)
        return mwi_err_set(err, MW_EINVAL, "mwi_sasl_choose: bad arguments");
    unsigned mask = 0;
    if (offered) parse_offered(offered, &mask);
    const char *want = policy->want;
    if (want && strcasecmp(want, "auto") == 0) want = NULL;
    if (want && *want)
        return choose_wanted(out, out_cap, n_out, want, mask, offered != NULL, policy, err);
    if (!offered)
        return mwi_err_set(err, MW_EUNSUPPORTED,
                           "the server did not list its SASL mechanisms and none was asked for");
    return choose_auto(out, out_cap, n_out, mask, policy, err);
}
