/* Loading an optional library on first use (dl.h). */
#include "util/dl.h"

#include <dlfcn.h>
#include <stdio.h>

int mwi_dl_load(const char *const *libs, const mwi_dl_sym *syms, size_t n, char *why, size_t whylen)
{
    void *h = NULL;
    const char *err = "no library named";
    for (size_t i = 0; libs[i] && !h; i++)
        if (!(h = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL))) err = dlerror();
    if (!h) {
        snprintf(why, whylen, "%s", err ? err : "cannot be loaded");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!(*syms[i].slot = dlsym(h, syms[i].name))) {
            snprintf(why, whylen, "%s is missing from it", syms[i].name);
            return -1; /* the handle stays open: the process keeps what it loaded */
        }
    return 0;
}
