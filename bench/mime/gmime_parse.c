/* MIME bench (issue 5), GMime 3 reference.
 *
 *   gmime_parse FILE...        loads every file into memory, then parses each
 *       with GMimeParser over a GMimeStreamMem and writes every leaf part's
 *       decoded content to a GMimeStreamNull.  The walk goes into multipart
 *       children AND into message/rfc822 parts (g_mime_message_foreach does
 *       not), so it decodes what mailwire decodes.  Only the parse is timed.
 *       Prints "SECONDS INPUT_BYTES DECODED_BYTES LEAVES CPU_SECONDS".
 *   gmime_parse --extract OUT FILE   parses FILE from a file stream and writes
 *       the decoded content of every leaf part with a filename (or an
 *       attachment disposition) to OUT, appended (for the 1 GB RSS test).
 * Not a test. */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct walk {
    GMimeStream *out;
    unsigned long long bytes;
    unsigned long leaves;
    int only_attachments;
};

static void walk(GMimeObject *o, struct walk *w)
{
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n; i++)
            walk(g_mime_multipart_get_part(mp, i), w);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));
        if (m && g_mime_message_get_mime_part(m)) walk(g_mime_message_get_mime_part(m), w);
    } else if (GMIME_IS_PART(o)) {
        GMimePart *p = GMIME_PART(o);
        if (w->only_attachments && !g_mime_part_get_filename(p) && !g_mime_part_is_attachment(p))
            return;
        GMimeDataWrapper *dw = g_mime_part_get_content(p);
        if (!dw) return;
        /* write_to_stream decodes the Content-Transfer-Encoding. */
        gint64 n = g_mime_data_wrapper_write_to_stream(dw, w->out);
        if (n > 0) w->bytes += (unsigned long long)n;
        w->leaves++;
    }
}

static GMimeMessage *parse_stream(GMimeStream *s)
{
    GMimeParser *p = g_mime_parser_new_with_stream(s);
    GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
    g_object_unref(p);
    return m;
}

static int extract(const char *out, const char *in)
{
    GError *err = NULL;
    GMimeStream *s = g_mime_stream_file_open(in, "rb", &err);
    GMimeStream *o = s ? g_mime_stream_file_open(out, "wb", &err) : NULL;
    if (!s || !o) {
        fprintf(stderr, "gmime_parse: %s\n", err ? err->message : "cannot open");
        return 1;
    }
    GMimeMessage *m = parse_stream(s);
    if (!m) return 1;
    struct walk w = {o, 0, 0, 1};
    walk(g_mime_message_get_mime_part(m), &w);
    g_mime_stream_flush(o);
    printf("%llu %lu\n", w.bytes, w.leaves);
    g_object_unref(m);
    g_object_unref(o);
    g_object_unref(s);
    return w.leaves ? 0 : 1;
}

int main(int argc, char **argv)
{
    g_mime_init();
    if (argc == 4 && !strcmp(argv[1], "--extract")) return extract(argv[2], argv[3]);
    int nf = argc - 1;
    if (nf < 1) {
        fprintf(stderr, "usage: gmime_parse FILE... | --extract OUT FILE\n");
        return 2;
    }
    gchar **data = g_new0(gchar *, nf);
    gsize *len = g_new0(gsize, nf);
    unsigned long long total = 0;
    for (int i = 0; i < nf; i++) {
        if (!g_file_get_contents(argv[i + 1], &data[i], &len[i], NULL)) {
            fprintf(stderr, "gmime_parse: cannot read %s\n", argv[i + 1]);
            return 1;
        }
        total += len[i];
    }
    GMimeStream *null = g_mime_stream_null_new();
    struct walk w = {null, 0, 0, 0};
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
    for (int i = 0; i < nf; i++) {
        /* The mem stream wraps the loaded bytes without copying them. */
        GByteArray ba = {(guint8 *)data[i], (guint)len[i]};
        GMimeStream *s = g_mime_stream_mem_new_with_byte_array(&ba);
        g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
        GMimeMessage *m = parse_stream(s);
        if (!m) {
            fprintf(stderr, "gmime_parse: %s: no message\n", argv[i + 1]);
            return 1;
        }
        walk(g_mime_message_get_mime_part(m), &w);
        g_object_unref(m);
        g_object_unref(s);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
    double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    double cpu = (double)(cb.tv_sec - ca.tv_sec) + (double)(cb.tv_nsec - ca.tv_nsec) / 1e9;
    printf("%.6f %llu %llu %lu %.6f\n", sec, total, w.bytes, w.leaves, cpu);
    g_object_unref(null);
    for (int i = 0; i < nf; i++)
        g_free(data[i]);
    g_free(data);
    g_free(len);
    g_mime_shutdown();
    return 0;
}
