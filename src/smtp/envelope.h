/* Internal: the envelope from the message's header (Tcllib sendmessage's
 * rules) and the header rewrite (Bcc removed; Date,
 * Message-ID, From, Sender added).  Kept apart from the session so it can
 * move onto the MIME layer's header and address parsers when they land. */
#ifndef MW_SMTP_ENVELOPE_H
#define MW_SMTP_ENVELOPE_H

#include "mailwire/smtp.h"
#include "util/buf.h"

#include <stddef.h>

/* Most recipients one transaction takes (RFC 5321 §4.5.3.1.8 asks servers
 * for at least 100; a caller list is capped so nothing grows unbounded). */
#define MW_SMTP_MAX_RCPT 10000
/* RFC 5321 §4.5.3.1.3: a path is at most 256 octets. */
#define MW_SMTP_MAX_PATH 256
/* Header block read from an fd/callback source before the body. */
#define MW_SMTP_MAX_HEADER (1024 * 1024)

typedef struct mw_smtp_env {
    char *originator; /* bare address; "" for <> */
    char **rcpt;
    size_t nrcpt;
    mw_buf header; /* rewritten header block, with its empty line (when rewriting) */
    int rewritten; /* header holds the block to send instead of the original */
    int utf8;      /* an address or a header field has 8-bit octets (RFC 6531) */
    char **bcc;    /* with msg->bcc_digest: the Bcc recipients, kept apart */
    size_t nbcc;
    char *subject; /* the Subject value (unfolded), or NULL */
} mw_smtp_env;

void mwi_smtp_env_free(mw_smtp_env *env);

/* Checks one envelope address: no CR, LF, NUL or other control octet, no
 * '<' '>', no unquoted space, at most MW_SMTP_MAX_PATH octets.  `what` names
 * it in the error.  Returns 0 or MW_EINVAL. */
int mwi_smtp_check_address(const char *addr, const char *what, mw_error *err);

/* Appends the bare addresses of an RFC 5322 address-list (mailboxes,
 * groups, display names, comments, quoted strings) to *list. */
int mwi_smtp_parse_addresses(const char *v, size_t n, char ***list, size_t *count, mw_error *err);

/* Builds the envelope from msg (originator/recipients/headers options) and
 * the message's header block hdr[0..hlen) (up to and including its empty
 * line when there is one; may be empty).  `host` is this host's name for
 * the Message-ID.  Returns 0, MW_EINVAL (bad address or extra header),
 * MW_EFORMAT (no originator / no recipient), MW_ETOOBIG, MW_ENOMEM. */
int mwi_smtp_env_build(mw_smtp_env *env, const mw_smtp_msg *msg, const char *hdr, size_t hlen,
                       const char *host, mw_error *err);

/* A Date value (RFC 5322 §3.3, UTC) and a Message-ID ("<time.random@host>").
 * The Message-ID needs random bytes: 0, or MW_EIO when the kernel has none. */
void mwi_smtp_make_date(char *out, size_t n);
int mwi_smtp_make_msgid(char *out, size_t n, const char *host, mw_error *err);

/* The length of the header block at the start of data (through the empty
 * line), or 0 with *complete = 0 when no empty line is in data. */
size_t mwi_smtp_header_len(const char *data, size_t len, int *complete);

#endif
