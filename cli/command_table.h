/* One line per subcommand that has landed; each lives in cli/cmd_NAME.c and
 * is listed in cli/meson.build.  Keep the table NULL-terminated. */
#ifndef MW_CLI_COMMAND_TABLE_H
#define MW_CLI_COMMAND_TABLE_H

#include "commands.h"

static const struct mw_cli_command mw_cli_commands[] = {
    {"pop3", mw_cmd_pop3, "one POP3 session: stat, list, uidl, top, retr, dele, ..."},
    {"send", mw_cmd_send, "send a message like sendmail: stdin, recipients or -t (SMTP)"},
    {"smtp", mw_cmd_smtp, "SMTP session: send FILE... over one connection, capa"},
    {"mime", mw_cmd_mime, "MIME: parse a message into its parts, or build one"},
    {"fetch", mw_cmd_fetch, "fetch POP3 accounts into Maildir/mbox/MDA, never losing mail"},
    {"queue", mw_cmd_queue, "the outgoing queue: run, flush, list, drop (send --enqueue)"},
    {"oauth", mw_cmd_oauth, "OAuth 2.0: login, status, logout (tokens for XOAUTH2/OAUTHBEARER)"},
    {NULL, NULL, NULL},
};

#endif
