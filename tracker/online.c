/* online: a chained hash table from folded name to session, grown by
 * doubling.  Small and separate so the server's presence logic reads as
 * "get, put, del" and the unit tests can poke it directly. */
#include "online.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct entry {
    struct entry *next;
    void *sess;
    char key[];
} entry;

struct online {
    entry **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
};

static uint64_t hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

online *online_new(void) {
    online *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    return t;
}

void online_free(online *t) {
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

static entry **find(const online *t, const char *key) {
    entry **p = &t->buckets[hash(key) & (t->nbuckets - 1)];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->next;
    return p;
}

void *online_get(const online *t, const char *folded) {
    entry *e = *find(t, folded);
    return e ? e->sess : NULL;
}

static void grow(online *t) {
    size_t nb = t->nbuckets * 2;
    entry **b = calloc(nb, sizeof *b);
    if (!b)
        return; /* keep the longer chains; still correct */
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (entry *e = t->buckets[i], *n; e; e = n) {
            n = e->next;
            entry **slot = &b[hash(e->key) & (nb - 1)];
            e->next = *slot;
            *slot = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
}

int online_put(online *t, const char *folded, void *sess) {
    entry **p = find(t, folded);
    if (*p) {
        (*p)->sess = sess;
        return 0;
    }
    size_t n = strlen(folded) + 1;
    entry *e = malloc(sizeof *e + n);
    if (!e)
        return UV_ENOMEM;
    memcpy(e->key, folded, n);
    e->sess = sess;
    e->next = NULL;
    *p = e;
    if (++t->count > t->nbuckets)
        grow(t);
    return 0;
}

int online_del(online *t, const char *folded, const void *sess) {
    entry **p = find(t, folded);
    if (!*p || (*p)->sess != sess)
        return 0;
    entry *e = *p;
    *p = e->next;
    free(e);
    t->count--;
    return 1;
}

size_t online_count(const online *t) {
    return t->count;
}

void online_each(const online *t, void (*fn)(void *sess, void *arg), void *arg) {
    for (size_t i = 0; i < t->nbuckets; i++)
        for (entry *e = t->buckets[i]; e; e = e->next)
            fn(e->sess, arg);
}
