/* cache: records in one malloc each (fixed fields, then the folded name,
 * the name and the endpoints), indexed by a namemap and threaded on a
 * doubly linked list in recency order, most recent at the head.  A hit
 * moves its record to the head; a put beyond max frees the tail. */
#include "cache.h"

#include "namemap.h"

#include <stdlib.h>
#include <string.h>
#include <uv.h>

typedef struct rec {
    struct rec *prev, *next;
    int64_t last_seen;
    int online;
    unsigned char key[IDENT_PK];
    const char *name;      /* into text[] */
    const char *endpoints; /* into text[] */
    char text[];           /* folded \0 name \0 endpoints \0 */
} rec;

struct cache {
    namemap *index;
    rec *head, *tail;
    size_t count, max;
};

cache *cache_new(size_t max) {
    cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->max = max;
    if (!(c->index = namemap_new())) {
        free(c);
        return NULL;
    }
    return c;
}

static void unlink_rec(cache *c, rec *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        c->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        c->tail = r->prev;
    r->prev = r->next = NULL;
}

static void push_head(cache *c, rec *r) {
    r->prev = NULL;
    r->next = c->head;
    if (c->head)
        c->head->prev = r;
    c->head = r;
    if (!c->tail)
        c->tail = r;
}

static void drop(cache *c, rec *r) {
    unlink_rec(c, r);
    namemap_del(c->index, r->text, r);
    c->count--;
    free(r);
}

void cache_clear(cache *c) {
    while (c->head)
        drop(c, c->head);
}

void cache_free(cache *c) {
    if (!c)
        return;
    cache_clear(c);
    namemap_free(c->index);
    free(c);
}

int cache_get(cache *c, const char *folded, cache_row *row) {
    rec *r = namemap_get(c->index, folded);
    if (!r)
        return UV_ENOENT;
    if (c->head != r) {
        unlink_rec(c, r);
        push_head(c, r);
    }
    row->name = r->name;
    row->key = r->key;
    row->endpoints = r->endpoints;
    row->last_seen = r->last_seen;
    row->online = r->online;
    return 0;
}

void cache_put(cache *c, const char *folded, const cache_row *row) {
    rec *old = namemap_get(c->index, folded);
    if (old)
        drop(c, old);
    if (c->max == 0)
        return;
    size_t fl = strlen(folded) + 1, nl = strlen(row->name) + 1, el = strlen(row->endpoints) + 1;
    rec *r = malloc(sizeof *r + fl + nl + el);
    if (!r)
        return;
    memcpy(r->text, folded, fl);
    memcpy(r->text + fl, row->name, nl);
    memcpy(r->text + fl + nl, row->endpoints, el);
    r->name = r->text + fl;
    r->endpoints = r->text + fl + nl;
    memcpy(r->key, row->key, IDENT_PK);
    r->last_seen = row->last_seen;
    r->online = row->online;
    if (namemap_put(c->index, r->text, r)) {
        free(r);
        return;
    }
    push_head(c, r);
    if (++c->count > c->max)
        drop(c, c->tail);
}

void cache_presence(cache *c, const char *folded, int online, int64_t last_seen) {
    rec *r = namemap_get(c->index, folded);
    if (r) {
        r->online = online;
        r->last_seen = last_seen;
    }
}

size_t cache_count(const cache *c) {
    return c->count;
}
