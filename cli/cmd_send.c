/* mailwire send: sendmail-compatible submission (issue 4).  The work is
 * shared with `mailwire smtp` in cmd_smtp.c. */
#include "commands.h"

int mw_cmd_send(int argc, char **argv)
{
    return mw_cli_sendmail(argc, argv);
}
