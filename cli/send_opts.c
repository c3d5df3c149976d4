/* `mailwire send`: usage, sendmail's single-letter options, the default
 * sender (send_int.h). */
#include "send_int.h"
#include "commands.h"
#include "connopts.h"

#include "mailwire/config.h"
#include "mailwire/error.h"
#include "mailwire/mime.h"
#include "mailwire/smtp.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void send_usage(FILE *f)
{
    fprintf(f,
            "usage: mailwire send [OPTIONS] [-t] [-f ADDR] [-F NAME] [-i|-oi] [-N NOTIFY]\n"
            "                     [-R full|hdrs] [-V ENVID] [-B 7BIT|8BITMIME|BINARYMIME] [-v]\n"
            "                     [--all-or-nothing] [--bcc-digest] [--downgrade] [--]\n"
            "                     [RECIPIENT...]\n"
            "-BBINARYMIME: the body as it is, in BDAT (a server offering CHUNKING and\n"
            "  BINARYMIME); --downgrade: else each part not 7-bit goes base64, not refused.\n"
            "       mailwire send -bs [OPTIONS]  (SMTP on stdin/stdout, relayed to the server)\n"
            "       mailwire send -bi | -I      (no alias database: does nothing)\n"
            "       mailwire send -q | -bp      (`mailwire queue flush` | `mailwire queue list`)\n"
            "Queue: --enqueue (or `queue on` in the account) stores the message durably first,\n"
            "  then tries it once: exit 0 \"queued as ID\" when it cannot go now;\n"
            "  --queue-dir DIR  --lifetime SECONDS  --backoff MIN[,MAX] (see mailwire queue).\n"
            "Recipients rejected go to stderr (exit 67); --all-or-nothing sends to none then.\n"
            "The message is read from stdin; without -i a line with a single '.' ends it.\n"
            "Without From: and -f the sender is the account's `from`, else USER@HOST;\n"
            "From:, Date: and Message-ID: are added only when missing, Bcc: is removed.\n"
            "Taken and ignored as Postfix's sendmail does: -G -U -n -m -h N -L LABEL -X FILE\n"
            "  -oX... (-oem -oee -odi -odb -o7 -o8 -oA...; -oi is -i) -qINTERVAL; -r is -f;\n"
            "  -C FILE (or DIR/config) is --config; -bm is the default mode.\n"
            "SMTP options: --servers H1,H2  --ports P1,P2  --tls opportunistic  --client NAME"
            "  --maxsecs N  --queue\n"
            "              --header \"Name: value\" (added to each message; repeatable)\n"
            "              --dsn-orcpt (ORCPT=rfc822;ADDR on each RCPT, RFC 3461)\n"
            "              --oauth-token-file FILE | --oauth-token-eval CMD (XOAUTH2 or\n"
            "                OAUTHBEARER with the token on the first line, --user for XOAUTH2)\n");
    mw_cli_conn_usage(f);
}

/* A letter without a value at p: 1 taken, 2 taken with the rest of the
 * word (-q...), 0 not one of them. */
static int flag_letter(send_args *A, const char *p)
{
    switch (*p) {
    case 't':
        A->extract = 1;
        return 1;
    case 'i':
        A->ignore_dots = 1;
        return 1;
    case 'v':
        A->verbose++;
        return 1;
    case 'G': /* gateway submission: we never rewrite addresses anyway */
    case 'U': /* initial user submission */
    case 'n': /* no aliasing */
    case 'm': /* me too */
    case 'c': /* the rest: undocumented letters Postfix's getopt takes */
    case 'x':
    case '7':
    case '8':
        return 1;
    case 'I':
        A->mode = 'i';
        return 1;
    case 'q':
        /* -q, -qIID, -qRSITE, -qSSITE: run the queue (all of it: we
         * have one destination); -qINTERVAL is ignored, as Postfix does. */
        if (!p[1] || strchr("IRS", p[1])) A->mode = 'q';
        return 2;
    default:
        return 0;
    }
}

/* A letter with its value v: 1 taken, -1 usage error (printed). */
static int value_letter(send_args *A, smtp_cli *c, char o, const char *v, const char *word)
{
    switch (o) {
    case 'b':
        if (!strcmp(v, "m")) {
            A->mode = 'm';
        } else if (!strcmp(v, "i")) {
            A->mode = 'i';
        } else if (!strcmp(v, "s")) {
            A->mode = 's';
        } else if (!strcmp(v, "p")) {
            A->mode = 'p';
        } else {
            fprintf(stderr,
                    "mailwire send: -b%s is not supported (mailwire is a client: -bm "
                    "delivers, -bs speaks SMTP, -bi does nothing)\n",
                    v);
            return -1;
        }
        return 1;
    case 'f':
    case 'r':
        A->from = v;
        return 1;
    case 'F':
        A->fullname = v;
        return 1;
    case 'N':
        A->notify = v;
        return 1;
    case 'R':
        A->ret = v;
        return 1;
    case 'V':
        A->envid = v;
        return 1;
    case 'B':
        if (!strcasecmp(v, "8BITMIME"))
            A->body = MW_SMTP_BODY_AUTO; /* 8-bit allowed: BODY=8BITMIME when offered */
        else if (!strcasecmp(v, "7BIT"))
            A->body = MW_SMTP_BODY_7BIT;
        else if (!strcasecmp(v, "BINARYMIME"))
            A->body = MW_SMTP_BODY_BINARYMIME;
        else {
            fprintf(stderr, "mailwire send: -B takes 7BIT, 8BITMIME or BINARYMIME, not '%s'\n", v);
            return -1;
        }
        return 1;
    case 'C': {
        /* Postfix: main.cf or its directory; ours: the accounts file. */
        struct stat st;
        free(A->config_buf);
        A->config_buf = NULL;
        if (stat(v, &st) == 0 && S_ISDIR(st.st_mode)) {
            size_t n = strlen(v) + 8;
            if (!(A->config_buf = malloc(n))) return -1;
            snprintf(A->config_buf, n, "%s/config", v);
            c->conn.config_path = A->config_buf;
        } else {
            c->conn.config_path = v;
        }
        return 1;
    }
    case 'L': /* log label */
    case 'X': /* traffic log: Postfix ignores it too */
    case 'h': /* hop count */
    case 'A':
    case 'e':
    case 'O':
    case 'p':
        return 1;
    case 'o':
        /* -oi is -i; every other -oX (-oem -oee -odi -odb -o7 -o8
         * -oA...) is ignored, as Postfix does. */
        if (!strcmp(v, "i")) A->ignore_dots = 1;
        return 1;
    default:
        fprintf(stderr, "mailwire send: unknown option '-%c' (in '%s')\n", o, word);
        return -1;
    }
}

int short_options(send_args *A, smtp_cli *c, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    for (const char *p = a + 1; *p; p++) {
        int f = flag_letter(A, p);
        if (f == 1) continue;
        if (f == 2) return 1;
        char o = *p;
        /* The rest take a value: what follows the letter, else the next word. */
        const char *v = p[1] ? p + 1 : NULL;
        if (!v && strchr("bfrFNRVBCLXhoAeOp", o)) {
            if (*i + 1 >= argc) {
                fprintf(stderr, "mailwire send: -%c needs a value\n", o);
                return -1;
            }
            v = argv[++*i];
        }
        return value_letter(A, c, o, v, a);
    }
    return 1;
}

/* The sender when neither -f nor From: gives one: the account's `from`,
 * else USER@HOST (login name and host name), as Postfix does. */
char *default_sender(const mw_cli_conn *cc)
{
    const mw_account *a =
        cc->config && cc->account ? mw_config_find(cc->config, cc->account) : NULL;
    if (a && a->from) return strdup(a->from);
    char host[256] = "localhost";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    const char *user = NULL;
    struct passwd pw, *res = NULL;
    char pwbuf[4096];
    if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) == 0 && res && res->pw_name[0])
        user = res->pw_name;
    if (!user) user = getenv("USER");
    if (!user || !*user) user = "nobody";
    size_t n = strlen(user) + strlen(host) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s@%s", user, host);
    return s;
}
