/* mailwire — error codes and the error record kept on every handle.
 *
 * Every function that can fail returns 0 or one of the negative codes below.
 * The detail (what failed, in words; the server's reply; the command sent)
 * is kept in a mw_error that the handle owns, or that the caller passes. */
#ifndef MAILWIRE_ERROR_H
#define MAILWIRE_ERROR_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

enum mw_code {
    MW_OK = 0,
    MW_ENOMEM = -1,   /* out of memory */
    MW_EINVAL = -2,   /* invalid argument (CR/LF/NUL in a command argument, bad option) */
    MW_ENET = -3,     /* name lookup, connect, reset, peer closed unexpectedly */
    MW_ETIMEOUT = -4, /* a deadline passed */
    MW_ETLS = -5,     /* TLS handshake or record error; STARTTLS not offered or refused */
    MW_ECERT = -6,    /* certificate not trusted, expired, wrong host, pin mismatch, policy */
    MW_EAUTH = -7,    /* authentication refused */
    MW_ESERVER = -8,  /* the server said no (POP3 -ERR, SMTP 5xx) */
    MW_ETEMP = -9,    /* the server said not now (SMTP 4xx, [IN-USE], [LOGIN-DELAY], [SYS/TEMP]) */
    MW_EPROTO = -10,  /* the server broke the protocol */
    MW_ETOOBIG = -11, /* a line, field or item is over its limit */
    MW_EIO = -12,     /* local I/O: files, disks, pipes, child processes */
    MW_ECANCELED = -13,    /* the caller cancelled */
    MW_EPOLICY = -14,      /* refused by our own security policy (e.g. password in clear) */
    MW_ESTATE = -15,       /* not possible in the session's current state */
    MW_EUNSUPPORTED = -16, /* the server lacks what was asked for */
    MW_EFORMAT = -17,      /* malformed data from a file or the caller (message, config) */
};
#define MW_ERROR_LAST MW_EFORMAT

/* The detail of the last error.  Strings are always NUL-terminated and
 * truncated to fit (never overflowing); secrets are masked in `command`. */
typedef struct mw_error {
    int code;           /* one of enum mw_code; 0 when there is no error */
    char message[320];  /* what went wrong, in words */
    char command[160];  /* the command that failed, or "" */
    char reply[512];    /* the server's reply text (without status), or "" */
    int reply_code;     /* SMTP reply code (e.g. 550), 0 otherwise */
    char enhanced[16];  /* SMTP enhanced status code ("5.1.1"), or "" */
    char resp_code[48]; /* POP3 response code ("IN-USE", "SYS/TEMP"), or "" */
} mw_error;

/* A short fixed description of a code ("timed out"). Never NULL. */
MW_EXTERN const char *mw_strerror(int code);
/* The category word of a code: "network", "timeout", "tls", "certificate",
 * "auth", "server", "temporary", "protocol", "limit", "io", "canceled",
 * "policy", "state", "unsupported", "format", "memory", "argument". */
MW_EXTERN const char *mw_error_category(int code);
/* Clears an error record. */
MW_EXTERN void mw_error_clear(mw_error *err);

#ifdef __cplusplus
}
#endif
#endif
