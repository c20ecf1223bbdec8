/* latency: a growing array of samples, sorted lazily when a percentile is
 * asked for. */
#include "latency.h"

#include "grow.h"

#include <stdlib.h>
#include <uv.h>

struct lat {
    uint64_t *v;
    size_t n, cap;
    int sorted;
};

lat *lat_new(void) {
    return calloc(1, sizeof(lat));
}

void lat_free(lat *l) {
    if (!l)
        return;
    free(l->v);
    free(l);
}

int lat_add(lat *l, uint64_t ns) {
    uint64_t *nv = grow(l->v, &l->cap, l->n + 1, sizeof *nv, 65536);
    if (!nv)
        return UV_ENOMEM;
    l->v = nv;
    l->v[l->n++] = ns;
    l->sorted = 0;
    return 0;
}

size_t lat_count(const lat *l) {
    return l->n;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t lat_pct(lat *l, double p) {
    if (l->n == 0)
        return 0;
    if (!l->sorted) {
        qsort(l->v, l->n, sizeof *l->v, cmp_u64);
        l->sorted = 1;
    }
    double x = p / 100.0 * (double)l->n;
    size_t rank = (size_t)x;
    if ((double)rank < x) /* ceil without libm */
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return l->v[rank - 1];
}
