/* mailwire — the scsh defaults as explicit helper calls: the mail host from
 * $MAILHOST and login/password from ~/.netrc.
 *
 * The library never reads the environment or ~/.netrc behind the caller's
 * back; these are the only functions that do, and only when called. */
#ifndef MAILWIRE_NETRC_H
#define MAILWIRE_NETRC_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One matching entry of a netrc file.  Strings are NUL-terminated; a field
 * the entry lacks is "". */
typedef struct mw_netrc_entry {
    char login[256];
    char password[256];
    char account[256];
    int is_default; /* 1 when it came from the `default` entry */
} mw_netrc_entry;

/* Looks `host` up in the netrc file at `path`.  Machine names are compared
 * case-insensitively; when `login` is not NULL, only an entry with that
 * login matches.  The first matching `machine` entry wins; without one, the
 * `default` entry is used (when its login fits).  Tokens may be double-quoted
 * with backslash escapes; `macdef` bodies are skipped; '#' starts a comment.
 *
 * The file is refused (MW_EPOLICY) when it is not a regular file or when
 * its group or other permission bits are set, as scsh and ftp(1) do: a
 * password file others can read is not trusted.
 *
 * Returns 1 and fills *out when an entry matched, 0 when none did (or the
 * file does not exist), or MW_EPOLICY, MW_EIO, MW_EFORMAT (syntax, a token
 * over 255 octets, a file over 1 MiB), MW_EINVAL.  The password is wiped from
 * memory other than *out. */
MW_EXTERN int mw_netrc_lookup(mw_netrc_entry *out, const char *path, const char *host,
                              const char *login, mw_error *err);

/* Writes "$HOME/.netrc" into buf.  Returns 0, or MW_EINVAL when HOME is
 * unset or empty, MW_ETOOBIG when buf is too small. */
MW_EXTERN int mw_netrc_default_path(char *buf, size_t size);

/* The value of $MAILHOST (scsh's default POP3 host), or NULL when unset or
 * empty. */
MW_EXTERN const char *mw_mailhost(void);

/* Wipes an entry (password included). */
MW_EXTERN void mw_netrc_entry_clear(mw_netrc_entry *e);

#ifdef __cplusplus
}
#endif
#endif
