/* The order of a host's addresses for Happy Eyeballs (addrorder.h). */
#include "util/addrorder.h"

size_t mwi_he_order(const int *family, size_t n, int first, size_t *order, size_t max)
{
    size_t i = 0, j = 0, k = 0; /* the next of the first family, of the others */
    if (!first && n) first = family[0];
    while (k < max) {
        while (i < n && family[i] != first)
            i++;
        while (j < n && family[j] == first)
            j++;
        if (i >= n && j >= n) break;
        if (i < n) order[k++] = i++;
        if (j < n && k < max) order[k++] = j++;
    }
    return k;
}
