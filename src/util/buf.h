/* A growable byte buffer with a hard upper bound. */
#ifndef MW_UTIL_BUF_H
#define MW_UTIL_BUF_H

#include <stddef.h>

typedef struct mw_buf {
    char *data; /* always NUL-terminated when non-NULL (not counted in len) */
    size_t len;
    size_t cap; /* allocated, excluding the NUL */
    size_t max; /* len never exceeds this; 0 = SIZE_MAX/2 */
} mw_buf;

#define MW_BUF_INIT(maxbytes)                                                                      \
    {                                                                                              \
        NULL, 0, 0, (maxbytes)                                                                     \
    }

/* Each returns 0, MW_ENOMEM, or MW_ETOOBIG when len would pass max (the
 * buffer is then left as it was). */
int mwi_buf_reserve(mw_buf *b, size_t extra);
int mwi_buf_append(mw_buf *b, const void *p, size_t n);
int mwi_buf_append_str(mw_buf *b, const char *s);
int mwi_buf_append_char(mw_buf *b, char c);
int mwi_buf_printf(mw_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Drops the first n bytes. */
void mwi_buf_consume(mw_buf *b, size_t n);
void mwi_buf_reset(mw_buf *b);
void mwi_buf_free(mw_buf *b);
/* Hands over the storage (NUL-terminated); the buffer is left empty. */
char *mwi_buf_take(mw_buf *b, size_t *len);

#endif
