/* online: the live half of presence.  Maps a folded username to the session
 * currently registered under it, so a lookup can answer with the observed
 * address, a second registration can replace the first, and presence pushes
 * reach everyone online.  The registry keeps the durable half. */
#ifndef PARLEY_ONLINE_H
#define PARLEY_ONLINE_H

#include <stddef.h>

typedef struct online online;

/* NULL when out of memory. */
online *online_new(void);

/* Frees the table (not the sessions it points to).  NULL is a no-op. */
void online_free(online *t);

/* The session registered under folded, or NULL. */
void *online_get(const online *t, const char *folded);

/* Maps folded to sess, replacing any earlier session (the caller deals with
 * that one first).  The key is copied.  0 or UV_ENOMEM. */
int online_put(online *t, const char *folded, void *sess);

/* Removes folded only while it still maps to sess, so a replaced session
 * closing late cannot take its successor offline.  1 when removed, else 0. */
int online_del(online *t, const char *folded, const void *sess);

size_t online_count(const online *t);

/* Calls fn for every session.  fn must not add or remove entries. */
void online_each(const online *t, void (*fn)(void *sess, void *arg), void *arg);

#endif
