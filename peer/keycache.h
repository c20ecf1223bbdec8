/* keycache: what the tracker last told us about each user, by folded name.
 * The tracker client fills it from lookup answers and dial-back requests
 * and keeps its presence flags current; chat links are verified from it
 * while the tracker is briefly down, since a key never changes without its
 * owner's proof.  It only grows: a peer knows a handful of names. */
#ifndef PARLEY_KEYCACHE_H
#define PARLEY_KEYCACHE_H

#include "control.h"

#include <stdbool.h>

typedef struct keycache keycache;

/* 0 with *out set, or UV_ENOMEM. */
int kc_open(keycache **out);

/* Remembers u under its folded name, replacing what was there.  Best
 * effort: a name that does not fold, or no memory, leaves the cache as it
 * was (a miss only costs a question to the tracker). */
void kc_put(keycache *kc, const ctl_user *u);

/* The user known by name (folded here), or NULL.  Valid until the next
 * kc_put or kc_close. */
const ctl_user *kc_find(const keycache *kc, const char *name);

/* A presence push: marks name online or offline when it is known. */
void kc_set_online(keycache *kc, const char *name, bool online);

/* Frees the cache.  NULL is a no-op. */
void kc_close(keycache *kc);

#endif
