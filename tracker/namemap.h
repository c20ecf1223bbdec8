/* namemap: a hash table from a folded username to a pointer.  The server
 * keeps the live half of presence in one (folded name -> the session
 * registered under it, so a lookup can answer with the observed address, a
 * second registration can replace the first and presence pushes reach
 * everyone online); the registry's record cache indexes its entries with
 * another.  Names come from the network, so buckets are chosen by SipHash
 * under a random per-table key: nobody can aim names at one chain. */
#ifndef PARLEY_NAMEMAP_H
#define PARLEY_NAMEMAP_H

#include <stddef.h>

typedef struct namemap namemap;

/* NULL when out of memory. */
namemap *namemap_new(void);

/* Frees the table (not the values it points to).  NULL is a no-op. */
void namemap_free(namemap *t);

/* The value stored under folded, or NULL. */
void *namemap_get(const namemap *t, const char *folded);

/* Maps folded to val, replacing any earlier value (the caller deals with
 * that one first).  The key is copied.  0 or UV_ENOMEM. */
int namemap_put(namemap *t, const char *folded, void *val);

/* Removes folded only while it still maps to val, so a replaced session
 * closing late cannot take its successor offline.  1 when removed, else 0. */
int namemap_del(namemap *t, const char *folded, const void *val);

size_t namemap_count(const namemap *t);

/* Calls fn for every value.  fn must not add or remove entries. */
void namemap_each(const namemap *t, void (*fn)(void *val, void *arg), void *arg);

#endif
