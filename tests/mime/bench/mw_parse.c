/* Bench (not a test): parse throughput of mailwire's streaming MIME parser.
 * Every file is read into memory first, then parsed ITER times with every
 * body decoded (bodies not kept).  Prints total MB and MB/s.
 * Usage: mw_parse ITER FILE... */
#include "mailwire/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static unsigned long long decoded;

static int on_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    (void)p;
    (void)d;
    (void)ud;
    decoded += n;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) return 2;
    int iter = atoi(argv[1]);
    int nf = argc - 2;
    char **data = calloc((size_t)nf, sizeof *data);
    size_t *len = calloc((size_t)nf, sizeof *len);
    double total = 0;
    for (int i = 0; i < nf; i++) {
        FILE *f = fopen(argv[i + 2], "rb");
        if (!f) return 1;
        fseek(f, 0, SEEK_END);
        len[i] = (size_t)ftell(f);
        fseek(f, 0, SEEK_SET);
        data[i] = malloc(len[i] + 1);
        if (fread(data[i], 1, len[i], f) != len[i]) return 1;
        fclose(f);
        total += (double)len[i];
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int it = 0; it < iter; it++)
        for (int i = 0; i < nf; i++) {
            mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
            o.keep_bodies = 0;
            o.on_body = on_body;
            mw_mime_parser *p;
            mw_mime_part *root;
            if (mw_mime_parser_new(&p, &o) || mw_mime_parser_feed(p, data[i], len[i]) ||
                mw_mime_parser_finish(p, &root))
                return 1;
            mw_mime_part_free(root);
            mw_mime_parser_free(p);
        }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    double mb = total * iter / 1e6;
    printf("mailwire %.1f MB in %.3f s: %.1f MB/s (decoded %.1f MB)\n", mb, s, mb / s,
           (double)decoded / 1e6);
    return 0;
}
