/* stream_parse — parsing a message of any size as it streams in (mailwire(3)).
 *
 * Reads a message (RFC 5322, MIME) from standard input in small pieces and
 * pushes them into the streaming MIME parser, which hands each leaf's body
 * over decoded (base64, quoted-printable) and in chunks.  For each part it
 * prints its path ("1.2"), type, file name and decoded size; attachments
 * are written to OUTDIR as they arrive.  Memory stays the same whatever the
 * message's size: no body is kept.
 *
 *     stream_parse OUTDIR < message.eml
 *
 * A file name from the message is used only when it is safe (no '/', no
 * control characters, not "." or ".."), else the part is saved as
 * "part-PATH"; an existing file is never overwritten.  Exit status 0 when
 * the message was read and every attachment written, 1 otherwise.
 *
 * Only public headers are used: build with
 *     cc stream_parse.c $(pkg-config --cflags --libs mailwire) */
#define _POSIX_C_SOURCE 200809L /* openat */

#include <mailwire/error.h>
#include <mailwire/mime.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* checksrc: allow strerror: a single-threaded program (the library has no public
 * errno text function) */

struct state {
    int dir; /* OUTDIR */
    int fd;  /* the attachment being written, or -1 */
    char name[256];
    char error[512]; /* why a callback stopped the parser */
    unsigned parts, saved;
};

/* Whether a part has a body of its own.  Decided from the type, as
 * mw_mime_part_is_multipart() is not yet true inside on_part. */
static int is_leaf(mw_mime_part *part)
{
    const char *type = mw_mime_part_type(part);
    return strncmp(type, "multipart/", 10) && strcmp(type, "message/rfc822");
}

/* The name to save a part under: its file name when it is safe, else
 * part-PATH. */
static void file_name(mw_mime_part *part, char *out, size_t size)
{
    const char *name = mw_mime_part_filename(part);
    int safe = name && *name && strlen(name) < size && strcmp(name, ".") && strcmp(name, "..");
    for (const char *c = name; safe && *c; c++)
        safe = (unsigned char)*c >= 0x20 && *c != 0x7f && *c != '/';
    if (safe)
        snprintf(out, size, "%s", name);
    else
        snprintf(out, size, "part-%s", mw_mime_part_path(part));
}

/* Headers read: a multipart is listed now, an attachment's file opened. */
static int on_part(mw_mime_part *part, void *userdata)
{
    struct state *st = userdata;
    st->parts++;
    if (!is_leaf(part)) {
        printf("%s %s\n", mw_mime_part_path(part), mw_mime_part_type(part));
        return 0;
    }
    const char *disp = mw_mime_part_disposition(part);
    if (!mw_mime_part_filename(part) && !(disp && !strcmp(disp, "attachment"))) return 0;
    file_name(part, st->name, sizeof st->name);
    st->fd = openat(st->dir, st->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    if (st->fd < 0) {
        snprintf(st->error, sizeof st->error, "%s: %s", st->name, strerror(errno));
        return 1; /* stop: the parser returns MW_ECANCELED */
    }
    return 0;
}

/* A chunk of a leaf's decoded body. */
static int on_body(mw_mime_part *part, const char *data, size_t len, void *userdata)
{
    struct state *st = userdata;
    (void)part;
    while (st->fd >= 0 && len > 0) {
        ssize_t n = write(st->fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            snprintf(st->error, sizeof st->error, "writing %s: %s", st->name, strerror(errno));
            return 1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* A part is complete: a leaf's size is known now. */
static int on_part_end(mw_mime_part *part, void *userdata)
{
    struct state *st = userdata;
    if (!is_leaf(part)) return 0;
    const char *saved = st->fd >= 0 ? st->name : "-";
    printf("%s %s %s %llu\n", mw_mime_part_path(part), mw_mime_part_type(part), saved,
           (unsigned long long)mw_mime_part_decoded_size(part));
    if (st->fd >= 0) {
        int rc = close(st->fd);
        st->fd = -1;
        if (rc != 0) {
            snprintf(st->error, sizeof st->error, "writing %s: %s", st->name, strerror(errno));
            return 1;
        }
        st->saved++;
    }
    return 0;
}

static void on_warning(mw_mime_part *part, const char *what, void *userdata)
{
    (void)userdata;
    fprintf(stderr, "stream_parse: warning: part %s: %s\n", part ? mw_mime_part_path(part) : "-",
            what);
}

int main(int argc, char **argv)
{
    struct state st = {-1, -1, "", "", 0, 0};
    if (argc != 2 || (st.dir = open(argv[1], O_RDONLY | O_DIRECTORY)) < 0) {
        fprintf(stderr, "usage: stream_parse OUTDIR < MESSAGE (%s)\n",
                argc == 2 ? strerror(errno) : "one argument");
        return 1;
    }
    mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
    o.keep_bodies = 0; /* bodies go to on_body only: memory stays constant */
    o.on_part = on_part;
    o.on_body = on_body;
    o.on_part_end = on_part_end;
    o.on_warning = on_warning;
    o.userdata = &st;
    mw_mime_parser *p = NULL;
    int rc = mw_mime_parser_new(&p, &o, NULL);
    if (rc) {
        fprintf(stderr, "stream_parse: %s\n", mw_strerror(rc));
        close(st.dir);
        return 1;
    }
    char buf[16384];
    ssize_t n = 0;
    while (rc == 0 && (n = read(0, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) break;
        rc = mw_mime_parser_feed(p, buf, (size_t)n);
    }
    if (rc == 0 && n == 0) rc = mw_mime_parser_finish(p, NULL); /* the tree is not wanted */
    if (n < 0)
        fprintf(stderr, "stream_parse: reading the message: %s\n", strerror(errno));
    else if (rc)
        fprintf(stderr, "stream_parse: %s\n",
                st.error[0] ? st.error : mw_mime_parser_error(p)->message);
    else
        printf("%u parts, %u files written, %zu warnings\n", st.parts, st.saved,
               mw_mime_parser_warnings(p));
    if (st.fd >= 0) close(st.fd);
    mw_mime_parser_free(p);
    close(st.dir);
    return rc || n < 0;
}
