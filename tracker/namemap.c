/* namemap: a chained hash table from folded name to pointer, grown by
 * doubling.  Small and separate so the server's presence logic and the
 * registry's cache read as "get, put, del" and the unit tests can poke it
 * directly. */
#include "namemap.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct entry {
    struct entry *next;
    void *val;
    char key[];
} entry;

struct namemap {
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
    unsigned char seed[crypto_shorthash_KEYBYTES];
};

static uint64_t hash(const namemap *t, const char *s) {
    unsigned char h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const unsigned char *)s, strlen(s), t->seed);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

namemap *namemap_new(void) {
    namemap *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    randombytes_buf(t->seed, sizeof t->seed);
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    return t;
}

void namemap_free(namemap *t) {
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (entry *e = t->buckets[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    }
    free(t->buckets);
    free(t);
}

static entry **find(const namemap *t, const char *key) {
    entry **p = &t->buckets[hash(t, key) & (t->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *namemap_get(const namemap *t, const char *folded) {
    entry *e = *find(t, folded);
    return e ? e->val : NULL;
}

static void grow(namemap *t) {
    size_t nb = t->nbuckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (entry *e = t->buckets[i], *n; e; e = n) {
            n = e->next;
            entry **slot = &b[hash(t, e->key) & (nb - 1)];
            e->next = *slot;
            *slot = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

int namemap_put(namemap *t, const char *folded, void *val) {
    entry **p = find(t, folded);
    if (*p) {
        (*p)->val = val;
        return 0;
    }
    size_t n = strlen(folded) + 1;
    entry *e = malloc(sizeof *e + n);
    if (!e)
        return UV_ENOMEM;
    memcpy(e->key, folded, n);
    e->val = val;
    e->next = NULL;
    *p = e;
    if (++t->count > t->nbuckets)
        grow(t);
    return 0;
}

int namemap_del(namemap *t, const char *folded, const void *val) {
    entry **p = find(t, folded);
    if (!*p || (*p)->val != val)
        return 0;
    entry *e = *p;
    *p = e->next;
    free(e);
    t->count--;
    return 1;
}

size_t namemap_count(const namemap *t) {
    return t->count;
}

void namemap_each(const namemap *t, void (*fn)(void *val, void *arg), void *arg) {
    for (size_t i = 0; i < t->nbuckets; i++)
        for (entry *e = t->buckets[i]; e; e = e->next)
            fn(e->val, arg);
}
