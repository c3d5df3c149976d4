/* MAILWIRE_ENGINE: see engine.h. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mw_cli_engine(const char *cmd)
{
    const char *v = getenv("MAILWIRE_ENGINE");
    if (!v || !*v || !strcmp(v, "blocking")) return MW_CLI_ENGINE_BLOCKING;
    if (!strcmp(v, "loop")) return MW_CLI_ENGINE_LOOP;
    fprintf(stderr, "mailwire %s: MAILWIRE_ENGINE wants blocking or loop, not '%.40s'\n", cmd, v);
    return -1;
}

void mw_cli_engine_note(const char *what)
{
    const char *path = getenv("MAILWIRE_ENGINE_LOG");
    if (!path || !*path) return;
    FILE *f = fopen(path, "a");
    if (!f) return;
    fprintf(f, "%s\n", what);
    fclose(f);
}
