/* Errors as JSON (mailwire(1), "JSON ERRORS"): with --json, a command that
 * fails prints one error object as the last line of stdout.
 *
 * Commands call mw_cli_json_error() where they know the library's error
 * record (category, failed command, server reply).  For every other failure
 * (a bad option, a file that cannot be read, ...) main() calls
 * mw_cli_json_finish(), which prints an object from the exit code and the
 * first error line the command wrote to stderr: in --json mode stderr is a
 * stdio stream (fopencookie) that passes everything on to descriptor 2 and
 * keeps that line. */
#include "commands.h"
#include "connopts.h"

#include "mailwire/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define LINE_MAX_KEPT 1024

static struct {
    int on;       /* --json seen */
    int reported; /* an error object was printed */
    const char *program;
    FILE *real_stderr;
    /* The first error line written to stderr (see keep_line). */
    char cur[LINE_MAX_KEPT];
    size_t curlen;
    int cur_over;
    char first[LINE_MAX_KEPT];
    int have_first;
    char any[LINE_MAX_KEPT]; /* the first non-empty line, whatever it says */
    int have_any;
} J;

/* A line is kept when it is the first that reads as an error: the CLI's
 * own messages start with "mailwire"; warnings and usage text do not count. */
static void keep_line(void)
{
    J.cur[J.curlen] = '\0';
    const char *l = J.cur;
    if (!J.have_any && J.curlen) {
        memcpy(J.any, J.cur, J.curlen + 1);
        J.have_any = 1;
    }
    if (!J.have_first && !strncmp(l, "mailwire", 8) && !strstr(l, ": warning: ") &&
        strncmp(l, "mailwire: usage", 15)) {
        memcpy(J.first, J.cur, J.curlen + 1);
        J.have_first = 1;
    }
    J.curlen = 0;
    J.cur_over = 0;
}

static ssize_t tee_write(void *cookie, const char *buf, size_t len)
{
    (void)cookie;
    for (size_t i = 0; i < len; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            keep_line();
        } else if (ch == '\r') {
            J.curlen = 0; /* a redrawn progress line */
        } else if (J.curlen + 1 < sizeof J.cur) {
            J.cur[J.curlen++] = ch;
        }
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(2, buf + done, len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break; /* stderr gone: the text is dropped, as stdio would */
        done += (size_t)n;
    }
    return (ssize_t)len;
}

void mw_cli_json_start(const char *program, int argc, char **argv)
{
    J.program = program;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--json")) J.on = 1;
    }
    if (!J.on) return;
    cookie_io_functions_t io = {NULL, tee_write, NULL, NULL};
    FILE *f = fopencookie(NULL, "w", io);
    if (!f) return; /* the explicit objects still come; only the fallback's text is lost */
    setvbuf(f, NULL, _IONBF, 0);
    J.real_stderr = stderr;
    stderr = f; /* glibc: stdin, stdout and stderr are assignable variables */
}

int mw_cli_json_on(void)
{
    return J.on;
}

/* The category word of a sysexits code (for failures without a library
 * code). */
static const char *exit_category(int ex)
{
    switch (ex) {
    case EX_USAGE_:
        return "usage";
    case EX_DATAERR_:
        return "format";
    case 66:
        return "noinput";
    case EX_NOUSER_:
        return "recipient";
    case EX_UNAVAILABLE_:
        return "unavailable";
    case 73:
        return "cantcreate";
    case EX_IOERR_:
        return "io";
    case EX_TEMPFAIL_:
        return "temporary";
    case EX_PROTOCOL_:
        return "protocol";
    case EX_NOPERM_:
        return "permission";
    case 78:
        return "config";
    default:
        return "software";
    }
}

/* "mailwire pop3: text" -> "text". */
static const char *strip_prefix(const char *m)
{
    if (strncmp(m, "mailwire", 8)) return m;
    const char *c = strstr(m, ": ");
    return c ? c + 2 : m;
}

static void str_field(FILE *f, const char *name, const char *v)
{
    fprintf(f, ",\"%s\":", name);
    mw_cli_json_string(f, v ? v : "", v ? strlen(v) : 0);
}

void mw_cli_json_error_fields(FILE *f, const mw_error *e)
{
    str_field(f, "command", e ? e->command : "");
    str_field(f, "reply", e ? e->reply : "");
    fprintf(f, ",\"code\":%d", e ? e->reply_code : 0);
    str_field(f, "enhanced", e ? e->enhanced : "");
    str_field(f, "resp_code", e ? e->resp_code : "");
}

void mw_cli_json_handled(void)
{
    J.reported = 1;
}

void mw_cli_json_error(int exit_code, int mw_code, const mw_error *e, const char *message)
{
    if (!J.on || J.reported) return;
    J.reported = 1;
    const char *msg = message && *message  ? message
                      : e && e->message[0] ? e->message
                      : mw_code            ? mw_strerror(mw_code)
                      : J.have_first       ? strip_prefix(J.first)
                      : J.have_any         ? J.any
                                           : "failed";
    FILE *f = stdout;
    fputs("{\"ok\":false", f);
    str_field(f, "program", J.program);
    str_field(f, "error", msg);
    str_field(f, "category", mw_code ? mw_error_category(mw_code) : exit_category(exit_code));
    fprintf(f, ",\"exit\":%d", exit_code);
    mw_cli_json_error_fields(f, e);
    fputs("}\n", f);
    fflush(f);
}

int mw_cli_json_finish(int exit_code)
{
    if (J.on && exit_code != 0 && !J.reported) {
        if (J.curlen) keep_line(); /* a last line without '\n' */
        mw_cli_json_error(exit_code, 0, NULL, NULL);
    }
    if (J.real_stderr) {
        FILE *f = stderr;
        stderr = J.real_stderr;
        J.real_stderr = NULL;
        fclose(f);
    }
    return exit_code;
}
