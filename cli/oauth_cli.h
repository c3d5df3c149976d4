/* OAuth 2.0 for the commands (cli/cmd_oauth.c): `mailwire oauth`, and the
 * access token for pop3, fetch, send and smtp when the account has OAuth
 * settings (oauth_provider or oauth_token_url). */
#ifndef MW_CLI_OAUTH_H
#define MW_CLI_OAUTH_H

#include "connopts.h"
#include "mailwire/config.h"
#include "mailwire/trace.h"

/* 1 when the account gets its token from mailwire's token store. */
int mw_cli_oauth_enabled(const mw_account *a);
/* The SASL mechanism the account's provider wants ("XOAUTH2"), for an
 * account without an explicit `auth`. */
const char *mw_cli_oauth_mechanism(const mw_account *a);
/* 1 when the provider's POP3 wants AUTH XOAUTH2 without an initial
 * response (Microsoft: the token in a second step). */
int mw_cli_oauth_pop3_two_step(const mw_account *a);
/* A current access token for account a (refreshed when due; refused = 1:
 * the server refused the last one, refresh once).  TLS options and trace
 * from c (the command line over the account), or with c NULL from the
 * account and trace_fn.  *token malloc'd (wipe, free).  Returns 0 or a
 * sysexits code (message printed, prefixed "mailwire PROG"). */
int mw_cli_oauth_token(const char *prog, const mw_account *a, const mw_cli_conn *c,
                       mw_trace_fn trace_fn, void *trace_ud, int refused, char **token);
/* The same without printing, for threads: returns an mw code with err
 * set — MW_EAUTH when the user must act (not logged in, grant revoked),
 * MW_ETEMP when the provider failed or answered garbage, others as is. */
int mw_cli_oauth_token_err(const mw_account *a, mw_trace_fn trace_fn, void *trace_ud, int refused,
                           char **token, mw_error *err);
/* The --account of c when it has OAuth settings, else NULL. */
const mw_account *mw_cli_oauth_account(const mw_cli_conn *c);
/* Puts a current access token into c->password (the one before wiped);
 * refused = 1 after the server refused it.  0 or a sysexits code. */
int mw_cli_oauth_conn_token(mw_cli_conn *c, int refused);

#endif
