#include "util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

size_t mwi_copy_printable(char *dst, size_t dstsize, const char *src, size_t len)
{
    if (dstsize == 0) return 0;
    size_t n = len < dstsize - 1 ? len : dstsize - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c < 0x20 || c == 0x7F) ? '?' : (char)c;
    }
    dst[n] = '\0';
    return n;
}

int mwi_err_set(mw_error *err, int code, const char *fmt, ...)
{
    if (!err) return code;
    err->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void mwi_err_set_reply(mw_error *err, const char *text, size_t len)
{
    if (err) mwi_copy_printable(err->reply, sizeof err->reply, text, len);
}

void mwi_err_set_command(mw_error *err, const char *cmd, size_t len)
{
    if (err) mwi_copy_printable(err->command, sizeof err->command, cmd, len);
}

void mw_error_clear(mw_error *err)
{
    if (err) memset(err, 0, sizeof *err);
}

const char *mw_strerror(int code)
{
    switch (code) {
    case MW_OK:
        return "success";
    case MW_ENOMEM:
        return "out of memory";
    case MW_EINVAL:
        return "invalid argument";
    case MW_ENET:
        return "network error";
    case MW_ETIMEOUT:
        return "timed out";
    case MW_ETLS:
        return "TLS error";
    case MW_ECERT:
        return "certificate not accepted";
    case MW_EAUTH:
        return "authentication failed";
    case MW_ESERVER:
        return "server refused";
    case MW_ETEMP:
        return "temporary server failure";
    case MW_EPROTO:
        return "protocol violation";
    case MW_ETOOBIG:
        return "over a size limit";
    case MW_EIO:
        return "local I/O error";
    case MW_ECANCELED:
        return "canceled";
    case MW_EPOLICY:
        return "refused by security policy";
    case MW_ESTATE:
        return "not possible in this state";
    case MW_EUNSUPPORTED:
        return "not supported by the server";
    case MW_EFORMAT:
        return "malformed data";
    }
    return "unknown error";
}

const char *mw_error_category(int code)
{
    switch (code) {
    case MW_OK:
        return "none";
    case MW_ENOMEM:
        return "memory";
    case MW_EINVAL:
        return "argument";
    case MW_ENET:
        return "network";
    case MW_ETIMEOUT:
        return "timeout";
    case MW_ETLS:
        return "tls";
    case MW_ECERT:
        return "certificate";
    case MW_EAUTH:
        return "auth";
    case MW_ESERVER:
        return "server";
    case MW_ETEMP:
        return "temporary";
    case MW_EPROTO:
        return "protocol";
    case MW_ETOOBIG:
        return "limit";
    case MW_EIO:
        return "io";
    case MW_ECANCELED:
        return "canceled";
    case MW_EPOLICY:
        return "policy";
    case MW_ESTATE:
        return "state";
    case MW_EUNSUPPORTED:
        return "unsupported";
    case MW_EFORMAT:
        return "format";
    }
    return "unknown";
}
