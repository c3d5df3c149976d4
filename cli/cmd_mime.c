/* mailwire mime parse | build: read a message's MIME tree, or write a
 * message.  Uses only the public API. */
#include "commands.h"
#include "connopts.h"

#include "mailwire/error.h"
#include "mailwire/mime.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <strings.h>

/* sysexits(3) codes only this command uses. */
enum { MIME_EX_NOINPUT = 66, MIME_EX_CANTCREAT = 73 };

#define READ_CHUNK     (64 * 1024)
#define MAX_STDIN_TEXT (64u * 1024 * 1024)

static void mime_usage(FILE *f)
{
    fprintf(f, "usage: mailwire mime parse [--json] [--utf8] [--extract DIR] FILE|-\n"
               "       mailwire mime build --from ADDR --to ADDR [--to ADDR...] [--cc ADDR...]\n"
               "                           --subject TEXT [--text FILE|-] [--html FILE]\n"
               "                           [--attach FILE...]\n"
               "parse prints each part: path, type, charset, transfer encoding, disposition,\n"
               "file name, decoded size and its headers (decoded); --extract writes the\n"
               "attachments into DIR under safe names (PATH-NAME, never a path from the\n"
               "message; existing files are not overwritten).  build writes the message\n"
               "to standard output with CRLF line ends.\n");
}

/* ---------------- parse ---------------- */

struct pctx {
    int extract_dir; /* fd or -1 */
    int fd;          /* open attachment, or -1 */
    mw_mime_part *fd_part;
    int failed;
    unsigned long extracted;
};

/* A file name made only of [A-Za-z0-9._-] from the message's name, with
 * the part path in front so names cannot collide or escape DIR. */
static void safe_name(char *out, size_t size, const char *path, const char *fn)
{
    size_t n = (size_t)snprintf(out, size, "%s-", path);
    const char *base = fn ? fn : "";
    const char *slash = strrchr(base, '/');
    if (slash) base = slash + 1;
    const char *bslash = strrchr(base, '\\');
    if (bslash) base = bslash + 1;
    while (*base == '.')
        base++;
    for (; *base && n + 1 < size && n < 120; base++) {
        unsigned char c = (unsigned char)*base;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_';
        out[n++] = ok ? (char)c : '_';
    }
    if (n == strlen(path) + 1 && n + 8 < size) n += (size_t)snprintf(out + n, size - n, "part.bin");
    out[n] = '\0';
}

static int is_attachment(mw_mime_part *p)
{
    const char *d = mw_mime_part_disposition(p);
    return mw_mime_part_child_count(p) == 0 && !mw_mime_part_is_multipart(p) &&
           ((d && !strcmp(d, "attachment")) || mw_mime_part_filename(p));
}

static int on_part(mw_mime_part *p, void *ud)
{
    struct pctx *c = ud;
    if (c->extract_dir < 0 || !is_attachment(p) || !strncmp(mw_mime_part_type(p), "message/", 8))
        return 0;
    char name[256];
    safe_name(name, sizeof name, mw_mime_part_path(p), mw_mime_part_filename(p));
    c->fd =
        openat(c->extract_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (c->fd < 0) {
        fprintf(stderr, "mailwire: cannot create %s: %s\n", name, mw_cli_errno_text(errno));
        c->failed = 1;
        return 1;
    }
    c->fd_part = p;
    printf("extracted %s -> %s\n", mw_mime_part_path(p), name);
    c->extracted++;
    return 0;
}

static int on_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    struct pctx *c = ud;
    if (c->fd < 0 || c->fd_part != p) return 0;
    while (n) {
        ssize_t w = write(c->fd, d, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            fprintf(stderr, "mailwire: write: %s\n", mw_cli_errno_text(errno));
            c->failed = 1;
            return 1;
        }
        d += w;
        n -= (size_t)w;
    }
    return 0;
}

static int on_part_end(mw_mime_part *p, void *ud)
{
    struct pctx *c = ud;
    if (c->fd >= 0 && c->fd_part == p) {
        if (close(c->fd) != 0) {
            fprintf(stderr, "mailwire: close: %s\n", mw_cli_errno_text(errno));
            c->failed = 1;
        }
        c->fd = -1;
        c->fd_part = NULL;
    }
    return 0;
}

static void on_warning(mw_mime_part *p, const char *what, void *ud)
{
    (void)ud;
    fprintf(stderr, "mailwire: warning: part %s: %s\n", mw_mime_part_path(p), what);
}

/* JSON string (null for NULL): the CLI's one JSON writer. */
static void json_str(FILE *f, const char *s)
{
    if (!s)
        fputs("null", f);
    else
        mw_cli_json_string(f, s, strlen(s));
}

/* Printable text for the terminal: control characters shown as '?'.  A tab
 * is white space (unfolding keeps the folding tab, RFC 5322 §2.2.3): shown
 * as a space. */
static void text_str(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        fputc(*p == '\t' ? ' ' : *p < 0x20 || *p == 0x7f ? '?' : *p, f);
}

static void print_part(mw_mime_part *p, int json, int *first)
{
    const char *cs = mw_mime_part_charset(p);
    const char *disp = mw_mime_part_disposition(p);
    const char *fn = mw_mime_part_filename(p);
    mw_mime_headers *h = mw_mime_part_headers(p);
    size_t nh = mw_mime_headers_count(h);
    if (json) {
        fputs(*first ? "\n  {" : ",\n  {", stdout);
        *first = 0;
        fputs("\"path\": ", stdout);
        json_str(stdout, mw_mime_part_path(p));
        fputs(", \"type\": ", stdout);
        json_str(stdout, mw_mime_part_type(p));
        fputs(", \"charset\": ", stdout);
        json_str(stdout, cs);
        fputs(", \"encoding\": ", stdout);
        json_str(stdout, mw_mime_encoding_name(mw_mime_part_encoding(p)));
        fputs(", \"disposition\": ", stdout);
        json_str(stdout, disp);
        fputs(", \"filename\": ", stdout);
        json_str(stdout, fn);
        printf(", \"size\": %llu, \"flags\": %u, \"headers\": [",
               (unsigned long long)mw_mime_part_decoded_size(p), mw_mime_part_flags(p));
    } else {
        printf("%s %s", mw_mime_part_path(p), mw_mime_part_type(p));
        if (cs) {
            fputs(" charset=", stdout);
            text_str(stdout, cs);
        }
        printf(" encoding=%s", mw_mime_encoding_name(mw_mime_part_encoding(p)));
        if (disp) {
            fputs(" disposition=", stdout);
            text_str(stdout, disp);
        }
        if (fn) {
            fputs(" filename=", stdout);
            text_str(stdout, fn);
        }
        printf(" size=%llu", (unsigned long long)mw_mime_part_decoded_size(p));
        if (mw_mime_part_flags(p)) printf(" flags=0x%x", mw_mime_part_flags(p));
        fputc('\n', stdout);
    }
    size_t nshown = 0;
    for (size_t i = 0; i < nh; i++) {
        mw_mime_field f;
        mw_mime_headers_at(h, i, &f);
        if (!f.name_len) continue; /* a line that is not a field */
        char *dec = NULL;
        if (mw_mime_decode_field(&dec, NULL, f.value, f.value_len, NULL)) dec = NULL;
        char name[256];
        size_t nl = f.name_len < sizeof name - 1 ? f.name_len : sizeof name - 1;
        memcpy(name, f.name, nl);
        name[nl] = '\0';
        if (json) {
            fputs(nshown ? ", [" : "[", stdout);
            json_str(stdout, name);
            fputs(", ", stdout);
            json_str(stdout, dec ? dec : "");
            fputs("]", stdout);
        } else {
            fputs("    ", stdout);
            text_str(stdout, name);
            fputs(": ", stdout);
            text_str(stdout, dec ? dec : "");
            fputc('\n', stdout);
        }
        free(dec);
        nshown++;
    }
    if (json) fputs("]}", stdout);
    for (size_t i = 0; i < mw_mime_part_child_count(p); i++)
        print_part(mw_mime_part_child(p, i), json, first);
}

/* Reads the file into the parser until its end or the parser's failure
 * (*rc); EX_OK_, or EX_IOERR_ after a read error (printed). */
static int feed_file(mw_mime_parser *p, int in, const char *file, char *buf, int *rc)
{
    for (;;) {
        ssize_t r = read(in, buf, READ_CHUNK);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            fprintf(stderr, "mailwire: %s: %s\n", file, mw_cli_errno_text(errno));
            return EX_IOERR_;
        }
        if (r == 0) return EX_OK_;
        if ((*rc = mw_mime_parser_feed(p, buf, (size_t)r))) return EX_OK_;
    }
}

/* The part tree on stdout: a line each, or one JSON array. */
static void print_tree(mw_mime_part *root, int json)
{
    int first = 1;
    if (json) fputs("[", stdout);
    print_part(root, json, &first);
    if (json) fputs("\n]\n", stdout);
}

static int cmd_parse(int argc, char **argv)
{
    int json = 0, utf8 = 0;
    const char *dir = NULL, *file = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!strcmp(argv[i], "--utf8"))
            utf8 = 1;
        else if (!strcmp(argv[i], "--extract") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            mime_usage(stdout);
            return EX_OK_;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "mailwire mime parse: unknown option %s\n", argv[i]);
            return EX_USAGE_;
        } else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "mailwire mime parse: one FILE only\n");
            return EX_USAGE_;
        }
    }
    if (!file) {
        mime_usage(stderr);
        return EX_USAGE_;
    }
    int in = strcmp(file, "-") ? open(file, O_RDONLY | O_CLOEXEC) : 0;
    if (in < 0) {
        fprintf(stderr, "mailwire: %s: %s\n", file, mw_cli_errno_text(errno));
        return MIME_EX_NOINPUT;
    }
    struct pctx c = {-1, -1, NULL, 0, 0};
    if (dir) {
        c.extract_dir = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c.extract_dir < 0) {
            fprintf(stderr, "mailwire: %s: %s\n", dir, mw_cli_errno_text(errno));
            if (in) close(in);
            return MIME_EX_CANTCREAT;
        }
    }
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    o.keep_bodies = 0; /* streaming: constant memory whatever the size */
    o.to_utf8 = utf8;
    o.on_part = on_part;
    o.on_body = on_body;
    o.on_part_end = on_part_end;
    o.on_warning = on_warning;
    o.userdata = &c;
    mw_mime_parser *p;
    int rc = mw_mime_parser_new(&p, &o, NULL);
    char *buf = malloc(READ_CHUNK);
    int ex = EX_OK_;
    if (rc || !buf) {
        fprintf(stderr, "mailwire: out of memory\n");
        ex = EX_SOFTWARE_;
    }
    if (ex == EX_OK_) ex = feed_file(p, in, file, buf, &rc);
    mw_mime_part *root = NULL;
    if (ex == EX_OK_ && !rc) rc = mw_mime_parser_finish(p, &root);
    if (ex == EX_OK_ && rc) {
        fprintf(stderr, "mailwire: %s: %s\n", file, mw_mime_parser_error(p)->message);
        ex = c.failed ? MIME_EX_CANTCREAT : mw_cli_exit_code(rc);
    }
    if (root) print_tree(root, json);
    if (c.fd >= 0) close(c.fd);
    if (c.extract_dir >= 0) close(c.extract_dir);
    if (in > 0) close(in);
    mw_mime_part_free(root);
    mw_mime_parser_free(p);
    free(buf);
    if (fflush(stdout) != 0 && ex == EX_OK_) ex = EX_IOERR_;
    return ex;
}

/* ---------------- build ---------------- */

static const struct {
    const char *ext, *type;
} types[] = {
    {".txt", "text/plain"},        {".html", "text/html"},      {".htm", "text/html"},
    {".csv", "text/csv"},          {".pdf", "application/pdf"}, {".zip", "application/zip"},
    {".json", "application/json"}, {".png", "image/png"},       {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},       {".gif", "image/gif"},       {".svg", "image/svg+xml"},
    {".mp3", "audio/mpeg"},        {".wav", "audio/wav"},       {".mp4", "video/mp4"},
    {".eml", "message/rfc822"},    {".gz", "application/gzip"}, {".tar", "application/x-tar"},
};

static const char *guess_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    if (dot && !strchr(dot, '/'))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (!strcasecmp(dot, types[i].ext)) return types[i].type;
    return "application/octet-stream";
}

/* Each address list argument is parsed and written back, with display
 * names quoted or RFC 2047-encoded as needed. */
static int add_addresses(mw_mime_part *root, const char *field, char **vals, int n, mw_error *err)
{
    char *joined = NULL;
    size_t jl = 0;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        mw_mime_addrlist *l;
        if (strpbrk(vals[i], "\r\n")) {
            snprintf(err->message, sizeof err->message, "%s: CR or LF in an address", field);
            rc = MW_EINVAL;
            break;
        }
        if ((rc = mw_mime_addrlist_parse(&l, vals[i], strlen(vals[i]), err))) break;
        if (mw_mime_addrlist_count(l) == 0) {
            rc = MW_EINVAL;
            snprintf(err->message, sizeof err->message, "%s: no address in \"%.100s\"", field,
                     vals[i]);
        }
        for (size_t k = 0; k < mw_mime_addrlist_count(l) && !rc; k++) {
            const mw_mime_address *a = mw_mime_addrlist_at(l, k);
            if (a->error) {
                rc = MW_EINVAL;
                snprintf(err->message, sizeof err->message, "%s: %.100s: %s", field, a->address,
                         a->error);
                break;
            }
            char *s;
            if ((rc = mw_mime_address_format(&s, a->display, a->address))) {
                snprintf(err->message, sizeof err->message, "%s: bad address \"%.100s\"", field,
                         a->address);
                break;
            }
            size_t sl = strlen(s);
            char *nj = realloc(joined, jl + sl + 3);
            if (!nj) {
                free(s);
                rc = MW_ENOMEM;
                break;
            }
            joined = nj;
            if (jl) {
                memcpy(joined + jl, ", ", 2);
                jl += 2;
            }
            memcpy(joined + jl, s, sl + 1);
            jl += sl;
            free(s);
        }
        mw_mime_addrlist_free(l);
    }
    if (!rc && joined) rc = mw_mime_part_header(root, field, joined, MW_MIME_HDR_SET, err);
    free(joined);
    return rc;
}

static int read_stdin(char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *b = malloc(cap);
    if (!b) return -1;
    for (;;) {
        if (n == cap) {
            if (cap >= MAX_STDIN_TEXT) {
                free(b);
                errno = EFBIG;
                return -1;
            }
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -1;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(0, b + n, cap - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            free(b);
            return -1;
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    *out = b;
    *len = n;
    return 0;
}

static mw_mime_part *text_part(const char *type, const char *file, mw_error *err, int *ex)
{
    mw_mime_part *p;
    if (mw_mime_part_new(&p, type, err) || mw_mime_part_set_param(p, "charset", "utf-8", err)) {
        *ex = EX_SOFTWARE_;
        return NULL;
    }
    int rc = 0;
    if (!file) {
        rc = mw_mime_part_set_body(p, "", 0, err);
    } else if (!strcmp(file, "-")) {
        char *b;
        size_t n;
        if (read_stdin(&b, &n)) {
            snprintf(err->message, sizeof err->message, "standard input: %s",
                     mw_cli_errno_text(errno));
            *ex = EX_IOERR_;
            mw_mime_part_free(p);
            return NULL;
        }
        rc = mw_mime_part_set_body(p, b, n, err);
        free(b);
    } else {
        rc = mw_mime_part_set_body_file(p, file, err);
    }
    if (rc) {
        *ex = rc == MW_EIO ? MIME_EX_NOINPUT : mw_cli_exit_code(rc);
        mw_mime_part_free(p);
        return NULL;
    }
    return p;
}

/* The message body: text/plain, text/html, or both as
 * multipart/alternative.  NULL with *ex set on failure. */
static mw_mime_part *build_body(const char *text, const char *html, mw_error *err, int *ex)
{
    mw_mime_part *body = NULL;
    mw_mime_part *tp = (text || !html) ? text_part("text/plain", text, err, ex) : NULL;
    mw_mime_part *hp = (!*ex && html) ? text_part("text/html", html, err, ex) : NULL;
    if (!*ex && tp && hp) {
        if (mw_mime_part_new(&body, "multipart/alternative", err) ||
            mw_mime_part_add(body, tp, err) || (tp = NULL, mw_mime_part_add(body, hp, err)))
            *ex = EX_SOFTWARE_;
        hp = NULL;
    } else if (!*ex) {
        body = tp ? tp : hp;
        tp = hp = NULL;
    }
    mw_mime_part_free(tp);
    mw_mime_part_free(hp);
    if (*ex) {
        mw_mime_part_free(body);
        return NULL;
    }
    return body;
}

/* multipart/mixed of body (taken) and the files attached.  NULL with *ex
 * set on failure. */
static mw_mime_part *with_attachments(mw_mime_part *body, char **att, int natt, mw_error *err,
                                      int *ex)
{
    mw_mime_part *root = NULL;
    if (mw_mime_part_new(&root, "multipart/mixed", err) || mw_mime_part_add(root, body, err)) {
        mw_mime_part_free(body);
        mw_mime_part_free(root);
        *ex = EX_SOFTWARE_;
        return NULL;
    }
    for (int i = 0; i < natt && !*ex; i++) {
        mw_mime_part *a;
        const char *base = strrchr(att[i], '/');
        base = base ? base + 1 : att[i];
        if (mw_mime_part_new(&a, guess_type(att[i]), err)) {
            *ex = EX_SOFTWARE_;
            break;
        }
        int rc = mw_mime_part_set_body_file(a, att[i], err);
        if (!rc) rc = mw_mime_part_set_disposition(a, "attachment", base, err);
        if (!rc) rc = mw_mime_part_add(root, a, err);
        if (rc) {
            mw_mime_part_free(a);
            *ex = rc == MW_EIO ? MIME_EX_NOINPUT : mw_cli_exit_code(rc);
        }
    }
    if (*ex) {
        mw_mime_part_free(root);
        return NULL;
    }
    return root;
}

static int cmd_build(int argc, char **argv)
{
    char *to[64], *cc[64], *att[64];
    int nto = 0, ncc = 0, natt = 0;
    const char *from = NULL, *subject = NULL, *text = NULL, *html = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            mime_usage(stdout);
            return EX_OK_;
        }
        if (!has) {
            fprintf(stderr, "mailwire mime build: %s needs a value\n", a);
            return EX_USAGE_;
        }
        if (!strcmp(a, "--from"))
            from = argv[++i];
        else if (!strcmp(a, "--subject"))
            subject = argv[++i];
        else if (!strcmp(a, "--text"))
            text = argv[++i];
        else if (!strcmp(a, "--html"))
            html = argv[++i];
        else if (!strcmp(a, "--to") && nto < 64)
            to[nto++] = argv[++i];
        else if (!strcmp(a, "--cc") && ncc < 64)
            cc[ncc++] = argv[++i];
        else if (!strcmp(a, "--attach") && natt < 64)
            att[natt++] = argv[++i];
        else {
            fprintf(stderr, "mailwire mime build: unknown or repeated option %s\n", a);
            return EX_USAGE_;
        }
    }
    if (!from || !nto || !subject) {
        fprintf(stderr, "mailwire mime build: --from, --to and --subject are required\n");
        return EX_USAGE_;
    }
    if (html && !strcmp(html, "-")) {
        fprintf(stderr, "mailwire mime build: only --text can read standard input\n");
        return EX_USAGE_;
    }
    mw_error err = {0};
    int ex = EX_OK_;
    mw_mime_part *body = build_body(text, html, &err, &ex);
    mw_mime_part *root = NULL;
    if (!ex && natt) {
        root = with_attachments(body, att, natt, &err, &ex);
    } else if (!ex) {
        root = body;
    }
    char *subj = NULL;
    if (!ex && (add_addresses(root, "From", (char **)&from, 1, &err) ||
                add_addresses(root, "To", to, nto, &err) ||
                (ncc && add_addresses(root, "Cc", cc, ncc, &err))))
        ex = EX_DATAERR_;
    if (!ex && mw_mime_encode_text(&subj, subject, NULL)) {
        snprintf(err.message, sizeof err.message, "Subject: CR or LF in the text");
        ex = EX_DATAERR_;
    }
    if (!ex && mw_mime_part_header(root, "Subject", subj, MW_MIME_HDR_SET, &err)) ex = EX_DATAERR_;
    free(subj);
    if (!ex) {
        int rc = mw_mime_part_write_fd(root, 1, &err);
        if (rc) ex = rc == MW_EIO ? EX_IOERR_ : mw_cli_exit_code(rc);
    }
    if (ex) fprintf(stderr, "mailwire mime build: %s\n", err.message[0] ? err.message : "failed");
    mw_mime_part_free(root);
    return ex;
}

int mw_cmd_mime(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        mime_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EX_USAGE_ : EX_OK_;
    }
    if (!strcmp(argv[1], "parse")) return cmd_parse(argc - 1, argv + 1);
    if (!strcmp(argv[1], "build")) return cmd_build(argc - 1, argv + 1);
    fprintf(stderr, "mailwire mime: unknown subcommand %s\n", argv[1]);
    mime_usage(stderr);
    return EX_USAGE_;
}
