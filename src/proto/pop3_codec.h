/* Internal: I/O-free POP3 codecs (RFC 1939, RFC 2449, RFC 3206).
 *
 * Every function takes a buffer and a length; none allocates or reads.  The
 * session (src/pop3) feeds them what the connection delivered, which lets
 * the unit tests feed every input at every split point. */
#ifndef MW_PROTO_POP3_CODEC_H
#define MW_PROTO_POP3_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* ---- Status lines --------------------------------------------------------
 * RFC 1939 §3: "+OK" or "-ERR", optionally followed by a space and text.
 * RFC 5034 §4: "+" SP base64 (or a bare "+") is a SASL continuation. */
enum mw_pop3_kind { MW_POP3_ERR = 0, MW_POP3_OK = 1, MW_POP3_CONT = 2 };

typedef struct mw_pop3_status {
    int kind;         /* enum mw_pop3_kind */
    const char *text; /* after the indicator and one space (points into the line) */
    size_t text_len;
    /* RFC 2449 §8 response code ("IN-USE", "SYS/TEMP", "AUTH"), without the
     * brackets, NUL-terminated; "" when there is none or it is malformed. */
    char code[48];
    const char *rest; /* the text after the response code and its space */
    size_t rest_len;
} mw_pop3_status;

/* Returns 0, or MW_EPROTO when the line is neither +OK, -ERR nor "+ ".
 * Only the exact upper-case indicators count (RFC 1939 §3 says they are
 * upper case); "+OKAY" is not +OK. */
int mwi_pop3_parse_status(mw_pop3_status *out, const char *line, size_t len);

/* ---- Scan listings -------------------------------------------------------
 * Numbers are decimal without sign, at most 18 digits (no overflow). */
#define MW_POP3_MAX_NUMBER 999999999999999999ULL

/* A -ERR (or a "+ " outside AUTH) in answer to `what` ("DELE 2") as an
 * error, the one rule of both the blocking session and the loop: the
 * RFC 2449 §8 / RFC 3206 response code picks the code (IN-USE, LOGIN-DELAY
 * and SYS/TEMP: MW_ETEMP; AUTH: MW_EAUTH; SYS/PERM: MW_ESERVER unless dflt
 * is MW_EAUTH), else dflt; a "+ " is MW_EPROTO.  Fills err (reply, code,
 * message "WHAT: server said -ERR TEXT") and returns the code. */
struct mw_error;
int mwi_pop3_status_error(struct mw_error *err, const mw_pop3_status *st, int dflt,
                          const char *what);

/* RFC 1939 §5 STAT: "nn mm" (then optionally a space and anything).
 * Returns 0 or MW_EPROTO. */
int mwi_pop3_parse_stat(const char *text, size_t len, uint64_t *count, uint64_t *octets);

/* RFC 1939 §5 LIST scan listing "msg size" (a line of the multi-line reply,
 * or the text of a single-message +OK).  Strict: one space, digits only;
 * trailing text after a further space is allowed ("information beyond").
 * The message number must be >= 1.  Returns 0 or MW_EPROTO. */
int mwi_pop3_parse_listing(const char *text, size_t len, uint64_t *msg, uint64_t *size);

/* RFC 1939 §7 UIDL "msg uid": the uid is 1-70 octets in 0x21-0x7E.
 * *uid points into text.  Returns 0 or MW_EPROTO. */
int mwi_pop3_parse_uidl(const char *text, size_t len, uint64_t *msg, const char **uid,
                        size_t *uid_len);

/* The message number of a UIDL line whose unique-id breaks RFC 1939 §7
 * (a space in it, over 70 octets, octets outside 0x21-0x7E): "msg SP
 * something".  Returns 0 when the number is good (>= 1, at most 18 digits)
 * and something follows its space, else MW_EPROTO (the line names no
 * message at all). */
int mwi_pop3_parse_uidl_msg(const char *text, size_t len, uint64_t *msg);

/* 1 when uid[0..len) is a valid unique-id (RFC 1939 §7). */
int mwi_pop3_uid_valid(const char *uid, size_t len);

/* The size announced in a RETR reply ("+OK 120 octets" — RFC 1939 §7 gives
 * it as an example, servers vary).  Returns 1 and sets *size when the text
 * starts with a number followed by end or space, else 0. */
int mwi_pop3_parse_retr_size(const char *text, size_t len, uint64_t *size);

/* RFC 1939 §7 APOP: the greeting's timestamp, a msg-id "<local@domain>".
 * Strict: exactly one '<'…'>' pair, only 0x21-0x7E inside, one '@' with
 * something on each side, at most 250 octets in all.  *ts points at '<' and
 * *ts_len includes both brackets (the digest covers them).
 * Returns 1 when a valid timestamp is found, 0 otherwise. */
int mwi_pop3_find_timestamp(const char *greeting, size_t len, const char **ts, size_t *ts_len);

/* ---- Multi-line bodies ----------------------------------------------------
 * RFC 1939 §3: lines end in CRLF (bare LF is accepted as well); a line that
 * begins with '.' has that '.' removed unless the line is exactly "."; the
 * line "." ends the reply.  The decoder works IN PLACE: output is written
 * into the same buffer from its start and is never longer than what was
 * consumed.
 *
 * Chunks may split anywhere.  The only byte the decoder may leave
 * unconsumed (when not finished) is a final CR that follows a line-start
 * '.': whether it begins the terminator ".\r\n" depends on the next byte.
 * The caller keeps unconsumed bytes and presents them again, followed by
 * more data.  A call with len >= 2 always consumes something. */
typedef struct mw_pop3_body {
    int state;
    uint64_t produced; /* message octets delivered so far (unstuffed) */
} mw_pop3_body;

void mwi_pop3_body_init(mw_pop3_body *b);
/* Decodes buf[0..len) in place.  Sets *consumed (input bytes used) and
 * *produced (bytes of message data now at buf[0..*produced)).  Returns 1
 * when the terminating line was consumed (the bytes after it belong to the
 * next reply and are not consumed), 0 when more input is needed. */
int mwi_pop3_body_decode(mw_pop3_body *b, char *buf, size_t len, size_t *consumed,
                         size_t *produced);
/* 1 once the terminator has been seen. */
int mwi_pop3_body_done(const mw_pop3_body *b);

#endif
