/* pins: the keys this peer has seen for other users, kept in
 * HOME/known_peers (as ssh keeps known_hosts).  The first key a user
 * authenticates with is pinned; a later link for that name with another
 * key is refused until the user accepts the new key with /trust NAME.  So
 * a hostile or broken tracker cannot quietly swap the key of someone this
 * peer has met.
 *
 * The file holds one line per user: the folded name, a space, the Ed25519
 * public key in hex.  It is written 0600 (atomically: a temporary file
 * renamed over it), and a file other users can read or write is refused. */
#ifndef PARLEY_PINS_H
#define PARLEY_PINS_H

#include "identity.h"

#include <stddef.h>
#include <stdint.h>

typedef struct pins pins;

/* Reads DIR/known_peers (absent: no pins yet).  0 with *out set, or a
 * negative error with a message for the user in err (a file readable by
 * others, one that does not parse, out of memory). */
int pins_open(const char *dir, pins **out, char *err, size_t errlen);

/* NULL is a no-op. */
void pins_close(pins *p);

/* The key pinned for the folded name: 0 with key set, or UV_ENOENT (also
 * for p NULL: pinning off). */
int pins_get(const pins *p, const char *fold, unsigned char key[IDENT_PK]);

/* Calls fn with every pinned folded name, in file order. */
void pins_each(const pins *p, void (*fn)(const char *fold, void *arg), void *arg);

/* Pins key for the folded name (replacing any earlier pin) and rewrites
 * the file before returning (a few hundred bytes; blocking is fine).  0,
 * or a negative error with a message in err (the pin then holds in memory
 * only). */
int pins_set(pins *p, const char *fold, const unsigned char key[IDENT_PK], char *err,
             size_t errlen);

/* 1 when a refusal of another key for fold should be shown now, 0 when one
 * was shown for fold in the last few seconds (a dial tries several
 * addresses at once; the user needs one warning, not five).  Each pinned
 * user has its own clock; an unpinned fold (or p NULL) is always due. */
int pins_warn_due(pins *p, const char *fold, uint64_t now_ms);

#endif
