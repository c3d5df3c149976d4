/* Helpers shared by the store tests: temp directories, whole-file reads,
 * directory listings, and a fault hook that fails the Nth operation. */
#ifndef MW_STORETEST_H
#define MW_STORETEST_H

#include "mailwire/store.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *st_mkdtemp(void)
{
    char tmpl[] = "/tmp/mw-store-test.XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline void st_rm_rf(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "# could not remove %s\n", path);
}

/* Reads a whole file; NULL when it cannot. */
static inline char *st_read(const char *path, size_t *len)
{
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, cap * 2 + 1);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b) b[n] = '\0';
    *len = n;
    return b;
}

static inline int st_write(const char *path, const char *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    return fclose(f) == 0 && w == len ? 0 : -1;
}

/* Number of entries (not . or ..) in a directory; the first one's name
 * goes to first (if not NULL). */
static inline int st_count(const char *dir, char *first, size_t size)
{
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (n == 0 && first) snprintf(first, size, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

/* Fails the nth (1-based) call for op with errnum; counts every call. */
typedef struct st_fault {
    mw_store_op op;
    int nth;
    int errnum;
    int calls;
    int fired;
} st_fault;

static inline int st_fault_fn(mw_store_op op, const char *path, void *ud)
{
    st_fault *f = ud;
    (void)path;
    if (op != f->op) return 0;
    if (++f->calls == f->nth) {
        f->fired++;
        return f->errnum;
    }
    return 0;
}

#endif
