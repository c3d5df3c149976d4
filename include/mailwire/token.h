/* mailwire — the token-provider callback: POP3 and SMTP sessions call it
 * for an OAuth 2.0 bearer token when they log in with XOAUTH2 or
 * OAUTHBEARER (mw_pop3_opts.token_fn, mw_smtp_opts.token_fn), and once more
 * with refused = 1 when the server refused the token it gave.
 * mw_oauth_token_cb (oauth.h) is one, over mailwire's own token store. */
#ifndef MAILWIRE_TOKEN_H
#define MAILWIRE_TOKEN_H

#include "common.h"
#include "error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Sets *token to a malloc'd NUL-terminated token (the session wipes and
 * frees it with free()) and returns 0; any other value stops the login and
 * is returned unchanged by the call that logs in, with err (may be set by
 * the callback) saying why. */
typedef int (*mw_token_fn)(int refused, char **token, mw_error *err, void *userdata);

#ifdef __cplusplus
}
#endif
#endif
