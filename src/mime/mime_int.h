/* Internal declarations shared by the files of src/mime. */
#ifndef MW_MIME_INT_H
#define MW_MIME_INT_H

#include "mailwire/mime.h"
#include "util/buf.h"

#include <stddef.h>

/* ASCII-only helpers: the library never depends on the locale. */
static inline int mw_is_wsp(int c)
{
    return c == ' ' || c == '\t';
}
static inline int mw_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + 32 : c;
}
int mwi_ascii_casecmp_n(const char *a, size_t alen, const char *b, size_t blen);

/* Header block internals used by the message parser. */
int mwi_mime_headers_init_defaults(mw_mime_header_opts *o, const mw_mime_header_opts *in);
/* Moves the fields named name (at most 16) after all the others. */
void mwi_mime_headers_move_last(mw_mime_headers *h, const char *name);

/* Streaming conversion to UTF-8 (glibc iconv).  Invalid input becomes
 * U+FFFD; output comes in blocks (see cv_block), all of it once final. */
#define MW_CV_BLOCK 4096
typedef struct mw_cv {
    void *cd;
    int identity;
    char carry[16];
    size_t ncarry;
    char stage[MW_CV_BLOCK]; /* input is converted in blocks of this size */
    size_t nstage;
    unsigned long bad;
} mw_cv;
int mwi_charset_is_utf8(const char *cs);
/* Returns 0, or -1 when iconv does not know the charset. */
int mwi_cv_open(mw_cv *cv, const char *charset);
int mwi_cv_run(mw_cv *cv, const char *in, size_t len, int final, mw_buf *out);
void mwi_cv_close(mw_cv *cv);
/* One-shot: returns 0, 1 for an unknown charset (nothing appended), or an
 * mw_buf error. */
int mwi_charset_to_utf8(const char *charset, const char *in, size_t len, mw_buf *out);

/* RFC 2047 decoding into out (UTF-8); see mw_mime_decode_field. */
int mwi_rfc2047_decode(const char *in, size_t len, mw_buf *out);

#endif

/* ---- the part tree ---- */
enum { MW_K_LEAF, MW_K_MULTI, MW_K_MESSAGE };
enum { MW_SRC_NONE, MW_SRC_RAW, MW_SRC_BYTES, MW_SRC_FILE };

struct mw_mime_part {
    struct mw_mime_part *parent, *first, *last, *next;
    size_t nchild;
    char *path;
    mw_mime_headers *hdr;
    mw_mime_ctype *ct, *cd;
    char *type;     /* lowercased type/subtype (default text/plain) */
    char *filename; /* decoded file name or NULL */
    int enc;
    int kind;
    unsigned flags;
    unsigned depth;
    uint64_t decoded, rawsize;
    int body_started; /* headers complete (or cut) and info derived */
    int src;          /* where the body comes from when written */
    int closed;       /* close delimiter seen */
    mw_buf body;      /* leaf: raw (encoded) body; multipart: preamble */
    mw_buf delim;     /* the delimiter line (with the line end before it) */
    mw_buf close;     /* multipart: the close delimiter line */
    mw_buf epilogue;  /* multipart: after the close delimiter */
    char *file;       /* built from a file */
    char *boundary;   /* built multipart */
    int enc_forced;   /* builder: the caller chose the encoding */
};

/* Creates a part (parent may be NULL); path derived from the parent. */
mw_mime_part *mwi_part_new(mw_mime_part *parent, const mw_mime_header_opts *hopts);
/* Reads Content-Type, -Transfer-Encoding, -Disposition from the headers.
 * Returns the MW_MIME_F_ flags for what was malformed. */
unsigned mwi_part_derive(mw_mime_part *p);
/* Writers (write.c, build.c). */
int mwi_write_part(mw_mime_part *p, mw_mime_write_fn fn, void *ud, mw_error *err);
int mwi_write_built_body(mw_mime_part *p, mw_mime_write_fn fn, void *ud, mw_error *err);
/* A leaf body encoded a piece at a time (build.c). */
typedef struct mw_leaf mw_leaf;
int mwi_leaf_open(mw_leaf **out, mw_mime_part *p, int enc, mw_mime_write_fn fn, void *ud,
                  mw_error *err);
int mwi_leaf_step(mw_leaf *l, mw_error *err);
void mwi_leaf_free(mw_leaf *l);
/* The pull reader's planning pass (reader.c): the writer hands it every
 * byte but the built leaf bodies, which it records to encode on demand. */
int mwi_reader_plan_fn(const char *data, size_t len, void *ud);
int mwi_reader_plan_leaf(void *ud, mw_mime_part *p, int enc, mw_error *err);
