/* seen: the ids of the last SEEN_IDS messages shown from one peer.  A
 * sender resends every unacknowledged message on each new link, so the
 * receiver must recognise a message it showed already (its ack may have
 * been lost with the old link); chat.c keeps one seen set per
 * conversation. */
#ifndef PARLEY_SEEN_H
#define PARLEY_SEEN_H

#include <stdint.h>

#define SEEN_IDS 4096 /* ids remembered per peer; the oldest is forgotten first */

typedef struct seen seen;

/* 0 with *out set (empty), or UV_ENOMEM. */
int seen_open(seen **out);

/* 1 when id is among the remembered ones; else remembers it (forgetting
 * the oldest once SEEN_IDS are held) and returns 0.  Costs a probe or two:
 * it runs for every received message. */
int seen_check(seen *s, uint64_t id);

/* How many ids are remembered (at most SEEN_IDS). */
unsigned seen_count(const seen *s);

/* NULL is a no-op. */
void seen_close(seen *s);

#endif
