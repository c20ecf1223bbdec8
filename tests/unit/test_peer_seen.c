/* test_peer_seen: peer/seen.c, the ids a conversation has shown, so that a
 * message resent on a new link is shown once: repeats found, the oldest
 * forgotten first once SEEN_IDS are held, and the hash staying exact
 * through many evictions (the backward-shift deletion). */
#include "seen.h"
#include "test.h"

static void repeat_is_seen(void) {
    seen *s;
    ASSERT_EQ(seen_open(&s), 0);
    ASSERT_EQ(seen_check(s, 1000001), 0);
    ASSERT_EQ(seen_check(s, 1000002), 0);
    ASSERT_EQ(seen_check(s, 1000001), 1);
    ASSERT_EQ(seen_check(s, 1000002), 1);
    ASSERT_EQ(seen_check(s, 0), 0); /* 0 is an id like any other */
    ASSERT_EQ(seen_check(s, 0), 1);
    ASSERT_EQ(seen_count(s), 3);
    seen_close(s);
    seen_close(NULL);
}

static void oldest_forgotten_first(void) {
    seen *s;
    ASSERT_EQ(seen_open(&s), 0);
    for (uint64_t id = 1; id <= SEEN_IDS; id++)
        ASSERT_EQ(seen_check(s, id), 0);
    ASSERT_EQ(seen_count(s), SEEN_IDS);
    ASSERT_EQ(seen_check(s, SEEN_IDS + 1), 0); /* pushes id 1 out */
    ASSERT_EQ(seen_count(s), SEEN_IDS);
    ASSERT_EQ(seen_check(s, 2), 1);            /* still held */
    ASSERT_EQ(seen_check(s, 1), 0);            /* forgotten: new again (pushes 2 out) */
    ASSERT_EQ(seen_check(s, 2), 0);
    ASSERT_EQ(seen_check(s, SEEN_IDS), 1);
    seen_close(s);
}

/* Sequential ids from a microsecond base (what peers send), several times
 * the ring: after each insert exactly the last SEEN_IDS ids are held. */
static void exact_through_evictions(void) {
    seen *s;
    ASSERT_EQ(seen_open(&s), 0);
    const uint64_t base = 1764600000000000ULL;
    const uint64_t n = 5 * SEEN_IDS + 123;
    for (uint64_t i = 1; i <= n; i++) {
        ASSERT_EQ(seen_check(s, base + i), 0);
        if (i % 997 == 0) { /* spot checks: the newest and oldest held, the one before gone */
            ASSERT_EQ(seen_check(s, base + i), 1);
            uint64_t oldest = i >= SEEN_IDS ? i - SEEN_IDS + 1 : 1;
            ASSERT_EQ(seen_check(s, base + oldest), 1);
        }
    }
    unsigned held = 0;
    for (uint64_t i = n - SEEN_IDS + 1; i <= n; i++)
        held += (unsigned)seen_check(s, base + i);
    ASSERT_EQ(held, SEEN_IDS);
    seen_close(s);
}

/* Ids that collide in the hash (same low bits after mixing are likely
 * among strided ids): removal must not lose the entries probed past it. */
static void strided_ids(void) {
    seen *s;
    ASSERT_EQ(seen_open(&s), 0);
    for (uint64_t i = 0; i < 3 * SEEN_IDS; i++) {
        ASSERT_EQ(seen_check(s, i << 20), 0);
        if (i >= 1)
            ASSERT_EQ(seen_check(s, (i - 1) << 20), 1);
    }
    seen_close(s);
}

TEST_MAIN(T(repeat_is_seen), T(oldest_forgotten_first), T(exact_through_evictions),
          T(strided_ids))
