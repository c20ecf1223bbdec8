/* test_grow: shared/grow.h, the doubling every growing array uses. */
#include "grow.h"
#include "test.h"

static void grows_by_doubling(void) {
    int *v = NULL;
    size_t cap = 0;
    v = grow(v, &cap, 1, sizeof *v, 4);
    ASSERT(v != NULL);
    ASSERT_EQ(cap, 4);
    int *same = grow(v, &cap, 4, sizeof *v, 4); /* fits: the same array back */
    ASSERT(same == v);
    ASSERT_EQ(cap, 4);
    for (int i = 0; i < 4; i++)
        v[i] = i;
    v = grow(v, &cap, 5, sizeof *v, 4);
    ASSERT(v != NULL);
    ASSERT_EQ(cap, 8);
    v = grow(v, &cap, 100, sizeof *v, 4); /* doubles until it fits */
    ASSERT(v != NULL);
    ASSERT_EQ(cap, 128);
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(v[i], i); /* contents kept */
    free(v);
}

static void overflow_leaves_array_valid(void) {
    char *v = NULL;
    size_t cap = 0;
    v = grow(v, &cap, 10, 1, 16);
    ASSERT(v != NULL);
    v[0] = 'x';
    ASSERT(grow(v, &cap, SIZE_MAX, 1, 16) == NULL);
    ASSERT(grow(v, &cap, SIZE_MAX / 2, 8, 16) == NULL); /* bytes would overflow */
    ASSERT_EQ(cap, 16);
    ASSERT_EQ(v[0], 'x');
    free(v);
}

TEST_MAIN(T(grows_by_doubling), T(overflow_leaves_array_valid))
