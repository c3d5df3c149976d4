/* Internal helpers to fill a mw_error. */
#ifndef MW_UTIL_ERR_H
#define MW_UTIL_ERR_H

#include "mailwire/error.h"

/* Sets err->code and err->message (printf-style), leaves the other fields
 * alone, and returns code so callers can `return mwi_err_set(...)`.  err may
 * be NULL. */
int mwi_err_set(mw_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Records the server's reply text (len bytes, not NUL-terminated); control
 * characters are replaced by '?' so an error message can be printed safely. */
void mwi_err_set_reply(mw_error *err, const char *text, size_t len);
/* Records the command that failed (already masked by the caller). */
void mwi_err_set_command(mw_error *err, const char *cmd, size_t len);
/* Copies at most dstsize-1 bytes of src[0..len) into dst, NUL-terminating,
 * replacing bytes below 0x20 and 0x7F with '?'.  Returns the length written. */
size_t mwi_copy_printable(char *dst, size_t dstsize, const char *src, size_t len);

/* The system's text for errno value e, thread-safe (strerror is not), in
 * buf (n bytes, NUL-terminated, cut when longer); returns buf.  Builds with
 * the GNU and the POSIX strerror_r alike.  An unknown e gives "error E" or
 * the libc's own "Unknown error E". */
const char *mwi_errno_text(int e, char *buf, size_t n);
/* Bytes enough for any errno text (glibc's longest is under 60). */
#define MW_ERRNO_TEXT_SIZE 128
/* mwi_errno_text into a buffer that lives until the end of the enclosing
 * block: for use as an argument, e.g.
 *     return mwi_err_set(err, MW_EIO, "open %s: %s", path, MW_ERRNO_TEXT(errno)); */
#define MW_ERRNO_TEXT(e) mwi_errno_text((e), (char[MW_ERRNO_TEXT_SIZE]){0}, MW_ERRNO_TEXT_SIZE)

#endif
