/* grow: the one "make room by doubling" of the code base, for arrays that
 * only ever grow (waiters of a batch, queued pushes, latency samples...). */
#ifndef PARLEY_GROW_H
#define PARLEY_GROW_H

#include <stdint.h>
#include <stdlib.h>

/* Makes arr hold at least need elements of elem bytes: returns arr itself
 * when it already does, else the reallocated array with *cap updated (to
 * first, or doubled until need fits).  NULL when out of memory or the size
 * would overflow; arr and *cap are then untouched and still valid. */
static inline void *grow(void *arr, size_t *cap, size_t need, size_t elem, size_t first) {
    if (need <= *cap)
        return arr;
    size_t ncap = *cap ? *cap : first;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return NULL;
        ncap *= 2;
    }
    if (ncap > SIZE_MAX / elem)
        return NULL;
    void *na = realloc(arr, ncap * elem);
    if (na)
        *cap = ncap;
    return na;
}

#endif
