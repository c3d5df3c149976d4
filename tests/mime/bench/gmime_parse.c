/* Bench (not a test): the same measurement with GMime 3 (Debian's
 * libgmime-3.0): parse from memory, decode every leaf part's content.
 * Usage: gmime_parse ITER FILE... */
#include <gmime/gmime.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long long decoded;

static void each(GMimeObject *parent, GMimeObject *part, gpointer ud)
{
    (void)parent;
    (void)ud;
    if (GMIME_IS_PART(part)) {
        GMimeDataWrapper *w = g_mime_part_get_content(GMIME_PART(part));
        if (w) {
            GMimeStream *null = g_mime_stream_null_new();
            decoded += (unsigned long long)g_mime_data_wrapper_write_to_stream(w, null);
            g_object_unref(null);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    g_mime_init();
    int iter = atoi(argv[1]);
    int nf = argc - 2;
    GByteArray **data = calloc((size_t)nf, sizeof *data);
    double total = 0;
    for (int i = 0; i < nf; i++) {
        gchar *c;
        gsize l;
        if (!g_file_get_contents(argv[i + 2], &c, &l, NULL)) return 1;
        data[i] = g_byte_array_new_take((guint8 *)c, l);
        total += (double)l;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int it = 0; it < iter; it++)
        for (int i = 0; i < nf; i++) {
            GMimeStream *s = g_mime_stream_mem_new_with_byte_array(data[i]);
            g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
            GMimeParser *p = g_mime_parser_new_with_stream(s);
            GMimeMessage *m = g_mime_parser_construct_message(p, NULL);
            if (m) {
                g_mime_message_foreach(m, each, NULL);
                g_object_unref(m);
            }
            g_object_unref(p);
            g_object_unref(s);
        }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    double mb = total * iter / 1e6;
    printf("gmime    %.1f MB in %.3f s: %.1f MB/s (decoded %.1f MB)\n", mb, sec, mb / sec,
           (double)decoded / 1e6);
    return 0;
}
