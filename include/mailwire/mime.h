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
MW_EXTERN int mw_mime_headers_new(mw_mime_headers **out, const mw_mime_header_opts *opts);
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

#ifdef __cplusplus
}
#endif
#endif
