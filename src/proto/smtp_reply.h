/* Internal, I/O-free: SMTP reply parser (RFC 5321 §4.2) with enhanced status
 * codes (RFC 2034, RFC 3463) and the EHLO capability parser (RFC 5321
 * §4.1.1.1 and the extension RFCs).
 *
 * The transport splits lines; the parser takes one line at a time (without
 * its line end) and answers "need more" (0), "reply complete" (1), or a
 * negative MW_E… code.  Nothing is allocated beyond the fixed caps below, so
 * a hostile server cannot make us hold more than MW_SMTP_REPLY_MAX_TEXT. */
#ifndef MW_PROTO_SMTP_REPLY_H
#define MW_PROTO_SMTP_REPLY_H

#include "mailwire/error.h"

#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1.5 limits a reply line to 512 octets with its CRLF; we
 * accept more (real servers exceed it) but bound it. */
#define MW_SMTP_REPLY_MAX_LINE 2048
/* An EHLO reply rarely has more than 30 lines; 200 is generous. */
#define MW_SMTP_REPLY_MAX_LINES 200
#define MW_SMTP_REPLY_MAX_TEXT  16384

typedef struct mw_smtp_reply {
    int code;          /* 3-digit code, 0 until the first line */
    char enhanced[16]; /* "5.1.1" from the first line, or "" */
    size_t nlines;
    int complete;
    /* Texts of all lines (after "ddd-" / "ddd "), each ended by '\n'.  The
     * enhanced code is kept in the text, as servers send it. */
    char text[MW_SMTP_REPLY_MAX_TEXT + 1];
    size_t text_len;
} mw_smtp_reply;

void mwi_smtp_reply_init(mw_smtp_reply *r);
/* Feeds one line.  Returns 0 (more lines follow), 1 (the reply is complete),
 * MW_EPROTO (not a reply line; code differs from earlier lines; a line after
 * completion), MW_ETOOBIG (line, line count or total text over the caps). */
int mwi_smtp_reply_feed(mw_smtp_reply *r, const char *line, size_t len, mw_error *err);
/* The text of the last line (or of line `i`), without '\n'. */
const char *mwi_smtp_reply_line(const mw_smtp_reply *r, size_t i, size_t *len);
/* Text of the first line with the enhanced code stripped; for messages. */
const char *mwi_smtp_reply_summary(const mw_smtp_reply *r, size_t *len);

/* Parses an RFC 3463 enhanced status code at the start of text:
 * class "." subject "." detail, class 2/4/5, subject and detail 1-3 digits,
 * followed by a space or the end.  Writes it NUL-terminated to out (>= 12
 * bytes) and returns the number of bytes it took in text (0 when none). */
size_t mwi_smtp_parse_enhanced(const char *text, size_t len, char *out, size_t outsize);

/* ---- EHLO capabilities ---- */
enum {
    MW_SMTP_CAP_PIPELINING = 1u << 0,
    MW_SMTP_CAP_STARTTLS = 1u << 1,
    MW_SMTP_CAP_8BITMIME = 1u << 2,
    MW_SMTP_CAP_SMTPUTF8 = 1u << 3,
    MW_SMTP_CAP_DSN = 1u << 4,
    MW_SMTP_CAP_CHUNKING = 1u << 5,
    MW_SMTP_CAP_ENHANCED = 1u << 6,
    MW_SMTP_CAP_SIZE = 1u << 7,
    MW_SMTP_CAP_AUTH = 1u << 8,
    MW_SMTP_CAP_XQUE = 1u << 9,
    MW_SMTP_CAP_BINARYMIME = 1u << 10,
    MW_SMTP_CAP_ONEX = 1u << 11,
};

#define MW_SMTP_MAX_AUTH_LIST 512

typedef struct mw_smtp_caps {
    unsigned flags;
    uint64_t size_max; /* SIZE n; 0 = no limit declared */
    /* Every mechanism from every AUTH line (both "AUTH a b" and the old
     * "AUTH=a b" form), upper-cased, space-separated, without duplicates. */
    char auth[MW_SMTP_MAX_AUTH_LIST];
} mw_smtp_caps;

/* Reads the capabilities from a complete 250 EHLO reply (the first line is
 * the server's name and is skipped).  Unknown keywords are ignored; a
 * malformed SIZE argument is ignored as if no limit were declared.  Returns
 * 0 (never fails on content; the reply was already bounded). */
int mwi_smtp_caps_parse(mw_smtp_caps *caps, const mw_smtp_reply *ehlo);
/* 1 when `mech` (case-insensitive) is in caps->auth. */
int mwi_smtp_caps_has_auth(const mw_smtp_caps *caps, const char *mech);

#endif
