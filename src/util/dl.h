/* Internal: loading an optional library when it is first used, instead of
 * linking it into every process (src/oauth/http.c: libcurl; src/sasl/
 * sasl.c: GNU SASL). */
#ifndef MW_UTIL_DL_H
#define MW_UTIL_DL_H

#include <stddef.h>

typedef struct mwi_dl_sym {
    const char *name; /* the symbol */
    void **slot;      /* where its address goes (a function pointer's storage) */
} mwi_dl_sym;

/* Opens the first of the NULL-terminated `libs` that loads (the handle
 * stays open for the process) and resolves every symbol.  Returns 0, or
 * -1 with `why` saying what failed (dlerror's text, or the missing
 * symbol's name). */
int mwi_dl_load(const char *const *libs, const mwi_dl_sym *syms, size_t n, char *why,
                size_t whylen);

#endif
