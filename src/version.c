#include "mailwire/common.h"
#include "mw_config.h"

#include "sasl/sasl.h"
#include <openssl/crypto.h>

const char *mw_version(void)
{
    return MW_VERSION;
}

const char *mw_openssl_version(void)
{
    return OpenSSL_version(OPENSSL_VERSION);
}

const char *mw_gsasl_version(void)
{
    return mwi_sasl_gsasl_version();
}
