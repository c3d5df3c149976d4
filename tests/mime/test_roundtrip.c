/* Corpus tests of the MIME parser, printed as TAP:
 *  - parse then write gives the same bytes, for every corpus message;
 *  - fed in two chunks at every split point (or at many, for big files) and
 *    byte by byte, the tree, the decoded bodies and the written bytes are
 *    the same as when fed whole;
 *  - with bodies not kept (streaming), the tree and decoded bodies are the
 *    same;
 *  - the tree matches NAME.tree, checked by hand when the file was made.
 * Usage: test_roundtrip CORPUS_DIR [--dump FILE] */
#include "mailwire/mime.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct summary {
    char *s;
    size_t n, cap;
    uint64_t fnv; /* of the current part's decoded bytes */
};

static void sappend(struct summary *s, const char *t)
{
    size_t l = strlen(t);
    if (s->n + l + 1 > s->cap) {
        s->cap = (s->n + l + 1) * 2;
        s->s = realloc(s->s, s->cap);
        if (!s->s) abort();
    }
    memcpy(s->s + s->n, t, l + 1);
    s->n += l;
}

static int on_part(mw_mime_part *p, void *ud)
{
    struct summary *s = ud;
    s->fnv = 1469598103934665603ull;
    (void)p;
    return 0;
}

static int on_body(mw_mime_part *p, const char *d, size_t n, void *ud)
{
    struct summary *s = ud;
    (void)p;
    for (size_t i = 0; i < n; i++)
        s->fnv = (s->fnv ^ (unsigned char)d[i]) * 1099511628211ull;
    return 0;
}

static int on_end(mw_mime_part *p, void *ud)
{
    struct summary *s = ud;
    char line[1024];
    const char *fn = mw_mime_part_filename(p);
    const char *disp = mw_mime_part_disposition(p);
    snprintf(line, sizeof line, "%s %s enc=%s disp=%s file=%s size=%llu flags=0x%02x fnv=%016llx\n",
             mw_mime_part_path(p), mw_mime_part_type(p),
             mw_mime_encoding_name(mw_mime_part_encoding(p)), disp ? disp : "-", fn ? fn : "-",
             (unsigned long long)mw_mime_part_decoded_size(p), mw_mime_part_flags(p),
             mw_mime_part_child_count(p) ? 0ull : (unsigned long long)s->fnv);
    sappend(s, line);
    return 0;
}

struct out {
    char *p;
    size_t n;
};

static int out_write(const char *d, size_t n, void *ud)
{
    struct out *o = ud;
    char *np = realloc(o->p, o->n + n + 1);
    if (!np) return -1;
    memcpy(np + o->n, d, n);
    o->p = np;
    o->n += n;
    return 0;
}

/* Parses data fed in pieces at the given cut points; fills the summary and
 * the written bytes.  Returns 0 or the error code. */
static int run(const char *data, size_t len, const size_t *cuts, size_t ncuts, size_t step,
               int keep, struct summary *sum, struct out *o, mw_error *err)
{
    mw_mime_parse_opts opts = MW_MIME_PARSE_OPTS_INIT;
    opts.keep_bodies = keep;
    opts.on_part = on_part;
    opts.on_body = on_body;
    opts.on_part_end = on_end;
    opts.userdata = sum;
    mw_mime_parser *p;
    int rc = mw_mime_parser_new(&p, &opts, NULL);
    if (rc) return rc;
    size_t at = 0;
    for (size_t k = 0; k <= ncuts && !rc; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        if (step) {
            for (; at < end && !rc; at += step)
                rc = mw_mime_parser_feed(p, data + at, end - at < step ? end - at : step);
            at = end;
        } else {
            rc = mw_mime_parser_feed(p, data + at, end - at);
            at = end;
        }
    }
    mw_mime_part *root = NULL;
    if (!rc) rc = mw_mime_parser_finish(p, &root);
    if (rc) *err = *mw_mime_parser_error(p);
    mw_mime_parser_free(p);
    if (!rc && keep && o) rc = mw_mime_part_write(root, out_write, o, err);
    mw_mime_part_free(root);
    return rc;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = (size_t)n;
    return b;
}

static int tapn;
static int failures;

static void ok(int cond, const char *name, const char *file, const char *why)
{
    tapn++;
    printf("%s %d - %s %s%s%s\n", cond ? "ok" : "not ok", tapn, file, name, cond ? "" : ": ",
           cond ? "" : why);
    if (!cond) failures++;
}

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char **)a, *(char **)b);
}

static void test_file(const char *dir, const char *name, FILE *dump)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    size_t len;
    char *data = slurp(path, &len);
    if (!data) {
        ok(0, "read", name, "cannot read");
        return;
    }
    struct summary ref = {0};
    struct out o = {0};
    mw_error err = {0};
    int rc = run(data, len, NULL, 0, 0, 1, &ref, &o, &err);
    ok(rc == 0, "parses", name, err.message);
    ok(rc == 0 && o.n == len && (len == 0 || !memcmp(o.p, data, len)), "round trip byte-exact",
       name, "written bytes differ");
    free(o.p);
    if (dump) {
        fprintf(dump, "== %s\n%s", name, ref.s ? ref.s : "");
    }
    /* Golden tree, reviewed by hand. */
    char tpath[4200];
    snprintf(tpath, sizeof tpath, "%s/%.*s.tree", dir, (int)(strlen(name) - 4), name);
    size_t tl;
    char *tree = slurp(tpath, &tl);
    if (tree) {
        ok(ref.s && !strcmp(tree, ref.s), "tree as expected", name, "tree differs from .tree");
        if (!(ref.s && !strcmp(tree, ref.s)))
            fprintf(stderr, "got:\n%s\nwant:\n%s\n", ref.s ? ref.s : "", tree);
        free(tree);
    }
    /* Every split point (all of them for small files, 97 for big ones). */
    size_t stride = len <= 8192 ? 1 : len / 97 + 1;
    int split_ok = 1;
    char why[256] = "";
    for (size_t cut = 0; cut <= len && split_ok; cut += stride) {
        struct summary s = {0};
        struct out o2 = {0};
        rc = run(data, len, &cut, 1, 0, 1, &s, &o2, &err);
        if (rc || !s.s || strcmp(s.s, ref.s) || o2.n != len || (len && memcmp(o2.p, data, len))) {
            split_ok = 0;
            snprintf(why, sizeof why, "differs when split at %zu (%.160s)", cut,
                     rc ? err.message : "");
        }
        free(s.s);
        free(o2.p);
    }
    ok(split_ok, "same at every split point", name, why);
    for (size_t step = 1; step <= 7; step += 6) {
        struct summary s = {0};
        struct out o3 = {0};
        rc = run(data, len, NULL, 0, step, 1, &s, &o3, &err);
        char nm[64];
        snprintf(nm, sizeof nm, "same fed %zu byte(s) at a time", step);
        ok(!rc && s.s && !strcmp(s.s, ref.s) && o3.n == len && (!len || !memcmp(o3.p, data, len)),
           nm, name, rc ? err.message : "differs");
        free(s.s);
        free(o3.p);
    }
    struct summary st = {0};
    rc = run(data, len, NULL, 0, 0, 0, &st, NULL, &err);
    ok(!rc && st.s && !strcmp(st.s, ref.s), "same when streaming (bodies not kept)", name,
       rc ? err.message : "differs");
    free(st.s);
    free(ref.s);
    free(data);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("1..1\nnot ok 1 - usage: test_roundtrip CORPUS_DIR [--dump FILE]\n");
        return 1;
    }
    FILE *dump = NULL;
    if (argc > 3 && !strcmp(argv[2], "--dump")) dump = fopen(argv[3], "w");
    DIR *d = opendir(argv[1]);
    if (!d) {
        printf("1..1\nnot ok 1 - cannot open %s\n", argv[1]);
        return 1;
    }
    char *names[512];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".eml")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], cmpstr);
    for (size_t i = 0; i < n; i++) {
        test_file(argv[1], names[i], dump);
        free(names[i]);
    }
    if (dump) fclose(dump);
    printf("1..%d\n", tapn);
    return failures ? 1 : 0;
}
