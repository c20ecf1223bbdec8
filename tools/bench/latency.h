/* latency: the per-request latencies of one measurement, kept as raw
 * samples (a few hundred thousand at most per run) so percentiles are exact
 * rather than bucketed. */
#ifndef PARLEY_LATENCY_H
#define PARLEY_LATENCY_H

#include <stddef.h>
#include <stdint.h>

typedef struct lat lat;

/* NULL when out of memory.  lat_free(NULL) is a no-op. */
lat *lat_new(void);
void lat_free(lat *l);

/* Records one sample in nanoseconds.  0 or UV_ENOMEM. */
int lat_add(lat *l, uint64_t ns);

size_t lat_count(const lat *l);

/* The nearest-rank percentile p (0 < p <= 100) in nanoseconds; 0 when there
 * are no samples.  Sorts the samples on first use after an add. */
uint64_t lat_pct(lat *l, double p);

#endif
