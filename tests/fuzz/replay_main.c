/* Replays a fuzz target's corpus in the normal test run: every file under the
 * directories given is fed to LLVMFuzzerTestOneInput once; a crash or a
 * sanitizer report fails the test.  Prints TAP, one case per file. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    char *names[4096];
    size_t n = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            printf("not ok 1 - cannot open corpus %s\n1..1\n", argv[a]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d)) && n < sizeof names / sizeof names[0]) {
            if (e->d_name[0] == '.') continue;
            size_t len = strlen(argv[a]) + strlen(e->d_name) + 2;
            names[n] = malloc(len);
            if (!names[n]) return 1;
            snprintf(names[n], len, "%s/%s", argv[a], e->d_name);
            n++;
        }
        closedir(d);
    }
    qsort(names, n, sizeof names[0], cmp);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        FILE *f = fopen(names[i], "rb");
        struct stat st;
        if (!f || fstat(fileno(f), &st) != 0) {
            printf("not ok %zu - %s: cannot read\n", i + 1, names[i]);
            failed = 1;
            if (f) fclose(f);
            continue;
        }
        size_t size = (size_t)st.st_size;
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf || fread(buf, 1, size, f) != size) {
            printf("not ok %zu - %s: short read\n", i + 1, names[i]);
            failed = 1;
        } else {
            LLVMFuzzerTestOneInput(buf, size);
            printf("ok %zu - %s\n", i + 1, strrchr(names[i], '/') + 1);
        }
        free(buf);
        fclose(f);
        free(names[i]);
    }
    printf("1..%zu\n", n);
    return failed;
}
