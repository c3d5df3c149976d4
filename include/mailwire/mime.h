/* mailwire — MIME: RFC 5322 header blocks, the MIME tree, encodings.
 *
 * Part 1: the header block (RFC 5322 §2.2, §3.6; obsolete syntax §4).
 *
 * A mw_mime_headers is an ordered list of fields, as they came: repeated
 * fields are kept, the raw bytes of each field (with its folding and its
 * line end) are kept, 8-bit bytes are kept.  It is filled push-style (bytes
 * in chunks of any size) and can also be built and modified by the caller,
 * then written back.  A header block that was fed and not modified writes
 * back to exactly the bytes that were fed. */
#ifndef MAILWIRE_MIME_H
#define MAILWIRE_MIME_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mw_mime_headers mw_mime_headers;

/* Limits of one header block.  0 in a field means its default. */
typedef struct mw_mime_header_opts {
    unsigned version;     /* MW_MIME_HEADER_OPTS_VERSION */
    size_t max_field_len; /* bytes of one field, folded lines included (default 256 KiB) */
    size_t max_fields;    /* number of fields (default 4096) */
    size_t max_total;     /* bytes of the whole block (default 1 MiB) */
} mw_mime_header_opts;
#define MW_MIME_HEADER_OPTS_VERSION 1
#define MW_MIME_HEADER_OPTS_INIT                                                                   \
    {                                                                                              \
        MW_MIME_HEADER_OPTS_VERSION, 0, 0, 0                                                       \
    }

/* One field, as seen through the accessors.  The pointers stay valid until
 * the block is modified or freed.  Strings are NUL-terminated for
 * convenience, but may contain NUL bytes: use the lengths. */
typedef struct mw_mime_field {
    const char *name; /* field name as written (trailing white space before ':' dropped) */
    size_t name_len;  /* 0 for a line that is not a field (no colon, bad name) */
    const char *raw;  /* the whole field: name, colon, value, folds, line end(s) */
    size_t raw_len;
    const char *value; /* unfolded (RFC 5322 §2.2.3), leading and trailing white space
                          dropped; not decoded.  For a line that is not a field: the line */
    size_t value_len;
} mw_mime_field;

/* Creates an empty block.  opts may be NULL.  Returns 0, MW_ENOMEM, MW_EINVAL. */
MW_EXTERN int mw_mime_headers_new(mw_mime_headers **out, const mw_mime_header_opts *opts,
                                  mw_error *err);
MW_EXTERN void mw_mime_headers_free(mw_mime_headers *h);

/* Feeds len bytes.  *consumed (may be NULL) is set to the bytes used.
 * Returns 1 when the block ended (its empty line was consumed; the body
 * starts at data + *consumed), 0 when every byte was used and more are
 * needed, or MW_ETOOBIG (a limit was passed; the detail names it),
 * MW_ENOMEM, MW_ESTATE (already ended).  Lines may end in CRLF or LF. */
MW_EXTERN int mw_mime_headers_feed(mw_mime_headers *h, const char *data, size_t len,
                                   size_t *consumed);
/* Ends the input without an empty line (e.g. TOP n 0 of a body-less
 * message): the last field is kept.  Returns 0 or MW_ETOOBIG/MW_ENOMEM. */
MW_EXTERN int mw_mime_headers_finish(mw_mime_headers *h);
/* Convenience: a new block parsed from data[0..len).  *consumed (may be
 * NULL) is the length of the block including its empty line.  Returns 0
 * (also when no empty line was found: everything is headers) or an error
 * code; err (may be NULL) gets the detail. */
MW_EXTERN int mw_mime_headers_parse(mw_mime_headers **out, const char *data, size_t len,
                                    size_t *consumed, const mw_mime_header_opts *opts,
                                    mw_error *err);

/* 1 when the block ended with an empty line, 0 otherwise. */
MW_EXTERN int mw_mime_headers_complete(const mw_mime_headers *h);
/* Number of fields (lines that are not fields included). */
MW_EXTERN size_t mw_mime_headers_count(const mw_mime_headers *h);
/* The i-th field, in order.  Returns 0 or MW_EINVAL (out of range). */
MW_EXTERN int mw_mime_headers_at(const mw_mime_headers *h, size_t i, mw_mime_field *out);
/* The nth (0-based) field named name (ASCII case-insensitive).  Returns 0,
 * or MW_EINVAL when there is no such field. */
MW_EXTERN int mw_mime_headers_find(const mw_mime_headers *h, const char *name, size_t nth,
                                   mw_mime_field *out);
/* The unfolded value of the nth field named name, or NULL. */
MW_EXTERN const char *mw_mime_headers_get(const mw_mime_headers *h, const char *name, size_t nth);
/* How many fields are named name. */
MW_EXTERN size_t mw_mime_headers_count_name(const mw_mime_headers *h, const char *name);

/* Modification.  Names must be RFC 5322 field names (printable ASCII, no
 * colon); values must not contain CR, LF or NUL (header injection) and are
 * written as given (encode non-ASCII text first with mw_mime_word_encode),
 * folded at white space when long.  Return 0, MW_EINVAL, MW_ETOOBIG, MW_ENOMEM. */
/* Replaces the first field named name (in place) and deletes the others;
 * appends when there is none. */
MW_EXTERN int mw_mime_headers_set(mw_mime_headers *h, const char *name, const char *value);
/* Appends a field at the end. */
MW_EXTERN int mw_mime_headers_append(mw_mime_headers *h, const char *name, const char *value);
/* Deletes every field named name; returns how many were deleted. */
MW_EXTERN size_t mw_mime_headers_delete(mw_mime_headers *h, const char *name);

/* Output callback: returns 0 to go on, anything else stops the writer,
 * which returns that value. */
typedef int (*mw_mime_write_fn)(const char *data, size_t len, void *userdata);
/* Writes the block: each field's raw bytes, then the empty line that ended
 * it as it was (CRLF for a built block; nothing when the input had none). */
MW_EXTERN int mw_mime_headers_write(const mw_mime_headers *h, mw_mime_write_fn fn, void *userdata);
/* The detail of the last error on this block. */
MW_EXTERN const mw_error *mw_mime_headers_error(const mw_mime_headers *h);

/* ---------------------------------------------------------------------
 * Part 2: structured values (RFC 2045 §5.1, RFC 2183, RFC 2231) and
 * encoded words (RFC 2047).
 * ------------------------------------------------------------------- */

/* A parsed Content-Type or Content-Disposition value. */
typedef struct mw_mime_ctype mw_mime_ctype;
typedef struct mw_mime_param {
    const char *name;  /* lowercased, without RFC 2231 '*' sections */
    const char *value; /* continuations joined, %XX decoded, converted to UTF-8
                          when a charset was given and iconv knows it */
    size_t value_len;
    const char *charset;  /* RFC 2231 charset, or NULL */
    const char *language; /* RFC 2231 language, or NULL */
} mw_mime_param;
/* Parses value[0..len) leniently (comments, junk between parameters and
 * unquoted values with spaces are tolerated).  Returns 0, MW_EFORMAT (a
 * '/' without type or subtype), MW_ENOMEM. */
MW_EXTERN int mw_mime_ctype_parse(mw_mime_ctype **out, const char *value, size_t len,
                                  mw_error *err);
/* "type/subtype" lowercased, or the disposition type lowercased. */
MW_EXTERN const char *mw_mime_ctype_value(const mw_mime_ctype *ct);
MW_EXTERN size_t mw_mime_ctype_param_count(const mw_mime_ctype *ct);
MW_EXTERN int mw_mime_ctype_param_at(const mw_mime_ctype *ct, size_t i, mw_mime_param *out);
/* The value of parameter name (case-insensitive), or NULL. */
MW_EXTERN const char *mw_mime_ctype_param(const mw_mime_ctype *ct, const char *name);
MW_EXTERN void mw_mime_ctype_free(mw_mime_ctype *ct);

/* Decodes the RFC 2047 encoded words of a header value into UTF-8 (Tcllib
 * field_decode).  White space between adjacent words is dropped and words
 * of one charset are joined before conversion; a broken word (no end, bad
 * encoding letter) stays as text, an unknown charset keeps its bytes,
 * invalid bytes become U+FFFD.  *out is NUL-terminated, freed with
 * mw_free().
 * Returns 0 or MW_ENOMEM. */
MW_EXTERN int mw_mime_decode_field(char **out, size_t *outlen, const char *in, size_t len,
                                   mw_error *err);
/* Encodes text (in charset; NULL = UTF-8) as encoded words of at most 75
 * characters separated by spaces, method 'B' or 'Q' (Tcllib word_encode).
 * UTF-8 characters are never split.  Returns 0, MW_EINVAL, MW_ENOMEM. */
MW_EXTERN int mw_mime_word_encode(char **out, const char *text, size_t len, const char *charset,
                                  char method, mw_error *err);
/* A UTF-8 text for an unstructured header (Subject): returned as is when it
 * is printable ASCII, else as encoded words (Q or B, whichever is shorter).
 * Returns 0, MW_EINVAL (CR or LF in the text), MW_ENOMEM. */
MW_EXTERN int mw_mime_encode_text(char **out, const char *utf8text, mw_error *err);

/* ---------------------------------------------------------------------
 * Part 3: the MIME tree, parsed (push-style, streaming) or built.
 * ------------------------------------------------------------------- */

typedef struct mw_mime_part mw_mime_part;

enum mw_mime_encoding {
    MW_MIME_ENC_NONE = 0, /* no Content-Transfer-Encoding field (7bit) */
    MW_MIME_ENC_7BIT,
    MW_MIME_ENC_8BIT,
    MW_MIME_ENC_BINARY,
    MW_MIME_ENC_QP,
    MW_MIME_ENC_BASE64,
    MW_MIME_ENC_UNKNOWN, /* an encoding we do not know: the body is passed as is */
};

/* Flags of a parsed part: what was wrong with it (it was read anyway). */
#define MW_MIME_F_NO_CLOSE     0x01u /* multipart without its close delimiter */
#define MW_MIME_F_NO_BOUNDARY  0x02u /* multipart without a boundary parameter: read as a leaf */
#define MW_MIME_F_TOO_DEEP     0x04u /* nested deeper than max_depth: read as a leaf */
#define MW_MIME_F_CUT_HEADERS  0x08u /* headers ended by a boundary or the end of input */
#define MW_MIME_F_BAD_ENCODING 0x10u /* malformed base64/quoted-printable decoded leniently */
#define MW_MIME_F_BAD_CTYPE    0x20u /* unreadable Content-Type: text/plain assumed */
#define MW_MIME_F_TOO_MANY     0x40u /* over max_parts: the rest read as this part's body */
#define MW_MIME_F_BAD_CHARSET  0x80u /* UTF-8 conversion asked, charset unknown or invalid bytes */

typedef struct mw_mime_parse_opts {
    unsigned version;            /* MW_MIME_PARSE_OPTS_VERSION */
    mw_mime_header_opts headers; /* limits of each header block */
    size_t max_depth;            /* nesting of parts (default 32); deeper parts are leaves */
    size_t max_parts;            /* parts in the tree (default 10000); the header
                                    blocks of all parts together: at most 16 x
                                    headers.max_total (MW_ETOOBIG) */
    int keep_bodies;             /* keep the raw bodies so the tree can be written back
                                    byte for byte (default 1 in mw_mime_parse) */
    size_t max_kept;             /* bytes kept when keep_bodies (default 256 MiB) */
    int to_utf8;                 /* convert text/ bodies to UTF-8 before on_body */
    /* Callbacks (each may be NULL); a non-zero return stops the parser,
     * which then returns that value unchanged (and fails from then on). */
    int (*on_part)(mw_mime_part *part, void *userdata); /* headers read */
    int (*on_body)(mw_mime_part *part, const char *data, size_t len,
                   void *userdata);                         /* decoded leaf body, in chunks */
    int (*on_part_end)(mw_mime_part *part, void *userdata); /* part complete */
    void (*on_warning)(mw_mime_part *part, const char *what, void *userdata);
    void *userdata;
} mw_mime_parse_opts;
#define MW_MIME_PARSE_OPTS_VERSION 1
#define MW_MIME_PARSE_OPTS_INIT                                                                    \
    {                                                                                              \
        MW_MIME_PARSE_OPTS_VERSION, MW_MIME_HEADER_OPTS_INIT, 0, 0, 1, 0, 0, NULL, NULL, NULL,     \
            NULL, NULL                                                                             \
    }

typedef struct mw_mime_parser mw_mime_parser;
/* Returns 0, MW_EINVAL (bad options), MW_ENOMEM. */
MW_EXTERN int mw_mime_parser_new(mw_mime_parser **out, const mw_mime_parse_opts *opts,
                                 mw_error *err);
/* Feeds len bytes (any chunking gives the same result).  Returns 0,
 * MW_ETOOBIG (a header block or the kept bodies over their limit),
 * MW_ECANCELED (a callback said stop), MW_ENOMEM, MW_ESTATE (after an error
 * or after finish). */
MW_EXTERN int mw_mime_parser_feed(mw_mime_parser *p, const char *data, size_t len);
/* Ends the input; *root (may be NULL) gets the tree, which the caller then
 * owns (free with mw_mime_part_free).  Returns as mw_mime_parser_feed. */
MW_EXTERN int mw_mime_parser_finish(mw_mime_parser *p, mw_mime_part **root);
MW_EXTERN const mw_error *mw_mime_parser_error(const mw_mime_parser *p);
/* Number of warnings so far (each also went to on_warning). */
MW_EXTERN size_t mw_mime_parser_warnings(const mw_mime_parser *p);
MW_EXTERN void mw_mime_parser_free(mw_mime_parser *p);
/* One call: parses data[0..len) into a tree (opts may be NULL). */
MW_EXTERN int mw_mime_parse(mw_mime_part **root, const char *data, size_t len,
                            const mw_mime_parse_opts *opts, mw_error *err);

/* Reading a part (parsed or built).  Strings stay valid until the part is
 * changed or freed; absent values are NULL. */
/* "1" for the message, "1.1", "1.2" for the parts of a multipart root, and
 * so on; an encapsulated message (message/rfc822) is child 1 of its part. */
MW_EXTERN const char *mw_mime_part_path(const mw_mime_part *part);
MW_EXTERN const char *mw_mime_part_type(const mw_mime_part *part); /* "text/plain" */
MW_EXTERN const char *mw_mime_part_param(const mw_mime_part *part, const char *name);
MW_EXTERN const mw_mime_ctype *mw_mime_part_ctype(const mw_mime_part *part);
MW_EXTERN const char *mw_mime_part_charset(const mw_mime_part *part);
MW_EXTERN int mw_mime_part_encoding(const mw_mime_part *part); /* enum mw_mime_encoding */
MW_EXTERN const char *mw_mime_encoding_name(int encoding);     /* "base64", ... */
MW_EXTERN const char *mw_mime_part_disposition(const mw_mime_part *part); /* "attachment" */
MW_EXTERN const char *mw_mime_part_filename(const mw_mime_part *part);    /* UTF-8, decoded */
MW_EXTERN const char *mw_mime_part_content_id(const mw_mime_part *part);
/* Parsed: the bytes its body decoded to (before any UTF-8 conversion).
 * Built: the size of the body given (a file's size when it was set). */
MW_EXTERN uint64_t mw_mime_part_decoded_size(const mw_mime_part *part);
MW_EXTERN unsigned mw_mime_part_flags(const mw_mime_part *part);
MW_EXTERN int mw_mime_part_is_multipart(const mw_mime_part *part);
MW_EXTERN mw_mime_headers *mw_mime_part_headers(mw_mime_part *part);
MW_EXTERN size_t mw_mime_part_child_count(const mw_mime_part *part);
MW_EXTERN mw_mime_part *mw_mime_part_child(const mw_mime_part *part, size_t i);
MW_EXTERN mw_mime_part *mw_mime_part_parent(const mw_mime_part *part);
/* A multipart's preamble and epilogue as they were read (may be empty). */
MW_EXTERN const char *mw_mime_part_preamble(const mw_mime_part *part, size_t *len);
MW_EXTERN const char *mw_mime_part_epilogue(const mw_mime_part *part, size_t *len);
/* Frees a part and everything under it (a root, or a part not yet added). */
MW_EXTERN void mw_mime_part_free(mw_mime_part *part);

/* ---------------------------------------------------------------------
 * Part 4: writing, and the builder.
 * ------------------------------------------------------------------- */

/* Writes a tree with CRLF line ends for built parts and the original bytes
 * for parsed parts (byte for byte when nothing was changed).  Built
 * roots get MIME-Version, Date and Message-ID when they lack them; built
 * multiparts get a fresh random boundary that their content lacks.
 * Returns 0, the callback's non-zero value, MW_ESTATE (a parsed body that
 * was not kept), MW_EIO (a body file), MW_EINVAL (a multipart without
 * parts), MW_ENOMEM. */
MW_EXTERN int mw_mime_part_write(mw_mime_part *part, mw_mime_write_fn fn, void *userdata,
                                 mw_error *err);
MW_EXTERN int mw_mime_part_write_fd(mw_mime_part *part, int fd, mw_error *err);
/* *out is NUL-terminated (free it with mw_free); *len (may be NULL) its
 * length. */
MW_EXTERN int mw_mime_part_to_buffer(mw_mime_part *part, char **out, size_t *len, mw_error *err);

/* A pull reader over the bytes mw_mime_part_write would write, for a
 * consumer that asks for data (mw_smtp_msg.read: set read to
 * mw_mime_reader_read and read_userdata to the reader).  Header blocks and
 * delimiters are prepared by mw_mime_reader_new (as the writer would:
 * Date, Message-ID, boundaries); bodies are encoded as they are read, a
 * file-backed body 64 KiB at a time, never whole in memory.  The part must
 * not change, nor be freed, while the reader lives.
 * mw_mime_reader_new returns 0, MW_EINVAL, MW_ESTATE, MW_EIO, MW_ENOMEM
 * (as mw_mime_part_write); mw_mime_reader_read returns the number of bytes
 * put in buf, 0 at the end, or a negative MW_E… (MW_EIO: a body file; the
 * detail in mw_mime_reader_error), the same code again on later calls. */
typedef struct mw_mime_reader mw_mime_reader;
MW_EXTERN int mw_mime_reader_new(mw_mime_reader **out, mw_mime_part *part, mw_error *err);
MW_EXTERN long mw_mime_reader_read(void *buf, size_t len, void *userdata);
MW_EXTERN const mw_error *mw_mime_reader_error(const mw_mime_reader *r);
MW_EXTERN void mw_mime_reader_free(mw_mime_reader *r);

/* A new part of type "type/subtype" (parameters are set one by one).
 * multipart/... parts take sub-parts, message/rfc822 takes one part (the
 * message), others take a body.  Returns 0, MW_EINVAL, MW_ENOMEM. */
MW_EXTERN int mw_mime_part_new(mw_mime_part **out, const char *type, mw_error *err);
/* message/rfc822 holding message (which it then owns). */
MW_EXTERN int mw_mime_message_new(mw_mime_part **out, mw_mime_part *message, mw_error *err);
/* Sets (value NULL: removes) a Content-Type parameter.  Non-ASCII or long
 * values are written per RFC 2231.  "boundary" is refused (the writer
 * chooses it). */
MW_EXTERN int mw_mime_part_set_param(mw_mime_part *part, const char *name, const char *value,
                                     mw_error *err);
/* Content-Disposition: disp ("attachment", "inline") and file name (UTF-8,
 * may be NULL; written per RFC 2231 when not plain ASCII). */
MW_EXTERN int mw_mime_part_set_disposition(mw_mime_part *part, const char *disp,
                                           const char *filename, mw_error *err);
/* Content-ID: id without the angle brackets. */
MW_EXTERN int mw_mime_part_set_content_id(mw_mime_part *part, const char *id, mw_error *err);
/* Forces a transfer encoding (MW_MIME_ENC_NONE: choose as Tcllib does:
 * base64 for audio/image/video and binary data, and for 8-bit text in a
 * charset other than us-ascii/iso-8859-1..8; quoted-printable for lines
 * over 76 characters, trailing white space, lines starting with "." or
 * "From ", or 8-bit text in those charsets; 8bit for 8-bit text without a
 * charset; else 7bit). */
MW_EXTERN int mw_mime_part_set_encoding(mw_mime_part *part, int encoding, mw_error *err);
/* The body: copied from memory, or read from a file when written (streamed
 * in 64 KiB pieces, never whole in memory).  MW_EIO if it cannot be opened. */
MW_EXTERN int mw_mime_part_set_body(mw_mime_part *part, const void *data, size_t len,
                                    mw_error *err);
MW_EXTERN int mw_mime_part_set_body_file(mw_mime_part *part, const char *path, mw_error *err);
/* Adds child at the end of parent's parts; parent then owns it. */
MW_EXTERN int mw_mime_part_add(mw_mime_part *parent, mw_mime_part *child, mw_error *err);

#define MW_MIME_HDR_SET    0 /* replace every field of that name (or add) */
#define MW_MIME_HDR_APPEND 1 /* add another field */
#define MW_MIME_HDR_DELETE 2 /* remove every field of that name */
/* Tcllib setheader: Content-* fields and MIME-Version are refused (use the
 * setters above); CR or LF in a value is refused (header injection);
 * non-ASCII text must be encoded first (mw_mime_encode_text,
 * mw_mime_address_format).  Returns 0, MW_EINVAL, MW_ENOMEM. */
MW_EXTERN int mw_mime_part_header(mw_mime_part *part, const char *name, const char *value, int mode,
                                  mw_error *err);

/* ---------------------------------------------------------------------
 * Part 5: helpers (Tcllib parseaddress, parsedatetime, uniqueID, qp_*).
 * ------------------------------------------------------------------- */

/* One address of a list.  display: the display name, or NULL (decoded,
 * UTF-8); local, domain, address ("local@domain"); comment: a comment after
 * a bare address ("a@b (Name)"); group: the group it is in, or NULL;
 * error: NULL, or what is wrong with it (it is still listed). */
typedef struct mw_mime_address {
    const char *display;
    const char *local;
    const char *domain;
    const char *address;
    const char *comment;
    const char *group;
    const char *error;
} mw_mime_address;
typedef struct mw_mime_addrlist mw_mime_addrlist;
/* Parses an address list (RFC 5322 §3.4 and obsolete syntax §4.4: groups,
 * quoted local parts, comments, routes, encoded words).  Returns 0,
 * MW_ETOOBIG (over 1000 addresses), MW_ENOMEM. */
MW_EXTERN int mw_mime_addrlist_parse(mw_mime_addrlist **out, const char *s, size_t len,
                                     mw_error *err);
MW_EXTERN size_t mw_mime_addrlist_count(const mw_mime_addrlist *l);
MW_EXTERN const mw_mime_address *mw_mime_addrlist_at(const mw_mime_addrlist *l, size_t i);
MW_EXTERN void mw_mime_addrlist_free(mw_mime_addrlist *l);
/* "Display <addr>" with the display name quoted or RFC 2047-encoded as
 * needed, or just addr.  Returns 0, MW_EINVAL (CR/LF/<> inside), MW_ENOMEM. */
MW_EXTERN int mw_mime_address_format(char **out, const char *display, const char *addr);

typedef struct mw_mime_date {
    int year, month, day; /* month 1..12 */
    int hour, minute, second;
    int weekday;      /* 0 = Sunday, or -1 when not given */
    int zone_minutes; /* offset from UTC */
    int zone_known;   /* 0 for -0000, military or missing zones */
    int64_t utc;      /* seconds since 1970-01-01 UTC */
} mw_mime_date;
/* RFC 5322 §3.3 date-time with the obsolete forms of §4.3 (two-digit
 * years, named zones, comments).  Returns 0 or MW_EFORMAT. */
MW_EXTERN int mw_mime_date_parse(mw_mime_date *out, const char *s, size_t len);
#define MW_MIME_DATE_SIZE 40
/* Formats t (seconds since 1970 UTC) as seen at zone_minutes east of UTC:
 * "Sun, 22 Nov 2026 16:00:00 +0000".  size >= MW_MIME_DATE_SIZE. */
MW_EXTERN int mw_mime_date_format(char *buf, size_t size, int64_t t, int zone_minutes);
/* The current time in the local zone. */
MW_EXTERN int mw_mime_date_now(char *buf, size_t size);
/* A Message-ID "<time.SEED.COUNTER@domain>": SEED is 24 hex digits drawn
 * from the kernel's getrandom once per thread (and again after a fork),
 * COUNTER goes up by one per call.  domain NULL: the host name if it has a
 * dot, else "mailwire.invalid".  The SMTP layer's Message-IDs come from
 * here too.  Returns 0, MW_EINVAL (domain with <, >, @, space or a line
 * end), MW_ETOOBIG (size too small), MW_EIO (no random bytes). */
MW_EXTERN int mw_mime_unique_id(char *buf, size_t size, const char *domain);
/* Quoted-printable (RFC 2045 §6.7), whole buffers: *out (mw_free) and
 * NUL-terminated.  Encoding treats LF/CRLF as line ends (text). */
MW_EXTERN int mw_mime_qp_encode(char **out, size_t *outlen, const void *in, size_t len);
MW_EXTERN int mw_mime_qp_decode(char **out, size_t *outlen, const char *in, size_t len);

#ifdef __cplusplus
}
#endif
#endif
