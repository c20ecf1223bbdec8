/* seen: a ring of the last SEEN_IDS ids in arrival order, for forgetting
 * the oldest, plus an open-addressing hash over the ring (linear probing,
 * at most half full), so a check is a probe or two instead of a scan of
 * the whole ring. */
#include "seen.h"

#include <stdlib.h>
#include <uv.h>

#define SLOTS (2 * SEEN_IDS)

struct seen {
    uint64_t ring[SEEN_IDS];
    unsigned n, pos;       /* ids held; where the next one goes */
    uint16_t slot[SLOTS];  /* ring index + 1 of the id hashed here; 0 empty */
};

int seen_open(seen **out) {
    seen *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    *out = s;
    return 0;
}

void seen_close(seen *s) { free(s); }

unsigned seen_count(const seen *s) { return s->n; }

static size_t home(uint64_t id) {
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL; /* murmur3's finaliser: ids are sequential */
    id ^= id >> 33;
    return (size_t)id & (SLOTS - 1);
}

/* Removes ring index i from the hash (backward-shift deletion, so no
 * tombstones slow later probes). */
static void unhash(seen *s, unsigned i) {
    size_t at = home(s->ring[i]);
    while (s->slot[at] != i + 1)
        at = (at + 1) & (SLOTS - 1);
    for (size_t j = (at + 1) & (SLOTS - 1); s->slot[j]; j = (j + 1) & (SLOTS - 1)) {
        size_t h = home(s->ring[s->slot[j] - 1]);
        /* j's entry may fill the hole at `at` unless its home lies in (at, j] */
        if (((j - h) & (SLOTS - 1)) >= ((j - at) & (SLOTS - 1))) {
            s->slot[at] = s->slot[j];
            at = j;
        }
    }
    s->slot[at] = 0;
}

int seen_check(seen *s, uint64_t id) {
    size_t at = home(id);
    for (; s->slot[at]; at = (at + 1) & (SLOTS - 1))
        if (s->ring[s->slot[at] - 1] == id)
            return 1;
    if (s->n == SEEN_IDS) { /* the oldest id leaves the ring */
        unhash(s, s->pos);
        at = home(id);
        while (s->slot[at])
            at = (at + 1) & (SLOTS - 1);
    }
    s->ring[s->pos] = id;
    s->slot[at] = (uint16_t)(s->pos + 1);
    s->pos = (s->pos + 1) % SEEN_IDS;
    if (s->n < SEEN_IDS)
        s->n++;
    return 0;
}
