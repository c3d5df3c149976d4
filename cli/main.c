#include "commands.h"

#include "mailwire/error.h"
#include "mailwire/common.h"

#include <stdio.h>
#include <string.h>

int mw_cli_exit_code(int code)
{
    switch (code) {
    case MW_OK:
        return EX_OK_;
    case MW_EINVAL:
        return EX_USAGE_;
    case MW_EFORMAT:
        return EX_DATAERR_;
    case MW_ENET:
        return EX_UNAVAILABLE_;
    case MW_EIO:
        return EX_IOERR_;
    case MW_ETEMP:
    case MW_ETIMEOUT:
        return EX_TEMPFAIL_;
    case MW_EPROTO:
    case MW_ETOOBIG:
        return EX_PROTOCOL_;
    case MW_EAUTH:
    case MW_ECERT:
    case MW_ETLS:
    case MW_EPOLICY:
        return EX_NOPERM_;
    case MW_ESERVER:
    case MW_EUNSUPPORTED:
    case MW_ESTATE:
        return EX_UNAVAILABLE_;
    case MW_ECANCELED:
        return EX_TEMPFAIL_;
    default:
        return EX_SOFTWARE_;
    }
}

static int cmd_version(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    printf("mailwire %s\nOpenSSL: %s\nGNU SASL: %s\n", mw_version(), mw_openssl_version(),
           mw_gsasl_version());
    return 0;
}

/* Subcommands are added here as their files land (cli/meson.build lists them). */
#include "command_table.h"

static const struct mw_cli_command builtin[] = {
    {"version", cmd_version, "print versions of mailwire, OpenSSL and GNU SASL"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: mailwire [--version] COMMAND [OPTIONS] [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        fprintf(f, "  %-10s %s\n", builtin[i].name, builtin[i].summary);
    for (size_t i = 0; mw_cli_commands[i].name; i++)
        fprintf(f, "  %-10s %s\n", mw_cli_commands[i].name, mw_cli_commands[i].summary);
    fprintf(f, "\n'mailwire COMMAND --help' tells more of each.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE_;
    }
    const char *name = argv[1];
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) return cmd_version(argc - 1, argv + 1);
    if (!strcmp(name, "--help") || !strcmp(name, "-h") || !strcmp(name, "help")) {
        usage(stdout);
        return EX_OK_;
    }
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++)
        if (!strcmp(name, builtin[i].name)) return builtin[i].run(argc - 1, argv + 1);
    for (size_t i = 0; mw_cli_commands[i].name; i++)
        if (!strcmp(name, mw_cli_commands[i].name)) {
            mw_cli_json_start(name, argc - 1, argv + 1);
            return mw_cli_json_finish(mw_cli_commands[i].run(argc - 1, argv + 1));
        }
    mw_cli_json_start(name, argc - 1, argv + 1);
    fprintf(stderr, "mailwire: unknown command '%s'\n", name);
    usage(stderr);
    return mw_cli_json_finish(EX_USAGE_);
}

const char *mw_cli_errno_text(int e)
{
    static _Thread_local char buf[128];
    /* GNU strerror_r (_GNU_SOURCE): returns the text, in buf or static.
     * checksrc: allow strerror_r: the CLI's one wrapper; the CLI sees no src/ */
    const char *t = strerror_r(e, buf, sizeof buf);
    return t ? t : "unknown error";
}
