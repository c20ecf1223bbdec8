/* cache: the registry's bounded, least-recently-used copy of user records,
 * so a lookup of a name used lately skips SQLite.  Only registry.c uses it,
 * and it keeps the cache exactly as current as its own connection's view:
 * every write it makes goes through here after SQLite accepted it, a failed
 * batch empties the cache, and a change committed by another process (the
 * sqlite3 shell) empties it on the next loop pass (PRAGMA data_version). */
#ifndef PARLEY_CACHE_H
#define PARLEY_CACHE_H

#include "identity.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cache cache;

/* One record as the database row holds it.  The pointers of a row that
 * cache_get filled stay valid until the next cache_put or cache_clear. */
typedef struct cache_row {
    const char *name;          /* spelling of the first registration */
    const unsigned char *key;  /* IDENT_PK bytes */
    const char *endpoints;     /* space-separated, as stored */
    int64_t last_seen;
    int online;
} cache_row;

/* A cache of at most max records (0: a cache that never holds anything).
 * NULL when out of memory. */
cache *cache_new(size_t max);

/* Frees the cache and every record.  NULL is a no-op. */
void cache_free(cache *c);

/* 0 and *row filled when folded is cached (it becomes the most recently
 * used), else UV_ENOENT. */
int cache_get(cache *c, const char *folded, cache_row *row);

/* Stores a copy of row under folded, replacing what was there and evicting
 * the least recently used record when full.  Out of memory only drops the
 * record (a miss later reads SQLite), so nothing to report. */
void cache_put(cache *c, const char *folded, const cache_row *row);

/* Updates the presence fields of a cached record; nothing when not cached. */
void cache_presence(cache *c, const char *folded, int online, int64_t last_seen);

/* Forgets every record. */
void cache_clear(cache *c);

size_t cache_count(const cache *c);

#endif
