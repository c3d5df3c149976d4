/* MIME bench (issue 5), mailwire side: loads every FILE into memory, then
 * parses each one with the streaming parser of the public API
 * (mw_mime_parser_*), every leaf body decoded (the on_body callback gets the
 * decoded bytes) into a null sink; bodies are not kept.  Only the parse is
 * timed.  Prints one line: "SECONDS INPUT_BYTES DECODED_BYTES LEAVES CPU_SECONDS".
 * Not a test.  Usage: mw_parse FILE... */
#include "mailwire/mime.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct sink {
    unsigned long long bytes;
    unsigned long leaves;
    mw_mime_part *last;
};

static int on_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    struct sink *s = ud;
    (void)d;
    if (p != s->last) {
        s->leaves++;
        s->last = p;
    }
    s->bytes += n;
    return 0;
}

static char *load(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)n + 1)) &&
            fread(b, 1, (size_t)n, f) != (size_t)n) {
            free(b);
            b = NULL;
        }
        *len = (size_t)n;
    }
    fclose(f);
    return b;
}

int main(int argc, char **argv)
{
    int nf = argc - 1;
    if (nf < 1) {
        fprintf(stderr, "usage: mw_parse FILE...\n");
        return 2;
    }
    char **data = calloc((size_t)nf, sizeof *data);
    size_t *len = calloc((size_t)nf, sizeof *len);
    unsigned long long total = 0;
    if (!data || !len) return 1;
    for (int i = 0; i < nf; i++) {
        if (!(data[i] = load(argv[i + 1], &len[i]))) {
            fprintf(stderr, "mw_parse: cannot read %s\n", argv[i + 1]);
            return 1;
        }
        total += len[i];
    }
    struct sink s = {0, 0, NULL};
    struct timespec a, b, ca, cb;
    clock_gettime(CLOCK_MONOTONIC, &a);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
    for (int i = 0; i < nf; i++) {
        mw_mime_parse_opts o = MW_MIME_PARSE_OPTS_INIT;
        o.keep_bodies = 0;
        o.on_body = on_body;
        o.userdata = &s;
        s.last = NULL;
        mw_mime_parser *p;
        mw_mime_part *root = NULL;
        if (mw_mime_parser_new(&p, &o, NULL)) return 1;
        if (mw_mime_parser_feed(p, data[i], len[i]) || mw_mime_parser_finish(p, &root)) {
            fprintf(stderr, "mw_parse: %s: %s\n", argv[i + 1], mw_mime_parser_error(p)->message);
            return 1;
        }
        mw_mime_part_free(root);
        mw_mime_parser_free(p);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
    double sec = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    double cpu = (double)(cb.tv_sec - ca.tv_sec) + (double)(cb.tv_nsec - ca.tv_nsec) / 1e9;
    printf("%.6f %llu %llu %lu %.6f\n", sec, total, s.bytes, s.leaves, cpu);
    for (int i = 0; i < nf; i++)
        free(data[i]);
    free(data);
    free(len);
    return 0;
}
